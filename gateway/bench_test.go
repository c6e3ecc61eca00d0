package gateway

import (
	"testing"

	"github.com/valyala/fasthttp"
)

const benchChat = `{"model":"llm","messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"Summarise the plot of Hamlet in one line."}],"max_tokens":16}`

// BenchmarkChatHandler measures the whole non-streaming chat path inside
// the process: fasthttp handler → JSON decode → router → an instant
// in-process backend → JSON encode. No sockets.
func BenchmarkChatHandler(b *testing.B) {
	e := newEnv(b, Config{})
	var req fasthttp.Request
	req.Header.SetMethod("POST")
	req.SetRequestURI("/v1/chat/completions")
	req.SetBodyString(benchChat)
	var ctx fasthttp.RequestCtx
	b.ReportAllocs()
	for b.Loop() {
		ctx.Init(&req, nil, nil)
		e.srv.Handle(&ctx)
		if ctx.Response.StatusCode() != 200 {
			b.Fatalf("status %d: %s", ctx.Response.StatusCode(), ctx.Response.Body())
		}
	}
}

// BenchmarkChatInmemory adds fasthttp's HTTP/1.1 parsing and writing on both
// sides, over an in-memory listener with keep-alive.
func BenchmarkChatInmemory(b *testing.B) {
	e := newEnv(b, Config{})
	req := fasthttp.AcquireRequest()
	req.Header.SetMethod("POST")
	req.SetRequestURI("http://gw/v1/chat/completions")
	req.SetBodyString(benchChat)
	resp := fasthttp.AcquireResponse()
	b.ReportAllocs()
	for b.Loop() {
		if err := e.c.Do(req, resp); err != nil || resp.StatusCode() != 200 {
			b.Fatalf("%v %d", err, resp.StatusCode())
		}
	}
}

// BenchmarkBatchKey measures the batch key of an embeddings body (computed
// for every embeddings and non-streaming completions request).
func BenchmarkBatchKey(b *testing.B) {
	body := []byte(`{"model":"bge-base-en-v1.5","input":["the quick brown fox jumps over the lazy dog","another sentence here"],"encoding_format":"float","user":"u-123"}`)
	b.ReportAllocs()
	for b.Loop() {
		_ = batchKey(body, "input", true)
	}
}
