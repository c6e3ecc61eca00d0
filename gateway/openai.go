package gateway

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"

	"math"
	"strconv"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/accelgate/accelgate/backends"
	"github.com/accelgate/accelgate/internal/jsonw"
)

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

func getBuf() *[]byte  { return bufPool.Get().(*[]byte) }
func putBuf(b *[]byte) { *b = (*b)[:0]; bufPool.Put(b) }

func (s *Server) newID(prefix string) string {
	n := s.ids.Add(1)
	var b [48]byte
	out := append(b[:0], prefix...)
	out = append(out, s.idPfx...)
	out = append(out, '-')
	out = strconv.AppendUint(out, n, 36)
	return string(out)
}

// modelFor resolves the model and checks it serves op.
func (s *Server) modelFor(req *backends.Request) (*backends.Model, error) {
	m, err := s.ref.Load().Model(req.Model)
	if err != nil {
		return nil, &backends.ParamError{Param: "model", Err: err}
	}
	if !m.Serves(req.Op) {
		return nil, backends.BadRequestf("model", "the model %q is a %s model and does not serve %s requests", m.Name, m.Kind, req.Op)
	}
	return m, nil
}

// prepareOpenAI finishes a decoded OpenAI request: it resolves the model,
// applies the client's class, targets and timeout, keeps a copy of the body
// for upstream passthrough and names the request in the response. On error it
// answers the client and reports false.
func (s *Server) prepareOpenAI(ctx *fasthttp.RequestCtx, req *backends.Request, body []byte, now time.Time) (*backends.Model, bool) {
	m, err := s.modelFor(req)
	if err == nil {
		err = applyHeaders(req, m, ctx.Request.Header.Peek, now)
	}
	if err != nil {
		s.writeError(ctx, err)
		return nil, false
	}
	req.Body = append([]byte(nil), body...)
	ctx.Response.Header.Set(HeaderRequestID, req.ID)
	return m, true
}

func (s *Server) handleLLM(ctx *fasthttp.RequestCtx, op backends.Op) {
	now := s.clock.Now()
	prefix := "chatcmpl-"
	if op == backends.OpCompletion {
		prefix = "cmpl-"
	}
	req := &backends.Request{ID: s.newID(prefix)}
	body := ctx.PostBody()
	if err := decodeLLM(op, body, req); err != nil {
		s.writeError(ctx, err)
		return
	}
	m, ok := s.prepareOpenAI(ctx, req, body, now)
	if !ok {
		return
	}
	created := now.Unix()
	if !req.Stream {
		if res, _, ok := s.runUnary(ctx, req, m, (*Server).writeError); ok {
			writeOpenAIResult(ctx, res, func(b []byte) []byte { return appendLLMResponse(b, req, res, created) })
		}
		return
	}
	// Admission happens before the headers, so that a full queue or a
	// timeout while waiting is still an HTTP error, not an error event.
	actx, cancel := context.WithDeadline(context.Background(), req.Deadline)
	p, err := s.ref.Load().PlaceAdmitted(actx, req, m)
	cancel()
	if err != nil {
		s.writeError(ctx, err)
		return
	}
	// The status waits for the first event: a backend that fails or times
	// out before it (and no other takes over) is still a plain HTTP error.
	run := s.startStream(&p, req, m, created)
	<-run.ready
	if run.err != nil {
		s.writeError(ctx, run.err)
		return
	}
	setPlacementHeaders(ctx, run.backend)
	ctx.SetContentType("text/event-stream")
	ctx.Response.Header.Set("Cache-Control", "no-cache")
	ctx.Response.Header.Set("X-Accel-Buffering", "no")
	ctx.SetBodyStream(run.body, -1)
}

