package loadtest

import (
	"context"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/accelgate/accelgate/backends"
	"github.com/accelgate/accelgate/proto/inference"
)

// fakeInfer is a KServe v2 gRPC server whose ModelInfer a test scripts.
type fakeInfer struct {
	inference.UnimplementedGRPCInferenceServiceServer
	mu    sync.Mutex
	md    metadata.MD
	req   *inference.ModelInferRequest
	reply func() (*inference.ModelInferResponse, error)
}

func (f *fakeInfer) ModelInfer(ctx context.Context, req *inference.ModelInferRequest) (*inference.ModelInferResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	f.mu.Lock()
	f.md, f.req = md, req
	reply := f.reply
	f.mu.Unlock()
	grpc.SetHeader(ctx, metadata.Pairs(headerBackend, "a100-mig-1g-0", headerHardware, "a100-mig-1g.10gb"))
	return reply()
}

func startFakeGRPC(t *testing.T, f *fakeInfer) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer(grpc.MaxRecvMsgSize(64 << 20))
	inference.RegisterGRPCInferenceServiceServer(s, f)
	go s.Serve(ln)
	t.Cleanup(s.Stop)
	return ln.Addr().String()
}

func TestGRPCTensorRequest(t *testing.T) {
	f := &fakeInfer{reply: func() (*inference.ModelInferResponse, error) {
		return &inference.ModelInferResponse{ModelName: "resnet-50", Parameters: map[string]*inference.InferParameter{
			"accelgate_cost_usd": {ParameterChoice: &inference.InferParameter_DoubleParam{DoubleParam: 3e-6}},
		}}, nil
	}}
	addr := startFakeGRPC(t, f)
	cl, err := NewClient(ClientOptions{Target: "http://127.0.0.1:1", GRPC: addr})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	it := &Item{Op: backends.OpTensor, Model: "resnet-50", Images: 2, Priority: backends.Critical,
		SLO: backends.SLO{E2E: 15 * time.Millisecond}, Timeout: 2 * time.Second}
	var o Outcome
	cl.Do(context.Background(), it, time.Now(), &o)
	if !o.OK || o.Kind != KindOK || o.Status != 1000 || o.CostUSD != 3e-6 ||
		o.Backend != "a100-mig-1g-0" || o.Hardware != "a100-mig-1g.10gb" {
		t.Fatalf("outcome %+v", o)
	}
	f.mu.Lock()
	req, md := f.req, f.md
	f.mu.Unlock()
	for k, v := range map[string]string{headerPriority: "critical", headerSLO: "15", headerTimeout: "2000"} {
		if got := md.Get(k); len(got) != 1 || got[0] != v {
			t.Errorf("metadata %s = %v, want %q", k, got, v)
		}
	}
	if req.ModelName != "resnet-50" || len(req.Inputs) != 1 || req.Inputs[0].Name != "input" ||
		req.Inputs[0].Datatype != "FP32" || !slices.Equal(req.Inputs[0].Shape, []int64{2, 3, 224, 224}) ||
		len(req.RawInputContents) != 1 {
		t.Fatalf("request %v", req)
	}
	checkImage(t, req.RawInputContents[0], 2)
}

func TestGRPCErrorClassification(t *testing.T) {
	var mu sync.Mutex
	var next error
	f := &fakeInfer{reply: func() (*inference.ModelInferResponse, error) {
		mu.Lock()
		defer mu.Unlock()
		return nil, next
	}}
	addr := startFakeGRPC(t, f)
	cl, err := NewClient(ClientOptions{Target: "http://127.0.0.1:1", GRPC: addr})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for _, tc := range []struct {
		err  error
		kind string
	}{
		{status.Error(codes.Unavailable, "request shed: no backend can meet the SLO"), KindShed},
		{status.Error(codes.Unavailable, "no backend available for model resnet-50"), KindNoBackend},
		{status.Error(codes.Unavailable, "backend unavailable"), KindGRPCUnavailable},
		{status.Error(codes.DeadlineExceeded, "hard timeout"), KindTimeout},
		{status.Error(codes.InvalidArgument, "bad shape"), KindBadRequest},
		{status.Error(codes.NotFound, "unknown model"), "grpc_not_found"},
		{status.Error(codes.ResourceExhausted, "too big"), "grpc_resource_exhausted"},
	} {
		mu.Lock()
		next = tc.err
		mu.Unlock()
		var o Outcome
		cl.Do(context.Background(), &Item{Op: backends.OpTensor, Model: "resnet-50", Images: 1}, time.Now(), &o)
		code := status.Code(tc.err)
		if o.OK || o.Kind != tc.kind || o.Status != 1000+int(code) {
			t.Errorf("%v: kind %q status %d, want %q %d", tc.err, o.Kind, o.Status, tc.kind, 1000+int(code))
		}
	}
}

func TestGRPCConnectionRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cl, err := NewClient(ClientOptions{Target: "http://127.0.0.1:1", GRPC: addr, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var o Outcome
	cl.Do(context.Background(), &Item{Op: backends.OpTensor, Model: "resnet-50"}, time.Now(), &o)
	if o.OK || o.Kind != KindConnError {
		t.Errorf("outcome kind %q status %d", o.Kind, o.Status)
	}
}
