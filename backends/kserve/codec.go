package kserve

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"strconv"

	"github.com/accelgate/accelgate/backends"
)

// HeaderInferenceHeaderContentLength is the binary tensor data extension's
// header: the length of the JSON part of a body that binary tensor data
// follows.
const HeaderInferenceHeaderContentLength = "Inference-Header-Content-Length"

// Params are the request-level parameters accelgate reads from an infer
// request's "parameters" object. The Has* flags say which were present.
// Others are accepted and ignored.
type Params struct {
	HasSLO      bool
	SLOms       float64 // "slo_ms": end-to-end latency target, milliseconds
	HasPriority bool
	Priority    int64 // "priority", Triton's meaning (0 = default, 1 = highest)
	HasTimeout  bool
	TimeoutUS   int64 // "timeout", Triton's meaning: microseconds
	// BinaryDataOutput is "binary_data_output": return every output through
	// the binary tensor data extension unless the output says otherwise.
	BinaryDataOutput bool
}

// InferRequest is a decoded KServe v2 infer request. It owns all its memory.
type InferRequest struct {
	ID      string
	Inputs  []backends.Tensor        // canonical, each passes Tensor.Validate
	Outputs []backends.OutputRequest // requested outputs; Binary is resolved (binary_data, else binary_data_output)
	Params  Params
}

// WantsBinary reports whether the named output is to be returned as binary
// data: as the request's outputs say when it names outputs, otherwise as its
// binary_data_output parameter says.
func (r *InferRequest) WantsBinary(name string) bool {
	if len(r.Outputs) == 0 {
		return r.Params.BinaryDataOutput
	}
	for _, o := range r.Outputs {
		if o.Name == name {
			return o.Binary
		}
	}
	return r.Params.BinaryDataOutput
}

// InferResponse is an infer response to encode, or a decoded one.
type InferResponse struct {
	ModelName    string
	ModelVersion string // omitted when empty
	ID           string // omitted when empty
	// Backend, Hardware and CostUSD are sent as the response parameters
	// accelgate_backend, accelgate_hardware and accelgate_cost_usd (when
	// Backend is set).
	Backend  string
	Hardware string
	CostUSD  float64
	Outputs  []backends.Tensor
	// Binary says, per output, whether to send it through the binary tensor
	// data extension (missing entries mean JSON). Outputs JSON cannot carry
	// exactly — FP16, BF16, non-finite floats, BYTES that are not UTF-8 — are
	// always sent binary.
	Binary []bool
}

func badf(name, format string, a ...any) error {
	return backends.BadRequestf(name, format, a...)
}

// jsonErr turns a scanner error into a client message, with the offset.
func jsonErr(s *scanner, err error) error {
	if err == nil {
		return nil
	}
	var pe *backends.ParamError
	if errors.As(err, &pe) || errors.Is(err, backends.ErrBadRequest) {
		return err
	}
	if errors.Is(err, errTooDeep) {
		return badf("", "invalid JSON: nested deeper than %d levels", maxDepth)
	}
	if s.i >= len(s.b) {
		return badf("", "invalid JSON: unexpected end of the JSON document")
	}
	return badf("", "invalid JSON at offset %d", s.i)
}

// split separates a body into its JSON part and its binary section.
func split(body []byte, jsonLen int) (js, bin []byte, err error) {
	switch {
	case jsonLen == -1:
		return body, nil, nil
	case jsonLen < 0:
		return nil, nil, badf(HeaderInferenceHeaderContentLength, "invalid %s %d", HeaderInferenceHeaderContentLength, jsonLen)
	case jsonLen > len(body):
		return nil, nil, badf(HeaderInferenceHeaderContentLength, "%s is %d, but the body has only %d bytes", HeaderInferenceHeaderContentLength, jsonLen, len(body))
	}
	return body[:jsonLen], body[jsonLen:], nil
}

