// Command emulator runs one emulated accelerator as its own process, serving
// the OpenAI-compatible API and KServe v2 over HTTP, and KServe v2 over gRPC
// when -grpc-addr is set, so that tests and demos can put real network hops
// between the gateway and its backends.
//
//	go run ./cmd/emulator -profile h100-sxm-80gb -models llama-3.1-8b-instruct -http-addr 127.0.0.1:0
//	go run ./cmd/emulator -profile l4 -models resnet-50 -http-addr 127.0.0.1:0 -grpc-addr 127.0.0.1:0
//
// The first line it prints names what it bound: "http=HOST:PORT", followed by
// " grpc=HOST:PORT" when it serves gRPC.
//
// GET /metrics on the HTTP address exposes the emulated engine's load under
// vLLM's metric names (vllm:num_requests_running, vllm:num_requests_waiting,
// vllm:kv_cache_usage_perc and vllm:gpu_cache_usage_perc; see
// emulator.Backend.WriteMetrics), so the gateway's telemetry scraper
// (backends/telemetry) can watch an emulator as it would a vLLM server.
package main
