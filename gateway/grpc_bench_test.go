package gateway

import (
	"context"
	"net"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"

	"github.com/accelgate/accelgate/backends"
	"github.com/accelgate/accelgate/proto/inference"
	"github.com/accelgate/accelgate/router"
)

// instantTensor answers every tensor request at once with the same
// precomputed [1, 1000] FP32 output (read-only, shared).
type instantTensor struct {
	desc *backends.Descriptor
	res  backends.Result
}

func (b *instantTensor) Descriptor() *backends.Descriptor { return b.desc }
func (b *instantTensor) Close() error                     { return nil }
func (b *instantTensor) Do(context.Context, *backends.Request, *backends.Model, backends.StreamFunc) (*backends.Result, error) {
	r := b.res
	return &r, nil
}

func benchDispatcher(b *testing.B) *Dispatcher {
	be := &instantTensor{
		desc: &backends.Descriptor{Name: "b0", Profile: visionProfile(), Models: []string{"resnet-50"}, PricePerHour: 3.6},
		res: backends.Result{CostUSD: 0.00125, Tensors: []backends.Tensor{{Name: "output", Datatype: backends.FP32,
			Shape: []int64{1, 1000}, Data: make([]byte, 4000)}}},
	}
	d, err := NewDispatcher([]backends.Backend{be}, grpcTestModels(), router.Config{}, nil)
	if err != nil {
		b.Fatal(err)
	}
	return d
}

// benchGRPC runs one resnet-50 infer (1×3×224×224 FP32, raw contents) per
// iteration through the gRPC front over the listener ln dials.
func benchGRPC(b *testing.B, ln net.Listener, dial func(context.Context, string) (net.Conn, error), target string) {
	srv := NewGRPCServer(benchDispatcher(b), GRPCOptions{})
	go srv.Serve(ln)
	defer srv.Stop()
	opts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	if dial != nil {
		opts = append(opts, grpc.WithContextDialer(dial))
	}
	conn, err := grpc.NewClient(target, opts...)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	c := inference.NewGRPCInferenceServiceClient(conn)
	req := resnetRaw(1, "bench")
	ctx := context.Background()
	if _, err := c.ModelInfer(ctx, req); err != nil { // connect outside the timing
		b.Fatal(err)
	}
	b.SetBytes(int64(len(req.RawInputContents[0])))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		resp, err := c.ModelInfer(ctx, req)
		if err != nil || len(resp.RawOutputContents) != 1 {
			b.Fatalf("%v", err)
		}
	}
}

// BenchmarkGRPCResnetBufconn: client and server in the process, HTTP/2 over
// an in-memory connection (no syscalls).
func BenchmarkGRPCResnetBufconn(b *testing.B) {
	ln := bufconn.Listen(4 << 20)
	benchGRPC(b, ln, func(ctx context.Context, _ string) (net.Conn, error) { return ln.DialContext(ctx) }, "passthrough:///bufnet")
}

// BenchmarkGRPCResnetLoopback: the same over TCP on 127.0.0.1.
func BenchmarkGRPCResnetLoopback(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	benchGRPC(b, ln, nil, "passthrough:///"+ln.Addr().String())
}

// BenchmarkGRPCResnetHandler calls the ModelInfer handler directly: decode,
// checks, scheduling, router, backend and response building, without
// protobuf encoding or transport.
func BenchmarkGRPCResnetHandler(b *testing.B) {
	f := &grpcFront{ref: NewDispatcherRef(benchDispatcher(b)), clock: backends.RealClock}
	f.opts.setDefaults()
	req := resnetRaw(1, "bench")
	ctx := context.Background()
	b.SetBytes(int64(len(req.RawInputContents[0])))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.ModelInfer(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}