// ParseHeaderLength parses an Inference-Header-Content-Length value: -1 when
// v is empty (the header is absent).
func ParseHeaderLength(v []byte) (int, error) {
	if len(v) == 0 {
		return -1, nil
	}
	n, err := strconv.ParseUint(string(bytes.TrimSpace(v)), 10, 31)
	if err != nil {
		return 0, badf(HeaderInferenceHeaderContentLength, "invalid %s header %q: want a byte count", HeaderInferenceHeaderContentLength, v)
	}
	return int(n), nil
}

// DecodeInferRequest decodes a KServe v2 infer request body. jsonLen is the
// Inference-Header-Content-Length header's value, or -1 when absent (the whole
// body is JSON). Nothing in the result aliases body. Errors wrap
// backends.ErrBadRequest and name the offending tensor or field.
func DecodeInferRequest(body []byte, jsonLen int) (*InferRequest, error) {
	js, bin, err := split(body, jsonLen)
	if err != nil {
		return nil, err
	}
	r := &InferRequest{}
	s := &scanner{b: js}
	var tensors []tensorJSON
	var explicit []bool // per output: binary_data given
	seen := uint8(0)
	err = s.object(func(key []byte) error {
		switch string(key) {
		case "id":
			if s.peek() != '"' {
				return badf("id", "\"id\" must be a string")
			}
			v, err := s.str()
			r.ID = v
			return err
		case "parameters":
			if seen&1 != 0 {
				return badf("parameters", "\"parameters\" appears twice")
			}
			seen |= 1
			return decodeRequestParams(s, &r.Params)
		case "inputs":
			if seen&2 != 0 {
				return badf("inputs", "\"inputs\" appears twice")
			}
			seen |= 2
			var err error
			tensors, err = decodeTensorList(s, "input")
			return err
		case "outputs":
			if seen&4 != 0 {
				return badf("outputs", "\"outputs\" appears twice")
			}
			seen |= 4
			return decodeRequestedOutputs(s, r, &explicit)
		}
		return s.skip(1)
	})
	if err == nil && s.peek() != 0 {
		err = errSyntax
	}
	if err != nil {
		return nil, jsonErr(s, err)
	}
	if seen&2 == 0 {
		return nil, badf("inputs", "the request has no \"inputs\"")
	}
	for i := range r.Outputs {
		if !explicit[i] {
			r.Outputs[i].Binary = r.Params.BinaryDataOutput
		}
	}
	r.Inputs, err = finishTensors(tensors, bin, jsonLen >= 0, "input")
	if err != nil {
		return nil, err
	}
	return r, nil
}

func decodeRequestParams(s *scanner, p *Params) error {
	if s.peek() != '{' {
		return badf("parameters", "\"parameters\" must be an object")
	}
	return s.object(func(key []byte) error {
		switch string(key) {
		case "slo_ms":
			f, err := floatParam(s, "slo_ms")
			p.HasSLO, p.SLOms = true, f
			return err
		case "priority":
			v, err := intParam(s, "priority")
			p.HasPriority, p.Priority = true, v
			return err
		case "timeout":
			v, err := intParam(s, "timeout")
			p.HasTimeout, p.TimeoutUS = true, v
			return err
		case "binary_data_output":
			v, err := boolParam(s, "binary_data_output")
			p.BinaryDataOutput = v
			return err
		}
		return s.skip(1)
	})
}

func floatParam(s *scanner, name string) (float64, error) {
	if c := s.peek(); c != '-' && (c < '0' || c > '9') {
		return 0, badf(name, "parameter %q must be a number", name)
	}
	tok, _, err := s.number()
	if err != nil {
		return 0, err
	}
	f, err := strconv.ParseFloat(string(tok), 64)
	if err != nil {
		return 0, badf(name, "parameter %q is out of range", name)
	}
	return f, nil
}

func intParam(s *scanner, name string) (int64, error) {
	if c := s.peek(); c != '-' && (c < '0' || c > '9') {
		return 0, badf(name, "parameter %q must be an integer", name)
	}
	tok, integer, err := s.number()
	if err != nil {
		return 0, err
	}
	mag, neg, ok := parseIntToken(tok)
	if !integer || !ok || (!neg && mag > math.MaxInt64) || (neg && mag > 1<<63) {
		return 0, badf(name, "parameter %q must be a 64-bit integer, got %s", name, tok)
	}
	if neg {
		return -int64(mag), nil
	}
	return int64(mag), nil
}

