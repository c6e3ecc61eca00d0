package upstream

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/accelgate/accelgate/backends"
)

// safety bounds a wait that should end at once; it is never a synchronisation.
const safety = 10 * time.Second

// captured is what the fake upstream saw of one request.
type captured struct {
	path, auth, contentType, body, remote string
}

// fakeUpstream is an OpenAI-compatible server on 127.0.0.1 run by fasthttp.
type fakeUpstream struct {
	url  string
	reqs chan captured
}

func newFake(t *testing.T, h fasthttp.RequestHandler) *fakeUpstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeUpstream{url: "http://" + ln.Addr().String(), reqs: make(chan captured, 100)}
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		select {
		case f.reqs <- captured{
			path:        string(ctx.Path()),
			auth:        string(ctx.Request.Header.Peek("Authorization")),
			contentType: string(ctx.Request.Header.ContentType()),
			body:        string(ctx.PostBody()),
			remote:      ctx.RemoteAddr().String(),
		}:
		default:
		}
		h(ctx)
	}}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = ln.Close() })
	return f
}

func (f *fakeUpstream) next(t *testing.T) captured {
	t.Helper()
	select {
	case c := <-f.reqs:
		return c
	case <-time.After(safety):
		t.Fatal("the upstream saw no request")
	}
	return captured{}
}

// rawServer accepts connections on 127.0.0.1 and hands each to handle, for
// tests that need to act on the connection itself.
func rawServer(t *testing.T, handle func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go handle(c)
		}
	}()
	return "http://" + ln.Addr().String()
}

// waitClosed blocks until the peer closes c (or safety passes) and reports
// whether it did.
func waitClosed(c net.Conn) bool {
	_ = c.SetReadDeadline(time.Now().Add(safety))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout())
}

const sseHeader = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"

func sseChunk(payload string) string {
	ev := "data: " + payload + "\n\n"
	return fmt.Sprintf("%x\r\n%s\r\n", len(ev), ev)
}

func newBackend(t *testing.T, url, key string) *Backend {
	t.Helper()
	desc := &backends.Descriptor{Name: "up-0", Transport: "openai", Models: []string{"m"}, PricePerHour: 3600}
	b, err := New(desc, Config{URL: url, APIKey: key})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func chatReq(body string, stream bool) *backends.Request {
	return &backends.Request{ID: "r1", Op: backends.OpChat, Model: "m", Stream: stream, Body: []byte(body)}
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), safety)
	t.Cleanup(cancel)
	return ctx
}

// streamHandler answers with the given SSE payloads, one event each.
func streamHandler(payloads ...string) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		ctx.SetContentType("text/event-stream")
		ctx.SetBodyStreamWriter(func(w *bufio.Writer) {
			for _, p := range payloads {
				fmt.Fprintf(w, "data: %s\n\n", p)
				if w.Flush() != nil {
					return
				}
			}
		})
	}
}

func collect(chunks *[]string) backends.StreamFunc {
	return func(c backends.Chunk) error {
		*chunks = append(*chunks, string(c.Raw))
		return nil
	}
}

const okBody = `{"id":"cmpl-1","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"hello"},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":7,"total_tokens":12}}`

