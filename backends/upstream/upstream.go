package upstream

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/accelgate/accelgate/backends"
	"github.com/accelgate/accelgate/internal/httpconn"
	"github.com/accelgate/accelgate/internal/jsonscan"
)

// Defaults for the zero values of Config.
const (
	DefaultMaxConns    = httpconn.DefaultMaxConns
	DefaultDialTimeout = httpconn.DefaultDialTimeout
)

const (
	// maxResponseBody bounds a non-streaming response body.
	maxResponseBody = 256 << 20
	// maxErrorBody bounds the error body read from a stream that failed
	// before it started.
	maxErrorBody = 1 << 20
	// drainTimeout and maxDrain bound how long and how much Do reads after a
	// stream's [DONE] to reach the end of the body, so the connection can be
	// reused; past them the connection is closed instead.
	drainTimeout = 100 * time.Millisecond
	maxDrain     = 64 << 10
)

// Config is how to reach an OpenAI-compatible upstream.
type Config struct {
	// URL is the server's base URL, e.g. http://127.0.0.1:9000; the /v1/...
	// paths are appended to it (a trailing "/v1" is accepted and not doubled).
	URL string
	// APIKey, when set, is sent as "Authorization: Bearer <APIKey>" on every
	// request. It is never logged, and it is replaced by "[redacted]" in the
	// upstream's error messages before they reach the gateway (when it is at
	// least minRedactLen bytes long: a shorter one would match ordinary text).
	APIKey string
	// ModelNames maps a public model name (Request.Model) to the name the
	// upstream serves it under (vLLM's --served-model-name), e.g.
	// "llama-3.1-8b-instruct" → "meta-llama/Llama-3.1-8B-Instruct". A request
	// for a mapped model goes out with the top-level "model" of its body set
	// to the upstream name, and the "model" of the response (the whole body,
	// or every streamed chunk) is set back to the public name. Models without
	// an entry are sent as they are, without any edit.
	ModelNames map[string]string
	// MaxConns bounds the connections to the upstream, that is the requests in
	// flight on it; more wait for a free one until their context ends.
	// DefaultMaxConns when zero or negative.
	MaxConns int
	// DialTimeout bounds connecting (and the TLS handshake). DefaultDialTimeout
	// when zero or negative.
	DialTimeout time.Duration
}

// Backend forwards requests to one OpenAI-compatible server. It is safe for
// concurrent use.
type Backend struct {
	desc     *backends.Descriptor
	pool     *httpconn.Pool
	host     string // Host header
	chatPath string
	complete string
	embed    string
	auth     string // Authorization header value, "" when none
	apiKey   string // redacted from error messages when long enough
	// models holds the JSON string literals of the mapped models' names, by
	// public name; nil when there is no mapping.
	models map[string]modelNames

	inflight atomic.Int64 // requests in Do
}

var _ backends.Backend = (*Backend)(nil)

// modelNames are a mapped model's names as JSON string literals, quotes
// included, ready to splice into a body.
type modelNames struct {
	upstream, public string
}

// minRedactLen is the shortest API key searched for in error messages.
const minRedactLen = 8

// New returns a Backend for the upstream at cfg.URL, described by desc. The
// URL must be absolute, http or https, with a host, and without a query or a
// fragment. No connection is made until the first request.
func New(desc *backends.Descriptor, cfg Config) (*Backend, error) {
	if desc == nil {
		return nil, errors.New("upstream: nil descriptor")
	}
	ep, err := httpconn.ParseEndpoint(cfg.URL, "/v1")
	if err != nil {
		hint := ""
		if errors.Is(err, httpconn.ErrCredentials) {
			hint = "; use the API key"
		}
		return nil, fmt.Errorf("upstream %s: url %q: %v%s", desc.Name, cfg.URL, err, hint)
	}
	b := &Backend{
		desc:     desc,
		pool:     httpconn.NewPool(ep.Addr, ep.TLS, cfg.MaxConns, cfg.DialTimeout),
		host:     ep.Host,
		chatPath: ep.BasePath + "/v1/chat/completions",
		complete: ep.BasePath + "/v1/completions",
		embed:    ep.BasePath + "/v1/embeddings",
	}
	if cfg.APIKey != "" {
		b.auth = "Bearer " + cfg.APIKey
		b.apiKey = cfg.APIKey
	}
	for public, up := range cfg.ModelNames {
		if public == "" || up == "" {
			return nil, fmt.Errorf("upstream %s: model name mapping %q → %q: both names must be non-empty", desc.Name, public, up)
		}
		if public == up {
			continue
		}
		if b.models == nil {
			b.models = make(map[string]modelNames, len(cfg.ModelNames))
		}
		b.models[public] = modelNames{upstream: jsonString(up), public: jsonString(public)}
	}
	return b, nil
}

