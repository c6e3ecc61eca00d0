package batcher

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/accelgate/accelgate/backends"
)

// tensorFor builds caller k's [rows, 2] tensor of dt with values distinct
// per caller and per element.
func tensorFor(dt backends.DataType, k, rows int) backends.Tensor {
	t := backends.Tensor{Name: "in", Datatype: dt, Shape: []int64{int64(rows), 2}}
	for i := range rows * 2 {
		v := k*100 + i + 1
		if dt == backends.BYTES {
			s := bytes.Repeat([]byte{byte('a' + k)}, i%3) // lengths 0, 1, 2
			s = append(s, fmt.Sprint(v)...)
			t.Data = binary.LittleEndian.AppendUint32(t.Data, uint32(len(s)))
			t.Data = append(t.Data, s...)
			continue
		}
		b := make([]byte, dt.Size())
		for j := range b {
			b[j] = byte(v >> (8 * (j % 2)))
		}
		if dt == backends.BOOL {
			b[0] = byte(v % 2)
		}
		t.Data = append(t.Data, b...)
	}
	return t
}

func TestMergeSplitTensorsEveryDatatype(t *testing.T) {
	rows := []int{1, 3, 2, 4}
	for dt := backends.BOOL; dt <= backends.BYTES; dt++ {
		t.Run(dt.String(), func(t *testing.T) {
			reqs := make([]*backends.Request, len(rows))
			for k, n := range rows {
				in := tensorFor(dt, k, n)
				if err := in.Validate(); err != nil {
					t.Fatal(err)
				}
				// A second input, FP32 [rows, 1], checks multi-input merges.
				in2 := backends.Tensor{Name: "in2", Datatype: backends.FP32, Shape: []int64{int64(n), 1}, Data: bytes.Repeat([]byte{byte(k), 0, 0, 0}, n)}
				reqs[k] = &backends.Request{ID: fmt.Sprint(k), Op: backends.OpTensor, Rows: n, Tensors: []backends.Tensor{in, in2}}
			}
			merged, offsets, err := MergeTensors(reqs)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(offsets, []int{0, 1, 4, 6, 10}) {
				t.Fatalf("offsets = %v", offsets)
			}
			if len(merged) != 2 || !slices.Equal(merged[0].Shape, []int64{10, 2}) || !slices.Equal(merged[1].Shape, []int64{10, 1}) {
				t.Fatalf("merged shapes %v %v", merged[0].Shape, merged[1].Shape)
			}
			if err := merged[0].Validate(); err != nil {
				t.Fatal(err)
			}
			// Echo the inputs back as outputs: each caller must get exactly
			// its own rows.
			parts, err := SplitTensors(merged, offsets)
			if err != nil {
				t.Fatal(err)
			}
			for k, r := range reqs {
				for i := range r.Tensors {
					got, want := parts[k][i], r.Tensors[i]
					if got.Name != want.Name || got.Datatype != want.Datatype || !slices.Equal(got.Shape, want.Shape) || !bytes.Equal(got.Data, want.Data) {
						t.Errorf("caller %d output %d = %v %v %x, want %v %x", k, i, got.Datatype, got.Shape, got.Data, want.Shape, want.Data)
					}
					if cap(got.Data) != len(got.Data) {
						t.Errorf("caller %d output %d: capacity %d beyond its rows", k, i, cap(got.Data))
					}
				}
			}
		})
	}
}

func TestMergeTensorsMismatch(t *testing.T) {
	a := &backends.Request{ID: "a", Tensors: []backends.Tensor{tensorFor(backends.FP32, 0, 1)}}
	cases := map[string]func(r *backends.Request){
		"name":     func(r *backends.Request) { r.Tensors[0].Name = "other" },
		"datatype": func(r *backends.Request) { r.Tensors[0] = tensorFor(backends.INT32, 1, 1) },
		"trailing": func(r *backends.Request) {
			r.Tensors[0].Shape = []int64{1, 1}
			r.Tensors[0].Data = r.Tensors[0].Data[:4]
		},
		"data":   func(r *backends.Request) { r.Tensors[0].Data = r.Tensors[0].Data[:3] },
		"inputs": func(r *backends.Request) { r.Tensors = append(r.Tensors, r.Tensors[0]) },
	}
	for name, mutate := range cases {
		b := &backends.Request{ID: "b", Tensors: []backends.Tensor{tensorFor(backends.FP32, 1, 1)}}
		mutate(b)
		if _, _, err := MergeTensors([]*backends.Request{a, b}); !errors.Is(err, backends.ErrBadRequest) {
			t.Errorf("%s: err = %v, want ErrBadRequest", name, err)
		}
	}
}