func TestNonStreamingPassthrough(t *testing.T) {
	f := newFake(t, func(ctx *fasthttp.RequestCtx) {
		ctx.SetContentType("application/json")
		ctx.SetBodyString(okBody)
	})
	b := newBackend(t, f.url, "sk-test")
	body := `{"model":"m","messages":[{"role":"user","content":"hi"}],"logit_bias":{"50256":-100},"foo":[1,{"bar":"baz"}]}`
	res, err := b.Do(testCtx(t), chatReq(body, false), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := f.next(t)
	if got.body != body {
		t.Errorf("upstream body = %s, want the client's unchanged %s", got.body, body)
	}
	if got.path != "/v1/chat/completions" {
		t.Errorf("path = %q", got.path)
	}
	if got.auth != "Bearer sk-test" {
		t.Errorf("Authorization = %q", got.auth)
	}
	if got.contentType != "application/json" {
		t.Errorf("Content-Type = %q", got.contentType)
	}
	if string(res.Raw) != okBody {
		t.Errorf("Raw = %s", res.Raw)
	}
	if want := (backends.Usage{PromptTokens: 5, CompletionTokens: 7, TotalTokens: 12}); res.Usage != want {
		t.Errorf("Usage = %+v, want %+v", res.Usage, want)
	}
	tm := res.Timing
	if tm.Total <= 0 || tm.TTFT != tm.Total || tm.Busy != tm.Total {
		t.Errorf("Timing = %+v: want TTFT = Busy = Total > 0 for a lone request", tm)
	}
	if want := tm.Busy.Seconds(); res.CostUSD != want { // $3600/h = $1/s
		t.Errorf("CostUSD = %v, want %v", res.CostUSD, want)
	}
}

func TestNoAuthorizationWithoutKey(t *testing.T) {
	f := newFake(t, func(ctx *fasthttp.RequestCtx) { ctx.SetBodyString(okBody) })
	b := newBackend(t, f.url, "")
	if _, err := b.Do(testCtx(t), chatReq(`{}`, false), nil, nil); err != nil {
		t.Fatal(err)
	}
	if got := f.next(t); got.auth != "" {
		t.Errorf("Authorization = %q, want none", got.auth)
	}
}

func TestPaths(t *testing.T) {
	f := newFake(t, func(ctx *fasthttp.RequestCtx) { ctx.SetBodyString(`{}`) })
	for _, base := range []string{f.url, f.url + "/", f.url + "/v1", f.url + "/v1/"} {
		b := newBackend(t, base, "")
		for op, want := range map[backends.Op]string{
			backends.OpChat:       "/v1/chat/completions",
			backends.OpCompletion: "/v1/completions",
			backends.OpEmbedding:  "/v1/embeddings",
		} {
			if _, err := b.Do(testCtx(t), &backends.Request{Op: op, Body: []byte(`{}`)}, nil, nil); err != nil {
				t.Fatal(err)
			}
			if got := f.next(t).path; got != want {
				t.Errorf("base %q, %v: path %q, want %q", base, op, got, want)
			}
		}
	}
	b := newBackend(t, f.url, "")
	_, err := b.Do(testCtx(t), &backends.Request{Op: backends.OpTensor}, nil, nil)
	if !errors.Is(err, backends.ErrUnavailable) || !strings.Contains(err.Error(), "not supported by an OpenAI upstream") {
		t.Errorf("tensor: err = %v, want ErrUnavailable", err)
	}
}

func TestNewValidatesURL(t *testing.T) {
	desc := &backends.Descriptor{Name: "u"}
	for _, u := range []string{"", "ftp://host", "127.0.0.1:9000", "//host:9000", "http://", "http:///v1", "http://host/?a=1", "http://user:pw@host"} {
		if _, err := New(desc, Config{URL: u}); err == nil {
			t.Errorf("New(%q) accepted it", u)
		} else if !strings.Contains(err.Error(), "url") {
			t.Errorf("New(%q): unclear error %v", u, err)
		}
	}
	for _, u := range []string{"http://127.0.0.1:9000", "https://api.example.com/v1", "http://[::1]:8000/prefix/"} {
		if _, err := New(desc, Config{URL: u}); err != nil {
			t.Errorf("New(%q): %v", u, err)
		}
	}
	if _, err := New(nil, Config{URL: "http://h"}); err == nil {
		t.Error("New accepted a nil descriptor")
	}
}

func TestStreamRelayInjectsAndDropsUsage(t *testing.T) {
	events := []string{
		`{"id":"c","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}`,
		`{"id":"c","choices":[{"index":0,"delta":{"content":"Hel"},"finish_reason":null}]}`,
		`{"id":"c","choices":[{"index":0,"delta":{"content":"lo"},"finish_reason":"stop"}]}`,
		`{"id":"c","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}`,
		`[DONE]`,
	}
	f := newFake(t, streamHandler(events...))
	b := newBackend(t, f.url, "")
	body := `{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}],"foo":{"x":[1,2]}}`
	var chunks []string
	res, err := b.Do(testCtx(t), chatReq(body, true), nil, collect(&chunks))
	if err != nil {
		t.Fatal(err)
	}
	if want := events[:3]; !reflect.DeepEqual(chunks, want) {
		t.Errorf("relayed %q, want %q (no usage chunk, no [DONE])", chunks, want)
	}
	if want := (backends.Usage{PromptTokens: 3, CompletionTokens: 2, TotalTokens: 5}); res.Usage != want {
		t.Errorf("Usage = %+v, want %+v", res.Usage, want)
	}
	if res.Raw != nil {
		t.Errorf("Raw = %s on a stream", res.Raw)
	}
	if tm := res.Timing; tm.TTFT <= 0 || tm.TTFT > tm.Total {
		t.Errorf("Timing = %+v", tm)
	}

	// The upstream got the client's body plus stream_options.include_usage.
	var sent, orig map[string]any
	if err := json.Unmarshal([]byte(f.next(t).body), &sent); err != nil {
		t.Fatal(err)
	}
	_ = json.Unmarshal([]byte(body), &orig)
	if so, _ := sent["stream_options"].(map[string]any); so["include_usage"] != true {
		t.Errorf("stream_options = %v, want include_usage true", sent["stream_options"])
	}
	delete(sent, "stream_options")
	if !reflect.DeepEqual(sent, orig) {
		t.Errorf("upstream body %v, want %v", sent, orig)
	}
}

func TestStreamKeepsUsageChunkWhenAsked(t *testing.T) {
	events := []string{
		`{"id":"c","choices":[{"index":0,"delta":{"content":"a"},"finish_reason":"length"}],"usage":null}`,
		`{"id":"c","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}`,
		`[DONE]`,
	}
	f := newFake(t, streamHandler(events...))
	b := newBackend(t, f.url, "")
	body := `{"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[]}`
	req := chatReq(body, true)
	req.IncludeUsage = true
	var chunks []string
	res, err := b.Do(testCtx(t), req, nil, collect(&chunks))
	if err != nil {
		t.Fatal(err)
	}
	if got := f.next(t).body; got != body {
		t.Errorf("upstream body = %s, want unchanged %s", got, body)
	}
	if want := events[:2]; !reflect.DeepEqual(chunks, want) {
		t.Errorf("relayed %q, want %q", chunks, want)
	}
	if res.Usage.TotalTokens != 2 {
		t.Errorf("Usage = %+v", res.Usage)
	}
}

func TestErrorBodies(t *testing.T) {
	cases := []struct {
		name   string
		status int
		body   string
		want   backends.UpstreamError
	}{
		{"openai", 400, `{"error":{"message":"bad temperature","type":"invalid_request_error","param":"temperature","code":"invalid_value"}}`,
			backends.UpstreamError{Status: 400, Message: "bad temperature", Type: "invalid_request_error", Param: "temperature", Code: "invalid_value"}},
		{"vllm-flat", 400, `{"object":"error","message":"This model's maximum context length is 8192 tokens","type":"BadRequestError","param":null,"code":400}`,
			backends.UpstreamError{Status: 400, Message: "This model's maximum context length is 8192 tokens", Type: "BadRequestError", Code: "400"}},
		{"tgi", 422, `{"error":"Input validation error","error_type":"validation"}`,
			backends.UpstreamError{Status: 422, Message: "Input validation error", Type: "validation"}},
		{"fastapi", 404, `{"detail":"Not Found"}`,
			backends.UpstreamError{Status: 404, Message: "Not Found"}},
		{"text", 413, "request entity too large\n",
			backends.UpstreamError{Status: 413, Message: "request entity too large"}},
	}
	for _, tc := range cases {
		for _, stream := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/stream=%v", tc.name, stream), func(t *testing.T) {
				f := newFake(t, func(ctx *fasthttp.RequestCtx) {
					ctx.SetStatusCode(tc.status)
					ctx.SetBodyString(tc.body)
				})
				b := newBackend(t, f.url, "")
				_, err := b.Do(testCtx(t), chatReq(`{"stream":true}`, stream), nil, func(backends.Chunk) error {
					t.Error("a chunk was relayed from an error answer")
					return nil
				})
				var ue *backends.UpstreamError
				if !errors.As(err, &ue) {
					t.Fatalf("err = %v, want an UpstreamError", err)
				}
				if *ue != tc.want {
					t.Errorf("got %+v, want %+v", *ue, tc.want)
				}
				if errors.Is(err, backends.ErrUnavailable) || errors.Is(err, backends.ErrShed) {
					t.Errorf("a %d must be relayed, not retried or shed: %v", tc.status, err)
				}
			})
		}
	}
}