func boolParam(s *scanner, name string) (bool, error) {
	switch {
	case s.literal("true"):
		return true, nil
	case s.literal("false"):
		return false, nil
	}
	return false, badf(name, "parameter %q must be a boolean", name)
}

func decodeRequestedOutputs(s *scanner, r *InferRequest, explicit *[]bool) error {
	if s.peek() != '[' {
		return badf("outputs", "\"outputs\" must be an array")
	}
	return s.array(func(i int) error {
		if s.peek() != '{' {
			return badf("outputs", "outputs[%d] must be an object", i)
		}
		var o backends.OutputRequest
		ex := false
		err := s.object(func(key []byte) error {
			switch string(key) {
			case "name":
				if s.peek() != '"' {
					return badf("outputs", "outputs[%d].name must be a string", i)
				}
				v, err := s.str()
				o.Name = v
				return err
			case "parameters":
				if s.peek() != '{' {
					return badf("outputs", "outputs[%d].parameters must be an object", i)
				}
				return s.object(func(key []byte) error {
					if string(key) == "binary_data" {
						v, err := boolParam(s, "binary_data")
						o.Binary, ex = v, true
						return err
					}
					return s.skip(2)
				})
			}
			return s.skip(1)
		})
		if err != nil {
			return err
		}
		if o.Name == "" {
			return badf("outputs", "outputs[%d] has no name", i)
		}
		for _, p := range r.Outputs {
			if p.Name == o.Name {
				return badf("outputs", "output %q is requested twice", o.Name)
			}
		}
		r.Outputs = append(r.Outputs, o)
		*explicit = append(*explicit, ex)
		return nil
	})
}

// tensorJSON is one input or output object as read, before its binary data
// is attached.
type tensorJSON struct {
	t        backends.Tensor
	hasShape bool
	hasData  bool
	binSize  int64 // -1 when absent
	// dataAt is the offset of a "data" value seen before the datatype or
	// shape, decoded once the object is complete.
	dataAt int
}

// decodeTensorList reads an array of tensor objects. what is "input" or
// "output", for messages.
func decodeTensorList(s *scanner, what string) ([]tensorJSON, error) {
	if s.peek() != '[' {
		return nil, badf(what+"s", "%q must be an array", what+"s")
	}
	var list []tensorJSON
	err := s.array(func(i int) error {
		if s.peek() != '{' {
			return badf(what+"s", "%ss[%d] must be an object", what, i)
		}
		var tj tensorJSON
		tj.binSize, tj.dataAt = -1, -1
		if err := decodeTensor(s, what, i, &tj); err != nil {
			return err
		}
		list = append(list, tj)
		return nil
	})
	return list, err
}

