// Package backends is accelgate's shared vocabulary, at the bottom of the import
// graph: the canonical Request every front decodes into, the Result and stream
// Chunks a backend produces, the Backend interface every transport implements
// (the accelerator emulator, OpenAI-compatible upstreams, later KServe/Triton),
// the hardware Profile that describes what an accelerator costs and how fast it
// runs each workload class, per-model settings (Model), and the sentinel errors
// that gateway/errors.go maps to HTTP, gRPC and OpenAI statuses.
//
// It imports nothing else from accelgate. Its subpackages hold implementations:
// catalog (the embedded hardware profiles), emulator (a clock-driven emulated
// accelerator), upstream (OpenAI-compatible servers over HTTP) and fleet (the
// fleet file and the default fleet).
//
// A request's path through this vocabulary: a front decodes the client's bytes
// into a *Request (copying everything out of the transport's buffers), the
// router picks a Backend by its Descriptor, the gateway calls Backend.Do with a
// context that carries the hard timeout, streamed tokens arrive through the
// StreamFunc, and the returned *Result carries usage, timing and attributed cost.
package backends