func TestStatusClasses(t *testing.T) {
	for _, tc := range []struct {
		status int
		want   error
	}{
		{429, backends.ErrShed},
		{500, backends.ErrUnavailable},
		{502, backends.ErrUnavailable},
		{503, backends.ErrUnavailable},
		{401, backends.ErrUnavailable},
	} {
		f := newFake(t, func(ctx *fasthttp.RequestCtx) {
			ctx.SetStatusCode(tc.status)
			ctx.SetBodyString(`{"error":{"message":"nope","type":"x"}}`)
		})
		b := newBackend(t, f.url, "")
		for _, stream := range []bool{false, true} {
			_, err := b.Do(testCtx(t), chatReq(`{}`, stream), nil, nil)
			if !errors.Is(err, tc.want) {
				t.Errorf("%d (stream %v): err = %v, want %v", tc.status, stream, err, tc.want)
			}
			var ue *backends.UpstreamError
			if !errors.As(err, &ue) || ue.Status != tc.status || ue.Message != "nope" {
				t.Errorf("%d: err = %v, want an UpstreamError with the status and message", tc.status, err)
			}
		}
	}
}

func TestConnectionRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	_ = ln.Close()
	b := newBackend(t, url, "")
	for _, stream := range []bool{false, true} {
		_, err = b.Do(testCtx(t), chatReq(`{}`, stream), nil, nil)
		if !errors.Is(err, backends.ErrUnavailable) {
			t.Errorf("err = %v, want ErrUnavailable", err)
		}
	}
}