// Descriptor returns the backend's static description.
func (b *Backend) Descriptor() *backends.Descriptor { return b.desc }

// Close closes the idle connections and makes later requests fail with
// backends.ErrUnavailable; requests in flight finish, and their connections
// are closed then.
func (b *Backend) Close() error {
	b.pool.Close()
	return nil
}

// jsonString returns s as a JSON string literal.
func jsonString(s string) string {
	q, _ := json.Marshal(s) // a string always marshals
	return string(q)
}

// Do forwards req to the upstream and returns its result; see the package doc
// for the protocol, the errors and the cost rule. model is not used: the
// upstream knows its own models, and the name mapping (Config.ModelNames) is
// looked up by req.Model.
func (b *Backend) Do(ctx context.Context, req *backends.Request, model *backends.Model, stream backends.StreamFunc) (*backends.Result, error) {
	var path string
	switch req.Op {
	case backends.OpChat:
		path = b.chatPath
	case backends.OpCompletion:
		path = b.complete
	case backends.OpEmbedding:
		path = b.embed
	default:
		return nil, fmt.Errorf("upstream %s: %w: %s requests are not supported by an OpenAI upstream",
			b.desc.Name, backends.ErrUnavailable, req.Op)
	}
	concurrency := b.inflight.Add(1)
	defer b.inflight.Add(-1)
	start := time.Now()
	if err := ctx.Err(); err != nil {
		return nil, b.ctxError(err)
	}

	body, dropUsage := req.Body, false
	var public string // the public name to put back in the response, "" when not mapped
	if names, ok := b.models[req.Model]; ok {
		// req.Body is not edited in place: the request may be retried on
		// another backend.
		if nb, changed := setModel(nil, body, names.upstream, true, true); changed {
			body = nb
		}
		public = names.public
	}
	if req.Stream {
		var forced bool
		body, forced = forceIncludeUsage(body)
		dropUsage = forced && !req.IncludeUsage
		if stream == nil {
			stream = func(backends.Chunk) error { return nil }
		}
	}

	hreq := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(hreq)
	hreq.Header.SetMethod(fasthttp.MethodPost)
	hreq.SetRequestURI(path)
	hreq.Header.SetHost(b.host)
	hreq.Header.SetUserAgent("accelgate")
	hreq.Header.SetContentType("application/json")
	if req.Stream {
		hreq.Header.Set(fasthttp.HeaderAccept, "text/event-stream")
	} else {
		hreq.Header.Set(fasthttp.HeaderAccept, "application/json")
	}
	if b.auth != "" {
		hreq.Header.Set(fasthttp.HeaderAuthorization, b.auth)
	}
	hreq.SetBodyRaw(body)

	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseResponse(resp)
	resp.StreamBody = req.Stream

	c, err := b.exchange(ctx, hreq, resp)
	if err != nil {
		return nil, err
	}
	var res *backends.Result
	if req.Stream {
		res, err = c.readStream(resp, start, dropUsage, public, stream)
	} else {
		res, err = c.readWhole(resp, start, public)
	}
	if err != nil {
		return nil, err
	}
	res.Timing.Busy, res.CostUSD = backends.AttributeByConcurrency(b.desc, res.Timing.Total, concurrency)
	return res, nil
}

// call is one request's hold on a connection, from the request's write to the
// end of its response.
type call struct {
	httpconn.Call
	b        *Backend
	ctx      context.Context
	deadline time.Time // zero when ctx has none
}

// exchange writes the request on a pooled connection and reads the response
// header (and, for a non-streaming request, the body); see
// httpconn.Pool.Exchange.
func (b *Backend) exchange(ctx context.Context, hreq *fasthttp.Request, resp *fasthttp.Response) (*call, error) {
	deadline, _ := ctx.Deadline()
	hc, err := b.pool.Exchange(ctx, hreq, resp, maxResponseBody)
	if err != nil {
		return nil, b.ioError(ctx, deadline, err)
	}
	return &call{Call: hc, b: b, ctx: ctx, deadline: deadline}, nil
}

