// Package emulator is accelgate's emulated accelerator: a backends.Backend
// whose latency, throughput and cost follow a hardware backends.Profile. The
// default fleet runs it in-process, tests drive it with a fake clock, and the
// discrete-event simulator drives the very same timing code in virtual time.
//
// It owns two layers:
//
//   - Core (core.go) is the timing: a single-threaded, deterministic state
//     machine with no goroutines, locks or clock reads. Every method takes the
//     current time. Callers submit jobs (SubmitLLM, SubmitBatch), ask when
//     something is next due (Next) and process what is due (Advance), which
//     returns Events: a step's tokens (one event per step, listing the
//     streaming sequences that got a token), a job's first token, a job done
//     with its Timing and attributed cost. Cancel drops a job anywhere.
//   - Backend (backend.go) is the goroutine shell: it implements
//     backends.Backend around a Core with a mutex, an injected backends.Clock
//     and one timer re-armed to Core.Next after every change.
//
// A request's path: Do builds the prompt (chat messages rendered with the
// Llama-3 chat template; completion prompts as they are), counts its tokens
// with a real BPE tokenizer (cl100k_base; see CountTokens), checks the model's
// context length, and generates each choice's text deterministically from the
// prompt, the request's seed and the choice's number: English-like sentences
// of a natural length between about 20 and 400 tokens (finish_reason "stop"),
// cut by max_tokens ("length") or before a stop sequence ("stop"). It then
// submits one LLMJob (one sequence per choice, output lengths known up front)
// to the core through the shell and waits; the timer advances the core and
// the shell hands each event to its request, which streams the token's text
// piece (the pieces of a choice concatenate to its text) and a final chunk
// with the finish reason. The done event gives the Result's Timing and
// CostUSD. Embeddings and tensor (vision) requests become members of batches
// (DoBatch packs several requests, Do one), with deterministic unit-norm
// vectors or logits. When ctx ends first, the jobs are cancelled in the core
// and Do returns ctx's error wrapped.
//
// Timing model (all durations from the Profile, each multiplied by a
// lognormal jitter exp(N(0, Config.JitterSigma)) drawn from the seeded rng):
//
//   - A job reaches the accelerator RTT/2 after submission; each result
//     reaches the caller RTT/2 after the accelerator produced it. Timing is
//     measured from submission: TTFT and Total include the whole RTT;
//     QueueWait is from arrival at the accelerator to its first step.
//   - LLM, continuous batching with iteration-level scheduling (vLLM without
//     chunked prefill): at most MaxConcurrency sequences hold slots, the others
//     wait in FIFO order. At each iteration, if sequences wait and slots are
//     free, one prefill step admits as many as fit and lasts
//     PrefillTime(sum of their prompt tokens); it delays every active
//     sequence and gives each admitted one its first token. Otherwise a decode
//     step of DecodeStep(active) gives every active sequence one token. A
//     sequence ends after its output tokens, a job when all its sequences have.
//   - Batches (vision, embeddings) are formed by the caller; the class's
//     Parallelism() executors each run one batch at a time, FIFO, for
//     BatchTime(items, tokens).
//   - Slowdown: Core.SetSlowdown(now, f) multiplies the duration of every
//     step and batch that starts at or after now by f (the simulator's drift
//     scenario: a device that becomes f times slower); f = 1 restores it.
//   - Cost: the price per second times attributed busy time. A prefill step's
//     time goes to the sequences it admitted, by prompt-token share; a decode
//     step's time is split equally among its active sequences; a batch's time
//     is split by items. Timing.Busy is a job's attributed time, so the jobs'
//     costs sum to the price times the accelerator's busy time.
package emulator