func decodeTensor(s *scanner, what string, idx int, tj *tensorJSON) error {
	t := &tj.t
	label := func() string {
		if t.Name != "" {
			return what + " " + strconv.Quote(t.Name)
		}
		return what + "s[" + strconv.Itoa(idx) + "]"
	}
	err := s.object(func(key []byte) error {
		switch string(key) {
		case "name":
			if s.peek() != '"' {
				return badf(t.Name, "%s: \"name\" must be a string", label())
			}
			v, err := s.str()
			t.Name = v
			return err
		case "datatype":
			if s.peek() != '"' {
				return badf(t.Name, "%s: \"datatype\" must be a string", label())
			}
			v, err := s.stringView()
			if err != nil {
				return err
			}
			dt, ok := backends.ParseDataType(string(v))
			if !ok {
				return badf(t.Name, "%s: unknown datatype %q", label(), v)
			}
			t.Datatype = dt
			return nil
		case "shape":
			if s.peek() != '[' {
				return badf(t.Name, "%s: \"shape\" must be an array of integers", label())
			}
			t.Shape = t.Shape[:0]
			tj.hasShape = true
			return s.array(func(int) error {
				tok, integer, err := s.number()
				if err != nil {
					return badf(t.Name, "%s: \"shape\" must be an array of integers", label())
				}
				mag, neg, ok := parseIntToken(tok)
				if !integer || neg || !ok || mag > math.MaxInt64 {
					return badf(t.Name, "%s: invalid dimension %s in \"shape\" (want an integer >= 0)", label(), tok)
				}
				t.Shape = append(t.Shape, int64(mag))
				return nil
			})
		case "parameters":
			if s.peek() != '{' {
				return badf(t.Name, "%s: \"parameters\" must be an object", label())
			}
			return s.object(func(key []byte) error {
				if string(key) == "binary_data_size" {
					v, err := intParam(s, "binary_data_size")
					if err != nil {
						return badf(t.Name, "%s: \"binary_data_size\" must be an integer >= 0", label())
					}
					if v < 0 {
						return badf(t.Name, "%s: \"binary_data_size\" must be >= 0, got %d", label(), v)
					}
					tj.binSize = v
					return nil
				}
				return s.skip(2)
			})
		case "data":
			if tj.hasData {
				return badf(t.Name, "%s: \"data\" appears twice", label())
			}
			tj.hasData = true
			if t.Datatype == backends.DTInvalid || !tj.hasShape {
				tj.dataAt = s.i
				return s.skip(1)
			}
			return decodeData(s, t, label())
		}
		return s.skip(1)
	})
	if err != nil {
		return err
	}
	if t.Name == "" {
		return badf(what+"s", "%s has no \"name\"", label())
	}
	if t.Datatype == backends.DTInvalid {
		return badf(t.Name, "%s has no \"datatype\"", label())
	}
	if !tj.hasShape {
		return badf(t.Name, "%s has no \"shape\"", label())
	}
	if backends.NumElements(t.Shape) < 0 {
		return badf(t.Name, "%s: shape %v has too many elements", label(), t.Shape)
	}
	if tj.hasData && tj.binSize >= 0 {
		return badf(t.Name, "%s has both \"data\" and the binary_data_size parameter", label())
	}
	if !tj.hasData && tj.binSize < 0 {
		return badf(t.Name, "%s has neither \"data\" nor the binary_data_size parameter", label())
	}
	if tj.dataAt >= 0 {
		sub := &scanner{b: s.b, i: tj.dataAt, tmp: s.tmp}
		if err := decodeData(sub, t, label()); err != nil {
			return err
		}
		s.tmp = sub.tmp
	}
	return nil
}

// finishTensors attaches the binary section to the tensors that declared
// binary_data_size, in order, and checks that the sizes add up exactly.
// hasHeader says whether the Inference-Header-Content-Length header was sent.
func finishTensors(list []tensorJSON, bin []byte, hasHeader bool, what string) ([]backends.Tensor, error) {
	var need int64
	for i := range list {
		if list[i].binSize >= 0 {
			if !hasHeader {
				return nil, badf(list[i].t.Name, "%s %q has the binary_data_size parameter, but the request has no %s header",
					what, list[i].t.Name, HeaderInferenceHeaderContentLength)
			}
			if list[i].binSize > int64(len(bin))-need {
				return nil, badf(list[i].t.Name, "%s %q: binary_data_size %d runs past the end of the binary section (%d bytes, %d used by earlier tensors)",
					what, list[i].t.Name, list[i].binSize, len(bin), need)
			}
			need += list[i].binSize
		}
	}
	if need != int64(len(bin)) {
		return nil, badf("", "the binary section has %d bytes, the %ss' binary_data_size parameters add up to %d", len(bin), what, need)
	}
	var own []byte
	if len(bin) > 0 {
		own = append([]byte(nil), bin...) // one copy for all binary tensors
	}
	out := make([]backends.Tensor, len(list))
	off := int64(0)
	for i := range list {
		t := list[i].t
		if list[i].binSize >= 0 {
			end := off + list[i].binSize
			t.Data = own[off:end:end]
			off = end
			if err := checkBinary(&t, what); err != nil {
				return nil, err
			}
		}
		if t.Data == nil {
			t.Data = []byte{}
		}
		out[i] = t
	}
	return out, nil
}

