package kserve

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/accelgate/accelgate/backends"
	"github.com/accelgate/accelgate/internal/httpconn"
)

// Defaults for the zero values of HTTPConfig.
const (
	DefaultMaxConns    = httpconn.DefaultMaxConns
	DefaultDialTimeout = httpconn.DefaultDialTimeout
)

const (
	// maxResponseBody bounds a response body.
	maxResponseBody = 256 << 20
	// maxErrorText bounds the raw text kept as an error message.
	maxErrorText = 1 << 10
)

// HTTPConfig is how to reach a KServe v2 HTTP server.
type HTTPConfig struct {
	// URL is the server's base URL, e.g. http://127.0.0.1:8000; the /v2/...
	// paths are appended to it (a trailing "/v2" is accepted and not doubled).
	URL string
	// MaxConns bounds the connections to the server, that is the requests in
	// flight on it; more wait for a free one until their context ends.
	// DefaultMaxConns when zero or negative.
	MaxConns int
	// DialTimeout bounds connecting (and the TLS handshake). DefaultDialTimeout
	// when zero or negative.
	DialTimeout time.Duration
}

// HTTPBackend forwards tensor requests to one KServe v2 HTTP server (Triton,
// KServe, MLServer, accelgate's emulator). It is safe for concurrent use.
type HTTPBackend struct {
	desc *backends.Descriptor
	pool *httpconn.Pool
	host string // Host header
	base string // URL path prefix, without a trailing slash

	inflight atomic.Int64 // requests in Do
}

var (
	_ backends.Backend        = (*HTTPBackend)(nil)
	_ backends.MetadataSource = (*HTTPBackend)(nil)
)

// NewHTTP returns an HTTPBackend for the server at cfg.URL, described by desc.
// The URL must be absolute, http or https, with a host, and without a query, a
// fragment or credentials. No connection is made until the first request.
func NewHTTP(desc *backends.Descriptor, cfg HTTPConfig) (*HTTPBackend, error) {
	if desc == nil {
		return nil, errors.New("kserve: nil descriptor")
	}
	ep, err := httpconn.ParseEndpoint(cfg.URL, "/v2")
	if err != nil {
		return nil, fmt.Errorf("kserve %s: url %q: %v", desc.Name, cfg.URL, err)
	}
	return &HTTPBackend{
		desc: desc,
		pool: httpconn.NewPool(ep.Addr, ep.TLS, cfg.MaxConns, cfg.DialTimeout),
		host: ep.Host,
		base: ep.BasePath,
	}, nil
}

// Descriptor returns the backend's static description.
func (b *HTTPBackend) Descriptor() *backends.Descriptor { return b.desc }

// Close closes the idle connections and makes later requests fail with
// backends.ErrUnavailable; requests in flight finish, and their connections
// are closed then.
func (b *HTTPBackend) Close() error {
	b.pool.Close()
	return nil
}

// modelPath is /v2/models/{model}[/versions/{version}] under the base path.
func (b *HTTPBackend) modelPath(model, version string) string {
	p := b.base + "/v2/models/" + url.PathEscape(model)
	if version != "" {
		p += "/versions/" + url.PathEscape(version)
	}
	return p
}

var bodyPool = sync.Pool{New: func() any { b := make([]byte, 0, 16<<10); return &b }}

// Do sends a tensor request to the server's infer endpoint: the inputs
// through the binary tensor data extension, every output requested as binary
// data, and the time left before ctx's deadline as Triton's "timeout"
// parameter (microseconds). model is not used: the server knows its models.
func (b *HTTPBackend) Do(ctx context.Context, req *backends.Request, _ *backends.Model, _ backends.StreamFunc) (*backends.Result, error) {
	if req.Op != backends.OpTensor {
		return nil, fmt.Errorf("kserve %s: %w: %s requests are not supported by a KServe v2 upstream",
			b.desc.Name, backends.ErrUnavailable, req.Op)
	}
	concurrency := b.inflight.Add(1)
	defer b.inflight.Add(-1)
	start := time.Now()
	if err := ctx.Err(); err != nil {
		return nil, b.ctxError(err)
	}

	ir := InferRequest{ID: req.ClientID, Inputs: req.Tensors, Params: Params{BinaryDataOutput: true}}
	if len(req.Outputs) > 0 {
		ir.Outputs = make([]backends.OutputRequest, len(req.Outputs))
		for i, o := range req.Outputs {
			ir.Outputs[i] = backends.OutputRequest{Name: o.Name, Binary: true}
		}
	}
	if dl, ok := ctx.Deadline(); ok {
		us := time.Until(dl).Microseconds()
		if us <= 0 {
			return nil, b.ctxError(context.DeadlineExceeded)
		}
		ir.Params.HasTimeout, ir.Params.TimeoutUS = true, us
	}
	bp := bodyPool.Get().(*[]byte)
	body, jsonLen := EncodeInferRequest((*bp)[:0], &ir, true)
	defer func() { *bp = body[:0]; bodyPool.Put(bp) }()

	hreq := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(hreq)
	hreq.Header.SetMethod(fasthttp.MethodPost)
	hreq.SetRequestURI(b.modelPath(req.Model, req.ModelVersion) + "/infer")
	hreq.Header.SetHost(b.host)
	hreq.Header.SetUserAgent("accelgate")
	hreq.Header.Set(fasthttp.HeaderAccept, "application/json, application/octet-stream")
	if jsonLen >= 0 {
		hreq.Header.SetContentType("application/octet-stream")
		hreq.Header.Set(HeaderInferenceHeaderContentLength, strconv.Itoa(jsonLen))
	} else {
		hreq.Header.SetContentType("application/json")
	}
	hreq.SetBodyRaw(body)

	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseResponse(resp)
	c, err := b.exchange(ctx, hreq, resp)
	if err != nil {
		return nil, err
	}
	status := resp.StatusCode()
	if status < 200 || status > 299 {
		ue := parseError(status, resp.Body())
		c.Finish(!resp.ConnectionClose())
		if status == http.StatusGatewayTimeout && ir.Params.HasTimeout {
			// The server gave up at the deadline we sent it: ours.
			return nil, fmt.Errorf("kserve %s: %w (the server answered %d: %s)", b.desc.Name, context.DeadlineExceeded, status, ue.Message)
		}
		return nil, fmt.Errorf("kserve %s: %w", b.desc.Name, backends.ClassifyUpstreamError(ue))
	}
	rlen, err := ParseHeaderLength(resp.Header.Peek(HeaderInferenceHeaderContentLength))
	var out *InferResponse
	if err == nil {
		out, err = DecodeInferResponse(resp.Body(), rlen) // copies what it keeps
	}
	c.Finish(!resp.ConnectionClose())
	if err != nil {
		// A malformed answer is the server's fault, not the client's: keep
		// ErrBadRequest out of the chain.
		return nil, fmt.Errorf("kserve %s: %w: invalid infer response: %s", b.desc.Name, backends.ErrUnavailable, err.Error())
	}
	total := time.Since(start)
	res := &backends.Result{Tensors: out.Outputs}
	res.Timing.TTFT, res.Timing.Total = total, total
	res.Timing.Busy, res.CostUSD = backends.AttributeByConcurrency(b.desc, total, concurrency)
	return res, nil
}

