package tensorconv

import (
	"errors"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/accelgate/accelgate/backends"
	"github.com/accelgate/accelgate/proto/inference"
)

func TestInputTensorsRobust(t *testing.T) {
	for name, r := range map[string]*inference.ModelInferRequest{
		"nil input":       {Inputs: []*inference.ModelInferRequest_InferInputTensor{nil}},
		"bad datatype":    {Inputs: []*inference.ModelInferRequest_InferInputTensor{{Name: "x", Datatype: "fp32", Shape: []int64{1}}}},
		"negative shape":  {Inputs: []*inference.ModelInferRequest_InferInputTensor{{Name: "x", Datatype: "FP32", Shape: []int64{-1}}}},
		"overflow shape":  {Inputs: []*inference.ModelInferRequest_InferInputTensor{{Name: "x", Datatype: "FP32", Shape: []int64{1 << 40, 1 << 40}}}},
		"huge count":      {Inputs: []*inference.ModelInferRequest_InferInputTensor{{Name: "x", Datatype: "BYTES", Shape: []int64{1 << 50}}}},
		"raw count":       {Inputs: []*inference.ModelInferRequest_InferInputTensor{{Name: "x", Datatype: "FP32", Shape: []int64{1}}}, RawInputContents: [][]byte{{}, {}}},
		"mixed fields":    {Inputs: []*inference.ModelInferRequest_InferInputTensor{{Name: "x", Datatype: "INT32", Shape: []int64{1}, Contents: &inference.InferTensorContents{IntContents: []int32{1}, Fp32Contents: []float32{1}}}}},
		"BF16 typed":      {Inputs: []*inference.ModelInferRequest_InferInputTensor{{Name: "x", Datatype: "BF16", Shape: []int64{0}}}},
		"UINT8 too large": {Inputs: []*inference.ModelInferRequest_InferInputTensor{{Name: "x", Datatype: "UINT8", Shape: []int64{1}, Contents: &inference.InferTensorContents{UintContents: []uint32{256}}}}},
		"INT16 too small": {Inputs: []*inference.ModelInferRequest_InferInputTensor{{Name: "x", Datatype: "INT16", Shape: []int64{1}, Contents: &inference.InferTensorContents{IntContents: []int32{-32769}}}}},
	} {
		if _, _, err := InputTensors(r); !errors.Is(err, backends.ErrBadRequest) {
			t.Errorf("%s: %v, want ErrBadRequest", name, err)
		}
	}
	// Raw FP16 is fine; a scalar shape [] holds one element.
	ts, raw, err := InputTensors(&inference.ModelInferRequest{
		Inputs:           []*inference.ModelInferRequest_InferInputTensor{{Name: "h", Datatype: "FP16", Shape: []int64{2}}},
		RawInputContents: [][]byte{{1, 2, 3, 4}},
	})
	if err != nil || !raw || len(ts) != 1 || ts[0].Validate() != nil {
		t.Fatalf("raw FP16: %v %v %v", ts, raw, err)
	}
	ts, _, err = InputTensors(&inference.ModelInferRequest{
		Inputs: []*inference.ModelInferRequest_InferInputTensor{{Name: "s", Datatype: "INT64", Contents: &inference.InferTensorContents{Int64Contents: []int64{-2}}}},
	})
	if err != nil || string(ts[0].Data) != "\xfe\xff\xff\xff\xff\xff\xff\xff" {
		t.Fatalf("scalar INT64: %v %q", err, ts[0].Data)
	}
}

func TestRawToContentsRobust(t *testing.T) {
	for _, c := range []struct {
		dt   backends.DataType
		data []byte
	}{
		{backends.FP32, []byte{1, 2, 3}},
		{backends.INT16, []byte{1}},
		{backends.FP16, []byte{1, 2}},
		{backends.BYTES, []byte{5, 0, 0, 0, 'a'}},
		{backends.BYTES, []byte{1, 0}},
		{backends.DTInvalid, nil},
	} {
		if _, err := RawToContents("t", c.dt, c.data); err == nil {
			t.Errorf("RawToContents(%s, %v) succeeded", c.dt, c.data)
		}
	}
}

// FuzzInputTensors decodes arbitrary bytes as a ModelInferRequest and
// converts its inputs, then back again: nothing may panic, and what converts
// must validate.
func FuzzInputTensors(f *testing.F) {
	seed := &inference.ModelInferRequest{Inputs: []*inference.ModelInferRequest_InferInputTensor{
		{Name: "a", Datatype: "INT8", Shape: []int64{2}, Contents: &inference.InferTensorContents{IntContents: []int32{-1, 1}}},
		{Name: "b", Datatype: "BYTES", Shape: []int64{1}, Contents: &inference.InferTensorContents{BytesContents: [][]byte{[]byte("x")}}},
	}}
	b, _ := proto.Marshal(seed)
	f.Add(b)
	seed.RawInputContents = [][]byte{{1, 2}, {1, 0, 0, 0, 'x'}}
	for _, in := range seed.Inputs {
		in.Contents = nil
	}
	b, _ = proto.Marshal(seed)
	f.Add(b)
	f.Fuzz(func(t *testing.T, data []byte) {
		var r inference.ModelInferRequest
		if proto.Unmarshal(data, &r) != nil {
			return
		}
		ts, raw, err := InputTensors(&r)
		if err != nil {
			return
		}
		for _, tt := range ts {
			if err := tt.Validate(); err != nil {
				if !raw {
					t.Fatalf("typed contents converted to an invalid tensor: %v", err)
				}
				continue
			}
			if NeedsRaw(tt.Datatype) {
				continue
			}
			c, err := RawToContents(tt.Name, tt.Datatype, tt.Data)
			if err != nil {
				t.Fatalf("valid tensor %s did not convert back: %v", tt.Datatype, err)
			}
			back, err := ContentsToRaw(tt.Name, tt.Datatype, backends.NumElements(tt.Shape), c)
			if err != nil || (string(back) != string(tt.Data) && tt.Datatype != backends.BOOL) { // raw BOOL bytes other than 0/1 read as true
				t.Fatalf("round trip of %s: %v", tt.Datatype, err)
			}
		}
	})
}
