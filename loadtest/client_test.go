package loadtest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"io"
	"math"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/accelgate/accelgate/backends"
)

// fakeServer is a fasthttp server on 127.0.0.1 whose handler a test sets. It
// keeps a copy of the last request's headers and body.
type fakeServer struct {
	t       *testing.T
	ln      net.Listener
	srv     *fasthttp.Server
	url     string
	handler func(ctx *fasthttp.RequestCtx)

	mu      sync.Mutex
	headers map[string]string
	body    []byte
	path    string
}

func newFakeServer(t *testing.T, h func(ctx *fasthttp.RequestCtx)) *fakeServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fs := &fakeServer{t: t, ln: ln, url: "http://" + ln.Addr().String(), handler: h}
	fs.srv = &fasthttp.Server{Handler: fs.handle, CloseOnShutdown: true, MaxRequestBodySize: 64 << 20}
	go fs.srv.Serve(ln)
	t.Cleanup(func() { fs.srv.Shutdown() })
	return fs
}

func (fs *fakeServer) handle(ctx *fasthttp.RequestCtx) {
	hdr := map[string]string{}
	for k, v := range ctx.Request.Header.All() {
		hdr[strings.ToLower(string(k))] = string(v)
	}
	fs.mu.Lock()
	fs.headers = hdr
	fs.body = append([]byte(nil), ctx.PostBody()...)
	fs.path = string(ctx.Path())
	fs.mu.Unlock()
	fs.handler(ctx)
}

func (fs *fakeServer) last() (map[string]string, []byte, string) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return fs.headers, fs.body, fs.path
}

