package gateway

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	"github.com/accelgate/accelgate/backends"
	"github.com/accelgate/accelgate/proto/inference"
	"github.com/accelgate/accelgate/router"
)

// tensorFake is a tensor backend: for resnet-like models it answers an FP32
// [rows, classes] logits tensor named as the model's first output; for the
// "echo" model it returns every input as output "out_<name>". It can be told
// to fail or to block until its context ends.
type tensorFake struct {
	desc  *backends.Descriptor
	err   error
	block bool
	mu    sync.Mutex
	calls int
	last  *backends.Request
	// started, when set, receives one value per blocking call once it blocks.
	started chan struct{}
}

func (b *tensorFake) Descriptor() *backends.Descriptor { return b.desc }
func (b *tensorFake) Close() error                     { return nil }

func (b *tensorFake) lastReq() *backends.Request {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.last
}

func (b *tensorFake) Do(ctx context.Context, req *backends.Request, m *backends.Model, _ backends.StreamFunc) (*backends.Result, error) {
	b.mu.Lock()
	b.calls++
	b.last = req
	b.mu.Unlock()
	if b.block {
		if b.started != nil {
			b.started <- struct{}{}
		}
		<-ctx.Done()
		return nil, ctx.Err()
	}
	if b.err != nil {
		return nil, b.err
	}
	res := &backends.Result{CostUSD: 0.00125}
	if m.Name == "echo" {
		for _, t := range req.Tensors {
			t.Name = "out_" + t.Name
			res.Tensors = append(res.Tensors, t)
		}
		return res, nil
	}
	classes := m.Classes
	if classes == 0 {
		classes = 1000
	}
	out := backends.Tensor{Name: m.Outputs[0].Name, Datatype: backends.FP32, Shape: []int64{int64(req.Rows), int64(classes)}}
	out.Data = make([]byte, 4*req.Rows*classes)
	for i := 0; i < req.Rows*classes; i++ {
		binary.LittleEndian.PutUint32(out.Data[4*i:], math.Float32bits(float32(i%classes)/10))
	}
	res.Tensors = []backends.Tensor{out}
	return res, nil
}

func visionProfile() *backends.Profile {
	p := testProfile("test-gpu", 3.6)
	p.Vision = &backends.BatchModel{BaseMs: 1, PerItemMs: 0.1, MaxBatch: 32, Source: "test"}
	return p
}

// echoTypes are the datatypes of the "echo" model's inputs: one input per
// type, named after it, of shape [-1, 2].
var echoTypes = []backends.DataType{backends.BOOL, backends.UINT8, backends.UINT16, backends.UINT32, backends.UINT64,
	backends.INT8, backends.INT16, backends.INT32, backends.INT64, backends.FP32, backends.FP64, backends.BYTES}

func grpcTestModels() map[string]*backends.Model {
	res := &backends.Model{
		Name: "resnet-50", Kind: backends.ModelTensor, Classes: 1000, Timeout: 10 * time.Second,
		DefaultPriority: backends.Standard, Platform: "onnxruntime_onnx", Versions: []string{"1"},
		Inputs:  []backends.TensorSpec{{Name: "input", Datatype: "FP32", Shape: []int64{-1, 3, 224, 224}}},
		Outputs: []backends.TensorSpec{{Name: "output", Datatype: "FP32", Shape: []int64{-1, 1000}}},
	}
	for p := range res.SLO {
		res.SLO[p] = backends.SLO{E2E: time.Second}
	}
	echo := &backends.Model{Name: "echo", Kind: backends.ModelTensor, Timeout: 10 * time.Second, DefaultPriority: backends.Standard, Versions: []string{"1", "2"}}
	for _, dt := range echoTypes {
		echo.Inputs = append(echo.Inputs, backends.TensorSpec{Name: dt.String(), Datatype: dt.String(), Shape: []int64{-1, 2}})
		echo.Outputs = append(echo.Outputs, backends.TensorSpec{Name: "out_" + dt.String(), Datatype: dt.String(), Shape: []int64{-1, 2}})
	}
	orphan := &backends.Model{Name: "orphan", Kind: backends.ModelTensor, Timeout: time.Second, Versions: []string{"1"},
		Inputs: res.Inputs, Outputs: res.Outputs}
	ms := testModels()
	ms["resnet-50"], ms["echo"], ms["orphan"] = res, echo, orphan
	return ms
}

