package kserve

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/accelgate/accelgate/backends"
)

func le32(vs ...float32) []byte {
	var b []byte
	for _, v := range vs {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
	}
	return b
}

func bytesData(ss ...string) []byte {
	var b []byte
	for _, s := range ss {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(s)))
		b = append(b, s...)
	}
	return b
}

func mustDecode(t *testing.T, body string, jsonLen int) *InferRequest {
	t.Helper()
	r, err := DecodeInferRequest([]byte(body), jsonLen)
	if err != nil {
		t.Fatalf("decode %q: %v", body, err)
	}
	return r
}

func TestDecodeFlatAndNested(t *testing.T) {
	flat := mustDecode(t, `{"id":"42","inputs":[{"name":"x","shape":[2,3],"datatype":"FP32","data":[1,2,3,4,5,6.5]}]}`, -1)
	nested := mustDecode(t, `{"id":"42","inputs":[{"data":[[1,2,3],[4,5,6.5]],"name":"x","datatype":"FP32","shape":[2,3]}]}`, -1)
	want := le32(1, 2, 3, 4, 5, 6.5)
	for _, r := range []*InferRequest{flat, nested} {
		if r.ID != "42" || len(r.Inputs) != 1 || !bytes.Equal(r.Inputs[0].Data, want) || r.Inputs[0].Datatype != backends.FP32 {
			t.Fatalf("bad decode: %+v", r)
		}
		if err := r.Inputs[0].Validate(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestDecodeEveryDatatype(t *testing.T) {
	cases := []struct {
		dt, data string
		want     []byte
	}{
		{"BOOL", `[true,false,true]`, []byte{1, 0, 1}},
		{"UINT8", `[0,255,7]`, []byte{0, 255, 7}},
		{"INT8", `[-128,127,-1]`, []byte{0x80, 0x7f, 0xff}},
		{"UINT16", `[0,65535,1]`, []byte{0, 0, 0xff, 0xff, 1, 0}},
		{"INT16", `[-32768,32767,-1]`, []byte{0, 0x80, 0xff, 0x7f, 0xff, 0xff}},
		{"UINT32", `[0,4294967295,1]`, []byte{0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 1, 0, 0, 0}},
		{"INT32", `[-2147483648,2147483647,-1]`, []byte{0, 0, 0, 0x80, 0xff, 0xff, 0xff, 0x7f, 0xff, 0xff, 0xff, 0xff}},
		{"UINT64", `[0,18446744073709551615,1]`, append(append(make([]byte, 8), bytes.Repeat([]byte{0xff}, 8)...), 1, 0, 0, 0, 0, 0, 0, 0)},
		{"INT64", `[-9223372036854775808,9223372036854775807,-1]`, append(append([]byte{0, 0, 0, 0, 0, 0, 0, 0x80}, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f), bytes.Repeat([]byte{0xff}, 8)...)},
		{"FP16", `[1,-2,65504]`, []byte{0x00, 0x3c, 0x00, 0xc0, 0xff, 0x7b}},
		{"FP32", `[1.5,-2,1e-45]`, le32(1.5, -2, math.Float32frombits(1))},
		{"FP64", `[0.1,-2,1e300]`, binary.LittleEndian.AppendUint64(binary.LittleEndian.AppendUint64(binary.LittleEndian.AppendUint64(nil, math.Float64bits(0.1)), math.Float64bits(-2)), math.Float64bits(1e300))},
		{"BYTES", `["a","\u00e9\n",""]`, bytesData("a", "é\n", "")},
	}
	for _, c := range cases {
		r, err := DecodeInferRequest([]byte(`{"inputs":[{"name":"t","datatype":"`+c.dt+`","shape":[3],"data":`+c.data+`}]}`), -1)
		if err != nil {
			t.Fatalf("%s: %v", c.dt, err)
		}
		if !bytes.Equal(r.Inputs[0].Data, c.want) {
			t.Fatalf("%s: data % x, want % x", c.dt, r.Inputs[0].Data, c.want)
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	cases := []struct{ body, want string }{
		{`{"inputs":[{"name":"input","datatype":"FP32","shape":[1,3],"data":[1,2,3,4,5,6,7,8,9,10]}]}`, `input "input": data has more than the 3 elements`},
		{`{"inputs":[{"name":"input","datatype":"FP32","shape":[1,3],"data":[1,2]}]}`, `input "input": data has 2 elements, shape [1,3] needs 3`},
		{`{"inputs":[{"name":"x","datatype":"FP32","shape":[2,2],"data":[[1,2],[3]]}]}`, `not a regular array`},
		{`{"inputs":[{"name":"x","datatype":"FP32","shape":[2,2],"data":[[1,2,3,4]]}]}`, `nested data has dimensions [1 4], shape is [2 2]`},
		{`{"inputs":[{"name":"x","datatype":"FP32","shape":[2],"data":[1,[2]]}]}`, `not a regular array`},
		{`{"inputs":[{"name":"x","datatype":"BF16","shape":[1],"data":[1]}]}`, `BF16 data cannot be sent as JSON`},
		{`{"inputs":[{"name":"x","datatype":"UINT8","shape":[1],"data":[256]}]}`, `out of range for UINT8`},
		{`{"inputs":[{"name":"x","datatype":"INT8","shape":[1],"data":[-129]}]}`, `out of range for INT8`},
		{`{"inputs":[{"name":"x","datatype":"UINT32","shape":[1],"data":[-1]}]}`, `out of range for UINT32`},
		{`{"inputs":[{"name":"x","datatype":"INT32","shape":[1],"data":[1.5]}]}`, `is not an integer`},
		{`{"inputs":[{"name":"x","datatype":"UINT64","shape":[1],"data":[18446744073709551616]}]}`, `out of range for UINT64`},
		{`{"inputs":[{"name":"x","datatype":"FP16","shape":[1],"data":[65520]}]}`, `out of range for FP16`},
		{`{"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1e39]}]}`, `out of range for FP32`},
		{`{"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":["1"]}]}`, `is not a number`},
		{`{"inputs":[{"name":"x","datatype":"BOOL","shape":[1],"data":[1]}]}`, `is not a boolean`},
		{`{"inputs":[{"name":"x","datatype":"BYTES","shape":[1],"data":[1]}]}`, `is not a string`},
		{`{"inputs":[{"name":"x","datatype":"FP8","shape":[1],"data":[1]}]}`, `unknown datatype "FP8"`},
		{`{"inputs":[{"name":"x","shape":[1],"data":[1]}]}`, `has no "datatype"`},
		{`{"inputs":[{"name":"x","datatype":"FP32","data":[1]}]}`, `has no "shape"`},
		{`{"inputs":[{"datatype":"FP32","shape":[1],"data":[1]}]}`, `inputs[0] has no "name"`},
		{`{"inputs":[{"name":"x","datatype":"FP32","shape":[1]}]}`, `neither "data" nor the binary_data_size`},
		{`{"inputs":[{"name":"x","datatype":"FP32","shape":[-1],"data":[]}]}`, `invalid dimension -1`},
		{`{"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1],"parameters":{"binary_data_size":4}}]}`, `both "data" and`},
		{`{"inputs":[{"name":"x","datatype":"FP32","shape":[1],"parameters":{"binary_data_size":4}}]}`, `no Inference-Header-Content-Length`},
		{`{"inputs":[]`, `invalid JSON`},
		{`{"inputs":[]} x`, `invalid JSON`},
		{`[]`, `invalid JSON`},
		{`{}`, `no "inputs"`},
		{`{"id":5,"inputs":[]}`, `"id" must be a string`},
		{`{"inputs":[],"parameters":{"priority":"high"}}`, `"priority" must be an integer`},
		{`{"inputs":[],"parameters":{"timeout":1.5}}`, `"timeout" must be a 64-bit integer`},
		{`{"inputs":[],"outputs":[{"name":"a"},{"name":"a"}]}`, `requested twice`},
		{`{"inputs":[],"outputs":[{"name":"a","parameters":{"binary_data":1}}]}`, `"binary_data" must be a boolean`},
		{strings.Repeat("[", 100), `invalid JSON`},
		{`{"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":` + strings.Repeat("[", 100) + `}]}`, `nested deeper`},
	}
	for _, c := range cases {
		_, err := DecodeInferRequest([]byte(c.body), -1)
		if err == nil {
			t.Errorf("%s: no error", c.body)
			continue
		}
		if !errors.Is(err, backends.ErrBadRequest) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %q, want one containing %q wrapping ErrBadRequest", c.body, err, c.want)
		}
	}
}

func TestDecodeBinaryExtension(t *testing.T) {
	js := `{"inputs":[{"name":"a","shape":[2,2],"datatype":"UINT32","parameters":{"binary_data_size":16}},` +
		`{"name":"b","shape":[3],"datatype":"BOOL","parameters":{"binary_data_size":3}},` +
		`{"name":"c","shape":[1],"datatype":"FP32","data":[2]},` +
		`{"name":"d","shape":[2],"datatype":"BYTES","parameters":{"binary_data_size":11}}],` +
		`"outputs":[{"name":"o1","parameters":{"binary_data":true}},{"name":"o2"},{"name":"o3","parameters":{"binary_data":false}}],` +
		`"parameters":{"binary_data_output":true,"slo_ms":12.5,"priority":2,"timeout":5000,"other":"x"}}`
	bin := []byte{1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0, 1, 0, 1}
	bin = append(bin, bytesData("hey", "")...)
	body := append([]byte(js), bin...)
	r := mustDecode(t, string(body), len(js))
	if len(r.Inputs) != 4 || r.Inputs[0].Data[4] != 2 || !bytes.Equal(r.Inputs[1].Data, []byte{1, 0, 1}) || !bytes.Equal(r.Inputs[2].Data, le32(2)) || !bytes.Equal(r.Inputs[3].Data, bytesData("hey", "")) {
		t.Fatalf("bad inputs %+v", r.Inputs)
	}
	// Nothing aliases the body.
	for i := range body {
		body[i] = 0xee
	}
	if r.Inputs[0].Data[4] != 2 || r.Inputs[1].Data[0] != 1 {
		t.Fatal("decoded tensors alias the body")
	}
	p := r.Params
	if !p.BinaryDataOutput || !p.HasSLO || p.SLOms != 12.5 || p.Priority != 2 || p.TimeoutUS != 5000 {
		t.Fatalf("params %+v", p)
	}
	if !r.Outputs[0].Binary || !r.Outputs[1].Binary || r.Outputs[2].Binary || !r.WantsBinary("o2") || r.WantsBinary("o3") {
		t.Fatalf("outputs %+v", r.Outputs)
	}

	// Sizes must add up exactly.
	for _, extra := range [][]byte{bin[:len(bin)-1], append(append([]byte{}, bin...), 0)} {
		_, err := DecodeInferRequest(append([]byte(js), extra...), len(js))
		if !errors.Is(err, backends.ErrBadRequest) {
			t.Fatalf("size mismatch accepted: %v", err)
		}
	}
	// The header longer than the body.
	if _, err := DecodeInferRequest([]byte(js), len(js)+1); !errors.Is(err, backends.ErrBadRequest) {
		t.Fatal(err)
	}
	// A BOOL byte that is not 0 or 1; a binary size that does not fit the shape.
	bad := []string{
		`{"inputs":[{"name":"b","shape":[1],"datatype":"BOOL","parameters":{"binary_data_size":1}}]}` + "\x02",
		`{"inputs":[{"name":"b","shape":[2],"datatype":"FP32","parameters":{"binary_data_size":4}}]}` + "\x00\x00\x00\x00",
		`{"inputs":[{"name":"b","shape":[2],"datatype":"BYTES","parameters":{"binary_data_size":4}}]}` + "\x00\x00\x00\x00",
	}
	for _, b := range bad {
		js := b[:strings.LastIndexByte(b, '}')+1]
		_, err := DecodeInferRequest([]byte(b), len(js))
		if !errors.Is(err, backends.ErrBadRequest) || !strings.Contains(err.Error(), `input "b"`) {
			t.Fatalf("%q: %v", b, err)
		}
	}
}

func TestFloat16(t *testing.T) {
	cases := []struct {
		f  float64
		h  uint16
		ok bool
	}{
		{0, 0, true}, {math.Copysign(0, -1), 0x8000, true}, {1, 0x3c00, true}, {-2, 0xc000, true},
		{65504, 0x7bff, true}, {65519.99, 0x7bff, true}, {65520, 0x7c00, false},
		{math.Ldexp(1, -24), 0x0001, true}, {math.Ldexp(1, -25), 0, true}, // tie to even → 0
		{math.Ldexp(3, -25), 0x0002, true},                                          // 1.5 units → 2 (even)
		{math.Ldexp(1, -14), 0x0400, true}, {math.Ldexp(1023.5, -24), 0x0400, true}, // carry into the smallest normal
		{1 + math.Ldexp(1, -11), 0x3c00, true},   // tie → even (down)
		{1 + 3*math.Ldexp(1, -11), 0x3c02, true}, // tie → even (up)
		{math.Inf(1), 0x7c00, false}, {1e-300, 0, true},
	}
	for _, c := range cases {
		h, ok := Float16FromFloat64(c.f)
		if h != c.h || ok != c.ok {
			t.Errorf("%v → %#04x %v, want %#04x %v", c.f, h, ok, c.h, c.ok)
		}
	}
	// Every finite half round-trips exactly.
	for h := 0; h < 1<<16; h++ {
		if h&0x7c00 == 0x7c00 {
			continue
		}
		got, ok := Float16FromFloat64(Float16ToFloat64(uint16(h)))
		if !ok || got != uint16(h) {
			t.Fatalf("%#04x → %v → %#04x", h, Float16ToFloat64(uint16(h)), got)
		}
	}
}

// randomTensor makes a tensor of the datatype with random contents; for JSON
// round trips, float contents are finite and BYTES are UTF-8 unless wild.
func randomTensor(rng *rand.Rand, name string, dt backends.DataType, wild bool) backends.Tensor {
	shape := []int64{int64(rng.IntN(3)), int64(1 + rng.IntN(4))}
	if rng.IntN(5) == 0 {
		shape = []int64{} // a scalar
	}
	n := backends.NumElements(shape)
	t := backends.Tensor{Name: name, Datatype: dt, Shape: shape, Data: []byte{}}
	for range n {
		switch dt {
		case backends.BOOL:
			t.Data = append(t.Data, byte(rng.IntN(2)))
		case backends.BYTES:
			s := []byte("x\"\\\n\u00e9\U0001F980")[:rng.IntN(11)]
			if wild {
				s = append(s, 0xff)
			}
			t.Data = binary.LittleEndian.AppendUint32(t.Data, uint32(len(s)))
			t.Data = append(t.Data, s...)
		case backends.FP32:
			f := float32(rng.NormFloat64() * math.Pow(10, float64(rng.IntN(60)-30)))
			if wild && rng.IntN(3) == 0 {
				f = float32(math.Inf(-1))
			}
			t.Data = binary.LittleEndian.AppendUint32(t.Data, math.Float32bits(f))
		case backends.FP64:
			f := rng.NormFloat64() * math.Pow(10, float64(rng.IntN(600)-300))
			if wild && rng.IntN(3) == 0 {
				f = math.NaN()
			}
			t.Data = binary.LittleEndian.AppendUint64(t.Data, math.Float64bits(f))
		default:
			for range dt.Size() {
				t.Data = append(t.Data, byte(rng.Uint32()))
			}
		}
	}
	return t
}

var allTypes = []backends.DataType{backends.BOOL, backends.UINT8, backends.UINT16, backends.UINT32, backends.UINT64,
	backends.INT8, backends.INT16, backends.INT32, backends.INT64, backends.FP16, backends.FP32, backends.FP64,
	backends.BF16, backends.BYTES}

func sameTensor(a, b *backends.Tensor) bool {
	if a.Name != b.Name || a.Datatype != b.Datatype || len(a.Shape) != len(b.Shape) || !bytes.Equal(a.Data, b.Data) {
		return false
	}
	for i := range a.Shape {
		if a.Shape[i] != b.Shape[i] {
			return false
		}
	}
	return true
}

// TestRoundTripEveryDatatype is a property test: for random tensors of every
// datatype, encoding a response (and a request) and decoding it gives the
// same tensors back, bit for bit, whether sent as JSON or binary.
func TestRoundTripEveryDatatype(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for iter := 0; iter < 300; iter++ {
		var outs []backends.Tensor
		var bin []bool
		for i, dt := range allTypes {
			outs = append(outs, randomTensor(rng, "t"+dt.String(), dt, iter%4 == 3))
			bin = append(bin, (iter+i)%2 == 0)
		}
		resp := &InferResponse{ModelName: "m", ModelVersion: "1", ID: "id-\"1", Backend: "b0", Hardware: "l4", CostUSD: 0.00125, Outputs: outs, Binary: bin}
		body, jl := EncodeInferResponse([]byte("junk"), resp)
		got, err := DecodeInferResponse(body[4:], max(jl, -1))
		if err != nil {
			t.Fatalf("iter %d: %v\n%s", iter, err, body)
		}
		if got.ModelName != "m" || got.ModelVersion != "1" || got.ID != "id-\"1" || got.Backend != "b0" || got.Hardware != "l4" || got.CostUSD != 0.00125 {
			t.Fatalf("iter %d: header fields %+v", iter, got)
		}
		for i := range outs {
			if !sameTensor(&outs[i], &got.Outputs[i]) {
				t.Fatalf("iter %d: %s: %+v != %+v", iter, outs[i].Name, outs[i], got.Outputs[i])
			}
			if got.Binary[i] != (bin[i] || NeedsBinary(&outs[i])) {
				t.Fatalf("iter %d: %s: binary %v", iter, outs[i].Name, got.Binary[i])
			}
		}
		for _, binIn := range []bool{false, true} {
			ir := &InferRequest{ID: "r", Inputs: outs, Outputs: []backends.OutputRequest{{Name: "o", Binary: true}, {Name: "p"}},
				Params: Params{HasTimeout: true, TimeoutUS: 99, HasPriority: true, Priority: 1, HasSLO: true, SLOms: 2.5}}
			body, jl := EncodeInferRequest(nil, ir, binIn)
			back, err := DecodeInferRequest(body, jl)
			if err != nil {
				t.Fatalf("iter %d request: %v\n%s", iter, err, body)
			}
			for i := range outs {
				if !sameTensor(&outs[i], &back.Inputs[i]) {
					t.Fatalf("iter %d: request %s: %+v != %+v", iter, outs[i].Name, outs[i], back.Inputs[i])
				}
			}
			if back.ID != "r" || back.Params != ir.Params || len(back.Outputs) != 2 || !back.Outputs[0].Binary || back.Outputs[1].Binary {
				t.Fatalf("iter %d: request fields %+v", iter, back)
			}
		}
	}
}

func TestEncodeResponseShape(t *testing.T) {
	resp := &InferResponse{ModelName: "m", Outputs: []backends.Tensor{
		{Name: "a", Datatype: backends.FP32, Shape: []int64{1, 2}, Data: le32(0.5, 1e-7)},
		{Name: "h", Datatype: backends.FP16, Shape: []int64{1}, Data: []byte{0, 0x3c}},
	}}
	body, jl := EncodeInferResponse(nil, resp)
	want := `{"model_name":"m","outputs":[{"name":"a","datatype":"FP32","shape":[1,2],"data":[0.5,1e-07]},{"name":"h","datatype":"FP16","shape":[1],"parameters":{"binary_data_size":2}}]}`
	if jl != len(want) || string(body[:jl]) != want || !bytes.Equal(body[jl:], []byte{0, 0x3c}) {
		t.Fatalf("got %d %q", jl, body)
	}
	if !utf8.Valid(body[:jl]) {
		t.Fatal("not UTF-8")
	}
}

// TestParseFloatMatchesStrconv: the fast float paths agree with strconv bit
// for bit.
func TestParseFloatMatchesStrconv(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	toks := []string{"0", "-0", "0.0", "1", "-1", "0.5", "0.005", "123456789", "16777216", "16777217", "0.1", "1e10", "1E-10",
		"3.4028235e38", "1e-45", "123.456e-7", "9007199254740993", "0.30000000000000004", "100000000000000000000000", "1e400", "-1e-400", "0.000000000000000000001"}
	for range 200000 {
		var b []byte
		if rng.IntN(2) == 0 {
			b = append(b, '-')
		}
		b = strconv.AppendUint(b, rng.Uint64N(1<<uint(rng.IntN(60)+1)), 10)
		if rng.IntN(2) == 0 {
			b = append(b, '.')
			b = strconv.AppendUint(b, rng.Uint64N(1000000000), 10)
		}
		if rng.IntN(3) == 0 {
			b = append(b, 'e')
			b = strconv.AppendInt(b, int64(rng.IntN(80)-40), 10)
		}
		toks = append(toks, string(b))
	}
	for _, tok := range toks {
		f32, err32 := parseFloat32([]byte(tok))
		w32, werr32 := strconv.ParseFloat(tok, 32)
		if math.Float32bits(f32) != math.Float32bits(float32(w32)) || (err32 == nil) != (werr32 == nil) {
			t.Fatalf("%s: float32 %v (%v), strconv %v (%v)", tok, f32, err32, float32(w32), werr32)
		}
		f64, err64 := parseFloat64([]byte(tok))
		w64, werr64 := strconv.ParseFloat(tok, 64)
		if math.Float64bits(f64) != math.Float64bits(w64) || (err64 == nil) != (werr64 == nil) {
			t.Fatalf("%s: float64 %v (%v), strconv %v (%v)", tok, f64, err64, w64, werr64)
		}
	}
}
