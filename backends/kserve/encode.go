package kserve

import (
	"encoding/binary"
	"math"
	"strconv"
	"unicode/utf8"

	"github.com/accelgate/accelgate/backends"
	"github.com/accelgate/accelgate/internal/jsonw"
)

// EncodeInferResponse appends r's JSON to dst and then the binary section of
// the outputs sent as binary data. jsonLen is the length of the JSON part when
// a binary section follows (the caller sends it as
// Inference-Header-Content-Length, with Content-Type
// application/octet-stream), or -1 when the body is plain JSON.
func EncodeInferResponse(dst []byte, r *InferResponse) (body []byte, jsonLen int) {
	start := len(dst)
	b := append(dst, `{"model_name":`...)
	b = jsonw.AppendString(b, r.ModelName)
	if r.ModelVersion != "" {
		b = append(b, `,"model_version":`...)
		b = jsonw.AppendString(b, r.ModelVersion)
	}
	if r.ID != "" {
		b = append(b, `,"id":`...)
		b = jsonw.AppendString(b, r.ID)
	}
	if r.Backend != "" {
		b = append(b, `,"parameters":{"accelgate_backend":`...)
		b = jsonw.AppendString(b, r.Backend)
		b = append(b, `,"accelgate_hardware":`...)
		b = jsonw.AppendString(b, r.Hardware)
		b = append(b, `,"accelgate_cost_usd":`...)
		b = AppendUSD(b, r.CostUSD)
		b = append(b, '}')
	}
	b = append(b, `,"outputs":[`...)
	anyBin := false
	for i := range r.Outputs {
		t := &r.Outputs[i]
		bin := (i < len(r.Binary) && r.Binary[i]) || NeedsBinary(t)
		anyBin = anyBin || bin
		if i > 0 {
			b = append(b, ',')
		}
		b = appendTensorJSON(b, t, bin)
	}
	b = append(b, "]}"...)
	if !anyBin {
		return b, -1
	}
	jsonLen = len(b) - start
	for i := range r.Outputs {
		t := &r.Outputs[i]
		if (i < len(r.Binary) && r.Binary[i]) || NeedsBinary(t) {
			b = append(b, t.Data...)
		}
	}
	return b, jsonLen
}

