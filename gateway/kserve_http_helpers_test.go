package gateway

import (
	"context"
	"encoding/binary"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/accelgate/accelgate/backends"
	"github.com/accelgate/accelgate/router"
)

// Test helpers for the KServe v2 front: tensor models and a fake tensor
// backend, served over an in-memory listener like newEnv.

// ksEchoTypes are the datatypes of the "echo" model's inputs (in_DT) and
// outputs (out_DT).
var ksEchoTypes = []backends.DataType{backends.BOOL, backends.UINT8, backends.UINT16, backends.UINT32, backends.UINT64,
	backends.INT8, backends.INT16, backends.INT32, backends.INT64, backends.FP16, backends.FP32, backends.FP64,
	backends.BF16, backends.BYTES}

// ksModels adds to testModels: "vision" (input FP32 [-1,3]; outputs
// "output" FP32 [-1,2] = row sum and row index, "aux" INT64 [-1] = row
// index; versions 1 and 2) and "echo" (one input per datatype, echoed).
func ksModels() map[string]*backends.Model {
	ms := testModels()
	v := &backends.Model{Name: "vision", Kind: backends.ModelTensor, Timeout: time.Minute, DefaultPriority: backends.Standard,
		Platform: "onnxruntime_onnx", Versions: []string{"1", "2"}, Classes: 2,
		Inputs:  []backends.TensorSpec{{Name: "input", Datatype: "FP32", Shape: []int64{-1, 3}}},
		Outputs: []backends.TensorSpec{{Name: "output", Datatype: "FP32", Shape: []int64{-1, 2}}, {Name: "aux", Datatype: "INT64", Shape: []int64{-1}}}}
	v.SLO[backends.Critical] = backends.SLO{E2E: 50 * time.Millisecond}
	v.SLO[backends.Standard] = backends.SLO{E2E: 100 * time.Millisecond}
	v.SLO[backends.Sheddable] = backends.SLO{E2E: 500 * time.Millisecond}
	ms["vision"] = v
	e := &backends.Model{Name: "echo", Kind: backends.ModelTensor, Timeout: time.Minute, DefaultPriority: backends.Standard,
		Platform: "python", Versions: []string{"1"}}
	for _, dt := range ksEchoTypes {
		e.Inputs = append(e.Inputs, backends.TensorSpec{Name: "in_" + dt.String(), Datatype: dt.String(), Shape: []int64{-1, -1}})
		e.Outputs = append(e.Outputs, backends.TensorSpec{Name: "out_" + dt.String(), Datatype: dt.String(), Shape: []int64{-1, -1}})
	}
	ms["echo"] = e
	return ms
}

// ksResnetModel is resnet-50's KServe metadata as the default fleet declares it.
func ksResnetModel() *backends.Model {
	m := &backends.Model{Name: "resnet-50", Kind: backends.ModelTensor, Timeout: 10 * time.Second, DefaultPriority: backends.Standard,
		Platform: "onnxruntime_onnx", Versions: []string{"1"}, Classes: 1000,
		Inputs:  []backends.TensorSpec{{Name: "input", Datatype: "FP32", Shape: []int64{-1, 3, 224, 224}}},
		Outputs: []backends.TensorSpec{{Name: "output", Datatype: "FP32", Shape: []int64{-1, 1000}}}}
	m.SLO[backends.Critical] = backends.SLO{E2E: 15 * time.Millisecond}
	m.SLO[backends.Standard] = backends.SLO{E2E: 50 * time.Millisecond}
	m.SLO[backends.Sheddable] = backends.SLO{E2E: 200 * time.Millisecond}
	return m
}

// ksFake is a tensor backend: "vision" and "resnet-50" get computed
// outputs, "echo" gets its inputs back as out_*. It can be told to fail or
// to block until its context ends.
type ksFake struct {
	desc  *backends.Descriptor
	err   error
	block bool

	mu      sync.Mutex
	calls   int
	lastReq *backends.Request
	lastCtx context.Context
}

func (b *ksFake) Descriptor() *backends.Descriptor { return b.desc }
func (b *ksFake) Close() error                     { return nil }

func (b *ksFake) Do(ctx context.Context, req *backends.Request, m *backends.Model, _ backends.StreamFunc) (*backends.Result, error) {
	b.mu.Lock()
	b.calls++
	b.lastReq, b.lastCtx = req, ctx
	b.mu.Unlock()
	if b.block {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	if b.err != nil {
		return nil, b.err
	}
	res := &backends.Result{CostUSD: 0.00125}
	switch m.Name {
	case "echo":
		for _, t := range req.Tensors {
			t.Name = "out_" + strings.TrimPrefix(t.Name, "in_")
			res.Tensors = append(res.Tensors, t)
		}
	case "resnet-50":
		res.Tensors = []backends.Tensor{{Name: "output", Datatype: backends.FP32, Shape: []int64{int64(req.Rows), 1000}, Data: make([]byte, req.Rows*4000)}}
	default:
		in := req.Tensors[0]
		rows := int(in.Shape[0])
		out := backends.Tensor{Name: "output", Datatype: backends.FP32, Shape: []int64{int64(rows), 2}}
		aux := backends.Tensor{Name: "aux", Datatype: backends.INT64, Shape: []int64{int64(rows)}}
		for r := 0; r < rows; r++ {
			var sum float32
			for c := 0; c < 3; c++ {
				sum += math.Float32frombits(binary.LittleEndian.Uint32(in.Data[(r*3+c)*4:]))
			}
			out.Data = binary.LittleEndian.AppendUint32(out.Data, math.Float32bits(sum))
			out.Data = binary.LittleEndian.AppendUint32(out.Data, math.Float32bits(float32(r)))
			aux.Data = binary.LittleEndian.AppendUint64(aux.Data, uint64(r))
		}
		res.Tensors = []backends.Tensor{out, aux}
	}
	return res, nil
}

func ksProfile() *backends.Profile {
	p := testProfile("test-gpu", 3.6)
	p.Vision = &backends.BatchModel{BaseMs: 1, PerItemMs: 0.1, MaxBatch: 64, Source: "test"}
	return p
}

// newKSEnv serves the front over an in-memory listener in front of fake
// tensor backends (one when none are given), with the KServe test models.
func newKSEnv(t testing.TB, cfg Config, rc router.Config, bes ...*ksFake) *testEnv {
	t.Helper()
	if len(bes) == 0 {
		bes = []*ksFake{{}}
	}
	var list []backends.Backend
	for i, b := range bes {
		if b.desc == nil {
			b.desc = &backends.Descriptor{Name: "t" + string(rune('0'+i)), Profile: ksProfile(), PricePerHour: 3.6,
				Models: []string{"vision", "echo", "resnet-50", "llm"}}
		}
		list = append(list, b)
	}
	ms := ksModels()
	ms["resnet-50"] = ksResnetModel()
	d, err := NewDispatcher(list, ms, rc, backends.RealClock)
	if err != nil {
		t.Fatal(err)
	}
	return serveInmemory(t, cfg, d, backends.RealClock)
}
