package gateway

import (
	"encoding/binary"
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/accelgate/accelgate/backends"
	"github.com/accelgate/accelgate/backends/kserve"
	"github.com/accelgate/accelgate/router"
)

// ksWantError checks a KServe error answer: the status and a {"error": "..."}
// body containing want.
func ksWantError(t *testing.T, resp *fasthttp.Response, status int, want string) {
	t.Helper()
	var e struct {
		Error *string `json:"error"`
	}
	if resp.StatusCode() != status {
		t.Fatalf("status %d, want %d: %s", resp.StatusCode(), status, resp.Body())
	}
	if err := json.Unmarshal(resp.Body(), &e); err != nil || e.Error == nil || *e.Error == "" {
		t.Fatalf("not a KServe error body: %s (%v)", resp.Body(), err)
	}
	if !strings.Contains(*e.Error, want) {
		t.Fatalf("error %q does not contain %q", *e.Error, want)
	}
	if string(resp.Header.ContentType()) != "application/json" {
		t.Fatalf("content type %q", resp.Header.ContentType())
	}
}

func ksJSON(t *testing.T, resp *fasthttp.Response, status int, v any) {
	t.Helper()
	if resp.StatusCode() != status {
		t.Fatalf("status %d, want %d: %s", resp.StatusCode(), status, resp.Body())
	}
	if err := json.Unmarshal(resp.Body(), v); err != nil {
		t.Fatalf("bad JSON %s: %v", resp.Body(), err)
	}
}

func TestKServeHealthAndServerMetadata(t *testing.T) {
	e := newKSEnv(t, Config{Name: "gw", Version: "9.9"}, router.Config{})
	var md struct {
		Name       string   `json:"name"`
		Version    string   `json:"version"`
		Extensions []string `json:"extensions"`
	}
	for _, p := range []string{"/v2", "/v2/"} {
		ksJSON(t, e.do(t, "GET", p, ""), 200, &md)
		if md.Name != "gw" || md.Version != "9.9" || !containsString(md.Extensions, "binary_tensor_data") {
			t.Fatalf("server metadata %+v", md)
		}
	}
	var live struct{ Live bool }
	ksJSON(t, e.do(t, "GET", "/v2/health/live", ""), 200, &live)
	var ready struct{ Ready bool }
	ksJSON(t, e.do(t, "GET", "/v2/health/ready", ""), 200, &ready)
	if !live.Live || !ready.Ready {
		t.Fatal("not live or not ready")
	}
	if r := e.do(t, "HEAD", "/v2/health/ready", ""); r.StatusCode() != 200 {
		t.Fatalf("HEAD: %d", r.StatusCode())
	}
	for _, c := range []struct{ method, path, allow string }{
		{"POST", "/v2", "GET"}, {"POST", "/v2/health/live", "GET"}, {"DELETE", "/v2/health/ready", "GET"},
		{"PUT", "/v2/models/vision", "GET"}, {"POST", "/v2/models/vision/versions/1/ready", "GET"},
		{"GET", "/v2/models/vision/infer", "POST"}, {"GET", "/v2/models/vision/versions/2/infer", "POST"},
		{"GET", "/v2/repository/index", "POST"},
	} {
		resp := e.do(t, c.method, c.path, "")
		ksWantError(t, resp, 405, "not allowed")
		if string(resp.Header.Peek("Allow")) != c.allow {
			t.Fatalf("%s %s: Allow %q", c.method, c.path, resp.Header.Peek("Allow"))
		}
	}
	for _, p := range []string{"/v2/nope", "/v2/models", "/v2/models/", "/v2/models/vision/versions", "/v2/models/vision/stats", "/v2/models/vision/versions/1/infer/x", "/v2x"} {
		resp := e.do(t, "GET", p, "")
		if p == "/v2x" { // not under /v2: the OpenAI front's 404
			if resp.StatusCode() != 404 || !strings.Contains(string(resp.Body()), `"type"`) {
				t.Fatalf("/v2x: %d %s", resp.StatusCode(), resp.Body())
			}
			continue
		}
		ksWantError(t, resp, 404, "unknown route")
	}
	// The OpenAI routes are untouched.
	if r := e.do(t, "GET", "/v1/models", ""); r.StatusCode() != 200 || !strings.Contains(string(r.Body()), `"object":"list"`) {
		t.Fatalf("/v1/models: %d %s", r.StatusCode(), r.Body())
	}
}

