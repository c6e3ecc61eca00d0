package backends

import (
	"encoding/binary"
	"fmt"
)

// DataType is a KServe v2 / Open Inference Protocol tensor element type.
type DataType uint8

// The KServe v2 datatypes, named as on the wire.
const (
	DTInvalid DataType = iota
	BOOL
	UINT8
	UINT16
	UINT32
	UINT64
	INT8
	INT16
	INT32
	INT64
	FP16
	FP32
	FP64
	BF16
	BYTES
)

var dtNames = [...]string{"", "BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64", "FP16", "FP32", "FP64", "BF16", "BYTES"}
var dtSizes = [...]int{0, 1, 1, 2, 4, 8, 1, 2, 4, 8, 2, 4, 8, 2, 0}

// String returns the wire name ("FP32"), or "INVALID".
func (d DataType) String() string {
	if d == DTInvalid || int(d) >= len(dtNames) {
		return "INVALID"
	}
	return dtNames[d]
}

// Size is the element size in bytes; 0 for BYTES (variable) and invalid types.
func (d DataType) Size() int {
	if int(d) >= len(dtSizes) {
		return 0
	}
	return dtSizes[d]
}

// ParseDataType parses a wire name (case-sensitive, as the spec says).
func ParseDataType(s string) (DataType, bool) {
	for i := 1; i < len(dtNames); i++ {
		if dtNames[i] == s {
			return DataType(i), true
		}
	}
	return DTInvalid, false
}

// Tensor is one named tensor in canonical form.
//
// Data holds the elements in row-major order exactly as KServe v2 "raw"
// contents carry them (gRPC raw_input_contents, the HTTP binary tensor data
// extension): fixed-size types little-endian back to back (BOOL one byte
// each); BYTES elements each preceded by a 4-byte little-endian length.
type Tensor struct {
	Name     string
	Datatype DataType
	Shape    []int64
	Data     []byte
}

// NumElements is the product of the shape (1 for a scalar shape []); -1 if a
// dimension is negative or the product overflows.
func NumElements(shape []int64) int64 {
	n := int64(1)
	for _, d := range shape {
		if d < 0 {
			return -1
		}
		if d != 0 && n > (1<<62)/d {
			return -1
		}
		n *= d
	}
	return n
}

// Validate checks that Data holds exactly the elements the shape and type
// call for. Errors wrap ErrBadRequest and name the tensor.
func (t *Tensor) Validate() error {
	if t.Datatype == DTInvalid || int(t.Datatype) >= len(dtNames) {
		return BadRequestf(t.Name, "tensor %q has an invalid datatype", t.Name)
	}
	n := NumElements(t.Shape)
	if n < 0 {
		return BadRequestf(t.Name, "tensor %q has an invalid shape %v", t.Name, t.Shape)
	}
	if t.Datatype == BYTES {
		got, err := CountBytesElements(t.Data)
		if err != nil {
			return BadRequestf(t.Name, "tensor %q: %v", t.Name, err)
		}
		if int64(got) != n {
			return BadRequestf(t.Name, "tensor %q has %d BYTES elements, its shape %v needs %d", t.Name, got, t.Shape, n)
		}
		return nil
	}
	if want := n * int64(t.Datatype.Size()); int64(len(t.Data)) != want {
		return BadRequestf(t.Name, "tensor %q: %d bytes of %s data, its shape %v needs %d", t.Name, len(t.Data), t.Datatype, t.Shape, want)
	}
	return nil
}

// CountBytesElements counts the length-prefixed elements of raw BYTES data.
func CountBytesElements(data []byte) (int, error) {
	n := 0
	for len(data) > 0 {
		if len(data) < 4 {
			return 0, fmt.Errorf("BYTES data ends inside a 4-byte length prefix")
		}
		l := binary.LittleEndian.Uint32(data)
		data = data[4:]
		if uint64(l) > uint64(len(data)) {
			return 0, fmt.Errorf("BYTES element %d claims %d bytes, only %d remain", n, l, len(data))
		}
		data = data[l:]
		n++
	}
	return n, nil
}

// TensorSpec is a tensor's metadata: name, datatype and shape, where -1 marks
// a variable dimension (the batch dimension first, for batchable models).
type TensorSpec struct {
	Name     string  `yaml:"name" json:"name"`
	Datatype string  `yaml:"datatype" json:"datatype"`
	Shape    []int64 `yaml:"shape" json:"shape"`
}

// Matches reports whether a tensor fits the spec: same datatype, same rank,
// and every fixed dimension equal.
func (s *TensorSpec) Matches(t *Tensor) error {
	if s.Datatype != t.Datatype.String() {
		return BadRequestf(t.Name, "input %q has datatype %s, the model expects %s", t.Name, t.Datatype, s.Datatype)
	}
	if len(s.Shape) != len(t.Shape) {
		return BadRequestf(t.Name, "input %q has shape %v, the model expects %v", t.Name, t.Shape, s.Shape)
	}
	for i, d := range s.Shape {
		if d >= 0 && d != t.Shape[i] {
			return BadRequestf(t.Name, "input %q has shape %v, the model expects %v", t.Name, t.Shape, s.Shape)
		}
	}
	return nil
}

// OutputRequest is one requested output of a KServe v2 infer request.
type OutputRequest struct {
	Name   string
	Binary bool // HTTP: return it through the binary tensor data extension
}