func TestClosedBackend(t *testing.T) {
	f := newFake(t, func(ctx *fasthttp.RequestCtx) { ctx.SetBodyString(okBody) })
	b := newBackend(t, f.url, "")
	_ = b.Close()
	if _, err := b.Do(testCtx(t), chatReq(`{}`, false), nil, nil); !errors.Is(err, backends.ErrUnavailable) {
		t.Errorf("err = %v, want ErrUnavailable", err)
	}
}

func TestDeadline(t *testing.T) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	f := newFake(t, func(ctx *fasthttp.RequestCtx) { <-release })
	b := newBackend(t, f.url, "")
	for _, stream := range []bool{false, true} {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		_, err := b.Do(ctx, chatReq(`{}`, stream), nil, nil)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("stream %v: err = %v, want DeadlineExceeded", stream, err)
		}
	}
}

// TestCancelBeforeResponse: the client goes away while the upstream is still
// working on a non-streaming answer; the upstream sees its connection close.
func TestCancelBeforeResponse(t *testing.T) {
	arrived, closed := make(chan struct{}), make(chan bool, 1)
	url := rawServer(t, func(c net.Conn) {
		defer c.Close()
		req := fasthttp.AcquireRequest()
		defer fasthttp.ReleaseRequest(req)
		if req.Read(bufio.NewReader(c)) != nil {
			return
		}
		close(arrived)
		closed <- waitClosed(c)
	})
	b := newBackend(t, url, "")
	ctx, cancel := context.WithCancel(testCtx(t))
	go func() {
		<-arrived
		cancel()
	}()
	_, err := b.Do(ctx, chatReq(`{}`, false), nil, nil)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want Canceled", err)
	}
	if !<-closed {
		t.Error("the upstream did not see the connection close")
	}
}

var errClientGone = errors.New("client gone")