type grpcEnv struct {
	be     []*tensorFake
	conn   *grpc.ClientConn
	client inference.GRPCInferenceServiceClient
}

// newGRPCEnv serves the gRPC front over an in-memory listener in front of
// tensor fakes (one by default) serving resnet-50, echo and llm.
func newGRPCEnv(t testing.TB, bes ...*tensorFake) *grpcEnv {
	t.Helper()
	if len(bes) == 0 {
		bes = []*tensorFake{{}}
	}
	var list []backends.Backend
	for i, b := range bes {
		if b.desc == nil {
			b.desc = &backends.Descriptor{Name: "b" + string(rune('0'+i)), Profile: visionProfile(), Models: []string{"resnet-50", "echo", "llm"}, PricePerHour: 3.6}
		}
		list = append(list, b)
	}
	d, err := NewDispatcher(list, grpcTestModels(), router.Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	conn := serveGRPC(t, NewGRPCServer(d, GRPCOptions{Version: "9.9.9"}))
	return &grpcEnv{be: bes, conn: conn, client: inference.NewGRPCInferenceServiceClient(conn)}
}

// serveGRPC serves srv on an in-memory listener and returns a client
// connection to it; both are closed when the test ends (cleanups run last
// registered first: call it after registering the dispatcher's, and the
// server stops before the dispatcher closes).
func serveGRPC(t testing.TB, srv *grpc.Server) *grpc.ClientConn {
	t.Helper()
	ln := bufconn.Listen(1 << 20)
	go srv.Serve(ln)
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return ln.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		StopGRPC(srv, 5*time.Second)
	})
	return conn
}

func tctx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// image returns rows resnet inputs as FP32 values and their raw encoding.
func image(rows int) ([]float32, []byte) {
	n := rows * 3 * 224 * 224
	vals := make([]float32, n)
	raw := make([]byte, 4*n)
	for i := range vals {
		vals[i] = float32(i%255) / 255
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(vals[i]))
	}
	return vals, raw
}

func resnetRaw(rows int, id string) *inference.ModelInferRequest {
	_, raw := image(rows)
	return &inference.ModelInferRequest{
		ModelName: "resnet-50", Id: id,
		Inputs:           []*inference.ModelInferRequest_InferInputTensor{{Name: "input", Datatype: "FP32", Shape: []int64{int64(rows), 3, 224, 224}}},
		RawInputContents: [][]byte{raw},
	}
}

func wantCode(t *testing.T, err error, code codes.Code) {
	t.Helper()
	if status.Code(err) != code {
		t.Fatalf("error %v: code %v, want %v", err, status.Code(err), code)
	}
}