func checkBinary(t *backends.Tensor, what string) error {
	n := backends.NumElements(t.Shape)
	if t.Datatype == backends.BYTES {
		got, err := backends.CountBytesElements(t.Data)
		if err != nil {
			return badf(t.Name, "%s %q: binary BYTES data: %v", what, t.Name, err)
		}
		if int64(got) != n {
			return badf(t.Name, "%s %q: binary data has %d BYTES elements, shape %v needs %d", what, t.Name, got, t.Shape, n)
		}
		return nil
	}
	if want := n * int64(t.Datatype.Size()); int64(len(t.Data)) != want {
		return badf(t.Name, "%s %q: binary_data_size is %d, shape %v of %s needs %d bytes", what, t.Name, len(t.Data), t.Shape, t.Datatype, want)
	}
	if t.Datatype == backends.BOOL {
		for i, c := range t.Data {
			if c > 1 {
				return badf(t.Name, "%s %q: BOOL element %d is %d (want 0 or 1)", what, t.Name, i, c)
			}
		}
	}
	return nil
}

// dataState tracks the structure of a (possibly nested) data array.
type dataState struct {
	s     *scanner
	t     *backends.Tensor
	label string
	dims  []int64 // length of the arrays at each depth; -1 unknown
	kind  []uint8 // per depth: 0 unknown, 1 holds scalars, 2 holds arrays
	count int64
	want  int64
	esize int
}

// decodeData decodes a "data" value into t.Data (canonical raw form),
// checking the element types, the ranges and the nesting against t.Shape.
func decodeData(s *scanner, t *backends.Tensor, label string) error {
	if s.peek() != '[' {
		return badf(t.Name, "%s: \"data\" must be an array", label)
	}
	if t.Datatype == backends.BF16 {
		return badf(t.Name, "%s: BF16 data cannot be sent as JSON; use the binary tensor data extension", label)
	}
	want := backends.NumElements(t.Shape)
	if want < 0 {
		return badf(t.Name, "%s: shape %v has too many elements", label, shapeString(t.Shape))
	}
	st := &dataState{s: s, t: t, label: label, want: want, esize: t.Datatype.Size()}
	var dimsBuf [8]int64
	var kindBuf [8]uint8
	st.dims, st.kind = dimsBuf[:0], kindBuf[:0]
	if t.Datatype != backends.BYTES && want <= int64(len(s.b)) { // never more elements than bytes
		t.Data = make([]byte, 0, want*int64(st.esize))
	} else {
		t.Data = []byte{}
	}
	if err := st.array(0); err != nil {
		return err
	}
	if len(st.dims) > 1 { // nested: the nesting must be the shape
		ok := len(st.dims) == len(t.Shape)
		for i := 0; ok && i < len(st.dims); i++ {
			ok = st.dims[i] == t.Shape[i]
		}
		if !ok {
			return badf(t.Name, "%s: nested data has dimensions %v, shape is %v", label, st.dims, t.Shape)
		}
	}
	if st.count != want {
		return badf(t.Name, "%s: data has %d elements, shape %v needs %d", label, st.count, shapeString(t.Shape), want)
	}
	return nil
}

// shapeString renders a shape as [1,3], as clients write it.
func shapeString(shape []int64) string {
	b := []byte{'['}
	for i, d := range shape {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, d, 10)
	}
	return string(append(b, ']'))
}