// EncodeInferRequest appends r as an infer request body to dst: every input as
// binary data when binaryInputs is set, otherwise as JSON except those JSON
// cannot carry exactly (see InferResponse.Binary). jsonLen is as for
// EncodeInferResponse. Requested outputs carry their binary_data setting; the
// parameters slo_ms, priority, timeout and binary_data_output are sent when
// set.
func EncodeInferRequest(dst []byte, r *InferRequest, binaryInputs bool) (body []byte, jsonLen int) {
	start := len(dst)
	b := append(dst, '{')
	if r.ID != "" {
		b = append(b, `"id":`...)
		b = jsonw.AppendString(b, r.ID)
		b = append(b, ',')
	}
	p := &r.Params
	if p.HasSLO || p.HasPriority || p.HasTimeout || p.BinaryDataOutput {
		b = append(b, `"parameters":{`...)
		n := 0
		sep := func() {
			if n > 0 {
				b = append(b, ',')
			}
			n++
		}
		if p.HasSLO {
			sep()
			b = append(b, `"slo_ms":`...)
			b = jsonw.AppendFloat(b, p.SLOms, 64)
		}
		if p.HasPriority {
			sep()
			b = append(b, `"priority":`...)
			b = strconv.AppendInt(b, p.Priority, 10)
		}
		if p.HasTimeout {
			sep()
			b = append(b, `"timeout":`...)
			b = strconv.AppendInt(b, p.TimeoutUS, 10)
		}
		if p.BinaryDataOutput {
			sep()
			b = append(b, `"binary_data_output":true`...)
		}
		b = append(b, "},"...)
	}
	b = append(b, `"inputs":[`...)
	anyBin := false
	for i := range r.Inputs {
		t := &r.Inputs[i]
		bin := binaryInputs || NeedsBinary(t)
		anyBin = anyBin || bin
		if i > 0 {
			b = append(b, ',')
		}
		b = appendTensorJSON(b, t, bin)
	}
	b = append(b, ']')
	if len(r.Outputs) > 0 {
		b = append(b, `,"outputs":[`...)
		for i, o := range r.Outputs {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"name":`...)
			b = jsonw.AppendString(b, o.Name)
			if o.Binary {
				b = append(b, `,"parameters":{"binary_data":true}`...)
			} else {
				b = append(b, `,"parameters":{"binary_data":false}`...)
			}
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	b = append(b, '}')
	if !anyBin {
		return b, -1
	}
	jsonLen = len(b) - start
	for i := range r.Inputs {
		t := &r.Inputs[i]
		if binaryInputs || NeedsBinary(t) {
			b = append(b, t.Data...)
		}
	}
	return b, jsonLen
}

// NeedsBinary reports whether a tensor can only be sent exactly as binary
// data: FP16 and BF16 (JSON has no such numbers), FP32/FP64 holding NaN or
// infinities, and BYTES elements that are not valid UTF-8.
func NeedsBinary(t *backends.Tensor) bool {
	switch t.Datatype {
	case backends.FP16, backends.BF16:
		return true
	case backends.FP32:
		for i := 0; i+4 <= len(t.Data); i += 4 {
			if binary.LittleEndian.Uint32(t.Data[i:])&0x7f800000 == 0x7f800000 {
				return true
			}
		}
	case backends.FP64:
		for i := 0; i+8 <= len(t.Data); i += 8 {
			if binary.LittleEndian.Uint64(t.Data[i:])&0x7ff0000000000000 == 0x7ff0000000000000 {
				return true
			}
		}
	case backends.BYTES:
		d := t.Data
		for len(d) >= 4 {
			l := binary.LittleEndian.Uint32(d)
			d = d[4:]
			if uint64(l) > uint64(len(d)) {
				return true
			}
			if !utf8.Valid(d[:l]) {
				return true
			}
			d = d[l:]
		}
	}
	return false
}

// appendTensorJSON appends one tensor object: name, datatype, shape and either
// flat data or the binary_data_size parameter.
func appendTensorJSON(b []byte, t *backends.Tensor, bin bool) []byte {
	b = append(b, `{"name":`...)
	b = jsonw.AppendString(b, t.Name)
	b = append(b, `,"datatype":"`...)
	b = append(b, t.Datatype.String()...)
	b = append(b, `","shape":[`...)
	for i, d := range t.Shape {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, d, 10)
	}
	b = append(b, ']')
	if bin {
		b = append(b, `,"parameters":{"binary_data_size":`...)
		b = strconv.AppendInt(b, int64(len(t.Data)), 10)
		return append(b, "}}"...)
	}
	b = append(b, `,"data":[`...)
	b = appendData(b, t)
	return append(b, "]}"...)
}

// appendData appends the elements of a tensor's raw data as flat JSON values.
func appendData(b []byte, t *backends.Tensor) []byte {
	d := t.Data
	le := binary.LittleEndian
	switch t.Datatype {
	case backends.BOOL:
		for i, c := range d {
			if i > 0 {
				b = append(b, ',')
			}
			if c != 0 {
				b = append(b, "true"...)
			} else {
				b = append(b, "false"...)
			}
		}
	case backends.UINT8:
		for i, c := range d {
			if i > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendUint(b, uint64(c), 10)
		}
	case backends.INT8:
		for i, c := range d {
			if i > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendInt(b, int64(int8(c)), 10)
		}
	case backends.UINT16, backends.INT16:
		for i := 0; i+2 <= len(d); i += 2 {
			if i > 0 {
				b = append(b, ',')
			}
			v := le.Uint16(d[i:])
			if t.Datatype == backends.INT16 {
				b = strconv.AppendInt(b, int64(int16(v)), 10)
			} else {
				b = strconv.AppendUint(b, uint64(v), 10)
			}
		}
	case backends.UINT32, backends.INT32:
		for i := 0; i+4 <= len(d); i += 4 {
			if i > 0 {
				b = append(b, ',')
			}
			v := le.Uint32(d[i:])
			if t.Datatype == backends.INT32 {
				b = strconv.AppendInt(b, int64(int32(v)), 10)
			} else {
				b = strconv.AppendUint(b, uint64(v), 10)
			}
		}
	case backends.UINT64, backends.INT64:
		for i := 0; i+8 <= len(d); i += 8 {
			if i > 0 {
				b = append(b, ',')
			}
			v := le.Uint64(d[i:])
			if t.Datatype == backends.INT64 {
				b = strconv.AppendInt(b, int64(v), 10)
			} else {
				b = strconv.AppendUint(b, v, 10)
			}
		}
	case backends.FP32:
		for i := 0; i+4 <= len(d); i += 4 {
			if i > 0 {
				b = append(b, ',')
			}
			b = jsonw.AppendFloat(b, float64(math.Float32frombits(le.Uint32(d[i:]))), 32)
		}
	case backends.FP64:
		for i := 0; i+8 <= len(d); i += 8 {
			if i > 0 {
				b = append(b, ',')
			}
			b = jsonw.AppendFloat(b, math.Float64frombits(le.Uint64(d[i:])), 64)
		}
	case backends.BYTES:
		for n := 0; len(d) >= 4; n++ {
			l := le.Uint32(d)
			d = d[4:]
			if uint64(l) > uint64(len(d)) {
				break
			}
			if n > 0 {
				b = append(b, ',')
			}
			b = jsonw.AppendString(b, d[:l])
			d = d[l:]
		}
	}
	return b
}

// AppendUSD appends a cost in USD with ten decimals (no exponent), as the
// x-accelgate-cost-usd header carries it.
func AppendUSD(b []byte, usd float64) []byte { return jsonw.AppendUSD(b, usd) }