func TestKServeModelMetadataAndReady(t *testing.T) {
	e := newKSEnv(t, Config{}, router.Config{})
	type spec struct {
		Name     string  `json:"name"`
		Datatype string  `json:"datatype"`
		Shape    []int64 `json:"shape"`
	}
	var md struct {
		Name     string   `json:"name"`
		Versions []string `json:"versions"`
		Platform string   `json:"platform"`
		Inputs   []spec   `json:"inputs"`
		Outputs  []spec   `json:"outputs"`
	}
	for _, p := range []string{"/v2/models/vision", "/v2/models/vision/versions/2"} {
		ksJSON(t, e.do(t, "GET", p, ""), 200, &md)
		if md.Name != "vision" || !slices.Equal(md.Versions, []string{"1", "2"}) || md.Platform != "onnxruntime_onnx" ||
			len(md.Inputs) != 1 || md.Inputs[0].Name != "input" || md.Inputs[0].Datatype != "FP32" || !slices.Equal(md.Inputs[0].Shape, []int64{-1, 3}) ||
			len(md.Outputs) != 2 || md.Outputs[1].Name != "aux" || md.Outputs[1].Datatype != "INT64" || !slices.Equal(md.Outputs[1].Shape, []int64{-1}) {
			t.Fatalf("%s: metadata %+v", p, md)
		}
	}
	var ready struct {
		Name  string `json:"name"`
		Ready bool   `json:"ready"`
	}
	for _, p := range []string{"/v2/models/vision/ready", "/v2/models/vision/versions/1/ready"} {
		ksJSON(t, e.do(t, "GET", p, ""), 200, &ready)
		if ready.Name != "vision" || !ready.Ready {
			t.Fatalf("%s: %+v", p, ready)
		}
	}
	ksWantError(t, e.do(t, "GET", "/v2/models/nope", ""), 404, `"nope" does not exist`)
	ksWantError(t, e.do(t, "GET", "/v2/models/nope/ready", ""), 404, `"nope" does not exist`)
	ksWantError(t, e.do(t, "GET", "/v2/models/vision/versions/3", ""), 404, `has no version "3"`)
	ksWantError(t, e.do(t, "GET", "/v2/models/vision/versions/3/ready", ""), 404, `has no version "3"`)
	ksWantError(t, e.do(t, "GET", "/v2/models/llm", ""), 400, "served by the OpenAI API")
}

func TestKServeRepositoryIndex(t *testing.T) {
	e := newKSEnv(t, Config{}, router.Config{})
	type entry struct {
		Name, Version, State string
		Reason               *string
	}
	var idx []entry
	ksJSON(t, e.do(t, "POST", "/v2/repository/index", ""), 200, &idx)
	// Tensor models only, one entry per version, sorted by name.
	want := []string{"echo/1", "resnet-50/1", "vision/1", "vision/2"}
	if len(idx) != len(want) {
		t.Fatalf("index %+v", idx)
	}
	for i, en := range idx {
		if en.Name+"/"+en.Version != want[i] || en.State != "READY" || en.Reason == nil {
			t.Fatalf("entry %d: %+v", i, en)
		}
	}
	ksJSON(t, e.do(t, "POST", "/v2/repository/index", `{"ready":true}`), 200, &idx)
	if len(idx) != 4 {
		t.Fatalf("ready index %+v", idx)
	}
	ksWantError(t, e.do(t, "POST", "/v2/repository/index", `{"ready":1}`), 400, "boolean")
	ksWantError(t, e.do(t, "POST", "/v2/repository/index", `{`), 400, "invalid JSON")
}

type ksOut struct {
	Name       string          `json:"name"`
	Datatype   string          `json:"datatype"`
	Shape      []int64         `json:"shape"`
	Data       json.RawMessage `json:"data"`
	Parameters map[string]any  `json:"parameters"`
}

type ksResp struct {
	ModelName    string         `json:"model_name"`
	ModelVersion string         `json:"model_version"`
	ID           string         `json:"id"`
	Parameters   map[string]any `json:"parameters"`
	Outputs      []ksOut        `json:"outputs"`
}