func (st *dataState) array(depth int) error {
	if depth >= maxDepth {
		return badf(st.t.Name, "%s: data is nested deeper than %d levels", st.label, maxDepth)
	}
	s := st.s
	if depth == len(st.dims) {
		st.dims = append(st.dims, -1)
		st.kind = append(st.kind, 0)
	}
	s.i++ // '['
	n := int64(0)
	if s.peek() != ']' {
		for {
			s.ws()
			if s.i < len(s.b) && s.b[s.i] == '[' {
				if st.kind[depth] == 1 {
					return st.irregular()
				}
				st.kind[depth] = 2
				if err := st.array(depth + 1); err != nil {
					return err
				}
			} else {
				if st.kind[depth] == 2 {
					return st.irregular()
				}
				st.kind[depth] = 1
				if err := st.element(); err != nil {
					return err
				}
			}
			n++
			c := s.peek()
			if c == ',' {
				s.i++
				continue
			}
			if c == ']' {
				break
			}
			return errSyntax
		}
	}
	s.i++ // ']'
	if st.dims[depth] == -1 {
		st.dims[depth] = n
	} else if st.dims[depth] != n {
		return st.irregular()
	}
	return nil
}

func (st *dataState) irregular() error {
	return badf(st.t.Name, "%s: nested data is not a regular array (rows of different lengths or mixed nesting); shape is %v", st.label, shapeString(st.t.Shape))
}

func (st *dataState) elemErr(msg string) error {
	return badf(st.t.Name, "%s: data element %d %s", st.label, st.count, msg)
}

// element decodes one scalar into t.Data.
func (st *dataState) element() error {
	s, t := st.s, st.t
	st.count++
	if st.count > st.want {
		return badf(t.Name, "%s: data has more than the %d elements shape %v needs", st.label, st.want, shapeString(t.Shape))
	}
	switch t.Datatype {
	case backends.BOOL:
		switch {
		case s.literal("true"):
			t.Data = append(t.Data, 1)
		case s.literal("false"):
			t.Data = append(t.Data, 0)
		default:
			st.count--
			return st.elemErr("is not a boolean (BOOL data is true or false)")
		}
		return nil
	case backends.BYTES:
		if s.peek() != '"' {
			st.count--
			return st.elemErr("is not a string (BYTES data is JSON strings)")
		}
		v, err := s.stringView()
		if err != nil {
			return err
		}
		t.Data = binary.LittleEndian.AppendUint32(t.Data, uint32(len(v)))
		t.Data = append(t.Data, v...)
		return nil
	}
	c := s.peek()
	if c != '-' && (c < '0' || c > '9') {
		st.count--
		return st.elemErr("is not a number")
	}
	tok, integer, err := s.number()
	if err != nil {
		return err
	}
	switch t.Datatype {
	case backends.FP32:
		f, err := parseFloat32(tok)
		if err != nil {
			st.count--
			return st.elemErr("(" + string(tok) + ") is out of range for FP32")
		}
		t.Data = binary.LittleEndian.AppendUint32(t.Data, math.Float32bits(f))
		return nil
	case backends.FP64:
		f, err := parseFloat64(tok)
		if err != nil {
			st.count--
			return st.elemErr("(" + string(tok) + ") is out of range for FP64")
		}
		t.Data = binary.LittleEndian.AppendUint64(t.Data, math.Float64bits(f))
		return nil
	case backends.FP16:
		f, err := strconv.ParseFloat(string(tok), 64)
		h, ok := Float16FromFloat64(f)
		if err != nil || !ok {
			st.count--
			return st.elemErr("(" + string(tok) + ") is out of range for FP16")
		}
		t.Data = binary.LittleEndian.AppendUint16(t.Data, h)
		return nil
	}
	// Integer types.
	if !integer {
		st.count--
		return st.elemErr("(" + string(tok) + ") is not an integer, the datatype is " + t.Datatype.String())
	}
	mag, neg, ok := parseIntToken(tok)
	var lo, hi uint64 // allowed magnitude for negatives / positives
	switch t.Datatype {
	case backends.UINT8:
		hi = math.MaxUint8
	case backends.UINT16:
		hi = math.MaxUint16
	case backends.UINT32:
		hi = math.MaxUint32
	case backends.UINT64:
		hi = math.MaxUint64
	case backends.INT8:
		lo, hi = 1<<7, math.MaxInt8
	case backends.INT16:
		lo, hi = 1<<15, math.MaxInt16
	case backends.INT32:
		lo, hi = 1<<31, math.MaxInt32
	case backends.INT64:
		lo, hi = 1<<63, math.MaxInt64
	}
	if !ok || (neg && mag > lo) || (!neg && mag > hi) {
		st.count--
		return st.elemErr("(" + string(tok) + ") is out of range for " + t.Datatype.String())
	}
	v := mag
	if neg {
		v = -mag
	}
	switch st.esize {
	case 1:
		t.Data = append(t.Data, byte(v))
	case 2:
		t.Data = binary.LittleEndian.AppendUint16(t.Data, uint16(v))
	case 4:
		t.Data = binary.LittleEndian.AppendUint32(t.Data, uint32(v))
	default:
		t.Data = binary.LittleEndian.AppendUint64(t.Data, v)
	}
	return nil
}

