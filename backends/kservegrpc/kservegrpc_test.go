package kservegrpc_test

import (
	"context"
	"encoding/binary"
	"errors"
	"math"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	"github.com/accelgate/accelgate/backends"
	"github.com/accelgate/accelgate/backends/catalog"
	"github.com/accelgate/accelgate/backends/emulator"
	"github.com/accelgate/accelgate/backends/fleet"
	"github.com/accelgate/accelgate/backends/kservegrpc"
	"github.com/accelgate/accelgate/gateway"
	"github.com/accelgate/accelgate/proto/inference"
	"github.com/accelgate/accelgate/router"
)

// countingListener counts accepted connections.
type countingListener struct {
	*bufconn.Listener
	accepted atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.accepted.Add(1)
	}
	return c, err
}

// serve runs srv on an in-memory listener and returns a Backend dialing it.
func serve(t *testing.T, srv *grpc.Server, price float64) (*kservegrpc.Backend, *countingListener) {
	t.Helper()
	ln := &countingListener{Listener: bufconn.Listen(1 << 20)}
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
	cat := catalog.Default()
	prof, ok := cat.Get("l4")
	if !ok {
		t.Fatal("no l4 profile")
	}
	desc := &backends.Descriptor{Name: "remote", Profile: prof, Models: []string{"resnet-50"}, Transport: "kserve-grpc", PricePerHour: price}
	b, err := kservegrpc.New(desc, kservegrpc.Config{
		Target:      "bufnet:1",
		DialOptions: []grpc.DialOption{grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return ln.DialContext(ctx) })},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b, ln
}

// resnetModel is the default fleet's resnet-50 entry.
func resnetModel(t *testing.T) *backends.Model {
	t.Helper()
	f, err := fleet.Default(catalog.Default())
	if err != nil {
		t.Fatal(err)
	}
	for i := range f.Models {
		if f.Models[i].Name == "resnet-50" {
			m := f.Models[i].Model()
			if len(m.Inputs) == 0 {
				t.Fatal("the default fleet's resnet-50 has no inputs metadata")
			}
			return m
		}
	}
	t.Fatal("no resnet-50 in the default fleet")
	return nil
}

// gatewayFront serves accelgate's own gRPC front over one emulated L4.
func gatewayFront(t *testing.T) *grpc.Server {
	t.Helper()
	m := resnetModel(t)
	prof, _ := catalog.Default().Get("l4")
	emu := emulator.New(&backends.Descriptor{Name: "emu-l4", Profile: prof, Models: []string{m.Name}, PricePerHour: prof.PricePerHour},
		emulator.Options{Seed: 1})
	t.Cleanup(func() { emu.Close() })
	d, err := gateway.NewDispatcher([]backends.Backend{emu}, map[string]*backends.Model{m.Name: m}, router.Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return gateway.NewGRPCServer(d, gateway.GRPCOptions{})
}

func images(rows int) []byte {
	n := rows * 3 * 224 * 224
	raw := make([]byte, 4*n)
	for i := 0; i < n; i++ {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(float32((i*7)%255)/255))
	}
	return raw
}

