package tensorconv

import (
	"encoding/binary"
	"math"

	"github.com/accelgate/accelgate/backends"
	"github.com/accelgate/accelgate/proto/inference"
)

// InputTensors decodes a ModelInferRequest's inputs into canonical tensors,
// from raw_input_contents (used as is, not copied) when the request has them,
// otherwise from each input's typed contents. It checks that raw contents
// come one per input and that typed contents sit in the field that matches
// the datatype and hold exactly the elements the shape calls for. It does
// not check the tensors against a model (gateway.PrepareTensorRequest does).
// raw reports whether the request used raw contents.
func InputTensors(r *inference.ModelInferRequest) (ts []backends.Tensor, raw bool, err error) {
	ins := r.GetInputs()
	rawIn := r.GetRawInputContents()
	raw = len(rawIn) > 0
	if raw && len(rawIn) != len(ins) {
		return nil, raw, backends.BadRequestf("raw_input_contents", "raw_input_contents has %d entries for %d inputs; it needs one per input, in order", len(rawIn), len(ins))
	}
	ts = make([]backends.Tensor, len(ins))
	for i, in := range ins {
		if in == nil {
			return nil, raw, backends.BadRequestf("inputs", "input %d is empty", i)
		}
		dt, ok := backends.ParseDataType(in.GetDatatype())
		if !ok {
			return nil, raw, backends.BadRequestf(in.GetName(), "input %q has an unknown datatype %q", in.GetName(), in.GetDatatype())
		}
		t := backends.Tensor{Name: in.GetName(), Datatype: dt, Shape: in.GetShape()}
		if raw {
			if in.GetContents() != nil {
				return nil, raw, backends.BadRequestf(t.Name, "input %q sets contents while the request uses raw_input_contents", t.Name)
			}
			t.Data = rawIn[i]
		} else {
			n := backends.NumElements(t.Shape)
			if n < 0 {
				return nil, raw, backends.BadRequestf(t.Name, "tensor %q has an invalid shape %v", t.Name, t.Shape)
			}
			t.Data, err = ContentsToRaw(t.Name, dt, n, in.GetContents())
			if err != nil {
				return nil, raw, err
			}
		}
		ts[i] = t
	}
	return ts, raw, nil
}

// OutputTensors decodes a ModelInferResponse's outputs into canonical
// tensors, from raw_output_contents when the response has them, otherwise
// from each output's typed contents.
func OutputTensors(r *inference.ModelInferResponse) ([]backends.Tensor, error) {
	outs := r.GetOutputs()
	rawOut := r.GetRawOutputContents()
	raw := len(rawOut) > 0
	if raw && len(rawOut) != len(outs) {
		return nil, backends.BadRequestf("raw_output_contents", "raw_output_contents has %d entries for %d outputs", len(rawOut), len(outs))
	}
	ts := make([]backends.Tensor, len(outs))
	for i, o := range outs {
		if o == nil {
			return nil, backends.BadRequestf("outputs", "output %d is empty", i)
		}
		dt, ok := backends.ParseDataType(o.GetDatatype())
		if !ok {
			return nil, backends.BadRequestf(o.GetName(), "output %q has an unknown datatype %q", o.GetName(), o.GetDatatype())
		}
		t := backends.Tensor{Name: o.GetName(), Datatype: dt, Shape: o.GetShape()}
		if raw {
			t.Data = rawOut[i]
		} else {
			n := backends.NumElements(t.Shape)
			if n < 0 {
				return nil, backends.BadRequestf(t.Name, "tensor %q has an invalid shape %v", t.Name, t.Shape)
			}
			var err error
			if t.Data, err = ContentsToRaw(t.Name, dt, n, o.GetContents()); err != nil {
				return nil, err
			}
		}
		if err := t.Validate(); err != nil {
			return nil, err
		}
		ts[i] = t
	}
	return ts, nil
}

// NeedsRaw reports whether a datatype can only travel as raw contents
// (FP16 and BF16 have no typed field).
func NeedsRaw(dt backends.DataType) bool { return dt == backends.FP16 || dt == backends.BF16 }

