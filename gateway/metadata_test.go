package gateway

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/accelgate/accelgate/backends"
	"github.com/accelgate/accelgate/router"
)

// metaBackend is an instant backend that reports configurable metadata.
type metaBackend struct {
	instant
	md  *backends.ModelMetadata
	err error
}

func (b *metaBackend) ModelMetadata(ctx context.Context, model, version string) (*backends.ModelMetadata, error) {
	if b.err != nil {
		return nil, b.err
	}
	return b.md, nil
}

func TestCheckMetadata(t *testing.T) {
	vis := &backends.Model{Name: "vis", Kind: backends.ModelTensor, Platform: "onnxruntime_onnx",
		Inputs:  []backends.TensorSpec{{Name: "input", Datatype: "FP32", Shape: []int64{-1, 3, 224, 224}}},
		Outputs: []backends.TensorSpec{{Name: "output", Datatype: "FP32", Shape: []int64{-1, 1000}}}}
	prof := &backends.Profile{Name: "p", Kind: backends.KindGPU, MemoryGB: 1, PricePerHour: 1,
		Vision: &backends.BatchModel{BaseMs: 1, PerItemMs: 1, MaxBatch: 8, Source: "t"}}
	good := &metaBackend{md: &backends.ModelMetadata{Platform: "onnxruntime_onnx", Inputs: vis.Inputs, Outputs: vis.Outputs}}
	bad := &metaBackend{md: &backends.ModelMetadata{Platform: "onnxruntime_onnx",
		Inputs: []backends.TensorSpec{{Name: "input", Datatype: "FP16", Shape: []int64{-1, 3, 224, 224}}}, Outputs: vis.Outputs}}
	gone := &metaBackend{err: errors.New("connection refused")}
	for i, b := range []*metaBackend{good, bad, gone} {
		b.desc = &backends.Descriptor{Name: fmt.Sprint("b", i), Profile: prof, Models: []string{"vis"}, PricePerHour: 1}
	}
	d, err := NewDispatcher([]backends.Backend{good, bad, gone}, map[string]*backends.Model{"vis": vis}, router.Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var logs []string
	logf := func(f string, a ...any) { logs = append(logs, fmt.Sprintf(f, a...)) }
	d.CheckMetadata(context.Background(), logf)
	now := d.clock.Now()
	if !d.r.Available(0, now) || d.r.Available(1, now) || !d.r.Available(2, now) {
		t.Fatalf("availability good/bad/gone = %v/%v/%v, want true/false/true", d.r.Available(0, now), d.r.Available(1, now), d.r.Available(2, now))
	}
	all := strings.Join(logs, "\n")
	if !strings.Contains(all, `backend b1: out of rotation`) || !strings.Contains(all, `input "input" datatype FP16, fleet file says FP32`) {
		t.Fatalf("the log must say what differs:\n%s", all)
	}
	if !strings.Contains(all, "backend b2: cannot read metadata") {
		t.Fatalf("unreachable backend not logged:\n%s", all)
	}
	// The upstream is fixed: the next round puts it back.
	bad.md = good.md
	logs = nil
	d.CheckMetadata(context.Background(), logf)
	if !d.r.Available(1, d.clock.Now()) || !strings.Contains(strings.Join(logs, "\n"), "back in rotation") {
		t.Fatalf("fixed backend not restored: %v", logs)
	}
}
