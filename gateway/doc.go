// Package gateway is accelgate's front door: the protocol fronts and the
// protocol-independent request pipeline behind them.
//
// It owns the HTTP front (Server, on valyala/fasthttp: the OpenAI-compatible
// API, KServe v2 REST, health, readiness and /metrics), the gRPC front
// (grpc.go), the Dispatcher (router → batcher → backend → feedback, with
// retries under a retry budget and hedging: retry.go, hedge.go), the checks
// that watch backends (health.go: active probes and measured round trips;
// metadata.go: KServe metadata; telemetry.go: upstream metrics), the
// response cache (cache.go), fleet generations for reload without downtime
// (reload.go: a DispatcherRef read once per request; placements remember
// their generation, which is drained before it is closed), and the one table
// that maps errors to HTTP, gRPC and OpenAI statuses (errors.go).
//
// How a request passes through it:
//
//  1. Server.Handle routes by path and method (404/405 otherwise); fasthttp's
//     own failures (oversized body, malformed HTTP) reach the ErrorHandler and
//     get the same OpenAI error body.
//  2. The handler decodes the JSON body into a backends.Request, copying
//     everything it keeps out of fasthttp's buffers (they are reused after
//     the handler returns), resolves the model, and applies the client's
//     class, SLO targets and hard timeout from the x-accelgate-* headers.
//  3. A deterministic request may be answered from the response cache.
//     Otherwise non-streaming requests call Dispatcher.Do: Place asks the
//     router core (under a mutex) for a backend, Run hands the request to
//     that backend's batcher (package batcher; see batching.go) with a
//     context that carries the hard timeout — tensor, embeddings and
//     eligible completions requests are merged into batches, LLM requests
//     wait in its admission queue and then call Backend.Do — and the outcome
//     (error, latencies as the gateway saw them, batch size) goes back to the
//     router exactly once, which learns from it. A backend (or batch)
//     failure before any output is retried on another backend within the
//     retry budget; a request a batcher hands back unexecuted is placed again.
//  4. Streaming requests are placed and wait for admission first
//     (PlaceAdmitted), so a full queue is still a 429. The backend then runs
//     in its own goroutine (stream.go: startStream), its events written into
//     a pipe that becomes the response body, and the handler commits to 200
//     — with the placement headers of the backend actually serving it — only
//     when the first event exists: a failure before it is placed again
//     elsewhere, and when no other backend takes over (or the hard timeout
//     passes first) the client gets a plain HTTP error (502, 504). Each
//     chunk is flushed as one server-sent event; a failure after the first
//     becomes a final error event. The chunk that ends the stream carries
//     the attributed cost (accelgate_cost_usd).
//  5. Every response names where it ran and what it cost: x-accelgate-backend,
//     x-accelgate-hardware and x-accelgate-cost-usd.
package gateway
