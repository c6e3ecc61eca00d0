// Package inference is the Go code generated from proto/grpc_service.proto:
// the KServe v2 / Open Inference Protocol gRPC messages and the
// GRPCInferenceService client and server stubs (with Triton's
// ModelStreamInfer and RepositoryIndex), wire-compatible with Triton, KServe,
// MLServer and Seldon. Do not edit the .pb.go files; regenerate them as
// proto/generate.go describes.
package inference
