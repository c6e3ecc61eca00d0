package upstream

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/accelgate/accelgate/backends"
)

const (
	publicName   = "llama-3.1-8b-instruct"
	upstreamName = "meta-llama/Llama-3.1-8B-Instruct"
)

func newMappedBackend(t *testing.T, url, key string) *Backend {
	t.Helper()
	desc := &backends.Descriptor{Name: "up-0", Transport: "openai", Models: []string{publicName, "other"}, PricePerHour: 3600}
	b, err := New(desc, Config{URL: url, APIKey: key, ModelNames: map[string]string{publicName: upstreamName}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// topModel decodes the top-level "model" of a JSON body.
func topModel(t *testing.T, body []byte) string {
	t.Helper()
	var v struct {
		Model string `json:"model"`
	}
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("%s: %v", body, err)
	}
	return v.Model
}

// TestModelNameMapping: a mapped model is sent under its upstream name on
// every path, and every response (whole or streamed) comes back under the
// public one; nested "model" keys are left alone.
func TestModelNameMapping(t *testing.T) {
	f := newFake(t, func(ctx *fasthttp.RequestCtx) {
		var in struct {
			Model  string `json:"model"`
			Stream bool   `json:"stream"`
		}
		_ = json.Unmarshal(ctx.PostBody(), &in)
		if in.Stream {
			streamHandler(
				fmt.Sprintf(`{"id":"c","object":"chat.completion.chunk","model":%q,"choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":null}]}`, in.Model),
				fmt.Sprintf(`{"id":"c","object":"chat.completion.chunk","model" : %q,"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}`, in.Model),
				fmt.Sprintf(`{"id":"c","object":"chat.completion.chunk","model":%q,"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}`, in.Model),
				`[DONE]`)(ctx)
			return
		}
		ctx.SetContentType("application/json")
		fmt.Fprintf(ctx, `{"id":"x","model":%q,"choices":[{"index":0,"message":{"content":"{\"model\":\"%s\"}"},"finish_reason":"stop"}],"meta":{"model":%q},"usage":{"prompt_tokens":1,"total_tokens":1}}`,
			in.Model, in.Model, in.Model)
	})
	b := newMappedBackend(t, f.url, "")
	for _, op := range []backends.Op{backends.OpChat, backends.OpCompletion, backends.OpEmbedding} {
		body := `{"model":"` + publicName + `","messages":[{"role":"user","content":"hi"}],"metadata":{"model":"keep"}}`
		req := &backends.Request{ID: "r", Op: op, Model: publicName, Body: []byte(body)}
		res, err := b.Do(testCtx(t), req, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		sent := f.next(t).body
		if want := `{"model":"` + upstreamName + `","messages":[{"role":"user","content":"hi"}],"metadata":{"model":"keep"}}`; sent != want {
			t.Errorf("%v: upstream body %s, want %s", op, sent, want)
		}
		if string(req.Body) != body {
			t.Errorf("%v: the request's body was edited in place: %s", op, req.Body)
		}
		if got := topModel(t, res.Raw); got != publicName {
			t.Errorf("%v: response model %q, want %q", op, got, publicName)
		}
		if !strings.Contains(string(res.Raw), `"meta":{"model":"`+upstreamName+`"}`) || !strings.Contains(string(res.Raw), `{\"model\":\"`+upstreamName) {
			t.Errorf("%v: nested model values were edited: %s", op, res.Raw)
		}
		if res.Usage.TotalTokens != 1 {
			t.Errorf("%v: usage %+v", op, res.Usage)
		}
	}

	for _, includeUsage := range []bool{false, true} {
		req := chatReq(`{"model":"`+publicName+`","stream":true,"messages":[]}`, true)
		req.Model, req.IncludeUsage = publicName, includeUsage
		var chunks []string
		res, err := b.Do(testCtx(t), req, nil, collect(&chunks))
		if err != nil {
			t.Fatal(err)
		}
		if got := topModel(t, []byte(f.next(t).body)); got != upstreamName {
			t.Errorf("stream: upstream asked for %q", got)
		}
		if want := map[bool]int{false: 2, true: 3}[includeUsage]; len(chunks) != want {
			t.Fatalf("include_usage %v: relayed %d chunks, want %d: %q", includeUsage, len(chunks), want, chunks)
		}
		for _, c := range chunks {
			if got := topModel(t, []byte(c)); got != publicName {
				t.Errorf("stream chunk %s: model %q, want %q", c, got, publicName)
			}
		}
		if res.Usage.TotalTokens != 2 {
			t.Errorf("stream usage %+v", res.Usage)
		}
	}
}

// TestUnmappedModelUntouched: a model without a mapping goes out and comes
// back byte for byte, and a backend without mappings never edits.
func TestUnmappedModelUntouched(t *testing.T) {
	const answer = `{"id":"x","model":"upstream-says","choices":[],"usage":{"total_tokens":1}}`
	f := newFake(t, func(ctx *fasthttp.RequestCtx) { ctx.SetBodyString(answer) })
	for _, b := range []*Backend{newMappedBackend(t, f.url, ""), newBackend(t, f.url, "")} {
		body := `{ "model" : "other", "messages":[] }`
		req := &backends.Request{ID: "r", Op: backends.OpChat, Model: "other", Body: []byte(body)}
		res, err := b.Do(testCtx(t), req, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := f.next(t).body; got != body {
			t.Errorf("upstream body %s, want %s", got, body)
		}
		if string(res.Raw) != answer {
			t.Errorf("Raw %s, want %s", res.Raw, answer)
		}
	}
}

func TestNewRejectsEmptyModelName(t *testing.T) {
	desc := &backends.Descriptor{Name: "u"}
	for _, m := range []map[string]string{{"a": ""}, {"": "b"}} {
		if _, err := New(desc, Config{URL: "http://127.0.0.1:9", ModelNames: m}); err == nil {
			t.Errorf("New accepted model names %v", m)
		}
	}
	b, err := New(desc, Config{URL: "http://127.0.0.1:9", ModelNames: map[string]string{"a": "a"}})
	if err != nil || b.models != nil {
		t.Errorf("an identity mapping: %v, %v (want no edit at all)", b, err)
	}
}

// TestAuthorizationOnEveryCall: the API key goes out as a bearer token on
// chat, completions, embeddings and streams alike.
func TestAuthorizationOnEveryCall(t *testing.T) {
	f := newFake(t, func(ctx *fasthttp.RequestCtx) {
		if strings.Contains(string(ctx.PostBody()), `"stream":true`) {
			streamHandler(`{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}`, `[DONE]`)(ctx)
			return
		}
		ctx.SetBodyString(okBody)
	})
	const key = "sk-live-0123456789abcdef"
	b := newBackend(t, f.url, key)
	for _, tc := range []struct {
		op     backends.Op
		stream bool
	}{{backends.OpChat, false}, {backends.OpCompletion, false}, {backends.OpEmbedding, false}, {backends.OpChat, true}, {backends.OpCompletion, true}} {
		body := `{"model":"m"}`
		if tc.stream {
			body = `{"model":"m","stream":true}`
		}
		if _, err := b.Do(testCtx(t), &backends.Request{Op: tc.op, Model: "m", Stream: tc.stream, Body: []byte(body)}, nil, nil); err != nil {
			t.Fatal(err)
		}
		if got := f.next(t).auth; got != "Bearer "+key {
			t.Errorf("%v stream=%v: Authorization %q", tc.op, tc.stream, got)
		}
	}
}

// TestAPIKeyNotEchoedInErrors: an upstream that quotes the rejected key in
// its error (as some do) does not get it relayed to the client.
func TestAPIKeyNotEchoedInErrors(t *testing.T) {
	const key = "sk-live-0123456789abcdef"
	f := newFake(t, func(ctx *fasthttp.RequestCtx) {
		if strings.Contains(string(ctx.PostBody()), `"stream":true`) {
			streamHandler(`{"error":{"message":"key ` + key + ` revoked mid-stream","type":"auth","code":401}}`)(ctx)
			return
		}
		ctx.SetStatusCode(401)
		ctx.SetBodyString(`{"error":{"message":"Incorrect API key provided: ` + key + `","type":"invalid_request_error","param":"` + key + `","code":"invalid_api_key"}}`)
	})
	b := newBackend(t, f.url, key)
	for _, body := range []string{`{"model":"m"}`, `{"model":"m","stream":true}`} {
		stream := strings.Contains(body, "stream")
		_, err := b.Do(testCtx(t), chatReq(body, stream), nil, nil)
		var ue *backends.UpstreamError
		if !errors.As(err, &ue) {
			t.Fatalf("err = %v, want an UpstreamError", err)
		}
		if s := fmt.Sprintf("%v %+v", err, *ue); strings.Contains(s, key) {
			t.Errorf("the key leaks into the error: %s", s)
		}
		if !strings.Contains(ue.Message, "[redacted]") {
			t.Errorf("message %q: want the key replaced by [redacted]", ue.Message)
		}
		if !errors.Is(err, backends.ErrUnavailable) {
			t.Errorf("a 401 is accelgate's configuration, not the client's: err = %v, want ErrUnavailable", err)
		}
	}
}

// TestMoreErrorBodies: FastAPI's validation list, an empty 503, HTML from a
// proxy, and a long non-ASCII text cut at a character boundary.
func TestMoreErrorBodies(t *testing.T) {
	long := "x" + strings.Repeat("é", maxErrorText) // 2 bytes each: byte maxErrorText is inside one
	for _, tc := range []struct {
		name    string
		status  int
		body    string
		want    backends.UpstreamError
		sentinl error
	}{
		{"fastapi-list", 422, `{"detail":[{"type":"missing","loc":["body","messages"],"msg":"Field required","input":{"model":"m"}},{"loc":["body","max_tokens",0],"msg":"Input should be a valid integer"}]}`,
			backends.UpstreamError{Status: 422, Message: "body.messages: Field required; body.max_tokens.0: Input should be a valid integer"}, nil},
		{"fastapi-object", 400, `{"detail":{"reason":"x"}}`,
			backends.UpstreamError{Status: 400, Message: `{"reason":"x"}`}, nil},
		{"empty-503", 503, ``,
			backends.UpstreamError{Status: 503, Message: "Service Unavailable"}, backends.ErrUnavailable},
		{"blank-502", 502, " \r\n",
			backends.UpstreamError{Status: 502, Message: "Bad Gateway"}, backends.ErrUnavailable},
		{"html-502", 502, "<html><body>502 Bad Gateway</body></html>\n",
			backends.UpstreamError{Status: 502, Message: "<html><body>502 Bad Gateway</body></html>"}, backends.ErrUnavailable},
		{"vllm-flat-no-message", 400, `{"object":"error","type":"BadRequestError","code":400}`,
			backends.UpstreamError{Status: 400, Message: `{"object":"error","type":"BadRequestError","code":400}`, Type: "BadRequestError", Code: "400"}, nil},
		{"long-text", 400, long,
			backends.UpstreamError{Status: 400, Message: long[:maxErrorText-1]}, nil},
	} {
		for _, stream := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/stream=%v", tc.name, stream), func(t *testing.T) {
				f := newFake(t, func(ctx *fasthttp.RequestCtx) {
					ctx.SetStatusCode(tc.status)
					ctx.SetBodyString(tc.body)
				})
				b := newBackend(t, f.url, "")
				_, err := b.Do(testCtx(t), chatReq(`{}`, stream), nil, nil)
				var ue *backends.UpstreamError
				if !errors.As(err, &ue) {
					t.Fatalf("err = %v, want an UpstreamError", err)
				}
				if *ue != tc.want {
					t.Errorf("got %+v, want %+v", *ue, tc.want)
				}
				if tc.sentinl != nil && !errors.Is(err, tc.sentinl) {
					t.Errorf("err = %v, want %v", err, tc.sentinl)
				}
				if tc.sentinl == nil && (errors.Is(err, backends.ErrUnavailable) || errors.Is(err, backends.ErrShed)) {
					t.Errorf("a %d must be relayed: %v", tc.status, err)
				}
			})
		}
	}
}

// TestMidStreamErrorClassified: an error event classifies like an error
// answer: a 5xx counts against the backend, a 4xx is the client's.
func TestMidStreamErrorClassified(t *testing.T) {
	for _, tc := range []struct {
		event       string
		unavailable bool
	}{
		{`{"error":{"message":"CUDA out of memory","type":"InternalServerError","code":500}}`, true},
		{`{"object":"error","message":"engine dead","type":"InternalServerError"}`, true}, // no code: 500
		{`{"error":{"message":"bad grammar","type":"BadRequestError","code":400}}`, false},
		{`{"error":"TGI: generation failed","error_type":"generation"}`, true},
	} {
		f := newFake(t, streamHandler(`{"choices":[{"index":0,"delta":{"content":"a"}}]}`, tc.event, `[DONE]`))
		b := newBackend(t, f.url, "")
		_, err := b.Do(testCtx(t), chatReq(`{"stream":true}`, true), nil, nil)
		var ue *backends.UpstreamError
		if !errors.As(err, &ue) {
			t.Fatalf("%s: err = %v, want an UpstreamError", tc.event, err)
		}
		if errors.Is(err, backends.ErrUnavailable) != tc.unavailable {
			t.Errorf("%s: err = %v, want ErrUnavailable %v", tc.event, err, tc.unavailable)
		}
	}
}

// TestUpstreamClosesMidStream: an upstream that drops the connection in the
// middle of a stream (no [DONE], no chunked terminator, or a body cut short)
// is an error, never a truncated success.
func TestUpstreamClosesMidStream(t *testing.T) {
	content := sseChunk(`{"choices":[{"index":0,"delta":{"content":"a"},"finish_reason":null}]}`)
	finish := sseChunk(`{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}`)
	for _, tc := range []struct {
		name, reply string
		relayed     int
	}{
		{"chunked, after content", sseHeader + content, 1},
		{"chunked, after finish_reason", sseHeader + content + finish, 2},
		{"chunked, inside an event", sseHeader + content + "40\r\ndata: {\"choices\":[{\"ind", 1},
		{"chunked, inside a chunk size", sseHeader + content + "4", 1},
		{"until close, after content", "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n" +
			"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\n\n", 1},
		{"content-length, cut short", "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: 500\r\n\r\n" +
			"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\n\n", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url := rawServer(t, func(c net.Conn) {
				defer c.Close()
				req := fasthttp.AcquireRequest()
				defer fasthttp.ReleaseRequest(req)
				if req.Read(bufio.NewReader(c)) != nil {
					return
				}
				_, _ = io.WriteString(c, tc.reply)
				// Closing at once: the abrupt end of the process or the link.
			})
			b := newBackend(t, url, "")
			var chunks []string
			res, err := b.Do(testCtx(t), chatReq(`{"stream":true}`, true), nil, collect(&chunks))
			if err == nil {
				t.Fatalf("a stream cut short succeeded: %+v", res)
			}
			if !errors.Is(err, backends.ErrUnavailable) {
				t.Errorf("err = %v, want ErrUnavailable", err)
			}
			if len(chunks) != tc.relayed {
				t.Errorf("relayed %q, want %d chunk(s)", chunks, tc.relayed)
			}
		})
	}
}

