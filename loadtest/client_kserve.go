package loadtest

import (
	"encoding/binary"
	"math"
	"strconv"
	"sync"
	"time"
)

// The vision workload's tensor: FP32 images in NCHW layout, as resnet-50's
// KServe v2 metadata declares (input "input", shape [-1, 3, 224, 224]).
const (
	TensorInputName = "input"        // the input tensor's name
	TensorDatatype  = "FP32"         // its datatype
	imageElems      = 3 * 224 * 224  // elements per image
	imageBytes      = imageElems * 4 // raw bytes per image
	maxCachedImages = 64             // bodies for larger batches are built per request
	headerInferLen  = "Inference-Header-Content-Length"
)

// imageValue is element i of every image: a deterministic pattern of
// multiples of 1/16 in [0, 4), exact in FP32 and short in decimal.
func imageValue(i int) float32 {
	return float32((uint32(i)*2654435761)>>26) / 16
}

// oneImage is the raw little-endian FP32 contents of one image.
var oneImage = sync.OnceValue(func() []byte {
	b := make([]byte, imageBytes)
	for i := 0; i < imageElems; i++ {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(imageValue(i)))
	}
	return b
})

// rawImages returns the raw contents of a batch of n images (the same image
// n times). The result is shared and must not be modified.
func rawImages(n int) []byte {
	if n < 1 {
		n = 1
	}
	one := oneImage()
	b := make([]byte, 0, n*len(one))
	for range n {
		b = append(b, one...)
	}
	return b
}

// tensorBody is a ready KServe v2 HTTP request body for one batch size.
type tensorBody struct {
	body      []byte // JSON header + raw data (binary) or the JSON document
	headerLen int    // binary: length of the JSON header; 0 for JSON bodies
}

// tensorBodies caches request bodies by batch size and encoding: they depend
// on nothing else, and vision bodies are large (588 KiB per image).
type tensorBodies struct {
	mu sync.Mutex
	m  map[[2]int]*tensorBody
}

func (tb *tensorBodies) get(images int, asJSON bool) *tensorBody {
	if images < 1 {
		images = 1
	}
	k := [2]int{images, 0}
	if asJSON {
		k[1] = 1
	}
	tb.mu.Lock()
	defer tb.mu.Unlock()
	if b := tb.m[k]; b != nil {
		return b
	}
	var b *tensorBody
	if asJSON {
		b = &tensorBody{body: appendTensorJSON(nil, images)}
	} else {
		hdr := appendTensorHeader(nil, images)
		body := make([]byte, 0, len(hdr)+images*imageBytes)
		body = append(body, hdr...)
		for range images {
			body = append(body, oneImage()...)
		}
		b = &tensorBody{body: body, headerLen: len(hdr)}
	}
	if images <= maxCachedImages {
		if tb.m == nil {
			tb.m = make(map[[2]int]*tensorBody)
		}
		tb.m[k] = b
	}
	return b
}

func appendShape(b []byte, images int) []byte {
	b = append(b, `"shape":[`...)
	b = strconv.AppendInt(b, int64(images), 10)
	return append(b, `,3,224,224]`...)
}

// appendTensorHeader appends the JSON header of a binary-extension request.
func appendTensorHeader(b []byte, images int) []byte {
	b = append(b, `{"inputs":[{"name":"`+TensorInputName+`",`...)
	b = appendShape(b, images)
	b = append(b, `,"datatype":"`+TensorDatatype+`","parameters":{"binary_data_size":`...)
	b = strconv.AppendInt(b, int64(images*imageBytes), 10)
	return append(b, `}}]}`...)
}

// appendTensorJSON appends a request with the data as a flat JSON array.
func appendTensorJSON(b []byte, images int) []byte {
	b = append(b, `{"inputs":[{"name":"`+TensorInputName+`",`...)
	b = appendShape(b, images)
	b = append(b, `,"datatype":"`+TensorDatatype+`","data":[`...)
	var one []byte
	for i := 0; i < imageElems; i++ {
		if i > 0 {
			one = append(one, ',')
		}
		one = strconv.AppendFloat(one, float64(imageValue(i)), 'g', -1, 32)
	}
	for n := range images {
		if n > 0 {
			b = append(b, ',')
		}
		b = append(b, one...)
	}
	return append(b, `]}]}`...)
}

// inferURL returns {base}/v2/models/{model}/infer, cached per model.
func (c *httpClient) inferURL(model string) string {
	c.inferMu.RLock()
	u, ok := c.inferURLs[model]
	c.inferMu.RUnlock()
	if ok {
		return u
	}
	u = c.base + "/v2/models/" + model + "/infer"
	c.inferMu.Lock()
	if len(c.inferURLs) < 1024 {
		c.inferURLs[model] = u
	}
	c.inferMu.Unlock()
	return u
}

var strOctetStream = []byte("application/octet-stream")

// doTensor sends a KServe v2 HTTP infer request: the binary tensor data
// extension by default, JSON data with -tensor-json.
func (c *httpClient) doTensor(call *httpCall, it *Item, intended time.Time, o *Outcome) {
	timeout := c.setHeaders(call, c.inferURL(it.Model), it)
	tb := c.tensors.get(it.Images, c.tensorJSON)
	if tb.headerLen > 0 {
		call.req.Header.SetContentTypeBytes(strOctetStream)
		call.scratch = strconv.AppendInt(call.scratch[:0], int64(tb.headerLen), 10)
		call.req.Header.SetBytesV(headerInferLen, call.scratch)
	}
	call.req.SetBodyRaw(tb.body) // shared, read-only
	resp := &call.resp
	resp.StreamBody = false
	err := c.hc.DoDeadline(&call.req, resp, time.Now().Add(timeout+c.grace))
	now := time.Now()
	call.req.SetBodyRaw(nil) // never let the pool hold or reuse the shared body
	if err != nil {
		finishErr(o, intended, now, err)
		return
	}
	o.Latency = now.Sub(intended)
	o.TTFT = o.Latency
	o.Status = resp.StatusCode()
	o.Kind = classifyHTTP(o.Status)
	o.OK = o.Status == 200
	readGatewayHeaders(&resp.Header, o)
	if o.OK {
		body := resp.Body()
		if n, ok := parseIntBytes(resp.Header.Peek(headerInferLen)); ok && n <= len(body) {
			body = body[:n] // binary outputs follow the JSON header
		}
		readKServeParams(body, o)
	}
}

// readKServeParams fills cost, backend and hardware from a KServe v2 JSON
// response's parameters, where the headers did not already give them.
func readKServeParams(body []byte, o *Outcome) {
	if o.CostUSD == 0 {
		if f, ok := floatAfter(body, `"accelgate_cost_usd":`); ok {
			o.CostUSD = f
		}
	}
	if o.Backend == "" {
		if s, ok := stringAfter(body, `"accelgate_backend":`); ok {
			o.Backend = internedNames.get(s)
		}
	}
	if o.Hardware == "" {
		if s, ok := stringAfter(body, `"accelgate_hardware":`); ok {
			o.Hardware = internedNames.get(s)
		}
	}
}
