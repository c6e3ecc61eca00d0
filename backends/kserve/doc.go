// Package kserve speaks the KServe v2 / Open Inference Protocol over HTTP:
// the codec the gateway's /v2 front uses, and an upstream transport for KServe
// v2 servers (Triton, KServe, MLServer, accelgate's emulator).
//
// # Codec
//
// DecodeInferRequest reads an infer request body into canonical tensors
// (backends.Tensor: raw little-endian data, BYTES elements length-prefixed).
// JSON data may be flat or nested; nested data must have exactly the
// tensor's shape. Every datatype is accepted: BOOL as true/false, the integer
// types as range-checked JSON integers, FP16/FP32/FP64 as JSON numbers (FP16
// rounded to nearest even), BYTES as JSON strings; BF16 only as binary data.
// The binary tensor data extension is supported: an input with the
// binary_data_size parameter takes its bytes from the section after the JSON
// (whose length the Inference-Header-Content-Length header gives), in input
// order, and the sizes must add up to the section exactly. Requested outputs
// may ask for binary data (binary_data), as may the whole request
// (binary_data_output). Every error wraps backends.ErrBadRequest and names the
// tensor; decoding never panics and copies what it keeps, so the body may be
// a transport buffer that is reused afterwards.
//
// EncodeInferResponse writes a response: outputs as flat JSON data, or as
// binary data when requested or when JSON cannot carry them exactly (FP16,
// BF16, NaN and infinities, BYTES that are not UTF-8). accelgate's placement
// and cost are sent as the response parameters accelgate_backend,
// accelgate_hardware and accelgate_cost_usd. EncodeInferRequest and
// DecodeInferResponse are the other direction, for clients and the
// transport.
//
// # Upstream transport
//
// HTTPBackend is a backends.Backend for a KServe v2 HTTP server (fleet file
// transport "kserve-http"). It serves OpTensor requests only (others fail with
// backends.ErrUnavailable): POST /v2/models/{model}[/versions/{v}]/infer with
// the inputs as binary data and every output requested as binary data, on
// pooled keep-alive connections. The request's deadline bounds the exchange
// and is also sent as Triton's "timeout" parameter, in microseconds; when the
// context ends, blocked I/O is interrupted and the connection closed.
//
// Errors: a 4xx answer becomes a *backends.UpstreamError with the server's
// status and its {"error"} message (relayed to the client as the client's
// mistake); 429 also wraps backends.ErrShed; 5xx answers, connection failures
// and malformed answers wrap backends.ErrUnavailable; the deadline yields
// context.DeadlineExceeded, and so does a 504 answer to a request that carried
// the deadline as its timeout parameter (the server gave up at our deadline).
//
// Cost, as for backends/upstream: the request's duration ÷ the number of
// requests in flight on the backend when it started (itself included) × the
// backend's price per second.
//
// HTTPBackend also implements backends.MetadataSource (GET
// /v2/models/{model}[/versions/{v}]).
package kserve