// readWhole handles a non-streaming response, whose body ReadLimitBody read.
// public, when set, is the JSON string literal the response's "model" is set
// to.
func (c *call) readWhole(resp *fasthttp.Response, start time.Time, public string) (*backends.Result, error) {
	reuse := !resp.ConnectionClose()
	status := resp.StatusCode()
	body := resp.Body()
	if status < 200 || status > 299 {
		err := c.b.upstreamError(status, body)
		c.Finish(reuse)
		return nil, err
	}
	res, edited := &backends.Result{}, false
	if public != "" {
		res.Raw, edited = setModel(nil, body, public, false, false)
	}
	if !edited {
		res.Raw = append([]byte{}, body...) // body is the pooled response's
	}
	if u, ok := lastUsage(res.Raw); ok {
		res.Usage = u
	}
	c.Finish(reuse)
	total := time.Since(start)
	res.Timing.TTFT, res.Timing.Total = total, total
	return res, nil
}

// readStream relays a streaming response's events as they arrive. public,
// when set, is the JSON string literal every chunk's "model" is set to.
func (c *call) readStream(resp *fasthttp.Response, start time.Time, dropUsage bool, public string, stream backends.StreamFunc) (*backends.Result, error) {
	b := c.b
	bs := resp.BodyStream()
	status := resp.StatusCode()
	if status < 200 || status > 299 {
		var body []byte
		var err error
		if bs != nil {
			body, err = io.ReadAll(io.LimitReader(bs, maxErrorBody))
		}
		_ = resp.CloseBodyStream()
		c.Finish(false)
		if err != nil && c.ctx.Err() != nil {
			return nil, b.ctxError(c.ctx.Err())
		}
		return nil, b.upstreamError(status, body)
	}
	if bs == nil {
		c.Finish(false)
		return nil, fmt.Errorf("upstream %s: %w: a stream response without a body", b.desc.Name, backends.ErrUnavailable)
	}
	sr := acquireSSEReader(bs)
	defer releaseSSEReader(sr)
	fail := func(err error) (*backends.Result, error) {
		_ = resp.CloseBodyStream()
		c.Finish(false)
		return nil, err
	}

	res := &backends.Result{}
	var edited []byte // the chunk with its model set back, reused
	done, finishSeen := false, false
	for !done {
		data, err := sr.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fail(b.ioError(c.ctx, c.deadline, err))
		}
		if res.Timing.TTFT == 0 {
			res.Timing.TTFT = max(time.Since(start), 1)
		}
		data = bytes.TrimSpace(data)
		switch {
		case len(data) == 0:
			continue
		case string(data) == "[DONE]":
			done = true
			continue
		}
		if bytes.Contains(data, []byte(`"error"`)) {
			if ue := streamError(data); ue != nil {
				// Classified as an error answer would be: a 5xx counts
				// against the backend (ErrUnavailable).
				b.redact(ue)
				return fail(backends.ClassifyUpstreamError(ue))
			}
		}
		if u, ok, noChoices := chunkUsage(data); ok {
			res.Usage = u
			if noChoices && dropUsage {
				continue
			}
		}
		if !finishSeen && bytes.Contains(data, []byte(`"finish_reason":"`)) {
			finishSeen = true
		}
		if public != "" {
			if out, changed := setModel(edited[:0], data, public, false, false); changed {
				edited, data = out, out
			}
		}
		if err := stream(backends.Chunk{Raw: data}); err != nil {
			return fail(err)
		}
	}
	if !done && !finishSeen {
		return fail(fmt.Errorf("upstream %s: %w: the stream ended before [DONE] or a finish_reason",
			b.desc.Name, backends.ErrUnavailable))
	}
	// Read to the end of the body (normally just the chunked terminator) so
	// the connection can be reused.
	reuse := !done || c.drain(sr)
	reuse = reuse && !resp.ConnectionClose() && resp.Header.ContentLength() != -2
	_ = resp.CloseBodyStream()
	c.Finish(reuse)
	res.Timing.Total = time.Since(start)
	if res.Timing.TTFT == 0 {
		res.Timing.TTFT = res.Timing.Total
	}
	return res, nil
}

// drain reads what is left of the body after [DONE], briefly, and reports
// whether it reached the end.
func (c *call) drain(sr *sseReader) bool {
	dl := time.Now().Add(drainTimeout)
	if !c.deadline.IsZero() && c.deadline.Before(dl) {
		dl = c.deadline
	}
	if c.SetReadDeadline(dl) != nil {
		return false
	}
	var buf [512]byte
	for n := 0; n <= maxDrain; {
		k, err := sr.br.Read(buf[:])
		n += k
		if err == io.EOF {
			return true
		}
		if err != nil {
			return false
		}
	}
	return false
}

// upstreamError builds and classifies the error for an upstream's error
// answer, with the API key redacted.
func (b *Backend) upstreamError(status int, body []byte) error {
	ue := parseUpstreamError(status, body)
	b.redact(ue)
	return backends.ClassifyUpstreamError(ue)
}

