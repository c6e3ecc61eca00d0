package kserve_test

import (
	"context"
	"encoding/binary"
	"errors"
	"math"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/accelgate/accelgate/backends"
	"github.com/accelgate/accelgate/backends/kserve"
	"github.com/accelgate/accelgate/gateway"
	"github.com/accelgate/accelgate/internal/testutil"
	"github.com/accelgate/accelgate/router"
)

// The transport against the gateway's own /v2 front, in-process over TCP,
// in front of a fake tensor backend.

type fake struct {
	desc  *backends.Descriptor
	err   error
	block bool

	mu      sync.Mutex
	lastReq *backends.Request
	started chan struct{} // when set, receives once per blocked request
	stop    chan struct{} // when closed, blocked requests end
}

func (f *fake) Descriptor() *backends.Descriptor { return f.desc }
func (f *fake) Close() error                     { return nil }
func (f *fake) Do(ctx context.Context, req *backends.Request, m *backends.Model, _ backends.StreamFunc) (*backends.Result, error) {
	f.mu.Lock()
	f.lastReq = req
	f.mu.Unlock()
	if f.block {
		if f.started != nil {
			f.started <- struct{}{}
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-f.stop:
			return nil, context.Canceled
		}
	}
	if f.err != nil {
		return nil, f.err
	}
	res := &backends.Result{CostUSD: 0.001}
	for _, t := range req.Tensors { // echo: in_X → out_X
		t.Name = "out_" + strings.TrimPrefix(t.Name, "in_")
		res.Tensors = append(res.Tensors, t)
	}
	return res, nil
}

func (f *fake) last() *backends.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lastReq
}

var testTypes = []backends.DataType{backends.BOOL, backends.UINT8, backends.INT16, backends.UINT32, backends.INT64,
	backends.FP16, backends.FP32, backends.FP64, backends.BF16, backends.BYTES}

func testModel() *backends.Model {
	m := &backends.Model{Name: "echo", Kind: backends.ModelTensor, Timeout: time.Minute, DefaultPriority: backends.Standard,
		Platform: "python", Versions: []string{"1", "2"}}
	for _, dt := range testTypes {
		m.Inputs = append(m.Inputs, backends.TensorSpec{Name: "in_" + dt.String(), Datatype: dt.String(), Shape: []int64{-1, 2}})
		m.Outputs = append(m.Outputs, backends.TensorSpec{Name: "out_" + dt.String(), Datatype: dt.String(), Shape: []int64{-1, 2}})
	}
	m.SLO[backends.Sheddable] = backends.SLO{E2E: time.Microsecond}
	return m
}

func testProfile() *backends.Profile {
	return &backends.Profile{Name: "test-gpu", Kind: backends.KindGPU, PricePerHour: 3.6, MemoryGB: 80,
		Vision: &backends.BatchModel{BaseMs: 1, PerItemMs: 0.1, MaxBatch: 64, Source: "test"}}
}