// TestClientGoneCancelsUpstreamRequest: an upstream that generates as fast
// as it can sees its request end (its context done) soon after the client
// goes away, and Do returns the client's error at once.
func TestClientGoneCancelsUpstreamRequest(t *testing.T) {
	gone := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fl := w.(http.Flusher)
		for i := 0; ; i++ {
			select {
			case <-r.Context().Done():
				close(gone)
				return
			default:
			}
			if _, err := fmt.Fprintf(w, "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"t%d\"}}]}\n\n", i); err != nil {
				<-r.Context().Done() // a failed write ends the request too
				close(gone)
				return
			}
			fl.Flush()
		}
	}))
	defer srv.Close()
	b := newBackend(t, srv.URL, "")
	n := 0
	done := make(chan error, 1)
	go func() {
		_, err := b.Do(testCtx(t), chatReq(`{"stream":true}`, true), nil, func(backends.Chunk) error {
			if n++; n == 3 {
				return errClientGone
			}
			return nil
		})
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, errClientGone) {
			t.Errorf("err = %v, want the stream function's error", err)
		}
	case <-time.After(safety):
		t.Fatal("Do did not return after the stream function failed")
	}
	if n != 3 {
		t.Errorf("stream called %d times, want 3", n)
	}
	select {
	case <-gone:
	case <-time.After(safety):
		t.Fatal("the upstream's request context did not end: the connection was left open")
	}
	if b.pool.IdleCount() != 0 {
		t.Error("the abandoned connection went back to the pool")
	}
}

// TestCancelBeforeFirstEvent: the context ends while a streaming upstream
// has sent its header but no event yet; the upstream's request ends.
func TestCancelBeforeFirstEvent(t *testing.T) {
	headerSent, gone := make(chan struct{}), make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.(http.Flusher).Flush()
		close(headerSent)
		<-r.Context().Done()
		close(gone)
	}))
	defer srv.Close()
	b := newBackend(t, srv.URL, "")
	ctx, cancel := context.WithCancel(testCtx(t))
	go func() {
		<-headerSent
		cancel()
	}()
	_, err := b.Do(ctx, chatReq(`{"stream":true}`, true), nil, nil)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want Canceled", err)
	}
	select {
	case <-gone:
	case <-time.After(safety):
		t.Fatal("the upstream's request context did not end")
	}
}
