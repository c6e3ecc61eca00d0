package gateway

import "strconv"

// The response encoders append JSON by hand into pooled buffers (with
// internal/jsonw): the shapes are fixed and small, and this keeps reflection
// and per-field allocations off the hot path.

// appendUsage appends an OpenAI usage object.
func appendUsage(b []byte, prompt, completion int, embeddings bool) []byte {
	b = append(b, `{"prompt_tokens":`...)
	b = strconv.AppendInt(b, int64(prompt), 10)
	if !embeddings {
		b = append(b, `,"completion_tokens":`...)
		b = strconv.AppendInt(b, int64(completion), 10)
	}
	b = append(b, `,"total_tokens":`...)
	b = strconv.AppendInt(b, int64(prompt+completion), 10)
	return append(b, '}')
}