// runUnary runs a non-streaming request on the fleet under its hard deadline
// (or answers it from the response cache, cache.go, with x-accelgate-cache:
// hit and cost 0; a cacheable request that runs gets x-accelgate-cache: miss)
// and sets the placement headers (wherever it was placed, even when it then
// failed) and, when it succeeded, the cost header. When it failed, it writes
// the error with writeErr, in the route's protocol ((*Server).writeError for
// the OpenAI routes, (*Server).writeKServeError for KServe v2), and ok is
// false.
func (s *Server) runUnary(ctx *fasthttp.RequestCtx, req *backends.Request, m *backends.Model,
	writeErr func(*Server, *fasthttp.RequestCtx, error)) (res *backends.Result, desc *backends.Descriptor, ok bool) {
	cctx, cancel := context.WithDeadline(context.Background(), req.Deadline)
	res, desc, cached, err := s.ref.Load().doCached(cctx, req, m)
	cancel()
	if cached != "" {
		ctx.Response.Header.Set(HeaderCache, cached)
	}
	if desc != nil {
		setPlacementHeaders(ctx, desc)
	}
	if err != nil {
		writeErr(s, ctx, err)
		return nil, desc, false
	}
	setCostHeader(ctx, res.CostUSD)
	return res, desc, true
}

// writeOpenAIResult answers a non-streaming OpenAI request with an upstream's
// JSON body, relayed as is, or else with the body appendBody renders.
func writeOpenAIResult(ctx *fasthttp.RequestCtx, res *backends.Result, appendBody func([]byte) []byte) {
	ctx.SetContentType("application/json")
	if res.Raw != nil {
		ctx.SetBody(res.Raw)
		return
	}
	b := getBuf()
	*b = appendBody(*b)
	ctx.SetBody(*b)
	putBuf(b)
}

func setPlacementHeaders(ctx *fasthttp.RequestCtx, d *backends.Descriptor) {
	ctx.Response.Header.Set(HeaderBackend, d.Name)
	ctx.Response.Header.Set(HeaderHardware, d.Profile.Name)
}

func setCostHeader(ctx *fasthttp.RequestCtx, usd float64) {
	var b [32]byte
	ctx.Response.Header.SetBytesV(HeaderCost, jsonw.AppendUSD(b[:0], usd))
}

