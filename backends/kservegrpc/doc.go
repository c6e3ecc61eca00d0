// Package kservegrpc is the upstream transport for KServe v2 / Open
// Inference Protocol gRPC servers: NVIDIA Triton, KServe model servers,
// MLServer, Seldon, and accelgate's own gateway and emulator (cmd/emulator
// -grpc-addr). A fleet file names it as transport kserve-grpc with
// url: grpc://host:port.
//
// # Protocol
//
// Do sends one inference.GRPCInferenceService/ModelInfer call per tensor
// request (backends.OpTensor) on one shared grpc.ClientConn (HTTP/2: every
// request multiplexes over the same connection, reconnecting with backoff
// after a failure). Inputs travel as raw_input_contents, the canonical form,
// without conversion; requested outputs are named; the request's id is the
// client's id (or the gateway's when the client sent none). Outputs come
// back raw or typed and are converted to canonical backends.Tensor values in
// Result.Tensors. Other operations (chat, completions, embeddings) are not
// served by a KServe v2 upstream and fail with backends.ErrUnavailable.
//
// The call's deadline is the context's, so the upstream sees the gateway's
// hard timeout (grpc-timeout) and stops when it passes or the client goes
// away.
//
// # Errors
//
// The upstream's status code is mapped to the gateway's sentinels:
//
//	InvalidArgument, OutOfRange, FailedPrecondition → *backends.UpstreamError{Status: 400}
//	NotFound                                          → *backends.UpstreamError{Status: 404}
//	DeadlineExceeded                                  → wraps context.DeadlineExceeded
//	Unavailable, ResourceExhausted, Internal, Unknown,
//	Unimplemented, Aborted, connection failures, …    → wraps backends.ErrUnavailable
//
// so that the gateway relays the client's own mistakes and may retry an
// upstream failure on another backend. When the context ends first, Do
// returns the context's error, wrapped.
//
// # Cost rule
//
// As for the OpenAI upstream (backends/upstream), the gateway cannot see how
// the server batches, so a request's accelerator time is estimated from its
// duration and the backend's concurrency:
//
//	Busy    = Total ÷ concurrency
//	CostUSD = Descriptor.PricePerSecond() × Busy
//
// where concurrency is the number of requests this Backend had in flight
// when the request started, itself included.
//
// # Metadata
//
// Backend implements backends.MetadataSource with the ModelMetadata RPC, so
// the gateway can compare the upstream's tensors with the fleet file.
package kservegrpc