// ContentsToRaw converts typed contents holding n elements of type dt into
// canonical raw bytes. The elements must sit in the field that matches dt
// (int_contents for INT8/16/32, uint_contents for UINT8/16/32, and so on),
// every other field must be empty, there must be exactly n of them, and
// narrow integer types must be in range. FP16 and BF16 have no typed field:
// they must be sent raw. name names the tensor in errors. A nil c holds no
// elements.
func ContentsToRaw(name string, dt backends.DataType, n int64, c *inference.InferTensorContents) ([]byte, error) {
	have, field := typedCount(dt, c)
	if field == "" {
		return nil, backends.BadRequestf(name, "tensor %q: %s elements cannot be sent as typed contents; use raw contents", name, dt)
	}
	if total := totalCount(c); total != have {
		return nil, backends.BadRequestf(name, "tensor %q of datatype %s must put its elements in contents.%s only", name, dt, field)
	}
	if int64(have) != n {
		return nil, backends.BadRequestf(name, "tensor %q has %d elements in contents.%s, its shape needs %d", name, have, field, n)
	}
	switch dt {
	case backends.BOOL:
		out := make([]byte, n)
		for i, v := range c.GetBoolContents() {
			if v {
				out[i] = 1
			}
		}
		return out, nil
	case backends.INT8, backends.INT16, backends.INT32:
		size := dt.Size()
		lo, hi := int64(math.MinInt32), int64(math.MaxInt32)
		if size < 4 {
			hi = int64(1)<<(8*size-1) - 1
			lo = -hi - 1
		}
		out := make([]byte, int(n)*size)
		for i, v := range c.GetIntContents() {
			if int64(v) < lo || int64(v) > hi {
				return nil, backends.BadRequestf(name, "tensor %q: element %d (%d) is out of range for %s", name, i, v, dt)
			}
			putUint(out[i*size:], size, uint64(uint32(v)))
		}
		return out, nil
	case backends.UINT8, backends.UINT16, backends.UINT32:
		size := dt.Size()
		hi := uint64(math.MaxUint32)
		if size < 4 {
			hi = uint64(1)<<(8*size) - 1
		}
		out := make([]byte, int(n)*size)
		for i, v := range c.GetUintContents() {
			if uint64(v) > hi {
				return nil, backends.BadRequestf(name, "tensor %q: element %d (%d) is out of range for %s", name, i, v, dt)
			}
			putUint(out[i*size:], size, uint64(v))
		}
		return out, nil
	case backends.INT64:
		out := make([]byte, 0, int(n)*8)
		for _, v := range c.GetInt64Contents() {
			out = binary.LittleEndian.AppendUint64(out, uint64(v))
		}
		return out, nil
	case backends.UINT64:
		out := make([]byte, 0, int(n)*8)
		for _, v := range c.GetUint64Contents() {
			out = binary.LittleEndian.AppendUint64(out, v)
		}
		return out, nil
	case backends.FP32:
		out := make([]byte, 0, int(n)*4)
		for _, v := range c.GetFp32Contents() {
			out = binary.LittleEndian.AppendUint32(out, math.Float32bits(v))
		}
		return out, nil
	case backends.FP64:
		out := make([]byte, 0, int(n)*8)
		for _, v := range c.GetFp64Contents() {
			out = binary.LittleEndian.AppendUint64(out, math.Float64bits(v))
		}
		return out, nil
	case backends.BYTES:
		size := 0
		for _, v := range c.GetBytesContents() {
			if uint64(len(v)) > math.MaxUint32 {
				return nil, backends.BadRequestf(name, "tensor %q: a BYTES element is longer than 4 GiB", name)
			}
			size += 4 + len(v)
		}
		out := make([]byte, 0, size)
		for _, v := range c.GetBytesContents() {
			out = binary.LittleEndian.AppendUint32(out, uint32(len(v)))
			out = append(out, v...)
		}
		return out, nil
	}
	return nil, backends.BadRequestf(name, "tensor %q has an invalid datatype", name)
}