// TestClientGoneMidStream: the stream function fails after two chunks; Do
// returns its error and the upstream sees the connection close.
func TestClientGoneMidStream(t *testing.T) {
	closed := make(chan bool, 1)
	url := rawServer(t, func(c net.Conn) {
		defer c.Close()
		req := fasthttp.AcquireRequest()
		defer fasthttp.ReleaseRequest(req)
		if req.Read(bufio.NewReader(c)) != nil {
			return
		}
		msg := sseHeader
		for i := range 3 {
			msg += sseChunk(fmt.Sprintf(`{"choices":[{"index":0,"delta":{"content":"t%d"}}]}`, i))
		}
		if _, err := io.WriteString(c, msg); err != nil {
			return
		}
		closed <- waitClosed(c) // the stream stays open: only the client can end it
	})
	b := newBackend(t, url, "")
	n := 0
	_, err := b.Do(testCtx(t), chatReq(`{"stream":true}`, true), nil, func(backends.Chunk) error {
		if n++; n == 2 {
			return errClientGone
		}
		return nil
	})
	if !errors.Is(err, errClientGone) {
		t.Errorf("err = %v, want the stream function's error", err)
	}
	if n != 2 {
		t.Errorf("stream called %d times, want 2", n)
	}
	if !<-closed {
		t.Error("the upstream did not see the connection close")
	}
	if b.pool.IdleCount() != 0 {
		t.Error("the abandoned connection went back to the pool")
	}
}

// TestCancelMidStream: ctx ends while the upstream is between two events.
func TestCancelMidStream(t *testing.T) {
	closed := make(chan bool, 1)
	url := rawServer(t, func(c net.Conn) {
		defer c.Close()
		req := fasthttp.AcquireRequest()
		defer fasthttp.ReleaseRequest(req)
		if req.Read(bufio.NewReader(c)) != nil {
			return
		}
		if _, err := io.WriteString(c, sseHeader+sseChunk(`{"choices":[{"index":0,"delta":{"content":"a"}}]}`)); err != nil {
			return
		}
		closed <- waitClosed(c)
	})
	b := newBackend(t, url, "")
	ctx, cancel := context.WithCancel(testCtx(t))
	n := 0
	_, err := b.Do(ctx, chatReq(`{"stream":true}`, true), nil, func(backends.Chunk) error {
		n++
		cancel() // the gateway's client went away after the first chunk
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want Canceled", err)
	}
	if n != 1 {
		t.Errorf("stream called %d times, want 1", n)
	}
	if !<-closed {
		t.Error("the upstream did not see the connection close")
	}
}

func TestMidStreamError(t *testing.T) {
	for _, tc := range []struct {
		event string
		want  backends.UpstreamError
	}{
		{`{"error":{"message":"boom","type":"InternalServerError","code":500}}`,
			backends.UpstreamError{Status: 500, Message: "boom", Type: "InternalServerError", Code: "500"}},
		{`{"error":{"object":"error","message":"too long","type":"BadRequestError","code":400}}`,
			backends.UpstreamError{Status: 400, Message: "too long", Type: "BadRequestError", Code: "400"}},
		{`{"object":"error","message":"flat","type":"X"}`,
			backends.UpstreamError{Status: 500, Message: "flat", Type: "X"}},
	} {
		first := `{"choices":[{"index":0,"delta":{"content":"an \"error\" in text"}}]}`
		f := newFake(t, streamHandler(first, tc.event, `[DONE]`))
		b := newBackend(t, f.url, "")
		var chunks []string
		_, err := b.Do(testCtx(t), chatReq(`{"stream":true}`, true), nil, collect(&chunks))
		var ue *backends.UpstreamError
		if !errors.As(err, &ue) || *ue != tc.want {
			t.Errorf("err = %#v, want %+v", err, tc.want)
		}
		if !reflect.DeepEqual(chunks, []string{first}) {
			t.Errorf("relayed %q, want only the first chunk", chunks)
		}
	}
}

func TestStreamWithoutDone(t *testing.T) {
	// A server that ends the body without [DONE]: fine after a finish_reason.
	f := newFake(t, streamHandler(`{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}`))
	b := newBackend(t, f.url, "")
	if _, err := b.Do(testCtx(t), chatReq(`{}`, true), nil, nil); err != nil {
		t.Errorf("err = %v", err)
	}
	// Without one the answer is cut short.
	f = newFake(t, streamHandler(`{"choices":[{"index":0,"delta":{"content":"a"},"finish_reason":null}]}`))
	b = newBackend(t, f.url, "")
	if _, err := b.Do(testCtx(t), chatReq(`{}`, true), nil, nil); !errors.Is(err, backends.ErrUnavailable) {
		t.Errorf("err = %v, want ErrUnavailable", err)
	}
}

func TestKeepAlive(t *testing.T) {
	var mu sync.Mutex
	stream := false
	f := newFake(t, func(ctx *fasthttp.RequestCtx) {
		mu.Lock()
		s := stream
		mu.Unlock()
		if s {
			streamHandler(`{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}`, `[DONE]`)(ctx)
			return
		}
		ctx.SetBodyString(okBody)
	})
	b := newBackend(t, f.url, "")
	var remotes []string
	for i := range 4 {
		mu.Lock()
		stream = i%2 == 1
		mu.Unlock()
		if _, err := b.Do(testCtx(t), chatReq(`{}`, i%2 == 1), nil, nil); err != nil {
			t.Fatal(err)
		}
		remotes = append(remotes, f.next(t).remote)
	}
	for _, r := range remotes[1:] {
		if r != remotes[0] {
			t.Fatalf("requests came from %v: want one reused connection", remotes)
		}
	}
	if n := b.pool.IdleCount(); n != 1 {
		t.Errorf("%d idle connections, want 1", n)
	}
}

// TestStaleConnRetried: the server closes an idle keep-alive connection; the
// next request notices before any byte of an answer and goes out on a fresh one.
func TestStaleConnRetried(t *testing.T) {
	served := make(chan struct{}, 10)
	url := rawServer(t, func(c net.Conn) {
		req := fasthttp.AcquireRequest()
		defer fasthttp.ReleaseRequest(req)
		if req.Read(bufio.NewReader(c)) == nil {
			fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(okBody), okBody)
		}
		_ = c.Close() // no Connection: close, as an idle timeout would
		served <- struct{}{}
	})
	b := newBackend(t, url, "")
	for range 2 {
		if _, err := b.Do(testCtx(t), chatReq(`{}`, false), nil, nil); err != nil {
			t.Fatal(err)
		}
		<-served
	}
}