func TestGRPCHealthMetadataAndIndex(t *testing.T) {
	e := newGRPCEnv(t)
	ctx := tctx(t)
	c := e.client

	live, err := c.ServerLive(ctx, &inference.ServerLiveRequest{})
	if err != nil || !live.GetLive() {
		t.Fatalf("ServerLive = %v, %v", live, err)
	}
	ready, err := c.ServerReady(ctx, &inference.ServerReadyRequest{})
	if err != nil || !ready.GetReady() {
		t.Fatalf("ServerReady = %v, %v", ready, err)
	}
	sm, err := c.ServerMetadata(ctx, &inference.ServerMetadataRequest{})
	if err != nil || sm.GetName() != "accelgate" || sm.GetVersion() != "9.9.9" || len(sm.GetExtensions()) == 0 {
		t.Fatalf("ServerMetadata = %v, %v", sm, err)
	}

	mr, err := c.ModelReady(ctx, &inference.ModelReadyRequest{Name: "resnet-50"})
	if err != nil || !mr.GetReady() {
		t.Fatalf("ModelReady = %v, %v", mr, err)
	}
	if mr, err := c.ModelReady(ctx, &inference.ModelReadyRequest{Name: "resnet-50", Version: "1"}); err != nil || !mr.GetReady() {
		t.Fatalf("ModelReady v1 = %v, %v", mr, err)
	}
	if mr, err := c.ModelReady(ctx, &inference.ModelReadyRequest{Name: "orphan"}); err != nil || mr.GetReady() {
		t.Fatalf("ModelReady(orphan) = %v, %v; want not ready", mr, err)
	}
	_, err = c.ModelReady(ctx, &inference.ModelReadyRequest{Name: "nope"})
	wantCode(t, err, codes.NotFound)
	_, err = c.ModelReady(ctx, &inference.ModelReadyRequest{Name: "resnet-50", Version: "7"})
	wantCode(t, err, codes.NotFound)

	md, err := c.ModelMetadata(ctx, &inference.ModelMetadataRequest{Name: "resnet-50"})
	if err != nil {
		t.Fatal(err)
	}
	if md.GetName() != "resnet-50" || md.GetPlatform() != "onnxruntime_onnx" || len(md.GetVersions()) != 1 || md.GetVersions()[0] != "1" ||
		len(md.GetInputs()) != 1 || md.GetInputs()[0].GetName() != "input" || md.GetInputs()[0].GetDatatype() != "FP32" ||
		!slices.Equal(md.GetInputs()[0].GetShape(), []int64{-1, 3, 224, 224}) ||
		len(md.GetOutputs()) != 1 || !slices.Equal(md.GetOutputs()[0].GetShape(), []int64{-1, 1000}) {
		t.Fatalf("ModelMetadata = %v", md)
	}
	_, err = c.ModelMetadata(ctx, &inference.ModelMetadataRequest{Name: "nope"})
	wantCode(t, err, codes.NotFound)
	_, err = c.ModelMetadata(ctx, &inference.ModelMetadataRequest{Name: "resnet-50", Version: "2"})
	wantCode(t, err, codes.NotFound)
	_, err = c.ModelMetadata(ctx, &inference.ModelMetadataRequest{Name: "llm"})
	wantCode(t, err, codes.InvalidArgument)

	idx, err := c.RepositoryIndex(ctx, &inference.RepositoryIndexRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range idx.GetModels() {
		got = append(got, m.GetName()+"/"+m.GetVersion()+"/"+m.GetState())
	}
	want := []string{"echo/1/READY", "echo/2/READY", "orphan/1/UNAVAILABLE", "resnet-50/1/READY"}
	if !slices.Equal(got, want) {
		t.Fatalf("RepositoryIndex = %v, want %v", got, want)
	}
	idx, err = c.RepositoryIndex(ctx, &inference.RepositoryIndexRequest{Ready: true})
	if err != nil || len(idx.GetModels()) != 3 {
		t.Fatalf("RepositoryIndex(ready) = %v, %v", idx, err)
	}

	hc := healthpb.NewHealthClient(e.conn)
	for _, svc := range []string{"", "inference.GRPCInferenceService"} {
		h, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: svc})
		if err != nil || h.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("health %q = %v, %v", svc, h, err)
		}
	}
	_, err = hc.Check(ctx, &healthpb.HealthCheckRequest{Service: "other"})
	wantCode(t, err, codes.NotFound)
	w, err := hc.Watch(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if h, err := w.Recv(); err != nil || h.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health watch = %v, %v", h, err)
	}

	rc, err := reflectionpb.NewServerReflectionClient(e.conn).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := rc.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	rr, err := rc.Recv()
	if err != nil {
		t.Fatal(err)
	}
	var svcs []string
	for _, s := range rr.GetListServicesResponse().GetService() {
		svcs = append(svcs, s.GetName())
	}
	if !containsString(svcs, "inference.GRPCInferenceService") || !containsString(svcs, "grpc.health.v1.Health") {
		t.Fatalf("reflection services %v", svcs)
	}
	if err := rc.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_FileContainingSymbol{FileContainingSymbol: "inference.ModelInferRequest"}}); err != nil {
		t.Fatal(err)
	}
	if rr, err := rc.Recv(); err != nil || len(rr.GetFileDescriptorResponse().GetFileDescriptorProto()) == 0 {
		t.Fatalf("reflection file for inference.ModelInferRequest: %v, %v", rr, err)
	}
	rc.CloseSend()
}

