//go:build !race

package gateway

import (
	"bufio"
	"io"
	"testing"

	"github.com/accelgate/accelgate/backends"
)

// TestEncodeAllocs guards the response encoders: rendering a completion, an
// error body and a stream chunk into a reused buffer allocates nothing.
func TestEncodeAllocs(t *testing.T) {
	req := &backends.Request{ID: "chatcmpl-x", Op: backends.OpChat, Model: "llm"}
	res := &backends.Result{Choices: []backends.Choice{{Text: "hello \"world\"\n", FinishReason: "stop"}}, Usage: backends.Usage{PromptTokens: 3, CompletionTokens: 2}}
	buf := make([]byte, 0, 4096)
	if n := testing.AllocsPerRun(1000, func() { buf = appendLLMResponse(buf[:0], req, res, 1) }); n != 0 {
		t.Errorf("appendLLMResponse: %v allocs, want 0", n)
	}
	if n := testing.AllocsPerRun(1000, func() { buf = appendOpenAIError(buf[:0], "bad", "invalid_request_error", "model", "") }); n != 0 {
		t.Errorf("appendOpenAIError: %v allocs, want 0", n)
	}
	sw := &sseWriter{w: bufio.NewWriter(io.Discard), req: req, created: 1, buf: make([]byte, 0, 1024)}
	chunk := backends.Chunk{Index: 0, Text: "tok"}
	if n := testing.AllocsPerRun(1000, func() { sw.onChunk(chunk) }); n != 0 {
		t.Errorf("sseWriter.onChunk: %v allocs, want 0", n)
	}
	if n := testing.AllocsPerRun(1000, func() { _ = Classify(backends.ErrShed) }); n != 0 {
		t.Errorf("Classify: %v allocs, want 0", n)
	}
}

// TestBatchKeyAllocs guards the batch key of embeddings and completions
// bodies: one allocation, the key itself.
func TestBatchKeyAllocs(t *testing.T) {
	body := []byte(`{"model":"bge-base-en-v1.5","input":["the quick brown fox","jumps"],"encoding_format":"float","dimensions":256,"user":"u-1"}`)
	if n := testing.AllocsPerRun(1000, func() { _ = batchKey(body, "input", true) }); n > 1 {
		t.Errorf("batchKey: %v allocs, want at most 1", n)
	}
}
