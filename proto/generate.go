// Package proto holds accelgate's copy of the KServe v2 / Open Inference
// Protocol gRPC contract (grpc_service.proto) and generates its Go code into
// package inference (proto/inference). The generated code is committed; CI
// compiles it and does not regenerate it.
//
// To regenerate, run `go generate ./proto` from the module root with these
// tools on PATH (the exact versions the committed code was made with):
//
//   - protoc 3.21.12 (libprotoc; Debian/Ubuntu: apt-get install -y protobuf-compiler)
//   - protoc-gen-go v1.36.12, matching go.mod's google.golang.org/protobuf:
//     GOBIN=/tmp/bin go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
//   - protoc-gen-go-grpc v1.5.1:
//     GOBIN=/tmp/bin go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.5.1
//
// then PATH=/tmp/bin:$PATH go generate ./proto.
package proto

//go:generate protoc --proto_path=. --go_out=inference --go_opt=paths=source_relative --go-grpc_out=inference --go-grpc_opt=paths=source_relative grpc_service.proto
