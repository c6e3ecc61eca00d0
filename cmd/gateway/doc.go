// Command gateway runs accelgate: the OpenAI-compatible HTTP front and the
// KServe v2 gRPC front in front of a fleet of accelerators. With no -config it
// serves the embedded default fleet of emulated accelerators.
//
//	go run ./cmd/gateway [-config fleet.yaml] [-http-addr 127.0.0.1:8080] [-grpc-addr 127.0.0.1:8081]
//
// The first line it prints names what it bound:
// "accelgate listening on http=HOST:PORT grpc=HOST:PORT".
package main