// redact replaces the API key in an upstream error's text: some servers echo
// the credentials they rejected, and the message is relayed to clients.
func (b *Backend) redact(ue *backends.UpstreamError) {
	if len(b.apiKey) < minRedactLen {
		return
	}
	for _, f := range []*string{&ue.Message, &ue.Type, &ue.Code, &ue.Param} {
		if strings.Contains(*f, b.apiKey) {
			*f = strings.ReplaceAll(*f, b.apiKey, "[redacted]")
		}
	}
}

// ioError classifies a transport error: the context's own error when it ended
// (or when the connection hit the context's deadline), ErrUnavailable
// otherwise.
func (b *Backend) ioError(ctx context.Context, deadline time.Time, err error) error {
	if cerr := httpconn.ContextError(ctx, deadline, err); cerr != nil {
		return b.ctxError(cerr)
	}
	return fmt.Errorf("upstream %s: %w: %w", b.desc.Name, backends.ErrUnavailable, err)
}

func (b *Backend) ctxError(err error) error {
	return fmt.Errorf("upstream %s: %w", b.desc.Name, err)
}

type usageJSON struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

// parseUsage reads the usage object starting at b[i] ('{') in place: the
// three counts, which must be integers or null, as encoding/json would
// accept into usageJSON (keys are compared exactly, where encoding/json
// would also take other cases); other members are skipped. It replaced
// json.Unmarshal of the object, which cost 5% of the gateway's CPU per
// request on the overhead benchmark.
func parseUsage(b []byte, i int) (u usageJSON, ok bool) {
	ok = true
	end := jsonscan.Members(b, i, func(key []byte, vs, ve int) bool {
		val := b[vs:ve]
		var dst *int
		switch {
		case jsonscan.KeyIs(key, "prompt_tokens"):
			dst = &u.PromptTokens
		case jsonscan.KeyIs(key, "completion_tokens"):
			dst = &u.CompletionTokens
		case jsonscan.KeyIs(key, "total_tokens"):
			dst = &u.TotalTokens
		default:
			return true
		}
		if string(val) == "null" {
			return true
		}
		n, isInt := jsonscan.Int(val)
		if !isInt || int64(int(n)) != n {
			ok = false
			return false
		}
		*dst = int(n)
		return true
	})
	return u, ok && end >= 0
}

func (u *usageJSON) usage() backends.Usage {
	total := u.TotalTokens
	if total == 0 {
		total = u.PromptTokens + u.CompletionTokens
	}
	return backends.Usage{PromptTokens: u.PromptTokens, CompletionTokens: u.CompletionTokens, TotalTokens: total}
}

// lastUsage reads the usage object of a non-streaming response without
// decoding the whole body: OpenAI-compatible servers put "usage" at the top
// level, after the choices, so it is the last "usage": { in the body (a key
// inside a string value would have escaped quotes). Only that object is
// decoded.
func lastUsage(body []byte) (backends.Usage, bool) {
	key := []byte(`"usage"`)
	for end := len(body); end > 0; {
		k := bytes.LastIndex(body[:end], key)
		if k < 0 {
			return backends.Usage{}, false
		}
		end = k
		j := jsonscan.Space(body, k+len(key))
		if j >= len(body) || body[j] != ':' {
			continue
		}
		j = jsonscan.Space(body, j+1)
		if j >= len(body) || body[j] != '{' {
			continue
		}
		u, ok := parseUsage(body, j)
		if !ok {
			if jsonscan.Value(body, j) < 0 {
				continue // not a whole object: keep looking
			}
			return backends.Usage{}, false
		}
		return u.usage(), true
	}
	return backends.Usage{}, false
}

// chunkUsage parses the usage of a stream chunk that carries one (a "usage"
// member whose value is an object, not null) and reports whether the chunk's
// choices are empty, as in the usage-only chunk that include_usage adds. Chunks
// without usage are not decoded.
func chunkUsage(data []byte) (u backends.Usage, ok, noChoices bool) {
	key := []byte(`"usage"`)
	for i := 0; ; {
		k := bytes.Index(data[i:], key)
		if k < 0 {
			return u, false, false
		}
		j := jsonscan.Space(data, i+k+len(key))
		i += k + len(key)
		if j >= len(data) || data[j] != ':' {
			continue
		}
		if j = jsonscan.Space(data, j+1); j < len(data) && data[j] == '{' {
			break
		}
	}
	var c struct {
		Choices []json.RawMessage `json:"choices"`
		Usage   *usageJSON        `json:"usage"`
	}
	if json.Unmarshal(data, &c) != nil || c.Usage == nil {
		return u, false, false
	}
	return c.Usage.usage(), true, len(c.Choices) == 0
}
