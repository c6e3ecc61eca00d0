package kserve

import (
	"errors"
	"testing"

	"github.com/accelgate/accelgate/backends"
)

// Native fuzz tests for the request decoder. Without -fuzz, `go test` runs
// the seeds only; to fuzz:
//
//	go test -run='^$' -fuzz=FuzzDecodeInferRequest -fuzztime=30s ./backends/kserve/

var jsonSeeds = []string{
	`{"id":"1","inputs":[{"name":"x","shape":[2,3],"datatype":"FP32","data":[1,2,3,4,5,6]}]}`,
	`{"inputs":[{"name":"x","shape":[2,3],"datatype":"FP32","data":[[1,2,3],[4,5,6]]}],"outputs":[{"name":"o","parameters":{"binary_data":true}}]}`,
	`{"inputs":[{"data":[[[true]],[[false]]],"name":"b","datatype":"BOOL","shape":[2,1,1]}]}`,
	`{"inputs":[{"name":"s","shape":[2],"datatype":"BYTES","data":["h\u00e9\ud83e\udd80","\ud800x\\\"\/\b\f\n\r\t"]}]}`,
	`{"inputs":[{"name":"i","shape":[3],"datatype":"INT64","data":[-9223372036854775808,0,9223372036854775807]}]}`,
	`{"inputs":[{"name":"u","shape":[1],"datatype":"UINT64","data":[18446744073709551615]}]}`,
	`{"inputs":[{"name":"h","shape":[3],"datatype":"FP16","data":[0.1,-65504,6e-8]}]}`,
	`{"inputs":[{"name":"d","shape":[2],"datatype":"FP64","data":[1e308,-0.0]}]}`,
	`{"inputs":[{"name":"z","shape":[0,3],"datatype":"INT8","data":[]}]}`,
	`{"inputs":[{"name":"z","shape":[2,0],"datatype":"INT8","data":[[],[]]}]}`,
	`{"inputs":[{"name":"s","shape":[],"datatype":"UINT16","data":[7]}]}`,
	`{"inputs":[],"parameters":{"slo_ms":1.5,"priority":3,"timeout":1000,"binary_data_output":true,"x":{"y":[null]}}}`,
	`{"inputs":[{"name":"x","shape":[1],"datatype":"BF16","data":[1]}]}`,
	`{"inputs":[{"name":"x","shape":[1,3],"datatype":"FP32","data":[1,2,3,4,5,6,7,8,9,10]}]}`,
	`{"inputs":[{"name":"x","shape":[9999999999,9999999999],"datatype":"FP32","data":[1]}]}`,
	`{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1e999]}]}`,
	`{"inputs":[{"name":"x","shape":[2,2],"datatype":"FP32","data":[[1,2],3,4]}]}`,
	`{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[01]}]}`,
	` {"inputs" : [ ] } `,
	`{"inputs":[`,
	`"\u12`,
	`{"id":"\ud83e`,
	`[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[`,
	``,
	`null`,
}

func checkDecoded(t *testing.T, r *InferRequest, err error) {
	t.Helper()
	if err != nil {
		if !errors.Is(err, backends.ErrBadRequest) {
			t.Fatalf("error does not wrap ErrBadRequest: %v", err)
		}
		if r != nil {
			t.Fatal("both a request and an error")
		}
		return
	}
	for i := range r.Inputs {
		if err := r.Inputs[i].Validate(); err != nil {
			t.Fatalf("decoded tensor fails Validate: %v", err)
		}
	}
	// What decodes re-encodes and decodes to the same tensors.
	for _, binIn := range []bool{false, true} {
		body, jl := EncodeInferRequest(nil, r, binIn)
		back, err := DecodeInferRequest(body, jl)
		if err != nil {
			t.Fatalf("re-encoded request does not decode: %v\n%q", err, body)
		}
		for i := range r.Inputs {
			if !sameTensor(&r.Inputs[i], &back.Inputs[i]) {
				t.Fatalf("re-encode changed %q", r.Inputs[i].Name)
			}
		}
	}
}

func FuzzDecodeInferRequest(f *testing.F) {
	for _, s := range jsonSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := DecodeInferRequest(body, -1)
		checkDecoded(t, r, err)
	})
}

func FuzzDecodeBinaryExtension(f *testing.F) {
	add := func(js string, bin []byte) {
		f.Add(append([]byte(js), bin...), len(js))
	}
	add(`{"inputs":[{"name":"a","shape":[2,2],"datatype":"UINT32","parameters":{"binary_data_size":16}},{"name":"b","shape":[3],"datatype":"BOOL","parameters":{"binary_data_size":3}}]}`,
		[]byte{1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0, 1, 0, 1})
	add(`{"inputs":[{"name":"s","shape":[2],"datatype":"BYTES","parameters":{"binary_data_size":9}},{"name":"j","shape":[1],"datatype":"INT8","data":[-1]}]}`,
		[]byte{1, 0, 0, 0, 'a', 0, 0, 0, 0})
	add(`{"inputs":[{"name":"h","shape":[1,2],"datatype":"BF16","parameters":{"binary_data_size":4}}],"outputs":[{"name":"o"}],"parameters":{"binary_data_output":true}}`,
		[]byte{0x80, 0x3f, 0, 0})
	add(`{"inputs":[{"name":"s","shape":[1],"datatype":"BYTES","parameters":{"binary_data_size":4}}]}`, []byte{9, 0, 0, 0})
	add(`{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","parameters":{"binary_data_size":9223372036854775807}},{"name":"y","shape":[1],"datatype":"FP32","parameters":{"binary_data_size":9223372036854775807}}]}`, []byte{1, 2, 3, 4})
	f.Add([]byte(`{"inputs":[]}`), 100)
	f.Add([]byte(`{"inputs":[]}`), -5)
	f.Fuzz(func(t *testing.T, body []byte, jsonLen int) {
		r, err := DecodeInferRequest(body, jsonLen)
		checkDecoded(t, r, err)
	})
}