func tensorReq(rows int) *backends.Request {
	return &backends.Request{
		ID: "gw-1", Op: backends.OpTensor, Model: "resnet-50", ClientID: "client-1", Rows: rows,
		Tensors: []backends.Tensor{{Name: "input", Datatype: backends.FP32, Shape: []int64{int64(rows), 3, 224, 224}, Data: images(rows)}},
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// checkLogits checks a [rows, 1000] FP32 output.
func checkLogits(t *testing.T, res *backends.Result, rows int) {
	t.Helper()
	if len(res.Tensors) != 1 {
		t.Fatalf("%d output tensors", len(res.Tensors))
	}
	o := res.Tensors[0]
	if o.Name != "output" || o.Datatype != backends.FP32 || len(o.Shape) != 2 || o.Shape[0] != int64(rows) || o.Shape[1] != 1000 || len(o.Data) != rows*4000 {
		t.Fatalf("output %s %s %v (%d bytes)", o.Name, o.Datatype, o.Shape, len(o.Data))
	}
}

func TestDoThroughGatewayFront(t *testing.T) {
	b, ln := serve(t, gatewayFront(t), 3600) // $1 per second
	ctx := ctxT(t)
	m := resnetModel(t)

	res, err := b.Do(ctx, tensorReq(2), m, nil)
	if err != nil {
		t.Fatal(err)
	}
	checkLogits(t, res, 2)
	tm := res.Timing
	if tm.Total <= 0 || tm.Busy != tm.Total || res.CostUSD != tm.Busy.Seconds() {
		t.Fatalf("timing %+v cost %v: want Busy = Total for a lone request, cost = $1/s × Busy", tm, res.CostUSD)
	}
	// The same image gets the same logits (the emulator hashes the input).
	again, err := b.Do(ctx, tensorReq(2), m, nil)
	if err != nil {
		t.Fatal(err)
	}
	if string(again.Tensors[0].Data) != string(res.Tensors[0].Data) {
		t.Fatal("the same input gave different logits")
	}

	// Requests share one connection.
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := b.Do(ctx, tensorReq(1), m, nil); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := ln.accepted.Load(); n != 1 {
		t.Fatalf("%d connections for 18 requests, want 1", n)
	}

	md, err := b.ModelMetadata(ctx, "resnet-50", "")
	if err != nil {
		t.Fatal(err)
	}
	if md.Name != "resnet-50" || md.Platform != m.Platform || len(md.Inputs) != 1 || md.Inputs[0].Name != "input" || len(md.Inputs[0].Shape) != 4 ||
		len(md.Outputs) != 1 || md.Outputs[0].Datatype != "FP32" || len(md.Versions) == 0 {
		t.Fatalf("metadata %+v", md)
	}

	// The front's errors come back as the gateway's sentinels.
	bad := tensorReq(1)
	bad.Tensors[0].Shape = []int64{1, 3, 224, 225}
	_, err = b.Do(ctx, bad, m, nil)
	var ue *backends.UpstreamError
	if !errors.As(err, &ue) || ue.Status != 400 {
		t.Fatalf("wrong shape: %v, want an UpstreamError 400", err)
	}
	unknown := tensorReq(1)
	unknown.Model = "resnet-51"
	if _, err = b.Do(ctx, unknown, m, nil); !errors.As(err, &ue) || ue.Status != 404 {
		t.Fatalf("unknown model: %v, want an UpstreamError 404", err)
	}
	version := tensorReq(1)
	version.ModelVersion = "42"
	if _, err = b.Do(ctx, version, m, nil); !errors.As(err, &ue) || ue.Status != 404 {
		t.Fatalf("unknown version: %v, want an UpstreamError 404", err)
	}
	if _, err = b.ModelMetadata(ctx, "resnet-51", ""); !errors.As(err, &ue) || ue.Status != 404 {
		t.Fatalf("metadata of an unknown model: %v, want an UpstreamError 404", err)
	}
	if st := gateway.Classify(err); st.GRPC != codes.NotFound || st.HTTP != 404 {
		t.Fatalf("Classify(%v) = %+v", err, st)
	}
}

// fakeServer answers ModelInfer with a fixed error, a blocking wait, or a
// typed-contents response, and records what it received.
type fakeServer struct {
	inference.UnimplementedGRPCInferenceServiceServer
	code  codes.Code
	block bool
	typed bool
	bad   bool

	mu          sync.Mutex
	last        *inference.ModelInferRequest
	hasDeadline bool
}

func (s *fakeServer) ModelInfer(ctx context.Context, r *inference.ModelInferRequest) (*inference.ModelInferResponse, error) {
	_, dl := ctx.Deadline()
	s.mu.Lock()
	s.last, s.hasDeadline = r, dl
	s.mu.Unlock()
	if s.block {
		<-ctx.Done()
		return nil, status.FromContextError(ctx.Err()).Err()
	}
	if s.code != codes.OK {
		return nil, status.Error(s.code, "fake failure")
	}
	resp := &inference.ModelInferResponse{ModelName: r.GetModelName(), Id: r.GetId()}
	out := &inference.ModelInferResponse_InferOutputTensor{Name: "output", Datatype: "INT64", Shape: []int64{1, 3}}
	if s.typed {
		out.Contents = &inference.InferTensorContents{Int64Contents: []int64{-1, 0, 1 << 40}}
	} else {
		raw := make([]byte, 24)
		binary.LittleEndian.PutUint64(raw[0:], math.MaxUint64)
		binary.LittleEndian.PutUint64(raw[16:], 1<<40)
		resp.RawOutputContents = [][]byte{raw}
	}
	if s.bad {
		resp.RawOutputContents = [][]byte{{1, 2, 3}}
		out.Contents = nil
	}
	resp.Outputs = []*inference.ModelInferResponse_InferOutputTensor{out}
	return resp, nil
}

func fakeBackend(t *testing.T, fs *fakeServer) *kservegrpc.Backend {
	srv := grpc.NewServer()
	inference.RegisterGRPCInferenceServiceServer(srv, fs)
	b, _ := serve(t, srv, 1)
	return b
}

func TestRequestAndOutputs(t *testing.T) {
	ctx := ctxT(t)
	m := resnetModel(t)
	for _, typed := range []bool{false, true} {
		fs := &fakeServer{typed: typed}
		b := fakeBackend(t, fs)
		req := tensorReq(1)
		req.ModelVersion = "1"
		req.Outputs = []backends.OutputRequest{{Name: "output"}}
		res, err := b.Do(ctx, req, m, nil)
		if err != nil {
			t.Fatal(err)
		}
		want := make([]byte, 24)
		binary.LittleEndian.PutUint64(want[0:], math.MaxUint64)
		binary.LittleEndian.PutUint64(want[16:], 1<<40)
		o := res.Tensors[0]
		if o.Datatype != backends.INT64 || string(o.Data) != string(want) {
			t.Fatalf("typed=%v: output %s %x", typed, o.Datatype, o.Data)
		}
		fs.mu.Lock()
		r, dl := fs.last, fs.hasDeadline
		fs.mu.Unlock()
		if r.GetModelName() != "resnet-50" || r.GetModelVersion() != "1" || r.GetId() != "client-1" ||
			len(r.GetRawInputContents()) != 1 || string(r.GetRawInputContents()[0]) != string(req.Tensors[0].Data) ||
			r.GetInputs()[0].GetDatatype() != "FP32" || len(r.GetOutputs()) != 1 || r.GetOutputs()[0].GetName() != "output" {
			t.Fatalf("upstream received %v", r.GetInputs())
		}
		if !dl {
			t.Fatal("the context's deadline did not reach the upstream")
		}
	}
}

func TestErrorMapping(t *testing.T) {
	ctx := ctxT(t)
	m := resnetModel(t)
	for _, c := range []struct {
		code   codes.Code
		status int   // UpstreamError status, or 0
		is     error // sentinel otherwise
	}{
		{codes.InvalidArgument, 400, nil},
		{codes.NotFound, 404, nil},
		{codes.Unavailable, 0, backends.ErrUnavailable},
		{codes.ResourceExhausted, 0, backends.ErrUnavailable},
		{codes.Internal, 0, backends.ErrUnavailable},
		{codes.Unimplemented, 0, backends.ErrUnavailable},
		{codes.DeadlineExceeded, 0, context.DeadlineExceeded},
	} {
		b := fakeBackend(t, &fakeServer{code: c.code})
		_, err := b.Do(ctx, tensorReq(1), m, nil)
		var ue *backends.UpstreamError
		switch {
		case c.status != 0:
			if !errors.As(err, &ue) || ue.Status != c.status || ue.Message != "fake failure" {
				t.Errorf("%v: %v, want UpstreamError %d", c.code, err, c.status)
			}
		case !errors.Is(err, c.is):
			t.Errorf("%v: %v, want %v", c.code, err, c.is)
		}
	}

	t.Run("deadline", func(t *testing.T) {
		b := fakeBackend(t, &fakeServer{block: true})
		dctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
		defer cancel()
		_, err := b.Do(dctx, tensorReq(1), m, nil)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("%v, want context.DeadlineExceeded", err)
		}
	})
	t.Run("malformed response", func(t *testing.T) {
		b := fakeBackend(t, &fakeServer{bad: true})
		if _, err := b.Do(ctx, tensorReq(1), m, nil); !errors.Is(err, backends.ErrUnavailable) {
			t.Fatalf("%v, want ErrUnavailable", err)
		}
	})
	t.Run("not a tensor request", func(t *testing.T) {
		b := fakeBackend(t, &fakeServer{})
		if _, err := b.Do(ctx, &backends.Request{Op: backends.OpChat}, m, nil); !errors.Is(err, backends.ErrUnavailable) {
			t.Fatalf("%v, want ErrUnavailable", err)
		}
	})
	t.Run("closed", func(t *testing.T) {
		b := fakeBackend(t, &fakeServer{})
		b.Close()
		if _, err := b.Do(ctx, tensorReq(1), m, nil); !errors.Is(err, backends.ErrUnavailable) {
			t.Fatalf("%v, want ErrUnavailable", err)
		}
		if err := b.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
	})
	t.Run("connection refused", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close() // nothing listens there now
		desc := &backends.Descriptor{Name: "gone", Profile: &backends.Profile{Name: "x"}}
		b, err := kservegrpc.New(desc, kservegrpc.Config{Target: addr, DialTimeout: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		if _, err := b.Do(ctx, tensorReq(1), m, nil); !errors.Is(err, backends.ErrUnavailable) {
			t.Fatalf("%v, want ErrUnavailable", err)
		}
	})
}

func TestNewValidatesTarget(t *testing.T) {
	desc := &backends.Descriptor{Name: "x"}
	for _, target := range []string{"", "host", "http://host:1", "host:1/path", ":"} {
		if b, err := kservegrpc.New(desc, kservegrpc.Config{Target: target}); err == nil {
			b.Close()
			t.Errorf("New(%q) succeeded", target)
		}
	}
	for _, target := range []string{"127.0.0.1:8001", "grpc://triton:8001", "[::1]:8001", ":8001"} {
		b, err := kservegrpc.New(desc, kservegrpc.Config{Target: target})
		if err != nil {
			t.Errorf("New(%q): %v", target, err)
			continue
		}
		b.Close()
	}
	if _, err := kservegrpc.New(nil, kservegrpc.Config{Target: "h:1"}); err == nil {
		t.Error("New(nil descriptor) succeeded")
	}
}