func TestKServeInferJSON(t *testing.T) {
	e := newKSEnv(t, Config{}, router.Config{})
	bodies := map[string]string{
		"flat":   `{"id":"req-7","inputs":[{"name":"input","shape":[2,3],"datatype":"FP32","data":[1,2,3,4,5,6.5]}]}`,
		"nested": `{"id":"req-7","inputs":[{"name":"input","shape":[2,3],"datatype":"FP32","data":[[1,2,3],[4,5,6.5]]}]}`,
	}
	for kind, body := range bodies {
		resp := e.do(t, "POST", "/v2/models/vision/infer", body)
		var r ksResp
		ksJSON(t, resp, 200, &r)
		if r.ModelName != "vision" || r.ModelVersion != "1" || r.ID != "req-7" || len(r.Outputs) != 2 {
			t.Fatalf("%s: %s", kind, resp.Body())
		}
		o := r.Outputs[0]
		if o.Name != "output" || o.Datatype != "FP32" || !slices.Equal(o.Shape, []int64{2, 2}) || string(o.Data) != "[6,0,15.5,1]" {
			t.Fatalf("%s: output %+v %s", kind, o, o.Data)
		}
		if a := r.Outputs[1]; a.Name != "aux" || a.Datatype != "INT64" || string(a.Data) != "[0,1]" {
			t.Fatalf("%s: aux %+v", kind, a)
		}
		if r.Parameters["accelgate_backend"] != "t0" || r.Parameters["accelgate_hardware"] != "test-gpu" || r.Parameters["accelgate_cost_usd"] != 0.00125 {
			t.Fatalf("%s: parameters %v", kind, r.Parameters)
		}
		if string(resp.Header.Peek(HeaderBackend)) != "t0" || string(resp.Header.Peek(HeaderHardware)) != "test-gpu" ||
			string(resp.Header.Peek(HeaderCost)) != "0.0012500000" || !strings.HasPrefix(string(resp.Header.Peek(HeaderRequestID)), "infer-") {
			t.Fatalf("%s: headers %s", kind, resp.Header.String())
		}
		if string(resp.Header.ContentType()) != "application/json" || len(resp.Header.Peek(kserve.HeaderInferenceHeaderContentLength)) != 0 {
			t.Fatalf("%s: a JSON answer with binary headers: %s", kind, resp.Header.String())
		}
	}
	// The request reached the backend in canonical form, with its version,
	// rows, client id and the model's default scheduling.
	req := e.srv.Dispatcher().Backends()[0].(*ksFake).lastReq
	if req.Op != backends.OpTensor || req.Model != "vision" || req.Rows != 2 || req.ClientID != "req-7" || req.Priority != backends.Standard ||
		req.SLO.E2E != 100*time.Millisecond || req.Deadline.Sub(req.Arrival) != time.Minute || len(req.Tensors[0].Data) != 24 {
		t.Fatalf("request %+v", req)
	}

	// A version in the path; requested outputs, in the requested order.
	resp := e.do(t, "POST", "/v2/models/vision/versions/2/infer",
		`{"inputs":[{"name":"input","shape":[1,3],"datatype":"FP32","data":[1,1,1]}],"outputs":[{"name":"aux"}]}`)
	var r ksResp
	ksJSON(t, resp, 200, &r)
	if r.ModelVersion != "2" || r.ID != "" || len(r.Outputs) != 1 || r.Outputs[0].Name != "aux" {
		t.Fatalf("requested outputs: %s", resp.Body())
	}
	if strings.Contains(string(resp.Body()), `"id"`) {
		t.Fatalf("an id without one in the request: %s", resp.Body())
	}
}

