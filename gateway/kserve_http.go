package gateway

import (
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/accelgate/accelgate/backends"
	"github.com/accelgate/accelgate/backends/kserve"
	"github.com/accelgate/accelgate/internal/jsonw"
)

// KServe v2 / Open Inference Protocol over HTTP, on the same listener as the
// OpenAI API. Every path under /v2 is answered here; errors have the
// protocol's {"error": "..."} body and the status Classify gives.

// kserveExtensions are the extensions GET /v2 reports.
var kserveExtensions = []string{"binary_tensor_data", "parameters"}

// handleKServe routes a /v2 request.
func (s *Server) handleKServe(ctx *fasthttp.RequestCtx) {
	path := string(ctx.Path())
	method := ctx.Method()
	rest, ok := strings.CutPrefix(path, "/v2")
	if !ok || (rest != "" && rest[0] != '/') {
		s.writeKServeError(ctx, errNotFoundPath(ctx.Path(), method))
		return
	}
	rest = strings.TrimSuffix(rest, "/")
	switch rest {
	case "":
		if s.allowKServe(ctx, method, fasthttp.MethodGet) {
			s.handleKServeServerMetadata(ctx)
		}
		return
	case "/health/live":
		if s.allowKServe(ctx, method, fasthttp.MethodGet) {
			ctx.SetContentType("application/json")
			ctx.SetBodyString(`{"live":true}`)
		}
		return
	case "/health/ready":
		if s.allowKServe(ctx, method, fasthttp.MethodGet) {
			ctx.SetContentType("application/json")
			if s.ref.Load().Ready() {
				ctx.SetBodyString(`{"ready":true}`)
			} else {
				ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
				ctx.SetBodyString(`{"ready":false}`)
			}
		}
		return
	case "/repository/index":
		if s.allowKServe(ctx, method, fasthttp.MethodPost) {
			s.handleKServeRepositoryIndex(ctx)
		}
		return
	}
	if m, ok := strings.CutPrefix(rest, "/models/"); ok {
		// {model}[/versions/{version}][/ready|/infer]
		parts := strings.Split(m, "/")
		name, version, action := parts[0], "", ""
		switch {
		case len(parts) == 1:
		case len(parts) == 2:
			action = parts[1]
		case len(parts) == 3 && parts[1] == "versions":
			version = parts[2]
		case len(parts) == 4 && parts[1] == "versions":
			version, action = parts[2], parts[3]
		default:
			action = "?"
		}
		if name != "" && (len(parts) < 3 || version != "") {
			switch action {
			case "":
				if s.allowKServe(ctx, method, fasthttp.MethodGet) {
					s.handleKServeModelMetadata(ctx, name, version)
				}
				return
			case "ready":
				if s.allowKServe(ctx, method, fasthttp.MethodGet) {
					s.handleKServeModelReady(ctx, name, version)
				}
				return
			case "infer":
				if s.allowKServe(ctx, method, fasthttp.MethodPost) {
					s.handleKServeInfer(ctx, name, version)
				}
				return
			}
		}
	}
	s.writeKServeError(ctx, errNotFoundPath(ctx.Path(), method))
}

// allowKServe answers 405 (with Allow) in the KServe format when the method
// is wrong.
func (s *Server) allowKServe(ctx *fasthttp.RequestCtx, method []byte, want string) bool {
	if string(method) == want || (want == fasthttp.MethodGet && string(method) == fasthttp.MethodHead) {
		return true
	}
	ctx.Response.Header.Set("Allow", want)
	s.writeKServeError(ctx, &routeError{err: ErrMethodNotAllowed, msg: "method " + string(method) + " is not allowed on " + string(ctx.Path()) + "; use " + want})
	return false
}

// writeKServeError answers with the error's status and a {"error": "..."}
// body.
func (s *Server) writeKServeError(ctx *fasthttp.RequestCtx, err error) {
	st := Classify(err)
	ctx.SetStatusCode(st.HTTP)
	if st.Retryable && (st.HTTP == fasthttp.StatusTooManyRequests || st.HTTP == fasthttp.StatusServiceUnavailable) {
		ctx.Response.Header.Set("Retry-After", strconv.Itoa(retryAfterSeconds(err)))
	}
	writeKServeErrorBody(ctx, errorMessage(err))
}