func newTestClient(t *testing.T, opts ClientOptions) *httpClient {
	t.Helper()
	opts.setDefaults()
	c, err := newHTTPClient(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func chatItem(stream bool) *Item {
	return &Item{
		Seq: 7, Op: backends.OpChat, Model: "llama-3.1-8b-instruct", Stream: stream,
		Priority: backends.Sheddable,
		SLO:      backends.SLO{E2E: 2 * time.Second, TTFT: 300 * time.Millisecond, TPOT: 40 * time.Millisecond},
		Timeout:  5 * time.Second, InputTokens: 12, OutputTokens: 4,
		Messages: []backends.Message{{Role: "system", Content: "be \"brief\"\n"}, {Role: "user", Content: "héllo\t\x01"}},
	}
}

// sseEvents writes events to the stream with a pause before each.
func sseEvents(ctx *fasthttp.RequestCtx, pause time.Duration, events ...string) {
	ctx.SetContentType("text/event-stream")
	ctx.Response.Header.Set(headerBackend, "h100-0")
	ctx.Response.Header.Set(headerHardware, "h100-sxm-80gb")
	ctx.SetBodyStreamWriter(func(w *bufio.Writer) {
		for _, e := range events {
			time.Sleep(pause)
			w.WriteString("data: " + e + "\n\n")
			w.Flush()
		}
	})
}

func TestChatStreamTTFTITLCostUsage(t *testing.T) {
	const pause = 10 * time.Millisecond
	fs := newFakeServer(t, func(ctx *fasthttp.RequestCtx) {
		sseEvents(ctx, pause,
			`{"id":"x","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":"Hel"},"finish_reason":null}]}`,
			`{"id":"x","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"lo"},"finish_reason":null}]}`,
			`{"id":"x","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":" wor"},"finish_reason":null}]}`,
			`{"id":"x","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"ld"},"finish_reason":"length"}]}`,
			`{"id":"x","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":21,"completion_tokens":4,"total_tokens":25},"accelgate_cost_usd":0.0000123400}`,
			`[DONE]`)
	})
	c := newTestClient(t, ClientOptions{Target: fs.url})
	it := chatItem(true)
	var o Outcome
	intended := time.Now()
	c.Do(context.Background(), it, intended, &o)

	if !o.OK || o.Kind != KindOK || o.Status != 200 {
		t.Fatalf("outcome %+v", o)
	}
	if o.Item != it {
		t.Error("Outcome.Item is not the item")
	}
	if len(o.ITL) != 3 {
		t.Fatalf("ITL = %v, want 3 gaps for 4 content tokens", o.ITL)
	}
	var sum time.Duration
	for _, g := range o.ITL {
		if g < 0 {
			t.Errorf("negative gap %v", g)
		}
		sum += g
	}
	// The first token left the server after one pause, the last after four;
	// the client cannot have seen them earlier.
	if o.TTFT < pause || o.TTFT+sum < 4*pause || o.Latency < o.TTFT+sum {
		t.Errorf("TTFT %v, ITL sum %v, latency %v: inconsistent with the server's pauses", o.TTFT, sum, o.Latency)
	}
	if o.CostUSD != 0.00001234 {
		t.Errorf("cost = %v, want the last chunk's 0.00001234", o.CostUSD)
	}
	if o.InputTokens != 21 || o.OutputTokens != 4 {
		t.Errorf("tokens = %d/%d, want usage 21/4", o.InputTokens, o.OutputTokens)
	}
	if o.Backend != "h100-0" || o.Hardware != "h100-sxm-80gb" {
		t.Errorf("backend/hardware = %q/%q", o.Backend, o.Hardware)
	}

	hdr, body, path := fs.last()
	if path != "/v1/chat/completions" {
		t.Errorf("path %q", path)
	}
	want := map[string]string{headerPriority: "sheddable", headerSLOTTFT: "300", headerSLOTPOT: "40", headerTimeout: "5000"}
	for k, v := range want {
		if hdr[k] != v {
			t.Errorf("header %s = %q, want %q", k, hdr[k], v)
		}
	}
	if _, ok := hdr[headerSLO]; ok {
		t.Errorf("a stream must not send %s", headerSLO)
	}
	var req struct {
		Model    string `json:"model"`
		Messages []struct {
			Role    string `json:"role"`
			Content string `json:"content"`
		} `json:"messages"`
		MaxTokens     int  `json:"max_tokens"`
		Stream        bool `json:"stream"`
		StreamOptions struct {
			IncludeUsage bool `json:"include_usage"`
		} `json:"stream_options"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		t.Fatalf("body %s: %v", body, err)
	}
	if req.Model != it.Model || len(req.Messages) != 2 || req.Messages[0].Content != it.Messages[0].Content ||
		req.Messages[1].Content != it.Messages[1].Content || req.Messages[0].Role != "system" ||
		req.MaxTokens != 4 || !req.Stream || !req.StreamOptions.IncludeUsage {
		t.Errorf("decoded body %+v from %s", req, body)
	}
}

func TestCompletionStreamWithoutUsage(t *testing.T) {
	fs := newFakeServer(t, func(ctx *fasthttp.RequestCtx) {
		sseEvents(ctx, 0,
			`{"object":"text_completion","choices":[{"index":0,"text":"a","finish_reason":null}]}`,
			`{"object":"text_completion","choices":[{"index":0,"text":"b","finish_reason":null}]}`,
			`{"object":"text_completion","choices":[{"index":0,"text":"c","finish_reason":"length"}],"accelgate_cost_usd":2.5e-7}`,
			`[DONE]`)
	})
	c := newTestClient(t, ClientOptions{Target: fs.url})
	it := &Item{Op: backends.OpCompletion, Model: "m", Stream: true, Prompt: "Once", InputTokens: 3, OutputTokens: 3}
	var o Outcome
	c.Do(context.Background(), it, time.Now(), &o)
	if !o.OK || len(o.ITL) != 2 || o.OutputTokens != 3 || o.InputTokens != 3 || o.CostUSD != 2.5e-7 {
		t.Errorf("outcome %+v", o)
	}
	if _, _, path := fs.last(); path != "/v1/completions" {
		t.Errorf("path %q", path)
	}
}

func TestStreamErrorEventAndMissingDone(t *testing.T) {
	for _, tc := range []struct {
		events []string
		kind   string
	}{
		{[]string{`{"choices":[{"index":0,"delta":{"content":"a"}}]}`, `{"error":{"message":"hard timeout","type":"timeout_error","param":null,"code":"timeout"}}`, `[DONE]`}, KindTimeout},
		{[]string{`{"error":{"message":"x","type":"server_error","param":null,"code":"backend_unavailable"}}`, `[DONE]`}, KindBackendUnavailable},
		{[]string{`{"choices":[{"index":0,"delta":{"content":"a"}}]}`}, KindStreamError},
	} {
		fs := newFakeServer(t, func(ctx *fasthttp.RequestCtx) { sseEvents(ctx, 0, tc.events...) })
		c := newTestClient(t, ClientOptions{Target: fs.url})
		var o Outcome
		c.Do(context.Background(), chatItem(true), time.Now(), &o)
		if o.OK || o.Kind != tc.kind || o.Status != 200 {
			t.Errorf("%v: outcome kind %q ok %v status %d, want %q", tc.events, o.Kind, o.OK, o.Status, tc.kind)
		}
	}
}

func TestNonStreamHeadersAndUsage(t *testing.T) {
	fs := newFakeServer(t, func(ctx *fasthttp.RequestCtx) {
		ctx.Response.Header.Set(headerBackend, "tpu-v5e-0")
		ctx.Response.Header.Set(headerHardware, "tpu-v5e")
		ctx.Response.Header.Set(headerCost, "0.0000909755")
		ctx.SetContentType("application/json")
		ctx.WriteString(`{"id":"c","choices":[{"index":0,"message":{"role":"assistant","content":"\"usage\": no"},"finish_reason":"length"}],"usage":{"prompt_tokens":12,"completion_tokens":20,"total_tokens":32}}`)
	})
	c := newTestClient(t, ClientOptions{Target: fs.url, Timeout: 3 * time.Second})
	it := chatItem(false)
	it.Timeout = 0 // the client's -timeout applies
	var o Outcome
	c.Do(context.Background(), it, time.Now(), &o)
	if !o.OK || o.CostUSD != 0.0000909755 || o.Backend != "tpu-v5e-0" || o.Hardware != "tpu-v5e" ||
		o.InputTokens != 12 || o.OutputTokens != 20 || o.TTFT != o.Latency || len(o.ITL) != 0 {
		t.Errorf("outcome %+v", o)
	}
	hdr, _, _ := fs.last()
	if hdr[headerSLO] != "2000" || hdr[headerTimeout] != "3000" || hdr[headerPriority] != "sheddable" {
		t.Errorf("headers %v", hdr)
	}
	if _, ok := hdr[headerSLOTTFT]; ok {
		t.Error("a non-stream must not send the stream targets")
	}
}

func TestEmbeddingsBody(t *testing.T) {
	fs := newFakeServer(t, func(ctx *fasthttp.RequestCtx) {
		ctx.WriteString(`{"object":"list","data":[],"usage":{"prompt_tokens":9,"total_tokens":9}}`)
	})
	c := newTestClient(t, ClientOptions{Target: fs.url})
	it := &Item{Op: backends.OpEmbedding, Model: "bge", Inputs: []string{"a", "b\\c"}, Priority: backends.Critical}
	var o Outcome
	c.Do(context.Background(), it, time.Now(), &o)
	if !o.OK || o.InputTokens != 9 {
		t.Errorf("outcome %+v", o)
	}
	hdr, body, path := fs.last()
	var req struct {
		Model string   `json:"model"`
		Input []string `json:"input"`
	}
	if err := json.Unmarshal(body, &req); err != nil || path != "/v1/embeddings" || req.Model != "bge" ||
		len(req.Input) != 2 || req.Input[1] != "b\\c" || hdr[headerPriority] != "critical" {
		t.Errorf("path %q body %s (%v) headers %v", path, body, err, hdr)
	}
}

func TestHTTPErrorClassification(t *testing.T) {
	for status, kind := range map[int]string{429: KindShed, 503: KindNoBackend, 504: KindTimeout, 400: KindBadRequest, 404: "http_404", 502: "http_502"} {
		fs := newFakeServer(t, func(ctx *fasthttp.RequestCtx) {
			ctx.SetStatusCode(status)
			ctx.WriteString(`{"error":{"message":"no","type":"x","param":null,"code":null}}`)
		})
		c := newTestClient(t, ClientOptions{Target: fs.url})
		for _, stream := range []bool{false, true} {
			var o Outcome
			c.Do(context.Background(), chatItem(stream), time.Now(), &o)
			if o.OK || o.Status != status || o.Kind != kind {
				t.Errorf("status %d stream %v: kind %q status %d ok %v, want %q", status, stream, o.Kind, o.Status, o.OK, kind)
			}
		}
	}
}

func TestTransportErrors(t *testing.T) {
	// Connection refused: a port that was just closed.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c := newTestClient(t, ClientOptions{Target: "http://" + addr})
	var o Outcome
	c.Do(context.Background(), chatItem(false), time.Now(), &o)
	if o.OK || o.Kind != KindConnError || o.Status != 0 {
		t.Errorf("refused: %+v", o)
	}

	// Client-side deadline: the server answers after the item's timeout.
	release := make(chan struct{})
	fs := newFakeServer(t, func(ctx *fasthttp.RequestCtx) { <-release })
	defer close(release)
	c = newTestClient(t, ClientOptions{Target: fs.url})
	c.grace = 0
	for _, stream := range []bool{false, true} {
		it := chatItem(stream)
		it.Timeout = 50 * time.Millisecond
		o = Outcome{}
		c.Do(context.Background(), it, time.Now(), &o)
		if o.OK || o.Kind != KindTimeout || o.Latency < 50*time.Millisecond {
			t.Errorf("stream %v: deadline: %+v", stream, o)
		}
	}
}

func TestMeasuredFromIntendedTime(t *testing.T) {
	fs := newFakeServer(t, func(ctx *fasthttp.RequestCtx) { ctx.WriteString(`{}`) })
	c := newTestClient(t, ClientOptions{Target: fs.url})
	var o Outcome
	c.Do(context.Background(), chatItem(false), time.Now().Add(-time.Hour), &o)
	if o.Latency < time.Hour || o.TTFT != o.Latency {
		t.Errorf("latency %v: not measured from the intended time an hour ago", o.Latency)
	}
}

// checkImage checks raw contents against the deterministic image pattern.
func checkImage(t *testing.T, raw []byte, images int) {
	t.Helper()
	if len(raw) != images*imageBytes {
		t.Fatalf("raw data is %d bytes, want %d images × %d", len(raw), images, imageBytes)
	}
	for _, i := range []int{0, 1, 2, 1000, imageElems - 1, imageElems, len(raw)/4 - 1} {
		if i >= len(raw)/4 {
			continue
		}
		got := math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		if want := imageValue(i % imageElems); got != want {
			t.Fatalf("element %d = %v, want %v", i, got, want)
		}
	}
}

func TestKServeBinaryRequest(t *testing.T) {
	fs := newFakeServer(t, func(ctx *fasthttp.RequestCtx) {
		ctx.Response.Header.Set(headerBackend, "l4-0")
		ctx.Response.Header.Set(headerHardware, "l4")
		ctx.WriteString(`{"model_name":"resnet-50","outputs":[{"name":"output","datatype":"FP32","shape":[3,1000],"data":[0.5]}],"parameters":{"accelgate_cost_usd":0.000002}}`)
	})
	c := newTestClient(t, ClientOptions{Target: fs.url})
	it := &Item{Op: backends.OpTensor, Model: "resnet-50", Images: 3, Priority: backends.Standard, SLO: backends.SLO{E2E: 50 * time.Millisecond}}
	var o Outcome
	c.Do(context.Background(), it, time.Now(), &o)
	if !o.OK || o.CostUSD != 0.000002 || o.Backend != "l4-0" || o.Hardware != "l4" {
		t.Errorf("outcome %+v", o)
	}
	hdr, body, path := fs.last()
	if path != "/v2/models/resnet-50/infer" || hdr["content-type"] != "application/octet-stream" || hdr[headerSLO] != "50" {
		t.Errorf("path %q headers %v", path, hdr)
	}
	n, err := strconv.Atoi(hdr[strings.ToLower(headerInferLen)])
	if err != nil || n <= 0 || n > len(body) {
		t.Fatalf("Inference-Header-Content-Length %q (body %d bytes)", hdr[strings.ToLower(headerInferLen)], len(body))
	}
	var head struct {
		Inputs []struct {
			Name       string  `json:"name"`
			Shape      []int64 `json:"shape"`
			Datatype   string  `json:"datatype"`
			Parameters struct {
				BinaryDataSize int `json:"binary_data_size"`
			} `json:"parameters"`
		} `json:"inputs"`
	}
	if err := json.Unmarshal(body[:n], &head); err != nil {
		t.Fatalf("JSON header %q: %v", body[:n], err)
	}
	in := head.Inputs
	if len(in) != 1 || in[0].Name != "input" || in[0].Datatype != "FP32" ||
		!slices.Equal(in[0].Shape, []int64{3, 3, 224, 224}) || in[0].Parameters.BinaryDataSize != 3*imageBytes {
		t.Errorf("header %s", body[:n])
	}
	checkImage(t, body[n:], 3)
}

func TestKServeJSONRequestAndBinaryResponse(t *testing.T) {
	// A binary response: a JSON header with the parameters, then raw output.
	head := `{"model_name":"resnet-50","outputs":[{"name":"output","datatype":"FP32","shape":[1,1000],"parameters":{"binary_data_size":4000}}],"parameters":{"accelgate_cost_usd":"0.5","accelgate_backend":"edge-1","accelgate_hardware":"jetson-agx-orin"}}`
	fs := newFakeServer(t, func(ctx *fasthttp.RequestCtx) {
		ctx.Response.Header.Set(headerInferLen, strconv.Itoa(len(head)))
		ctx.SetContentType("application/octet-stream")
		ctx.WriteString(head)
		ctx.Write(make([]byte, 4000))
	})
	c := newTestClient(t, ClientOptions{Target: fs.url, TensorJSON: true})
	it := &Item{Op: backends.OpTensor, Model: "resnet-50", Images: 1}
	var o Outcome
	c.Do(context.Background(), it, time.Now(), &o)
	if !o.OK || o.CostUSD != 0.5 || o.Backend != "edge-1" || o.Hardware != "jetson-agx-orin" {
		t.Errorf("outcome %+v", o)
	}
	hdr, body, _ := fs.last()
	if hdr["content-type"] != "application/json" || hdr[strings.ToLower(headerInferLen)] != "" {
		t.Errorf("headers %v", hdr)
	}
	var req struct {
		Inputs []struct {
			Shape []int64   `json:"shape"`
			Data  []float32 `json:"data"`
		} `json:"inputs"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		t.Fatal(err)
	}
	if len(req.Inputs) != 1 || !slices.Equal(req.Inputs[0].Shape, []int64{1, 3, 224, 224}) || len(req.Inputs[0].Data) != imageElems {
		t.Fatalf("JSON tensor request: %d inputs", len(req.Inputs))
	}
	raw := make([]byte, 0, imageBytes)
	for _, v := range req.Inputs[0].Data {
		raw = binary.LittleEndian.AppendUint32(raw, math.Float32bits(v))
	}
	checkImage(t, raw, 1) // the JSON data is the same tensor as the binary one
}

func TestSSEParserSplitsAcrossReads(t *testing.T) {
	stream := "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\r\n\r\n: comment\n" +
		"data: {\"choices\":[{\"delta\":{\"content\":\"b\"}}]}\n\n" +
		"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":2},\"accelgate_cost_usd\":1e-9}\n\ndata: [DONE]\n\n"
	for chunk := 1; chunk <= len(stream); chunk += 7 {
		var o Outcome
		p := sseParser{intended: time.Now(), o: &o}
		r := &chunkReader{b: []byte(stream), n: chunk}
		var keep []byte
		if err := p.read(r, make([]byte, 16), &keep); err != nil {
			t.Fatalf("chunk %d: %v", chunk, err)
		}
		if !p.done || p.tokens != 2 || len(o.ITL) != 1 || o.CostUSD != 1e-9 || o.InputTokens != 5 || o.OutputTokens != 2 {
			t.Fatalf("chunk %d: parser %+v outcome %+v", chunk, p, o)
		}
	}
}

type chunkReader struct {
	b []byte
	n int
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.b[:min(r.n, len(r.b))])
	r.b = r.b[n:]
	return n, nil
}