func TestKServeInferBinary(t *testing.T) {
	e := newKSEnv(t, Config{}, router.Config{})
	js := `{"id":"b1","inputs":[{"name":"input","shape":[2,3],"datatype":"FP32","parameters":{"binary_data_size":24}}],` +
		`"outputs":[{"name":"output","parameters":{"binary_data":true}},{"name":"aux"}]}`
	var bin []byte
	for _, f := range []float32{1, 2, 3, 4, 5, 6.5} {
		bin = binary.LittleEndian.AppendUint32(bin, math.Float32bits(f))
	}
	resp := e.do(t, "POST", "/v2/models/vision/infer", js+string(bin), kserve.HeaderInferenceHeaderContentLength, strconv.Itoa(len(js)))
	if resp.StatusCode() != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode(), resp.Body())
	}
	if string(resp.Header.ContentType()) != "application/octet-stream" {
		t.Fatalf("content type %q", resp.Header.ContentType())
	}
	jl, err := strconv.Atoi(string(resp.Header.Peek(kserve.HeaderInferenceHeaderContentLength)))
	if err != nil {
		t.Fatalf("no %s header: %s", kserve.HeaderInferenceHeaderContentLength, resp.Header.String())
	}
	body := resp.Body()
	var r ksResp
	if err := json.Unmarshal(body[:jl], &r); err != nil {
		t.Fatalf("JSON part: %v: %q", err, body[:jl])
	}
	if r.ID != "b1" || len(r.Outputs) != 2 || r.Outputs[0].Parameters["binary_data_size"] != float64(16) || r.Outputs[0].Data != nil || string(r.Outputs[1].Data) != "[0,1]" {
		t.Fatalf("binary response: %q", body[:jl])
	}
	out := body[jl:]
	if len(out) != 16 || math.Float32frombits(binary.LittleEndian.Uint32(out[8:])) != 15.5 {
		t.Fatalf("binary section % x", out)
	}
	// The codec decodes the same answer.
	dec, err := kserve.DecodeInferResponse(body, jl)
	if err != nil || len(dec.Outputs) != 2 || !dec.Binary[0] || dec.Binary[1] {
		t.Fatalf("decode: %+v %v", dec, err)
	}

	// binary_data_output at the request level, JSON inputs.
	resp = e.do(t, "POST", "/v2/models/vision/infer",
		`{"parameters":{"binary_data_output":true},"inputs":[{"name":"input","shape":[1,3],"datatype":"FP32","data":[1,2,3]}]}`)
	jl, _ = strconv.Atoi(string(resp.Header.Peek(kserve.HeaderInferenceHeaderContentLength)))
	if resp.StatusCode() != 200 || jl <= 0 || len(resp.Body()) != jl+8+8 {
		t.Fatalf("binary_data_output: %d %q", resp.StatusCode(), resp.Body())
	}

	// Errors of the extension.
	ksWantError(t, e.do(t, "POST", "/v2/models/vision/infer", js+string(bin[:20]), kserve.HeaderInferenceHeaderContentLength, strconv.Itoa(len(js))),
		400, `binary_data_size 24 runs past the end`)
	ksWantError(t, e.do(t, "POST", "/v2/models/vision/infer", js+string(bin)+"xx", kserve.HeaderInferenceHeaderContentLength, strconv.Itoa(len(js))),
		400, `the binary section has 26 bytes`)
	ksWantError(t, e.do(t, "POST", "/v2/models/vision/infer", js+string(bin), kserve.HeaderInferenceHeaderContentLength, "abc"),
		400, "invalid Inference-Header-Content-Length")
	ksWantError(t, e.do(t, "POST", "/v2/models/vision/infer", js+string(bin), kserve.HeaderInferenceHeaderContentLength, "100000"),
		400, "but the body has only")
	ksWantError(t, e.do(t, "POST", "/v2/models/vision/infer", js), 400, "no Inference-Header-Content-Length header")
}