func writeKServeErrorBody(ctx *fasthttp.RequestCtx, msg string) {
	b := getBuf()
	*b = append(*b, `{"error":`...)
	*b = jsonw.AppendString(*b, msg)
	*b = append(*b, '}')
	ctx.SetContentType("application/json")
	ctx.SetBody(*b)
	putBuf(b)
}

func (s *Server) handleKServeServerMetadata(ctx *fasthttp.RequestCtx) {
	b := getBuf()
	*b = append(*b, `{"name":`...)
	*b = jsonw.AppendString(*b, s.cfg.Name)
	*b = append(*b, `,"version":`...)
	*b = jsonw.AppendString(*b, s.cfg.Version)
	*b = append(*b, `,"extensions":[`...)
	for i, e := range kserveExtensions {
		if i > 0 {
			*b = append(*b, ',')
		}
		*b = jsonw.AppendString(*b, e)
	}
	*b = append(*b, "]}"...)
	ctx.SetContentType("application/json")
	ctx.SetBody(*b)
	putBuf(b)
}

// tensorModel resolves a model for the KServe routes: 404 for an unknown
// model or version, 400 for a model that is not a tensor model.
func (s *Server) tensorModel(name, version string) (*backends.Model, error) {
	m, err := s.ref.Load().Model(name)
	if err != nil {
		return nil, err
	}
	if m.Kind != backends.ModelTensor {
		return nil, backends.BadRequestf("model", "the model %q is a %s model: it is served by the OpenAI API under /v1, not by KServe v2", m.Name, m.Kind)
	}
	if !m.HasVersion(version) {
		return nil, &routeError{err: backends.ErrUnknownModel, msg: "the model " + strconv.Quote(m.Name) + " has no version " + strconv.Quote(version)}
	}
	return m, nil
}

func (s *Server) handleKServeModelMetadata(ctx *fasthttp.RequestCtx, name, version string) {
	m, err := s.tensorModel(name, version)
	if err != nil {
		s.writeKServeError(ctx, err)
		return
	}
	b := getBuf()
	*b = append(*b, `{"name":`...)
	*b = jsonw.AppendString(*b, m.Name)
	*b = append(*b, `,"versions":[`...)
	for i, v := range m.Versions {
		if i > 0 {
			*b = append(*b, ',')
		}
		*b = jsonw.AppendString(*b, v)
	}
	*b = append(*b, `],"platform":`...)
	*b = jsonw.AppendString(*b, m.Platform)
	*b = append(*b, `,"inputs":`...)
	*b = appendTensorSpecs(*b, m.Inputs)
	*b = append(*b, `,"outputs":`...)
	*b = appendTensorSpecs(*b, m.Outputs)
	*b = append(*b, '}')
	ctx.SetContentType("application/json")
	ctx.SetBody(*b)
	putBuf(b)
}