// appendLLMResponse renders a chat.completion or text_completion object.
func appendLLMResponse(b []byte, req *backends.Request, res *backends.Result, created int64) []byte {
	chat := req.Op == backends.OpChat
	b = append(b, `{"id":`...)
	b = jsonw.AppendString(b, req.ID)
	if chat {
		b = append(b, `,"object":"chat.completion","created":`...)
	} else {
		b = append(b, `,"object":"text_completion","created":`...)
	}
	b = strconv.AppendInt(b, created, 10)
	b = append(b, `,"model":`...)
	b = jsonw.AppendString(b, req.Model)
	b = append(b, `,"choices":[`...)
	for i, c := range res.Choices {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"index":`...)
		b = strconv.AppendInt(b, int64(c.Index), 10)
		if chat {
			b = append(b, `,"message":{"role":"assistant","content":`...)
			b = jsonw.AppendString(b, c.Text)
			b = append(b, '}')
		} else {
			b = append(b, `,"text":`...)
			b = jsonw.AppendString(b, c.Text)
		}
		b = append(b, `,"logprobs":null,"finish_reason":`...)
		b = jsonw.AppendStringOrNull(b, c.FinishReason)
		b = append(b, '}')
	}
	b = append(b, `],"usage":`...)
	b = appendUsage(b, res.Usage.PromptTokens, res.Usage.CompletionTokens, false)
	return append(b, '}')
}

func (s *Server) handleEmbeddings(ctx *fasthttp.RequestCtx) {
	now := s.clock.Now()
	req := &backends.Request{ID: s.newID("emb-")}
	body := ctx.PostBody()
	b64, err := decodeEmbedding(body, req)
	if err != nil {
		s.writeError(ctx, err)
		return
	}
	m, ok := s.prepareOpenAI(ctx, req, body, now)
	if !ok {
		return
	}
	if res, _, ok := s.runUnary(ctx, req, m, (*Server).writeError); ok {
		writeOpenAIResult(ctx, res, func(b []byte) []byte { return appendEmbeddingResponse(b, req.Model, res, b64) })
	}
}

func appendEmbeddingResponse(b []byte, model string, res *backends.Result, b64 bool) []byte {
	b = append(b, `{"object":"list","data":[`...)
	var raw []byte
	for i, v := range res.Embeddings {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"object":"embedding","index":`...)
		b = strconv.AppendInt(b, int64(i), 10)
		b = append(b, `,"embedding":`...)
		if b64 {
			raw = raw[:0]
			for _, f := range v {
				raw = binary.LittleEndian.AppendUint32(raw, math.Float32bits(f))
			}
			b = append(b, '"')
			b = base64.StdEncoding.AppendEncode(b, raw)
			b = append(b, '"')
		} else {
			b = append(b, '[')
			for j, f := range v {
				if j > 0 {
					b = append(b, ',')
				}
				b = jsonw.AppendFloat(b, float64(f), 32)
			}
			b = append(b, ']')
		}
		b = append(b, '}')
	}
	b = append(b, `],"model":`...)
	b = jsonw.AppendString(b, model)
	b = append(b, `,"usage":`...)
	b = appendUsage(b, res.Usage.PromptTokens, 0, true)
	return append(b, '}')
}

func (s *Server) handleModels(ctx *fasthttp.RequestCtx) {
	b := getBuf()
	*b = append(*b, `{"object":"list","data":[`...)
	for i, m := range s.ref.Load().SortedModels() {
		if i > 0 {
			*b = append(*b, ',')
		}
		*b = appendModelObject(*b, m)
	}
	*b = append(*b, "]}"...)
	ctx.SetContentType("application/json")
	ctx.SetBody(*b)
	putBuf(b)
}

func (s *Server) handleModel(ctx *fasthttp.RequestCtx, name string) {
	m, err := s.ref.Load().Model(name)
	if err != nil {
		s.writeError(ctx, &backends.ParamError{Param: "model", Err: err})
		return
	}
	b := getBuf()
	*b = appendModelObject(*b, m)
	ctx.SetContentType("application/json")
	ctx.SetBody(*b)
	putBuf(b)
}

func appendModelObject(b []byte, m *backends.Model) []byte {
	b = append(b, `{"id":`...)
	b = jsonw.AppendString(b, m.Name)
	b = append(b, `,"object":"model","created":0,"owned_by":"accelgate","accelgate_kind":`...)
	b = jsonw.AppendString(b, string(m.Kind))
	return append(b, '}')
}

// writeError answers with the error's status and an OpenAI error body.
func (s *Server) writeError(ctx *fasthttp.RequestCtx, err error) {
	st := Classify(err)
	ctx.SetStatusCode(st.HTTP)
	if st.Retryable && (st.HTTP == fasthttp.StatusTooManyRequests || st.HTTP == fasthttp.StatusServiceUnavailable) {
		ctx.Response.Header.Set("Retry-After", strconv.Itoa(retryAfterSeconds(err)))
	}
	writeOpenAIError(ctx, errorMessage(err), st.OpenAIType, errorParam(err), st.OpenAICode)
}

func writeOpenAIError(ctx *fasthttp.RequestCtx, msg, typ, param, code string) {
	b := getBuf()
	*b = appendOpenAIError(*b, msg, typ, param, code)
	ctx.SetContentType("application/json")
	ctx.SetBody(*b)
	putBuf(b)
}

func appendOpenAIError(b []byte, msg, typ, param, code string) []byte {
	b = append(b, `{"error":{"message":`...)
	b = jsonw.AppendString(b, msg)
	b = append(b, `,"type":`...)
	b = jsonw.AppendString(b, typ)
	b = append(b, `,"param":`...)
	b = jsonw.AppendStringOrNull(b, param)
	b = append(b, `,"code":`...)
	b = jsonw.AppendStringOrNull(b, code)
	return append(b, "}}"...)
}

// injectCost adds "accelgate_cost_usd" as the last field of a JSON object.
func injectCost(obj []byte, usd float64) []byte {
	obj = bytes.TrimRight(obj, " \t\r\n")
	if len(obj) == 0 || obj[len(obj)-1] != '}' {
		return obj
	}
	obj = obj[:len(obj)-1]
	if len(bytes.TrimSpace(obj)) > 1 {
		obj = append(obj, ',')
	}
	obj = append(obj, `"accelgate_cost_usd":`...)
	obj = jsonw.AppendUSD(obj, usd)
	return append(obj, '}')
}