// InferResponse decoding --------------------------------------------------

// DecodeInferResponse decodes a KServe v2 infer response body (jsonLen as for
// DecodeInferRequest). The accelgate_* parameters, when present, fill
// Backend, Hardware and CostUSD. Nothing in the result aliases body. Errors
// wrap backends.ErrBadRequest; a transport that reads a server's answer
// should re-classify them.
func DecodeInferResponse(body []byte, jsonLen int) (*InferResponse, error) {
	js, bin, err := split(body, jsonLen)
	if err != nil {
		return nil, err
	}
	r := &InferResponse{}
	s := &scanner{b: js}
	var tensors []tensorJSON
	hasOutputs := false
	err = s.object(func(key []byte) error {
		switch string(key) {
		case "model_name", "model_version", "id":
			if s.peek() != '"' {
				return badf(string(key), "%q must be a string", key)
			}
			k := key[len(key)-2]
			v, err := s.str()
			switch k {
			case 'm': // model_name
				r.ModelName = v
			case 'o': // model_version
				r.ModelVersion = v
			default: // id
				r.ID = v
			}
			return err
		case "parameters":
			if s.peek() != '{' {
				return badf("parameters", "\"parameters\" must be an object")
			}
			return s.object(func(key []byte) error {
				switch string(key) {
				case "accelgate_backend", "accelgate_hardware":
					if s.peek() != '"' {
						return s.skip(2)
					}
					v, err := s.str()
					if key[len("accelgate_")] == 'b' {
						r.Backend = v
					} else {
						r.Hardware = v
					}
					return err
				case "accelgate_cost_usd":
					f, err := floatParam(s, "accelgate_cost_usd")
					r.CostUSD = f
					return err
				}
				return s.skip(2)
			})
		case "outputs":
			hasOutputs = true
			var err error
			tensors, err = decodeTensorList(s, "output")
			return err
		}
		return s.skip(1)
	})
	if err == nil && s.peek() != 0 {
		err = errSyntax
	}
	if err != nil {
		return nil, jsonErr(s, err)
	}
	if !hasOutputs {
		return nil, badf("outputs", "the response has no \"outputs\"")
	}
	r.Outputs, err = finishTensors(tensors, bin, jsonLen >= 0, "output")
	if err != nil {
		return nil, err
	}
	r.Binary = make([]bool, len(tensors))
	for i := range tensors {
		r.Binary[i] = tensors[i].binSize >= 0
	}
	return r, nil
}

// DecodeIndexRequest decodes the body of Triton's POST /v2/repository/index:
// an object whose optional "ready" member, when true, asks for the ready
// models only.
func DecodeIndexRequest(body []byte) (onlyReady bool, err error) {
	s := &scanner{b: body}
	err = s.object(func(key []byte) error {
		if string(key) == "ready" {
			v, err := boolParam(s, "ready")
			onlyReady = v
			return err
		}
		return s.skip(1)
	})
	if err == nil && s.peek() != 0 {
		err = errSyntax
	}
	return onlyReady, jsonErr(s, err)
}
