// Package batcher is accelgate's dynamic, deadline-aware batcher. The gateway
// routes first, then batches: every backend has one batcher holding that
// backend's queues, one per model (and version, for tensor models).
//
//   - KServe v2 tensor requests and OpenAI embeddings requests are merged into
//     batches (rows along the batch dimension; a request with several rows
//     counts by rows; embeddings count one row per input). MergeTensors,
//     SplitTensors, MergeEmbeddings and SplitResult are the pure functions
//     that merge a batch's inputs and give each caller exactly its rows back;
//     for an OpenAI-compatible upstream, MergeBody builds the merged call's
//     body and SplitResult cuts the upstream's JSON into one OpenAI body per
//     caller (its vectors re-indexed from 0, as the upstream encoded them).
//   - Mergeable completions (Request.Mergeable: non-streaming, set by the
//     gateway when the backend accepts prompt arrays) are merged too, one row
//     per sequence (prompts × n), into one prompt-array call
//     (MergeCompletions; SplitResult gives choice i to the caller of prompt
//     i/n). Their queue is fixed-mode whatever the model's mode, unless off
//     (a batch waits at most MaxQueueDelay for company: the Predictor gives
//     an LLM's time to the first token, not its generation time), at most
//     the backend's sequence slots per batch; the gateway then admits the
//     batch through the admission queue as one request.
//   - Requests join a batch only with the same Request.BatchKey (the OpenAI
//     front's canonical body apart from the merged member: embeddings with
//     the same encoding_format, dimensions, ...; completions with identical
//     sampling parameters), completions also with the same n, max_tokens,
//     temperature, seed and stop sequences.
//   - Other LLM requests (chat, streams, completions the gateway does not
//     mark mergeable) are never merged: their queue (KindAdmission)
//     is the backend's admission queue. It holds requests while the backend's
//     concurrent-sequence slots are full and releases them, in queue order,
//     when SlotsFree says slots were released. A head that does not fit
//     blocks the requests behind it (none starves); a request larger than
//     all slots is released when every slot is free.
//
// # Layers
//
// Core (core.go) is a single-threaded, deterministic state machine with no
// goroutines, locks or clock reads, like backends/emulator.Core: Enqueue,
// Next (when the next decision is due), Poll (the batches to dispatch now),
// Finished (a dispatched batch is over: its executor is free),
// Drop (requests whose hard deadline passed: failed with a timeout, never
// executed), Cancel, SlotsFree, Evict (requests that can no longer meet their
// SLO here even at the expected latency, an optional Expecter of the
// Predictor, handed back for the router to place again) and Close (returns
// every queued request). A request leaves the core exactly once, so it is
// never executed twice. The only timeout is the request's hard deadline; the
// batcher has no queue timeout.
//
// Batcher (batcher.go) is the goroutine shell: a mutex, an injected
// backends.Clock and one timer re-armed to Core.Next. Do queues a batchable
// request and waits for its share of the batch; Admit waits for an LLM
// request's admission and returns the release func. A batch runs through the
// ExecFunc; the batcher never retries: a failed batch fails each member with
// the ExecFunc's error, which wraps backends.ErrUnavailable when it may be
// retried elsewhere. A full queue refuses at once with an error wrapping
// backends.ErrShed (429 / Unavailable).
//
// # Queue order
//
// Every queue (Queue, queue.go) serves critical before standard before
// sheddable; within a class the earliest SLO target first (arrival + the E2E
// target, or the TTFT target for streams; no target is +∞, then FIFO). A
// request that has waited longer than its class's aging limit is served as
// the class above, and each promotion restarts the count (defaults: standard
// 500 ms, sheddable 2 s, so a sheddable request is served as critical after
// 2.5 s): nothing starves. Push, PopFront and Remove are O(log n) and
// allocate nothing in steady state.
//
// # Settings and modes
//
// Config is a model's batching settings, with Triton's meaning:
// max_batch_size (capped by the profile's MaxBatch), preferred_batch_sizes,
// max_queue_delay_us, max_queue_size and mode:
//
//   - off: every request executes alone (a batch of its own rows).
//   - fixed (Triton): a batch is dispatched when the queued rows reach a
//     preferred size (the largest one not above what is queued; the batch is
//     the queue-order prefix of at most that many rows) or MaxBatchSize, or
//     when the oldest request has waited MaxQueueDelay.
//   - adaptive (the default): deadline-aware, below.
//
// # The adaptive rule
//
// Let the candidate batch be the queue's Q rows (in queue order, at most
// MaxBatchSize), T its earliest SLO target, L(n) the Predictor's latency of
// an n-row batch on this backend (dispatch to result, round trip included),
// r̂ the expected rows of the next request (an EWMA of rows per request), and
// ĝ the expected wait for the next arrival: the EWMA (α = 0.2) of the
// inter-arrival gaps, or the time since the last arrival when that is longer
// (the rate has dropped). The batch is dispatched as soon as its lane is
// ready (below) and one of these holds:
//
//  1. Size: Q reaches the best size B, the size in 1..MaxBatchSize that
//     maximises rows/L(rows) (the smallest on a tie), or the next request
//     would not fit (Q + r̂ > MaxBatchSize).
//  2. Deadline: waiting for one more request would make T miss:
//     now + ĝ + L(Q + r̂) > T. With W = T − L(Q + r̂), the latest arrival
//     still worth waiting for, the decision falls due at
//     min(W − ĝ, (W + last arrival)/2); Next reports that time and Poll
//     dispatches at or after it.
//  3. Idle: for a batch whose members have no target, W is when the oldest
//     request entered the queue + MaxQueueDelay. When the backend is
//     idle it is dispatched as soon as the next arrival is expected after
//     W (the rule of 2); while the backend is busy it is held until W.
//
// The backend's executors come first (lane.go): a batch dispatched while
// every executor is busy would only wait at the backend, where nothing can
// join it and a critical request that arrives a moment later queues behind
// it. The core therefore predicts, per batch class, when each executor is
// free (from the batches it dispatched, each L(rows) − RTT of execution
// from its arrival RTT/2 after dispatch, corrected whenever one comes back:
// Finished) and dispatches no adaptive batch before its lane is ready, RTT/2
// before an executor frees; every rule above is applied as of that time,
// when the backend is idle. Until then the queue keeps gathering requests
// in queue order, so the batch size grows with the load and the backend
// never idles for the round trip. The lane learns how its predictions err
// (an EWMA of measured over predicted execution time, used on the low side:
// the mean less twice the mean deviation, since a batch that arrives early
// waits a moment, one that arrives late leaves the executor idle).
//
// Without an arrival rate yet (the queue's first request) nothing is waited
// for: the batch goes at once. Holding is a bet on company, and the bet is
// checked: when two holds in a row on an idle backend ended with their first
// request still alone (nobody joined), an idle backend stops holding and
// dispatches at once; the next batch of two or more requests (formed while
// the backend was busy, when holding costs nothing) re-enables holding. A
// client that sends its next request only after the previous answer (closed
// loop, one at a time) would otherwise pay the whole slack on every request,
// since the arrival it waits for is the one its own answer triggers. When a batch is formed, a request is added
// only if the bigger batch still meets every target the batch meets (and the
// request's own, when it could be met alone): adaptive never lets a target
// miss when a smaller batch would have met it. Tensor requests join a batch
// only with the same inputs (name, datatype, shape after the batch dimension)
// and the same requested outputs.
//
// Worked example (TestAdaptiveWorkedExample): L(n) = 5 ms + 1 ms·n,
// MaxBatchSize 8 (B = 8: L is linear, so bigger is always more efficient),
// one-row requests with a 20 ms E2E target arriving every 2 ms, so ĝ = 2 ms
// and r̂ = 1. Request A arrives at 0 ms (T = 20 ms):
//
//	now   Q  W = 20 − L(Q+1)   due = min(W − ĝ, (W + last)/2)
//	0 ms  1  20 − 7  = 13      min(11, 6.5) = 6.5 ms
//	2 ms  2  20 − 8  = 12      min(10, 7)   = 7 ms
//	4 ms  3  20 − 9  = 11      min(9, 7.5)  = 7.5 ms
//	6 ms  4  20 − 10 = 10      min(8, 8)    = 8 ms
//
// No request arrives by 8 ms, so at 8 ms the four rows are dispatched and
// done at 8 + L(4) = 17 ms, before A's 20 ms target; waiting for a fifth row
// expected at 10 ms would end at 10 + L(5) = 20 ms, with no slack left. Had a
// fifth request arrived at 7 ms, ĝ would become 2 + 0.2·(1 − 2) = 1.8 ms,
// W = 20 − L(6) = 9 ms and due = min(7.2, 8) = 7.2 ms: five rows dispatched
// at 7.2 ms, done at 17.2 ms.
//
// # Performance
//
// The core's bookkeeping for a one-row request (Enqueue plus Drop, Poll and
// Next) takes about 0.25 µs, with a lane tracked too, and allocates nothing in
// steady state (BenchmarkEnqueueDecide, BenchmarkEnqueueDecideLanes;
// TestEnqueueDecideAllocs guards both).
package batcher