func TestGRPCModelInferRaw(t *testing.T) {
	e := newGRPCEnv(t)
	ctx := tctx(t)
	req := resnetRaw(2, "req-42")
	resp, err := e.client.ModelInfer(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetModelName() != "resnet-50" || resp.GetModelVersion() != "1" || resp.GetId() != "req-42" {
		t.Fatalf("response header %q %q %q", resp.GetModelName(), resp.GetModelVersion(), resp.GetId())
	}
	if len(resp.GetOutputs()) != 1 || len(resp.GetRawOutputContents()) != 1 {
		t.Fatalf("%d outputs, %d raw contents", len(resp.GetOutputs()), len(resp.GetRawOutputContents()))
	}
	o := resp.GetOutputs()[0]
	if o.GetName() != "output" || o.GetDatatype() != "FP32" || !slices.Equal(o.GetShape(), []int64{2, 1000}) || o.GetContents() != nil {
		t.Fatalf("output %v", o)
	}
	if n := len(resp.GetRawOutputContents()[0]); n != 2*1000*4 {
		t.Fatalf("raw output is %d bytes, want 8000", n)
	}
	ps := resp.GetParameters()
	if ps[ParamBackend].GetStringParam() != "b0" || ps[ParamHardware].GetStringParam() != "test-gpu" || ps[ParamCost].GetDoubleParam() != 0.00125 {
		t.Fatalf("parameters %v", ps)
	}
	got := e.be[0].lastReq()
	if got.Op != backends.OpTensor || got.Model != "resnet-50" || got.ClientID != "req-42" || got.Rows != 2 || got.ID == "" ||
		len(got.Tensors) != 1 || string(got.Tensors[0].Data) != string(req.RawInputContents[0]) {
		t.Fatalf("backend saw %+v", got)
	}
	if got.Priority != backends.Standard || got.SLO.E2E != time.Second || got.Deadline.Sub(got.Arrival) != 10*time.Second {
		t.Fatalf("default scheduling: priority %v slo %v timeout %v", got.Priority, got.SLO, got.Deadline.Sub(got.Arrival))
	}

	// Requesting the output by name selects it.
	req.Outputs = []*inference.ModelInferRequest_InferRequestedOutputTensor{{Name: "output"}}
	if resp, err := e.client.ModelInfer(ctx, req); err != nil || len(resp.GetOutputs()) != 1 {
		t.Fatalf("with requested output: %v, %v", resp, err)
	}
}

func TestGRPCModelInferTyped(t *testing.T) {
	e := newGRPCEnv(t)
	ctx := tctx(t)
	vals, raw := image(1)
	req := &inference.ModelInferRequest{
		ModelName: "resnet-50", ModelVersion: "1",
		Inputs: []*inference.ModelInferRequest_InferInputTensor{{Name: "input", Datatype: "FP32", Shape: []int64{1, 3, 224, 224},
			Contents: &inference.InferTensorContents{Fp32Contents: vals}}},
	}
	resp, err := e.client.ModelInfer(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.GetRawOutputContents()) != 0 || len(resp.GetOutputs()) != 1 {
		t.Fatalf("typed request: %d raw outputs, %d outputs", len(resp.GetRawOutputContents()), len(resp.GetOutputs()))
	}
	o := resp.GetOutputs()[0]
	if !slices.Equal(o.GetShape(), []int64{1, 1000}) || len(o.GetContents().GetFp32Contents()) != 1000 || o.GetContents().GetFp32Contents()[7] != 0.7 {
		t.Fatalf("output %v %d", o.GetShape(), len(o.GetContents().GetFp32Contents()))
	}
	if got := e.be[0].lastReq(); string(got.Tensors[0].Data) != string(raw) {
		t.Fatal("typed contents did not convert to the canonical raw bytes")
	}
}

// TestGRPCTypedEveryDatatype sends every typed datatype through the echo
// model: typed in → canonical raw → typed out, values unchanged.
func TestGRPCTypedEveryDatatype(t *testing.T) {
	e := newGRPCEnv(t)
	ctx := tctx(t)
	req := &inference.ModelInferRequest{ModelName: "echo", ModelVersion: "2"}
	for _, dt := range echoTypes {
		c := &inference.InferTensorContents{}
		switch dt {
		case backends.BOOL:
			c.BoolContents = []bool{true, false}
		case backends.UINT8:
			c.UintContents = []uint32{0, 255}
		case backends.UINT16:
			c.UintContents = []uint32{1, 65535}
		case backends.UINT32:
			c.UintContents = []uint32{2, math.MaxUint32}
		case backends.UINT64:
			c.Uint64Contents = []uint64{3, math.MaxUint64}
		case backends.INT8:
			c.IntContents = []int32{-128, 127}
		case backends.INT16:
			c.IntContents = []int32{-32768, 32767}
		case backends.INT32:
			c.IntContents = []int32{math.MinInt32, math.MaxInt32}
		case backends.INT64:
			c.Int64Contents = []int64{math.MinInt64, 5}
		case backends.FP32:
			c.Fp32Contents = []float32{-1.5, 3.25}
		case backends.FP64:
			c.Fp64Contents = []float64{math.Pi, -0}
		case backends.BYTES:
			c.BytesContents = [][]byte{[]byte("héllo"), {}}
		}
		req.Inputs = append(req.Inputs, &inference.ModelInferRequest_InferInputTensor{Name: dt.String(), Datatype: dt.String(), Shape: []int64{1, 2}, Contents: c})
	}
	resp, err := e.client.ModelInfer(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetModelVersion() != "2" || len(resp.GetOutputs()) != len(echoTypes) {
		t.Fatalf("version %q, %d outputs", resp.GetModelVersion(), len(resp.GetOutputs()))
	}
	for i, o := range resp.GetOutputs() {
		in := req.Inputs[i]
		if o.GetName() != "out_"+in.GetName() || o.GetDatatype() != in.GetDatatype() || !slices.Equal(o.GetShape(), in.GetShape()) {
			t.Fatalf("output %d: %v", i, o)
		}
		if got, want := o.GetContents().String(), in.GetContents().String(); got != want {
			t.Errorf("%s: contents %s, want %s", in.GetDatatype(), got, want)
		}
	}
	// BYTES in canonical form carry 4-byte little-endian lengths.
	got := e.be[0].lastReq()
	for _, tt := range got.Tensors {
		if tt.Datatype == backends.BYTES && string(tt.Data) != "\x06\x00\x00\x00héllo\x00\x00\x00\x00" {
			t.Fatalf("BYTES canonical data %q", tt.Data)
		}
	}
}

func TestGRPCFP16OutputsGoRaw(t *testing.T) {
	resp := &inference.ModelInferResponse{}
	outs := []backends.Tensor{
		{Name: "a", Datatype: backends.FP32, Shape: []int64{1}, Data: []byte{0, 0, 128, 63}},
		{Name: "h", Datatype: backends.FP16, Shape: []int64{1}, Data: []byte{0, 60}},
	}
	if err := appendOutputs(resp, outs, false); err != nil {
		t.Fatal(err)
	}
	if len(resp.RawOutputContents) != 2 || resp.Outputs[0].Contents != nil {
		t.Fatalf("an FP16 output must switch the response to raw contents: %v", resp)
	}
	bad := &inference.ModelInferResponse{}
	err := appendOutputs(bad, []backends.Tensor{{Name: "x", Datatype: backends.FP32, Shape: []int64{1}, Data: []byte{1, 2, 3}}}, false)
	if err == nil || Classify(err).GRPC != codes.Internal {
		t.Fatalf("malformed backend output: %v", err)
	}
}

func TestGRPCScheduling(t *testing.T) {
	e := newGRPCEnv(t)
	ctx := tctx(t)
	md := metadata.Pairs(HeaderPriority, "critical", HeaderSLO, "1234", HeaderTimeout, "5000")
	if _, err := e.client.ModelInfer(metadata.NewOutgoingContext(ctx, md), resnetRaw(1, "")); err != nil {
		t.Fatal(err)
	}
	got := e.be[0].lastReq()
	if got.Priority != backends.Critical || got.SLO.E2E != 1234*time.Millisecond || got.Deadline.Sub(got.Arrival) != 5*time.Second {
		t.Fatalf("metadata scheduling: priority %v slo %v timeout %v", got.Priority, got.SLO.E2E, got.Deadline.Sub(got.Arrival))
	}

	req := resnetRaw(1, "")
	req.Parameters = map[string]*inference.InferParameter{
		ParamPriority: {ParameterChoice: &inference.InferParameter_Int64Param{Int64Param: 3}},
		ParamSLO:      {ParameterChoice: &inference.InferParameter_DoubleParam{DoubleParam: 12.5}},
		ParamTimeout:  {ParameterChoice: &inference.InferParameter_Uint64Param{Uint64Param: 2_000_000}},
		"unrelated":   {ParameterChoice: &inference.InferParameter_StringParam{StringParam: "ignored"}},
	}
	if _, err := e.client.ModelInfer(ctx, req); err != nil {
		t.Fatal(err)
	}
	got = e.be[0].lastReq()
	if got.Priority != backends.Sheddable || got.SLO.E2E != 12500*time.Microsecond || got.Deadline.Sub(got.Arrival) != 2*time.Second {
		t.Fatalf("parameter scheduling: priority %v slo %v timeout %v", got.Priority, got.SLO.E2E, got.Deadline.Sub(got.Arrival))
	}

	// The call's deadline shortens the hard timeout.
	dctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if _, err := e.client.ModelInfer(dctx, resnetRaw(1, "")); err != nil {
		t.Fatal(err)
	}
	if got = e.be[0].lastReq(); got.Deadline.Sub(got.Arrival) > 3*time.Second {
		t.Fatalf("grpc deadline not applied: timeout %v", got.Deadline.Sub(got.Arrival))
	}

	for name, p := range map[string]*inference.InferParameter{
		ParamPriority: {ParameterChoice: &inference.InferParameter_StringParam{StringParam: "high"}},
		ParamSLO:      {ParameterChoice: &inference.InferParameter_BoolParam{BoolParam: true}},
		ParamTimeout:  {ParameterChoice: &inference.InferParameter_DoubleParam{DoubleParam: 1.5}},
	} {
		req := resnetRaw(1, "")
		req.Parameters = map[string]*inference.InferParameter{name: p}
		_, err := e.client.ModelInfer(ctx, req)
		wantCode(t, err, codes.InvalidArgument)
	}
	_, err := e.client.ModelInfer(metadata.NewOutgoingContext(ctx, metadata.Pairs(HeaderPriority, "vip")), resnetRaw(1, ""))
	wantCode(t, err, codes.InvalidArgument)
}

func TestGRPCModelInferErrors(t *testing.T) {
	e := newGRPCEnv(t)
	ctx := tctx(t)
	_, raw1 := image(1)
	in := func(name, dt string, shape ...int64) *inference.ModelInferRequest_InferInputTensor {
		return &inference.ModelInferRequest_InferInputTensor{Name: name, Datatype: dt, Shape: shape}
	}
	rawReq := func(inputs []*inference.ModelInferRequest_InferInputTensor, raws ...[]byte) *inference.ModelInferRequest {
		return &inference.ModelInferRequest{ModelName: "resnet-50", Inputs: inputs, RawInputContents: raws}
	}
	typed := func(c *inference.InferTensorContents, dt string, shape ...int64) *inference.ModelInferRequest {
		t := in("input", dt, shape...)
		t.Contents = c
		return &inference.ModelInferRequest{ModelName: "resnet-50", Inputs: []*inference.ModelInferRequest_InferInputTensor{t}}
	}
	echo1 := func(dt string, c *inference.InferTensorContents) *inference.ModelInferRequest {
		t := in(dt, dt, 1, 2)
		t.Contents = c
		return &inference.ModelInferRequest{ModelName: "echo", Inputs: []*inference.ModelInferRequest_InferInputTensor{t}}
	}
	inputs := func(ts ...*inference.ModelInferRequest_InferInputTensor) []*inference.ModelInferRequest_InferInputTensor {
		return ts
	}
	withContents := in("input", "FP32", 1, 3, 224, 224)
	withContents.Contents = &inference.InferTensorContents{Fp32Contents: []float32{1}}
	cases := []struct {
		name string
		req  *inference.ModelInferRequest
		code codes.Code
	}{
		{"wrong datatype", rawReq(inputs(in("input", "FP64", 1, 3, 224, 224)), append(raw1, raw1...)), codes.InvalidArgument},
		{"unknown datatype", rawReq(inputs(in("input", "FLOAT", 1, 3, 224, 224)), raw1), codes.InvalidArgument},
		{"wrong shape", rawReq(inputs(in("input", "FP32", 1, 3, 224, 225)), raw1), codes.InvalidArgument},
		{"wrong rank", rawReq(inputs(in("input", "FP32", 3, 224, 224)), raw1), codes.InvalidArgument},
		{"negative dimension", rawReq(inputs(in("input", "FP32", -1, 3, 224, 224)), raw1), codes.InvalidArgument},
		{"raw length mismatch", rawReq(inputs(in("input", "FP32", 1, 3, 224, 224)), raw1[:len(raw1)-4]), codes.InvalidArgument},
		{"raw count mismatch", rawReq(inputs(in("input", "FP32", 1, 3, 224, 224)), raw1, raw1), codes.InvalidArgument},
		{"raw and typed", rawReq(inputs(withContents), raw1), codes.InvalidArgument},
		{"unknown input", rawReq(inputs(in("image", "FP32", 1, 3, 224, 224)), raw1), codes.InvalidArgument},
		{"duplicate input", rawReq(inputs(in("input", "FP32", 1, 3, 224, 224), in("input", "FP32", 1, 3, 224, 224)), raw1, raw1), codes.InvalidArgument},
		{"no inputs", rawReq(nil), codes.InvalidArgument},
		{"empty batch", rawReq(inputs(in("input", "FP32", 0, 3, 224, 224)), []byte{}), codes.InvalidArgument},
		{"typed count mismatch", typed(&inference.InferTensorContents{Fp32Contents: []float32{1, 2, 3}}, "FP32", 1, 3, 224, 224), codes.InvalidArgument},
		{"typed huge shape", typed(&inference.InferTensorContents{Fp32Contents: []float32{1}}, "FP32", 1<<40, 1<<20, 224, 224), codes.InvalidArgument},
		{"typed wrong field", typed(&inference.InferTensorContents{Fp64Contents: make([]float64, 150528)}, "FP32", 1, 3, 224, 224), codes.InvalidArgument},
		{"typed no contents", typed(nil, "FP32", 1, 3, 224, 224), codes.InvalidArgument},
		{"typed FP16", echo1("FP16", &inference.InferTensorContents{Fp32Contents: []float32{1, 2}}), codes.InvalidArgument},
		{"INT8 out of range", echo1("INT8", &inference.InferTensorContents{IntContents: []int32{1, 200}}), codes.InvalidArgument},
		{"UINT16 out of range", echo1("UINT16", &inference.InferTensorContents{UintContents: []uint32{1, 70000}}), codes.InvalidArgument},
		{"missing input", echo1("INT8", &inference.InferTensorContents{IntContents: []int32{1, 2}}), codes.InvalidArgument},
		{"unknown output", func() *inference.ModelInferRequest {
			r := resnetRaw(1, "")
			r.Outputs = []*inference.ModelInferRequest_InferRequestedOutputTensor{{Name: "logits"}}
			return r
		}(), codes.InvalidArgument},
		{"unknown model", &inference.ModelInferRequest{ModelName: "resnet-51"}, codes.NotFound},
		{"unknown version", func() *inference.ModelInferRequest { r := resnetRaw(1, ""); r.ModelVersion = "3"; return r }(), codes.NotFound},
		{"llm model", &inference.ModelInferRequest{ModelName: "llm"}, codes.InvalidArgument},
		{"no backend", func() *inference.ModelInferRequest { r := resnetRaw(1, ""); r.ModelName = "orphan"; return r }(), codes.Unavailable},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := e.client.ModelInfer(ctx, c.req)
			wantCode(t, err, c.code)
			t.Log(status.Convert(err).Message())
		})
	}
	if n := e.be[0].calls; n != 0 {
		t.Fatalf("the backend ran %d invalid requests", n)
	}
}