// RawToContents converts canonical raw bytes of type dt into typed contents.
// The length must be a whole number of elements (BYTES: well-formed length
// prefixes); FP16 and BF16 cannot be converted (send them raw).
func RawToContents(name string, dt backends.DataType, data []byte) (*inference.InferTensorContents, error) {
	size := dt.Size()
	if dt != backends.BYTES && (size == 0 || NeedsRaw(dt)) {
		return nil, backends.BadRequestf(name, "tensor %q: %s has no typed contents", name, dt)
	}
	if dt != backends.BYTES && len(data)%size != 0 {
		return nil, backends.BadRequestf(name, "tensor %q: %d bytes is not a whole number of %s elements", name, len(data), dt)
	}
	n := 0
	if size > 0 {
		n = len(data) / size
	}
	c := &inference.InferTensorContents{}
	switch dt {
	case backends.BOOL:
		c.BoolContents = make([]bool, n)
		for i, b := range data {
			c.BoolContents[i] = b != 0
		}
	case backends.INT8:
		c.IntContents = make([]int32, n)
		for i, b := range data {
			c.IntContents[i] = int32(int8(b))
		}
	case backends.INT16:
		c.IntContents = make([]int32, n)
		for i := range c.IntContents {
			c.IntContents[i] = int32(int16(binary.LittleEndian.Uint16(data[2*i:])))
		}
	case backends.INT32:
		c.IntContents = make([]int32, n)
		for i := range c.IntContents {
			c.IntContents[i] = int32(binary.LittleEndian.Uint32(data[4*i:]))
		}
	case backends.INT64:
		c.Int64Contents = make([]int64, n)
		for i := range c.Int64Contents {
			c.Int64Contents[i] = int64(binary.LittleEndian.Uint64(data[8*i:]))
		}
	case backends.UINT8:
		c.UintContents = make([]uint32, n)
		for i, b := range data {
			c.UintContents[i] = uint32(b)
		}
	case backends.UINT16:
		c.UintContents = make([]uint32, n)
		for i := range c.UintContents {
			c.UintContents[i] = uint32(binary.LittleEndian.Uint16(data[2*i:]))
		}
	case backends.UINT32:
		c.UintContents = make([]uint32, n)
		for i := range c.UintContents {
			c.UintContents[i] = binary.LittleEndian.Uint32(data[4*i:])
		}
	case backends.UINT64:
		c.Uint64Contents = make([]uint64, n)
		for i := range c.Uint64Contents {
			c.Uint64Contents[i] = binary.LittleEndian.Uint64(data[8*i:])
		}
	case backends.FP32:
		c.Fp32Contents = make([]float32, n)
		for i := range c.Fp32Contents {
			c.Fp32Contents[i] = math.Float32frombits(binary.LittleEndian.Uint32(data[4*i:]))
		}
	case backends.FP64:
		c.Fp64Contents = make([]float64, n)
		for i := range c.Fp64Contents {
			c.Fp64Contents[i] = math.Float64frombits(binary.LittleEndian.Uint64(data[8*i:]))
		}
	case backends.BYTES:
		cnt, err := backends.CountBytesElements(data)
		if err != nil {
			return nil, backends.BadRequestf(name, "tensor %q: %v", name, err)
		}
		c.BytesContents = make([][]byte, 0, cnt)
		for len(data) > 0 {
			l := binary.LittleEndian.Uint32(data)
			c.BytesContents = append(c.BytesContents, data[4:4+l:4+l])
			data = data[4+l:]
		}
	}
	return c, nil
}

// typedCount returns how many elements c holds in the field for dt, and the
// field's name ("" when dt has no typed field).
func typedCount(dt backends.DataType, c *inference.InferTensorContents) (int, string) {
	switch dt {
	case backends.BOOL:
		return len(c.GetBoolContents()), "bool_contents"
	case backends.INT8, backends.INT16, backends.INT32:
		return len(c.GetIntContents()), "int_contents"
	case backends.INT64:
		return len(c.GetInt64Contents()), "int64_contents"
	case backends.UINT8, backends.UINT16, backends.UINT32:
		return len(c.GetUintContents()), "uint_contents"
	case backends.UINT64:
		return len(c.GetUint64Contents()), "uint64_contents"
	case backends.FP32:
		return len(c.GetFp32Contents()), "fp32_contents"
	case backends.FP64:
		return len(c.GetFp64Contents()), "fp64_contents"
	case backends.BYTES:
		return len(c.GetBytesContents()), "bytes_contents"
	}
	return 0, ""
}

// totalCount is the number of elements in all of c's fields.
func totalCount(c *inference.InferTensorContents) int {
	return len(c.GetBoolContents()) + len(c.GetIntContents()) + len(c.GetInt64Contents()) +
		len(c.GetUintContents()) + len(c.GetUint64Contents()) + len(c.GetFp32Contents()) +
		len(c.GetFp64Contents()) + len(c.GetBytesContents())
}

func putUint(b []byte, size int, v uint64) {
	switch size {
	case 1:
		b[0] = byte(v)
	case 2:
		binary.LittleEndian.PutUint16(b, uint16(v))
	default:
		binary.LittleEndian.PutUint32(b, uint32(v))
	}
}