func appendTensorSpecs(b []byte, specs []backends.TensorSpec) []byte {
	b = append(b, '[')
	for i, sp := range specs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"name":`...)
		b = jsonw.AppendString(b, sp.Name)
		b = append(b, `,"datatype":`...)
		b = jsonw.AppendString(b, sp.Datatype)
		b = append(b, `,"shape":[`...)
		for j, d := range sp.Shape {
			if j > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendInt(b, d, 10)
		}
		b = append(b, "]}"...)
	}
	return append(b, ']')
}

func (s *Server) handleKServeModelReady(ctx *fasthttp.RequestCtx, name, version string) {
	m, err := s.tensorModel(name, version)
	if err != nil {
		s.writeKServeError(ctx, err)
		return
	}
	ready := s.ref.Load().ModelReady(m.Name)
	b := getBuf()
	*b = append(*b, `{"name":`...)
	*b = jsonw.AppendString(*b, m.Name)
	*b = append(*b, `,"ready":`...)
	*b = strconv.AppendBool(*b, ready)
	*b = append(*b, '}')
	if !ready {
		ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
	}
	ctx.SetContentType("application/json")
	ctx.SetBody(*b)
	putBuf(b)
}

// handleKServeRepositoryIndex answers Triton's repository index: one entry
// per tensor model and version. A body {"ready": true} keeps only the ready
// ones.
func (s *Server) handleKServeRepositoryIndex(ctx *fasthttp.RequestCtx) {
	onlyReady := false
	if body := ctx.PostBody(); len(strings.TrimSpace(string(body))) > 0 {
		var err error
		if onlyReady, err = kserve.DecodeIndexRequest(body); err != nil {
			s.writeKServeError(ctx, err)
			return
		}
	}
	b := getBuf()
	*b = append(*b, '[')
	n := 0
	for _, m := range s.ref.Load().SortedModels() {
		if m.Kind != backends.ModelTensor {
			continue
		}
		name := m.Name
		ready := s.ref.Load().ModelReady(name)
		if onlyReady && !ready {
			continue
		}
		versions := m.Versions
		if len(versions) == 0 {
			versions = []string{""}
		}
		for _, v := range versions {
			if n > 0 {
				*b = append(*b, ',')
			}
			n++
			*b = append(*b, `{"name":`...)
			*b = jsonw.AppendString(*b, name)
			if v != "" {
				*b = append(*b, `,"version":`...)
				*b = jsonw.AppendString(*b, v)
			}
			if ready {
				*b = append(*b, `,"state":"READY","reason":""}`...)
			} else {
				*b = append(*b, `,"state":"UNAVAILABLE","reason":"no healthy backend serves the model"}`...)
			}
		}
	}
	*b = append(*b, ']')
	ctx.SetContentType("application/json")
	ctx.SetBody(*b)
	putBuf(b)
}

// handleKServeInfer runs one infer request: decode (copying out of fasthttp's
// buffers), check against the model, schedule, dispatch, encode.
func (s *Server) handleKServeInfer(ctx *fasthttp.RequestCtx, name, version string) {
	now := s.clock.Now()
	m, err := s.tensorModel(name, version)
	if err != nil {
		s.writeKServeError(ctx, err)
		return
	}
	jsonLen, err := kserve.ParseHeaderLength(ctx.Request.Header.Peek(kserve.HeaderInferenceHeaderContentLength))
	if err != nil {
		s.writeKServeError(ctx, err)
		return
	}
	ir, err := kserve.DecodeInferRequest(ctx.PostBody(), jsonLen)
	if err != nil {
		s.writeKServeError(ctx, err)
		return
	}
	req := &backends.Request{
		ID: s.newID("infer-"), Op: backends.OpTensor, Model: m.Name, ModelVersion: version,
		Tensors: ir.Inputs, Outputs: ir.Outputs, ClientID: ir.ID,
	}
	if err := PrepareTensorRequest(req, m); err != nil {
		s.writeKServeError(ctx, err)
		return
	}
	p := TensorParams{
		HasSLO: ir.Params.HasSLO, SLOms: ir.Params.SLOms,
		HasPriority: ir.Params.HasPriority, Priority: ir.Params.Priority,
		HasTimeout: ir.Params.HasTimeout, TimeoutUS: ir.Params.TimeoutUS,
	}
	if err := ApplyTensorScheduling(req, m, ctx.Request.Header.Peek, p, time.Time{}, now); err != nil {
		s.writeKServeError(ctx, err)
		return
	}
	ctx.Response.Header.Set(HeaderRequestID, req.ID)
	res, desc, ok := s.runUnary(ctx, req, m, (*Server).writeKServeError)
	if !ok {
		return
	}

	outs := SelectOutputs(req, res.Tensors)
	var binBuf [8]bool
	bin := binBuf[:0]
	for i := range outs {
		bin = append(bin, ir.WantsBinary(outs[i].Name))
	}
	resp := kserve.InferResponse{
		ModelName: m.Name, ModelVersion: version, ID: ir.ID,
		Outputs: outs, Binary: bin, CostUSD: res.CostUSD,
	}
	if resp.ModelVersion == "" && len(m.Versions) > 0 {
		resp.ModelVersion = m.Versions[0]
	}
	if desc != nil {
		resp.Backend, resp.Hardware = desc.Name, desc.Profile.Name
	}
	b := getBuf()
	body, jsonLen := kserve.EncodeInferResponse(*b, &resp)
	if jsonLen >= 0 {
		ctx.SetContentType("application/octet-stream")
		var nb [20]byte
		ctx.Response.Header.SetBytesV(kserve.HeaderInferenceHeaderContentLength, strconv.AppendInt(nb[:0], int64(jsonLen), 10))
	} else {
		ctx.SetContentType("application/json")
	}
	ctx.SetBody(body)
	*b = body
	putBuf(b)
}