func TestGRPCShedBackendErrorAndTimeout(t *testing.T) {
	ctx := tctx(t)
	t.Run("shed", func(t *testing.T) {
		e := newGRPCEnv(t)
		var trailer metadata.MD
		md := metadata.Pairs(HeaderPriority, "sheddable", HeaderSLO, "0.001")
		_, err := e.client.ModelInfer(metadata.NewOutgoingContext(ctx, md), resnetRaw(1, ""), grpc.Trailer(&trailer))
		wantCode(t, err, codes.Unavailable)
		if len(trailer.Get("retry-after")) != 1 {
			t.Fatalf("trailer %v has no retry-after", trailer)
		}
	})
	t.Run("backend unavailable", func(t *testing.T) {
		e := newGRPCEnv(t, &tensorFake{err: fmtErr(backends.ErrUnavailable)})
		_, err := e.client.ModelInfer(ctx, resnetRaw(1, ""))
		wantCode(t, err, codes.Unavailable)
	})
	t.Run("upstream 400", func(t *testing.T) {
		e := newGRPCEnv(t, &tensorFake{err: &backends.UpstreamError{Status: 400, Message: "bad pixels"}})
		_, err := e.client.ModelInfer(ctx, resnetRaw(1, ""))
		wantCode(t, err, codes.InvalidArgument)
		if status.Convert(err).Message() != "bad pixels" {
			t.Fatalf("message %q", status.Convert(err).Message())
		}
	})
	t.Run("hard timeout", func(t *testing.T) {
		e := newGRPCEnv(t, &tensorFake{block: true})
		md := metadata.Pairs(HeaderTimeout, "30")
		_, err := e.client.ModelInfer(metadata.NewOutgoingContext(ctx, md), resnetRaw(1, ""))
		wantCode(t, err, codes.DeadlineExceeded)
	})
	t.Run("timeout parameter", func(t *testing.T) {
		e := newGRPCEnv(t, &tensorFake{block: true})
		req := resnetRaw(1, "")
		req.Parameters = map[string]*inference.InferParameter{ParamTimeout: {ParameterChoice: &inference.InferParameter_Int64Param{Int64Param: 30_000}}}
		_, err := e.client.ModelInfer(ctx, req)
		wantCode(t, err, codes.DeadlineExceeded)
	})
	t.Run("grpc deadline", func(t *testing.T) {
		e := newGRPCEnv(t, &tensorFake{block: true})
		dctx, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
		defer cancel()
		_, err := e.client.ModelInfer(dctx, resnetRaw(1, ""))
		wantCode(t, err, codes.DeadlineExceeded)
	})
	t.Run("client cancel", func(t *testing.T) {
		be := &tensorFake{block: true, started: make(chan struct{}, 1)}
		e := newGRPCEnv(t, be)
		cctx, cancel := context.WithCancel(ctx)
		errc := make(chan error, 1)
		go func() { _, err := e.client.ModelInfer(cctx, resnetRaw(1, "")); errc <- err }()
		<-be.started
		cancel()
		wantCode(t, <-errc, codes.Canceled)
	})
}

