package loadtest

import (
	"time"

	"github.com/accelgate/accelgate/backends"
)

// Item is one request a workload asks to send. Items own their memory.
type Item struct {
	Seq int64         // position in the workload, from 0
	At  time.Duration // intended send time, from the start of the run

	Op       backends.Op       // chat, completion, embedding or tensor
	Model    string            // model name
	Stream   bool              // chat/completions: stream the answer
	Priority backends.Priority // sent as x-accelgate-priority
	SLO      backends.SLO      // sent as x-accelgate-slo-* headers (zero fields are not sent)
	Timeout  time.Duration     // sent as x-accelgate-timeout-ms when > 0

	InputTokens  int                // prompt size in tokens (approximate for generated text)
	OutputTokens int                // max_tokens for chat/completions
	Messages     []backends.Message // chat: the conversation, ending with the user's turn
	Prompt       string             // completion prompt
	Inputs       []string           // embedding inputs
	Images       int                // tensor: images in the request (the batch dimension)

	SessionID string // multi-turn chat session ("" when none)
	Turn      int    // 1-based turn within the session
	Site      string // where the client is (trace column), for locality-aware fleets
}

// Source yields a workload's Items in order of intended send time. Next fills
// it and reports false when the workload is exhausted. Sources are not safe
// for concurrent use and are deterministic for a seed.
type Source interface {
	Next(it *Item) bool
}

// Outcome is what happened to one Item. Times are measured from the Item's
// intended send time (Item.At), not from when it was actually sent.
type Outcome struct {
	Item *Item

	SentLate time.Duration // how far behind schedule the generator sent it
	Latency  time.Duration // intended send → last byte of the response (or the error)
	TTFT     time.Duration // streams: intended send → first content token; others: = Latency
	// ITL holds the gaps between consecutive content tokens of a stream. The
	// Recorder copies it; the caller may reuse the slice.
	ITL []time.Duration

	Status int    // HTTP status, or the gRPC code + 1000; 0 when no response arrived
	Kind   string // "ok", "shed", "timeout", "no_backend", "bad_request", "http_<code>", "grpc_<code>", "conn_error", …
	OK     bool   // a successful response

	CostUSD      float64 // attributed cost reported by the gateway (header, last chunk or gRPC parameter)
	Backend      string  // x-accelgate-backend (or its gRPC parameter)
	Hardware     string  // x-accelgate-hardware
	InputTokens  int     // usage.prompt_tokens when reported, else the Item's
	OutputTokens int     // usage.completion_tokens when reported
}

// MetSLO reports whether the outcome met its item's SLO: it must be OK, and
// streams are judged on TTFT and the mean inter-token latency (TPOT),
// everything else end to end. Targets that are zero are not checked.
func (o *Outcome) MetSLO() bool {
	if !o.OK {
		return false
	}
	var tpot time.Duration
	if len(o.ITL) > 0 {
		for _, g := range o.ITL {
			tpot += g
		}
		tpot /= time.Duration(len(o.ITL))
	}
	return o.Item.SLO.Met(o.Item.Stream, o.Latency, o.TTFT, tpot)
}