// TestKServeEveryDatatype echoes one tensor of every datatype through the
// front: JSON where JSON can carry it, binary otherwise, and everything
// binary; the bytes come back unchanged.
func TestKServeEveryDatatype(t *testing.T) {
	e := newKSEnv(t, Config{}, router.Config{})
	jsonData := map[backends.DataType]string{
		backends.BOOL: `[[true,false]]`, backends.UINT8: `[[0,255]]`, backends.UINT16: `[[0,65535]]`, backends.UINT32: `[[0,4294967295]]`,
		backends.UINT64: `[[0,18446744073709551615]]`, backends.INT8: `[[-128,127]]`, backends.INT16: `[[-32768,32767]]`,
		backends.INT32: `[[-2147483648,2147483647]]`, backends.INT64: `[[-9223372036854775808,9223372036854775807]]`,
		backends.FP16: `[[1.5,-65504]]`, backends.FP32: `[[0.1,-3.4028235e+38]]`, backends.FP64: `[[0.1,1e-300]]`,
		backends.BYTES: `[["h\u00e9llo",""]]`,
	}
	var ins []backends.Tensor
	var parts []string
	var bin []byte
	for _, dt := range ksEchoTypes {
		name := "in_" + dt.String()
		if d, ok := jsonData[dt]; ok {
			parts = append(parts, `{"name":"`+name+`","datatype":"`+dt.String()+`","shape":[1,2],"data":`+d+`}`)
			continue
		}
		raw := []byte{0x80, 0x3f, 0x00, 0xc0} // BF16 1, -2
		bin = append(bin, raw...)
		parts = append(parts, `{"name":"`+name+`","datatype":"BF16","shape":[1,2],"parameters":{"binary_data_size":4}}`)
	}
	js := `{"id":"all","inputs":[` + strings.Join(parts, ",") + `]}`
	resp := e.do(t, "POST", "/v2/models/echo/infer", js+string(bin), kserve.HeaderInferenceHeaderContentLength, strconv.Itoa(len(js)))
	if resp.StatusCode() != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode(), resp.Body())
	}
	jl, _ := strconv.Atoi(string(resp.Header.Peek(kserve.HeaderInferenceHeaderContentLength)))
	dec, err := kserve.DecodeInferResponse(resp.Body(), jl)
	if err != nil {
		t.Fatal(err)
	}
	sent := e.srv.Dispatcher().Backends()[0].(*ksFake).lastReq.Tensors
	ins = sent
	if len(dec.Outputs) != len(ksEchoTypes) {
		t.Fatalf("%d outputs", len(dec.Outputs))
	}
	for i, o := range dec.Outputs {
		dt := ksEchoTypes[i]
		if o.Name != "out_"+dt.String() || o.Datatype != dt || string(o.Data) != string(ins[i].Data) {
			t.Fatalf("%s: %+v, sent %+v", dt, o, ins[i])
		}
		// FP16 and BF16 always come back binary; the rest as JSON.
		if dec.Binary[i] != (dt == backends.FP16 || dt == backends.BF16) {
			t.Fatalf("%s: binary %v", dt, dec.Binary[i])
		}
	}
	// Everything binary, both ways, through the codec's own encoder.
	body, jl := kserve.EncodeInferRequest(nil, &kserve.InferRequest{ID: "all", Inputs: ins, Params: kserve.Params{BinaryDataOutput: true}}, true)
	resp = e.do(t, "POST", "/v2/models/echo/versions/1/infer", string(body), kserve.HeaderInferenceHeaderContentLength, strconv.Itoa(jl))
	jl, _ = strconv.Atoi(string(resp.Header.Peek(kserve.HeaderInferenceHeaderContentLength)))
	dec, err = kserve.DecodeInferResponse(resp.Body(), jl)
	if err != nil || resp.StatusCode() != 200 {
		t.Fatalf("%d %v", resp.StatusCode(), err)
	}
	for i, o := range dec.Outputs {
		if !dec.Binary[i] || string(o.Data) != string(ins[i].Data) {
			t.Fatalf("%s: binary echo differs", o.Name)
		}
	}
}

func TestKServeInferErrors(t *testing.T) {
	e := newKSEnv(t, Config{}, router.Config{})
	in := func(dt, shape, data string) string {
		return `{"inputs":[{"name":"input","shape":` + shape + `,"datatype":"` + dt + `","data":` + data + `}]}`
	}
	cases := []struct {
		path, body string
		status     int
		want       string
	}{
		{"/v2/models/vision/infer", in("FP32", "[1,3]", "[1,2,3,4,5,6,7,8,9,10]"), 400, `input "input": data has more than the 3 elements`},
		{"/v2/models/vision/infer", in("FP32", "[1,3]", "[1,2]"), 400, `input "input": data has 2 elements, shape [1,3] needs 3`},
		{"/v2/models/vision/infer", in("INT32", "[1,3]", "[1,2,3]"), 400, `input "input" has datatype INT32, the model expects FP32`},
		{"/v2/models/vision/infer", in("FP32", "[1,4]", "[1,2,3,4]"), 400, `has shape [1 4], the model expects [-1 3]`},
		{"/v2/models/vision/infer", in("FP32", "[0,3]", "[]"), 400, `batch dimension`},
		{"/v2/models/vision/infer", `{"inputs":[{"name":"other","shape":[1],"datatype":"FP32","data":[1]}]}`, 400, `has no input "other"`},
		{"/v2/models/vision/infer", `{"inputs":[]}`, 400, `no inputs`},
		{"/v2/models/vision/infer", in("FP32", "[1,3]", "[1,2,3]")[:20], 400, `invalid JSON`},
		{"/v2/models/vision/infer", `{"inputs":[{"name":"input","shape":[1,3],"datatype":"FP32","data":[1,2,3]}],"outputs":[{"name":"nope"}]}`, 400, `has no output "nope"`},
		{"/v2/models/vision/infer", `{"inputs":[{"name":"input","shape":[1,3],"datatype":"FP32","data":[1,2,3]}],"parameters":{"priority":-1}}`, 400, `priority must be >= 0`},
		{"/v2/models/vision/infer", `{"inputs":[{"name":"input","shape":[1,3],"datatype":"FP32","data":[1,2,3]}],"parameters":{"timeout":0}}`, 400, `timeout must be a positive`},
		{"/v2/models/llm/infer", in("FP32", "[1,3]", "[1,2,3]"), 400, `served by the OpenAI API`},
		{"/v2/models/nope/infer", in("FP32", "[1,3]", "[1,2,3]"), 404, `"nope" does not exist`},
		{"/v2/models/vision/versions/9/infer", in("FP32", "[1,3]", "[1,2,3]"), 404, `has no version "9"`},
	}
	for _, c := range cases {
		ksWantError(t, e.do(t, "POST", c.path, c.body), c.status, c.want)
	}
	ksWantError(t, e.do(t, "POST", "/v2/models/vision/infer", in("FP32", "[1,3]", "[1,2,3]"), HeaderPriority, "urgent"), 400, "x-accelgate-priority")
	if n := e.srv.Dispatcher().Backends()[0].(*ksFake).calls; n != 0 {
		t.Fatalf("the backend was called %d times for bad requests", n)
	}
}

