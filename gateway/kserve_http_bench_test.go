package gateway

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/accelgate/accelgate/backends/kserve"
	"github.com/accelgate/accelgate/router"
)

// ksResnetBodies returns one resnet-50 infer request (1×3×224×224 FP32, pixel
// values in [0,1)) as JSON and with the binary tensor data extension (output
// requested binary), and the binary body's JSON length.
func ksResnetBodies() (jsonBody, binBody []byte, binJSONLen int) {
	rng := rand.New(rand.NewPCG(7, 7))
	const n = 3 * 224 * 224
	raw := make([]byte, 0, n*4)
	jsonBody = append(jsonBody, `{"id":"bench","inputs":[{"name":"input","shape":[1,3,224,224],"datatype":"FP32","data":[`...)
	for i := 0; i < n; i++ {
		f := float32(rng.IntN(256)) / 255
		if i > 0 {
			jsonBody = append(jsonBody, ',')
		}
		jsonBody = strconv.AppendFloat(jsonBody, float64(f), 'g', -1, 32)
		raw = binary.LittleEndian.AppendUint32(raw, math.Float32bits(f))
	}
	jsonBody = append(jsonBody, "]}]}"...)
	js := `{"id":"bench","inputs":[{"name":"input","shape":[1,3,224,224],"datatype":"FP32","parameters":{"binary_data_size":` +
		strconv.Itoa(len(raw)) + `}}],"outputs":[{"name":"output","parameters":{"binary_data":true}}]}`
	binBody = append([]byte(js), raw...)
	return jsonBody, binBody, len(js)
}

func benchResnetHandler(b *testing.B, binary bool) {
	e := newKSEnv(b, Config{}, router.Config{})
	jsonBody, binBody, jl := ksResnetBodies()
	var req fasthttp.Request
	req.Header.SetMethod("POST")
	req.SetRequestURI("/v2/models/resnet-50/infer")
	if binary {
		req.SetBody(binBody)
		req.Header.Set(kserve.HeaderInferenceHeaderContentLength, strconv.Itoa(jl))
		b.SetBytes(int64(len(binBody)))
	} else {
		req.SetBody(jsonBody)
		b.SetBytes(int64(len(jsonBody)))
	}
	var ctx fasthttp.RequestCtx
	b.ReportAllocs()
	for b.Loop() {
		ctx.Init(&req, nil, nil)
		e.srv.Handle(&ctx)
		if ctx.Response.StatusCode() != 200 {
			b.Fatalf("status %d: %s", ctx.Response.StatusCode(), ctx.Response.Body())
		}
	}
}

// BenchmarkKServeResnetJSONHandler measures one resnet-50 infer with JSON
// data through the whole KServe v2 HTTP path inside the process: fasthttp
// handler → decode → checks → router → an instant backend → encode (1000
// logits as JSON). No sockets. MB/s is request bytes.
func BenchmarkKServeResnetJSONHandler(b *testing.B) { benchResnetHandler(b, false) }

// BenchmarkKServeResnetBinaryHandler is the same with the binary tensor data
// extension both ways.
func BenchmarkKServeResnetBinaryHandler(b *testing.B) { benchResnetHandler(b, true) }

func benchResnetInmemory(b *testing.B, binary bool) {
	e := newKSEnv(b, Config{}, router.Config{})
	jsonBody, binBody, jl := ksResnetBodies()
	req := fasthttp.AcquireRequest()
	req.Header.SetMethod("POST")
	req.SetRequestURI("http://gw/v2/models/resnet-50/infer")
	if binary {
		req.SetBody(binBody)
		req.Header.Set(kserve.HeaderInferenceHeaderContentLength, strconv.Itoa(jl))
		b.SetBytes(int64(len(binBody)))
	} else {
		req.SetBody(jsonBody)
		b.SetBytes(int64(len(jsonBody)))
	}
	resp := fasthttp.AcquireResponse()
	b.ReportAllocs()
	for b.Loop() {
		if err := e.c.Do(req, resp); err != nil || resp.StatusCode() != 200 {
			b.Fatalf("%v %d", err, resp.StatusCode())
		}
	}
}

// BenchmarkKServeResnetJSONInmemory adds fasthttp's HTTP/1.1 parsing and
// writing on both sides, over an in-memory listener with keep-alive.
func BenchmarkKServeResnetJSONInmemory(b *testing.B) { benchResnetInmemory(b, false) }

// BenchmarkKServeResnetBinaryInmemory is the same with the binary extension.
func BenchmarkKServeResnetBinaryInmemory(b *testing.B) { benchResnetInmemory(b, true) }