func fmtErr(sentinel error) error { return errors.Join(sentinel, errors.New("connection refused")) }

func TestGRPCModelStreamInfer(t *testing.T) {
	e := newGRPCEnv(t)
	ctx := tctx(t)
	stream, err := e.client.ModelStreamInfer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	bad := resnetRaw(1, "bad")
	bad.Inputs[0].Datatype = "INT8"
	reqs := []*inference.ModelInferRequest{resnetRaw(1, "one"), bad, resnetRaw(2, "three"), {ModelName: "nope", Id: "four"}}
	for _, r := range reqs {
		if err := stream.Send(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
	var got []*inference.ModelStreamInferResponse
	for {
		r, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, r)
	}
	if len(got) != 4 {
		t.Fatalf("%d responses, want 4", len(got))
	}
	for i, r := range got {
		if r.GetInferResponse().GetId() != reqs[i].GetId() {
			t.Fatalf("response %d has id %q, want %q (in order)", i, r.GetInferResponse().GetId(), reqs[i].GetId())
		}
	}
	if got[0].GetErrorMessage() != "" || !slices.Equal(got[0].GetInferResponse().GetOutputs()[0].GetShape(), []int64{1, 1000}) {
		t.Fatalf("first: %v", got[0])
	}
	if got[1].GetErrorMessage() == "" || len(got[1].GetInferResponse().GetOutputs()) != 0 {
		t.Fatalf("second should fail: %v", got[1])
	}
	if got[2].GetErrorMessage() != "" || !slices.Equal(got[2].GetInferResponse().GetOutputs()[0].GetShape(), []int64{2, 1000}) {
		t.Fatalf("third: %v", got[2])
	}
	if got[3].GetErrorMessage() == "" {
		t.Fatalf("fourth should fail: %v", got[3])
	}
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
