// Package gateway is accelgate's front door: the protocol fronts and the
// protocol-independent request pipeline behind them.
//
// It owns the HTTP front (Server, on valyala/fasthttp: the OpenAI-compatible
// API, health and readiness), the Dispatcher (router → backend → feedback,
// with retries within the hard timeout), and the one table that maps errors
// to HTTP, gRPC and OpenAI statuses (errors.go).
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
//  3. Non-streaming requests call Dispatcher.Do: Place asks the router core
//     (under a mutex) for a backend, Run hands the request to that backend's
//     batcher (package batcher; see batching.go) with a context that carries
//     the hard timeout — tensor and embeddings requests are merged into
//     batches, LLM requests wait in its admission queue and then call
//     Backend.Do — and the outcome goes back to the router exactly once. A
//     backend (or batch) failure before any output is retried once on another
//     backend.
//  4. Streaming requests are placed first, so the placement headers go out
//     with the response headers; the backend then runs inside fasthttp's body
//     stream writer, each chunk flushed as one server-sent event. The chunk
//     that ends the stream carries the attributed cost (accelgate_cost_usd).
//  5. Every response names where it ran and what it cost: x-accelgate-backend,
//     x-accelgate-hardware and x-accelgate-cost-usd.
package gateway