// ModelMetadata asks the server for a model's metadata (GET
// /v2/models/{model}[/versions/{version}]).
func (b *HTTPBackend) ModelMetadata(ctx context.Context, model, version string) (*backends.ModelMetadata, error) {
	hreq := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(hreq)
	hreq.Header.SetMethod(fasthttp.MethodGet)
	hreq.SetRequestURI(b.modelPath(model, version))
	hreq.Header.SetHost(b.host)
	hreq.Header.SetUserAgent("accelgate")
	hreq.Header.Set(fasthttp.HeaderAccept, "application/json")
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseResponse(resp)
	c, err := b.exchange(ctx, hreq, resp)
	if err != nil {
		return nil, err
	}
	defer c.Finish(!resp.ConnectionClose())
	status := resp.StatusCode()
	if status < 200 || status > 299 {
		return nil, fmt.Errorf("kserve %s: %w", b.desc.Name, backends.ClassifyUpstreamError(parseError(status, resp.Body())))
	}
	var md struct {
		Name     string                `json:"name"`
		Versions []string              `json:"versions"`
		Platform string                `json:"platform"`
		Inputs   []backends.TensorSpec `json:"inputs"`
		Outputs  []backends.TensorSpec `json:"outputs"`
	}
	if err := json.Unmarshal(resp.Body(), &md); err != nil {
		return nil, fmt.Errorf("kserve %s: %w: invalid model metadata: %s", b.desc.Name, backends.ErrUnavailable, err.Error())
	}
	return &backends.ModelMetadata{Name: md.Name, Versions: md.Versions, Platform: md.Platform, Inputs: md.Inputs, Outputs: md.Outputs}, nil
}

// exchange writes the request on a pooled connection and reads the whole
// response; see httpconn.Pool.Exchange.
func (b *HTTPBackend) exchange(ctx context.Context, hreq *fasthttp.Request, resp *fasthttp.Response) (httpconn.Call, error) {
	c, err := b.pool.Exchange(ctx, hreq, resp, maxResponseBody)
	if err != nil {
		deadline, _ := ctx.Deadline()
		return c, b.ioError(ctx, deadline, err)
	}
	return c, nil
}

// ioError classifies a transport error: the context's own error when it ended
// (or when the connection hit the context's deadline), ErrUnavailable
// otherwise.
func (b *HTTPBackend) ioError(ctx context.Context, deadline time.Time, err error) error {
	if cerr := httpconn.ContextError(ctx, deadline, err); cerr != nil {
		return b.ctxError(cerr)
	}
	return fmt.Errorf("kserve %s: %w: %w", b.desc.Name, backends.ErrUnavailable, err)
}

func (b *HTTPBackend) ctxError(err error) error {
	return fmt.Errorf("kserve %s: %w", b.desc.Name, err)
}

// parseError builds the error for a server's answer with a non-2xx status:
// the message is the body's {"error": "..."}, or its text.
func parseError(status int, body []byte) *backends.UpstreamError {
	ue := &backends.UpstreamError{Status: status}
	var eb struct {
		Error json.RawMessage `json:"error"`
	}
	if json.Unmarshal(body, &eb) == nil && len(eb.Error) > 0 {
		var msg string
		if json.Unmarshal(eb.Error, &msg) == nil {
			ue.Message = msg
		} else {
			var obj struct {
				Message string `json:"message"`
			}
			if json.Unmarshal(eb.Error, &obj) == nil {
				ue.Message = obj.Message
			}
		}
	}
	if ue.Message == "" {
		t := body
		if len(t) > maxErrorText {
			t = t[:maxErrorText]
		}
		ue.Message = strings.TrimSpace(string(t))
	}
	if ue.Message == "" {
		ue.Message = http.StatusText(status)
	}
	return ue
}