// TestConcurrencyCost: a request that starts while another is in flight is
// charged half its duration.
func TestConcurrencyCost(t *testing.T) {
	arrivedA, releaseA := make(chan struct{}), make(chan struct{})
	f := newFake(t, func(ctx *fasthttp.RequestCtx) {
		if strings.Contains(string(ctx.PostBody()), `"A"`) {
			close(arrivedA)
			<-releaseA
		}
		ctx.SetBodyString(okBody)
	})
	b := newBackend(t, f.url, "")
	type out struct {
		res *backends.Result
		err error
	}
	doneA := make(chan out, 1)
	go func() {
		res, err := b.Do(testCtx(t), chatReq(`{"id":"A"}`, false), nil, nil)
		doneA <- out{res, err}
	}()
	<-arrivedA
	resB, err := b.Do(testCtx(t), chatReq(`{"id":"B"}`, false), nil, nil)
	close(releaseA)
	if err != nil {
		t.Fatal(err)
	}
	if tm := resB.Timing; tm.Busy != tm.Total/2 {
		t.Errorf("B: Busy %v, want Total/2 = %v", tm.Busy, tm.Total/2)
	}
	if want := resB.Timing.Busy.Seconds(); resB.CostUSD != want {
		t.Errorf("B: CostUSD %v, want %v", resB.CostUSD, want)
	}
	a := <-doneA
	if a.err != nil {
		t.Fatal(a.err)
	}
	if tm := a.res.Timing; tm.Busy != tm.Total {
		t.Errorf("A: Busy %v, want Total %v", tm.Busy, tm.Total)
	}
}