func TestKServeScheduling(t *testing.T) {
	e := newKSEnv(t, Config{}, router.Config{})
	body := `{"inputs":[{"name":"input","shape":[1,3],"datatype":"FP32","data":[1,2,3]}],"parameters":{"priority":1,"timeout":2000000}}`
	if r := e.do(t, "POST", "/v2/models/vision/infer", body); r.StatusCode() != 200 {
		t.Fatalf("%d %s", r.StatusCode(), r.Body())
	}
	req := e.srv.Dispatcher().Backends()[0].(*ksFake).lastReq
	if req.Priority != backends.Critical || req.SLO.E2E != 50*time.Millisecond || req.Deadline.Sub(req.Arrival) != 2*time.Second {
		t.Fatalf("parameters not applied: %v %v %v", req.Priority, req.SLO, req.Deadline.Sub(req.Arrival))
	}
	body = `{"inputs":[{"name":"input","shape":[1,3],"datatype":"FP32","data":[1,2,3]}],"parameters":{"slo_ms":77}}`
	if r := e.do(t, "POST", "/v2/models/vision/infer", body, HeaderPriority, "critical", HeaderTimeout, "1500"); r.StatusCode() != 200 {
		t.Fatalf("%d %s", r.StatusCode(), r.Body())
	}
	req = e.srv.Dispatcher().Backends()[0].(*ksFake).lastReq
	if req.Priority != backends.Critical || req.SLO.E2E != 77*time.Millisecond || req.Deadline.Sub(req.Arrival) != 1500*time.Millisecond {
		t.Fatalf("headers not applied: %v %v %v", req.Priority, req.SLO, req.Deadline.Sub(req.Arrival))
	}
	// The backend's context carries the hard deadline.
	f := e.srv.Dispatcher().Backends()[0].(*ksFake)
	if dl, ok := f.lastCtx.Deadline(); !ok || !dl.Equal(req.Deadline) {
		t.Fatalf("context deadline %v, want %v", dl, req.Deadline)
	}
}

func TestKServeBodyTooLarge(t *testing.T) {
	e := newKSEnv(t, Config{MaxBodyBytes: 1024}, router.Config{})
	big := `{"inputs":[{"name":"input","shape":[1,3],"datatype":"FP32","data":[1,2,3]}],"pad":"` + strings.Repeat("x", 4096) + `"}`
	ksWantError(t, e.do(t, "POST", "/v2/models/vision/infer", big), 413, "exceeds the limit of 1024 bytes")
	// The OpenAI front keeps its own error format.
	e = newKSEnv(t, Config{MaxBodyBytes: 1024}, router.Config{})
	resp := e.do(t, "POST", "/v1/embeddings", big)
	if resp.StatusCode() != 413 || !strings.Contains(string(resp.Body()), `"code":"request_too_large"`) {
		t.Fatalf("/v1: %d %s", resp.StatusCode(), resp.Body())
	}
}

