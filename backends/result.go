package backends

import "time"

// Usage counts tokens as OpenAI reports them.
type Usage struct {
	PromptTokens     int
	CompletionTokens int
	TotalTokens      int
}

// Choice is one generated completion.
type Choice struct {
	Index        int
	Text         string
	FinishReason string // "stop" or "length"
}

// Timing is what a backend measured for one request, fed back to the router.
type Timing struct {
	QueueWait time.Duration // from arrival at the backend to the start of its first step
	TTFT      time.Duration // to the first output token (LLM), or to the result
	Total     time.Duration // to the last byte of the result
	Busy      time.Duration // accelerator time attributed to this request
	BatchRows int           // rows of the batch it ran in (set by the gateway's batcher; 0 unknown)
	BatchID   uint64        // the batch it ran in, unique per backend (set by the gateway's batcher; 0 unknown)
	BatchWait time.Duration // time it was held in the gateway's batcher before dispatch
}

// Result is the outcome of a completed request.
type Result struct {
	Choices    []Choice    // chat and completions, in choice order
	Embeddings [][]float32 // embeddings, in input order; unit norm
	Tensors    []Tensor    // tensor models (KServe v2): the outputs, in canonical form
	Usage      Usage
	Timing     Timing

	// CostUSD is the attributed cost: the backend's price per second × the busy
	// time this request used (see the README's cost attribution rules).
	CostUSD float64

	// Raw, when non-nil, is an upstream's JSON response body, relayed to the
	// client unchanged (fronts add only accelgate's headers). Choices and
	// Embeddings are then empty; Usage is parsed out of it.
	Raw []byte
}

// Chunk is one streamed event: a piece of generated text for one choice, or a
// raw upstream SSE payload to relay.
type Chunk struct {
	Index        int    // choice index
	Text         string // delta text; may be empty on the chunk that carries FinishReason
	FinishReason string // set on the last chunk of a choice

	// Raw, when non-nil, is the JSON payload of one upstream "data:" event,
	// relayed as is. It is only valid during the StreamFunc call.
	Raw []byte
}

// StreamFunc receives a streaming request's chunks in order. It is called from
// the backend's goroutine, never concurrently for one request. A non-nil error
// (the client went away) makes the backend stop generating and return it.
type StreamFunc func(Chunk) error