// serveGateway runs a gateway over TCP in front of f and returns its URL.
func serveGateway(t *testing.T, f *fake, rc router.Config) string {
	t.Helper()
	f.desc = &backends.Descriptor{Name: "g0", Profile: testProfile(), Models: []string{"echo"}, PricePerHour: 3.6}
	d, err := gateway.NewDispatcher([]backends.Backend{f}, map[string]*backends.Model{"echo": testModel()}, rc, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := gateway.NewServer(gateway.Config{}, d, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(ln)
	t.Cleanup(func() { s.Shutdown() })
	return "http://" + ln.Addr().String()
}

func newBackend(t *testing.T, url string) *kserve.HTTPBackend {
	t.Helper()
	b, err := kserve.NewHTTP(&backends.Descriptor{Name: "up", PricePerHour: 36, Models: []string{"echo"}}, kserve.HTTPConfig{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func tensors() []backends.Tensor {
	var ts []backends.Tensor
	for i, dt := range testTypes {
		t := backends.Tensor{Name: "in_" + dt.String(), Datatype: dt, Shape: []int64{1, 2}}
		if dt == backends.BYTES {
			t.Data = []byte{2, 0, 0, 0, 'h', 0xff, 0, 0, 0, 0}
		} else {
			for j := range 2 * dt.Size() {
				t.Data = append(t.Data, byte(i+j)%2)
			}
		}
		if dt == backends.FP32 {
			t.Data = binary.LittleEndian.AppendUint32(binary.LittleEndian.AppendUint32(nil, math.Float32bits(float32(math.NaN()))), math.Float32bits(-1.5))
		}
		ts = append(ts, t)
	}
	return ts
}

func inferReq(version string) *backends.Request {
	return &backends.Request{ID: "x", Op: backends.OpTensor, Model: "echo", ModelVersion: version, ClientID: "cid", Rows: 1, Tensors: tensors()}
}

func TestHTTPRoundTripThroughGateway(t *testing.T) {
	f := &fake{}
	b := newBackend(t, serveGateway(t, f, router.Config{})+"/v2/")
	for _, v := range []string{"", "2"} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		res, err := b.Do(ctx, inferReq(v), nil, nil)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		in := tensors()
		if len(res.Tensors) != len(in) {
			t.Fatalf("%d outputs", len(res.Tensors))
		}
		for i, o := range res.Tensors {
			if o.Name != "out_"+in[i].Datatype.String() || o.Datatype != in[i].Datatype || string(o.Data) != string(in[i].Data) {
				t.Fatalf("output %d: %+v, sent %+v", i, o, in[i])
			}
		}
		if res.CostUSD <= 0 || res.Timing.Total <= 0 || res.Timing.Busy != res.Timing.Total {
			t.Fatalf("cost %v timing %+v", res.CostUSD, res.Timing)
		}
		got := f.last()
		if got.ModelVersion != v || got.ClientID != "cid" {
			t.Fatalf("the gateway saw %+v", got)
		}
		// The deadline travelled as Triton's timeout parameter.
		if d := got.Deadline.Sub(got.Arrival); d > 5*time.Second || d < 4*time.Second {
			t.Fatalf("the gateway's deadline is %v away", d)
		}
	}
	// Requested outputs come back, and only those.
	req := inferReq("")
	req.Outputs = []backends.OutputRequest{{Name: "out_FP16"}}
	res, err := b.Do(context.Background(), req, nil, nil)
	if err != nil || len(res.Tensors) != 1 || res.Tensors[0].Name != "out_FP16" {
		t.Fatalf("%+v %v", res, err)
	}
	md, err := b.ModelMetadata(context.Background(), "echo", "")
	if err != nil || md.Name != "echo" || md.Platform != "python" || len(md.Inputs) != len(testTypes) || md.Inputs[0].Shape[1] != 2 || len(md.Versions) != 2 {
		t.Fatalf("metadata %+v %v", md, err)
	}
	if _, err := b.ModelMetadata(context.Background(), "echo", "2"); err != nil {
		t.Fatal(err)
	}
	_, err = b.ModelMetadata(context.Background(), "nope", "")
	var ue *backends.UpstreamError
	if !errors.As(err, &ue) || ue.Status != 404 || !strings.Contains(ue.Message, `"nope" does not exist`) {
		t.Fatalf("metadata of an unknown model: %v", err)
	}
}

func TestHTTPErrors(t *testing.T) {
	var ue *backends.UpstreamError
	f := &fake{}
	url := serveGateway(t, f, router.Config{EjectAfter: 1})
	b := newBackend(t, url)
	ctx := context.Background()

	// 4xx: the client's mistake, with the server's status and message.
	req := inferReq("9")
	_, err := b.Do(ctx, req, nil, nil)
	if !errors.As(err, &ue) || ue.Status != 404 || !strings.Contains(ue.Message, `no version "9"`) || errors.Is(err, backends.ErrUnavailable) {
		t.Fatalf("unknown version: %v", err)
	}
	req = inferReq("")
	req.Tensors[0].Shape = []int64{1, 3}
	req.Tensors[0].Data = []byte{1, 0, 1}
	_, err = b.Do(ctx, req, nil, nil)
	if !errors.As(err, &ue) || ue.Status != 400 || !strings.Contains(ue.Message, "the model expects") {
		t.Fatalf("bad shape: %v", err)
	}
	// Not a tensor request.
	if _, err := b.Do(ctx, &backends.Request{Op: backends.OpChat, Model: "echo"}, nil, nil); !errors.Is(err, backends.ErrUnavailable) {
		t.Fatalf("chat: %v", err)
	}
	// 502 / 503 from the server: ErrUnavailable.
	f.err = errors.Join(backends.ErrUnavailable, errors.New("boom"))
	_, err = b.Do(ctx, inferReq(""), nil, nil)
	if !errors.Is(err, backends.ErrUnavailable) || !errors.As(err, &ue) || ue.Status != 502 {
		t.Fatalf("502: %v", err)
	}
	_, err = b.Do(ctx, inferReq(""), nil, nil) // ejected now: 503
	if !errors.Is(err, backends.ErrUnavailable) || !errors.As(err, &ue) || ue.Status != 503 {
		t.Fatalf("503: %v", err)
	}
	// Nobody listening.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := "http://" + ln.Addr().String()
	ln.Close()
	if _, err := newBackend(t, dead).Do(ctx, inferReq(""), nil, nil); !errors.Is(err, backends.ErrUnavailable) {
		t.Fatalf("connection refused: %v", err)
	}
	// Bad URLs.
	for _, u := range []string{"", "ftp://x", "127.0.0.1:80", "http://", "http://h?q=1", "http://u:p@h"} {
		if _, err := kserve.NewHTTP(&backends.Descriptor{Name: "x"}, kserve.HTTPConfig{URL: u}); err == nil {
			t.Fatalf("%q accepted", u)
		}
	}
}

func TestHTTPShed(t *testing.T) {
	// A gateway whose model defaults to the sheddable class, with an
	// impossible SLO (1 µs): it answers 429.
	f := &fake{desc: &backends.Descriptor{Name: "g0", Profile: testProfile(), Models: []string{"echo"}, PricePerHour: 3.6}}
	d, err := gateway.NewDispatcher([]backends.Backend{f}, map[string]*backends.Model{"echo": func() *backends.Model {
		m := testModel()
		m.DefaultPriority = backends.Sheddable
		return m
	}()}, router.Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := gateway.NewServer(gateway.Config{}, d, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(ln)
	t.Cleanup(func() { s.Shutdown() })
	b := newBackend(t, "http://"+ln.Addr().String())
	_, err = b.Do(context.Background(), inferReq(""), nil, nil)
	var ue *backends.UpstreamError
	if !errors.Is(err, backends.ErrShed) || !errors.As(err, &ue) || ue.Status != 429 {
		t.Fatalf("shed: %v", err)
	}
}

func TestHTTPDeadlineAndCancel(t *testing.T) {
	f := &fake{block: true, started: make(chan struct{}, 2), stop: make(chan struct{})}
	b := newBackend(t, serveGateway(t, f, router.Config{}))
	t.Cleanup(func() { close(f.stop) }) // before the gateway's shutdown
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := b.Do(ctx, inferReq(""), nil, nil)
	if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, backends.ErrUnavailable) {
		t.Fatalf("deadline: %v", err)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Fatalf("took %v", el)
	}
	// Cancellation interrupts the exchange.
	ctx, cancel = context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := b.Do(ctx, inferReq(""), nil, nil)
		errc <- err
	}()
	<-f.started // the first request's
	<-f.started // this one's: it is in flight upstream
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancel: %v", err)
	}
}

// TestHTTPEmulatorProcess: a round trip through a separate cmd/emulator
// process over HTTP.
func TestHTTPEmulatorProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs cmd/emulator")
	}
	addr, _ := testutil.StartEmulator(t, "-profile", "l4", "-models", "resnet-50", "-http-addr", "127.0.0.1:0")
	b, err := kserve.NewHTTP(&backends.Descriptor{Name: "emu", PricePerHour: 0.8, Models: []string{"resnet-50"}}, kserve.HTTPConfig{URL: "http://" + addr})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	mctx, mcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer mcancel()
	md, err := b.ModelMetadata(mctx, "resnet-50", "")
	if err != nil {
		t.Fatal(err)
	}
	if len(md.Inputs) != 1 || md.Inputs[0].Name != "input" || md.Inputs[0].Datatype != "FP32" || len(md.Outputs) != 1 {
		t.Fatalf("resnet-50 metadata %+v", md)
	}
	img := make([]byte, 2*3*224*224*4)
	for i := 0; i < len(img); i += 4 {
		binary.LittleEndian.PutUint32(img[i:], math.Float32bits(float32(i%255)/255))
	}
	req := &backends.Request{ID: "e1", Op: backends.OpTensor, Model: "resnet-50", ClientID: "emu-1", Rows: 2,
		Tensors: []backends.Tensor{{Name: "input", Datatype: backends.FP32, Shape: []int64{2, 3, 224, 224}, Data: img}}}
	res, err := b.Do(mctx, req, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Tensors) != 1 || res.Tensors[0].Name != "output" || res.Tensors[0].Datatype != backends.FP32 ||
		len(res.Tensors[0].Shape) != 2 || res.Tensors[0].Shape[0] != 2 || res.Tensors[0].Shape[1] != 1000 || res.Tensors[0].Validate() != nil {
		t.Fatalf("emulator answer %+v", res.Tensors)
	}
	if res.CostUSD <= 0 {
		t.Fatalf("cost %v", res.CostUSD)
	}
	// The same image gets the same logits (the emulator is deterministic per row).
	again, err := b.Do(mctx, req, nil, nil)
	if err != nil || string(again.Tensors[0].Data) != string(res.Tensors[0].Data) {
		t.Fatalf("second answer differs (%v)", err)
	}
}