func TestKServeShed(t *testing.T) {
	e := newKSEnv(t, Config{}, router.Config{})
	resp := e.do(t, "POST", "/v2/models/vision/infer", `{"inputs":[{"name":"input","shape":[1,3],"datatype":"FP32","data":[1,2,3]}]}`,
		HeaderPriority, "sheddable", HeaderSLO, "0.001")
	ksWantError(t, resp, 429, "")
	if ra, err := strconv.Atoi(string(resp.Header.Peek("Retry-After"))); err != nil || ra < 1 {
		t.Fatalf("Retry-After %q", resp.Header.Peek("Retry-After"))
	}
	// The same through the priority parameter (3 = sheddable) and slo_ms.
	resp = e.do(t, "POST", "/v2/models/vision/infer", `{"inputs":[{"name":"input","shape":[1,3],"datatype":"FP32","data":[1,2,3]}],"parameters":{"priority":3,"slo_ms":0.001}}`)
	ksWantError(t, resp, 429, "")
}

func TestKServeNoBackend(t *testing.T) {
	f := &ksFake{err: fmtErr(backends.ErrUnavailable)}
	e := newKSEnv(t, Config{}, router.Config{EjectAfter: 1}, f)
	body := `{"inputs":[{"name":"input","shape":[1,3],"datatype":"FP32","data":[1,2,3]}]}`
	// The failure itself: 502, the backend's fault; then it is ejected.
	ksWantError(t, e.do(t, "POST", "/v2/models/vision/infer", body), 502, "connection refused")
	resp := e.do(t, "POST", "/v2/models/vision/infer", body)
	ksWantError(t, resp, 503, "")
	if len(resp.Header.Peek("Retry-After")) == 0 {
		t.Fatal("503 without Retry-After")
	}
	var ready struct{ Ready bool }
	ksJSON(t, e.do(t, "GET", "/v2/health/ready", ""), 503, &ready)
	var mr struct {
		Name  string
		Ready bool
	}
	ksJSON(t, e.do(t, "GET", "/v2/models/vision/ready", ""), 503, &mr)
	if ready.Ready || mr.Ready || mr.Name != "vision" {
		t.Fatalf("ready %v / %+v", ready, mr)
	}
	var idx []struct{ Name, State, Reason string }
	ksJSON(t, e.do(t, "POST", "/v2/repository/index", ""), 200, &idx)
	if len(idx) == 0 || idx[0].State != "UNAVAILABLE" || idx[0].Reason == "" {
		t.Fatalf("index %+v", idx)
	}
	ksJSON(t, e.do(t, "POST", "/v2/repository/index", `{"ready":true}`), 200, &idx)
	if len(idx) != 0 {
		t.Fatalf("ready index %+v", idx)
	}
}

func TestKServeTimeout(t *testing.T) {
	f := &ksFake{block: true}
	e := newKSEnv(t, Config{}, router.Config{}, f)
	body := `{"inputs":[{"name":"input","shape":[1,3],"datatype":"FP32","data":[1,2,3]}]}`
	resp := e.do(t, "POST", "/v2/models/vision/infer", body, HeaderTimeout, "30")
	ksWantError(t, resp, 504, "hard timeout")
	if string(resp.Header.Peek(HeaderBackend)) != "t0" {
		t.Fatal("504 without the backend header")
	}
	// Triton's timeout parameter (microseconds) works the same way.
	ksWantError(t, e.do(t, "POST", "/v2/models/vision/infer", `{"inputs":[{"name":"input","shape":[1,3],"datatype":"FP32","data":[1,2,3]}],"parameters":{"timeout":20000}}`), 504, "hard timeout")
}

// TestKServeUpstreamErrorRelayed: a backend's 4xx is the client's mistake,
// relayed with its status and message.
func TestKServeUpstreamErrorRelayed(t *testing.T) {
	f := &ksFake{err: &backends.UpstreamError{Status: 400, Message: "bad pixel"}}
	e := newKSEnv(t, Config{}, router.Config{}, f)
	ksWantError(t, e.do(t, "POST", "/v2/models/vision/infer", `{"inputs":[{"name":"input","shape":[1,3],"datatype":"FP32","data":[1,2,3]}]}`), 400, "bad pixel")
}
