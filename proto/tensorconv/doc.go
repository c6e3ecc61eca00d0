// Package tensorconv converts between the KServe v2 gRPC tensor messages
// (package inference) and accelgate's canonical tensors (backends.Tensor,
// whose Data is the protocol's "raw" form: fixed-size elements little-endian
// back to back, BYTES elements each after a 4-byte little-endian length).
//
// Both directions are used by the gateway's gRPC front (requests in,
// responses out) and by the kserve-grpc upstream transport (requests out,
// responses in). Every function checks counts and lengths before it
// allocates, so no input, however malformed, panics or makes it allocate
// more than the message itself holds; errors wrap backends.ErrBadRequest and
// name the tensor.
package tensorconv