// TestClientDoAllocs guards the hot path: in steady state a non-streaming
// request costs no allocation (bodies, headers and interned backend names are
// reused; the in-process server is allocation-free too). A stream costs the 4
// allocations of fasthttp's streamed-body reader (transport.RoundTrip), none
// of ours.
func TestClientDoAllocs(t *testing.T) {
	if clientRaceEnabled {
		t.Skip("allocation counts are unreliable under the race detector")
	}
	streamBody := []byte("data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\n\n" +
		"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"b\"}}]}\n\n" +
		"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":2,\"completion_tokens\":2},\"accelgate_cost_usd\":1e-7}\n\ndata: [DONE]\n\n")
	plainBody := []byte(`{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":1}}`)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		ctx.Response.Header.Set(headerBackend, "h100-0")
		ctx.Response.Header.Set(headerHardware, "h100-sxm-80gb")
		if bytes.Contains(ctx.PostBody(), []byte(`"stream":true`)) {
			ctx.SetBody(streamBody)
			return
		}
		ctx.Response.Header.Set(headerCost, "0.0000012345")
		ctx.SetBody(plainBody)
	}}
	go srv.Serve(ln)
	defer srv.Shutdown()
	c := newTestClient(t, ClientOptions{Target: "http://" + ln.Addr().String()})
	for _, stream := range []bool{false, true} {
		it := chatItem(stream)
		o := Outcome{ITL: make([]time.Duration, 0, 16)}
		do := func() {
			o = Outcome{ITL: o.ITL[:0]}
			c.Do(context.Background(), it, time.Now(), &o)
			if !o.OK {
				t.Fatalf("outcome %+v", o)
			}
		}
		for range 10 {
			do()
		}
		want := 0.0
		if stream {
			want = 4
		}
		if n := testing.AllocsPerRun(200, do); n > want {
			t.Errorf("stream %v: %.1f allocations per request, want ≤ %v", stream, n, want)
		}
	}
}