func TestSplitTensorsRejectsUnbatched(t *testing.T) {
	out := backends.Tensor{Name: "o", Datatype: backends.FP32, Shape: []int64{3}, Data: make([]byte, 12)}
	if _, err := SplitTensors([]backends.Tensor{out}, []int{0, 1, 4}); !errors.Is(err, backends.ErrUnavailable) {
		t.Errorf("err = %v", err)
	}
	bad := backends.Tensor{Name: "o", Datatype: backends.BYTES, Shape: []int64{2}, Data: []byte{1, 0, 0, 0, 'x', 9, 0, 0, 0}}
	if _, err := SplitTensors([]backends.Tensor{bad}, []int{0, 1, 2}); !errors.Is(err, backends.ErrUnavailable) {
		t.Errorf("BYTES overrun: err = %v", err)
	}
}

func TestEmbeddingsMergeSplit(t *testing.T) {
	reqs := []*backends.Request{
		{ID: "a", Inputs: []string{"a1"}, EstInputTokens: 1},
		{ID: "b", Inputs: []string{"b1", "b2", "b3"}, EstInputTokens: 2},
		{ID: "c", Inputs: []string{"c1", "c2"}, EstInputTokens: 2},
	}
	inputs, offsets := MergeEmbeddings(reqs)
	if !slices.Equal(inputs, []string{"a1", "b1", "b2", "b3", "c1", "c2"}) || !slices.Equal(offsets, []int{0, 1, 4, 6}) {
		t.Fatalf("inputs %v offsets %v", inputs, offsets)
	}
	res := &backends.Result{Usage: backends.Usage{PromptTokens: 10, TotalTokens: 10}, CostUSD: 6,
		Timing: backends.Timing{Total: msd(7), Busy: 600}}
	for i := range inputs {
		res.Embeddings = append(res.Embeddings, []float32{float32(i)})
	}
	parts, err := SplitResult(res, reqs, offsets)
	if err != nil {
		t.Fatal(err)
	}
	wantTok := []int{2, 4, 4} // by own tokens 1:2:2 of 10
	wantBusy := []int{100, 300, 200}
	for k, p := range parts {
		if len(p.Embeddings) != offsets[k+1]-offsets[k] || p.Embeddings[0][0] != float32(offsets[k]) {
			t.Errorf("caller %d embeddings %v", k, p.Embeddings)
		}
		if p.Usage.PromptTokens != wantTok[k] || p.Usage.TotalTokens != wantTok[k] {
			t.Errorf("caller %d usage %+v, want %d", k, p.Usage, wantTok[k])
		}
		if int(p.Timing.Busy) != wantBusy[k] || p.Timing.Total != msd(7) || p.CostUSD != float64(wantBusy[k])/100 {
			t.Errorf("caller %d timing %+v cost %v", k, p.Timing, p.CostUSD)
		}
	}
	// Unknown tokens: by rows (1:3:2 of 10 → 1.67, 5, 3.33 → 2, 5, 3).
	reqs[1].EstInputTokens = 0
	parts, _ = SplitResult(res, reqs, offsets)
	sum := 0
	for k, want := range []int{2, 5, 3} {
		if parts[k].Usage.PromptTokens != want {
			t.Errorf("by rows: caller %d got %d, want %d", k, parts[k].Usage.PromptTokens, want)
		}
		sum += parts[k].Usage.PromptTokens
	}
	if sum != 10 {
		t.Errorf("parts sum to %d", sum)
	}
}
