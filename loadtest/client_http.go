package loadtest

import (
	"context"
	"io"
	"strconv"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/accelgate/accelgate/backends"
	"github.com/accelgate/accelgate/internal/jsonw"
)

// httpClient sends OpenAI requests (chat, completions, embeddings) and KServe
// v2 HTTP infer requests over one pool of keep-alive fasthttp connections.
type httpClient struct {
	hc         *fasthttp.HostClient
	timeout    time.Duration
	grace      time.Duration // timeoutGrace; tests shorten it
	tensorJSON bool

	base     string // scheme://host[:port][/prefix]
	chatURL  string
	complURL string
	embedURL string

	inferMu   sync.RWMutex
	inferURLs map[string]string // model → KServe infer URL
	tensors   tensorBodies
}

func newHTTPClient(opts ClientOptions) (*httpClient, error) {
	addr, tls, base, err := parseTarget(opts.Target)
	if err != nil {
		return nil, err
	}
	c := &httpClient{
		hc: &fasthttp.HostClient{
			Addr:                          addr,
			IsTLS:                         tls,
			MaxConns:                      opts.Connections,
			MaxConnWaitTimeout:            opts.Timeout + timeoutGrace,
			MaxIdleConnDuration:           time.Minute,
			NoDefaultUserAgentHeader:      true,
			DisableHeaderNamesNormalizing: false,
			ReadBufferSize:                16 << 10,
			WriteBufferSize:               16 << 10,
			MaxIdemponentCallAttempts:     1,
		},
		timeout:    opts.Timeout,
		grace:      timeoutGrace,
		tensorJSON: opts.TensorJSON,
		base:       base,
		chatURL:    base + "/v1/chat/completions",
		complURL:   base + "/v1/completions",
		embedURL:   base + "/v1/embeddings",
		inferURLs:  make(map[string]string),
	}
	return c, nil
}

func (c *httpClient) Close() error {
	c.hc.CloseIdleConnections()
	return nil
}

// httpCall is the per-request state, pooled: request and response objects,
// the body buffer and the stream reader's buffer keep their capacity.
type httpCall struct {
	req     fasthttp.Request
	resp    fasthttp.Response
	body    []byte
	scratch []byte
	rbuf    []byte
}

var httpCalls = sync.Pool{New: func() any {
	return &httpCall{body: make([]byte, 0, 1024), scratch: make([]byte, 0, 32), rbuf: make([]byte, 8<<10)}
}}

var (
	strPOST    = []byte("POST")
	strAppJSON = []byte("application/json")
)

func (c *httpClient) Do(ctx context.Context, it *Item, intended time.Time, o *Outcome) {
	o.Item = it
	if err := ctx.Err(); err != nil {
		finishErr(o, intended, time.Now(), err)
		return
	}
	call := httpCalls.Get().(*httpCall)
	defer httpCalls.Put(call)
	call.req.Reset()
	switch it.Op {
	case backends.OpChat, backends.OpCompletion:
		c.doLLM(call, it, intended, o)
	case backends.OpEmbedding:
		c.doEmbedding(call, it, intended, o)
	case backends.OpTensor:
		c.doTensor(call, it, intended, o)
	default:
		o.Kind, o.Latency, o.TTFT = KindBadRequest, time.Since(intended), time.Since(intended)
	}
}

// setHeaders sets the method, URL, content type and the x-accelgate-*
// headers of it on req, and returns the hard timeout.
func (c *httpClient) setHeaders(call *httpCall, url string, it *Item) time.Duration {
	req := &call.req
	req.Header.SetMethodBytes(strPOST)
	req.SetRequestURI(url)
	req.Header.SetContentTypeBytes(strAppJSON)
	if p := priorityName(it.Priority); p != "" {
		req.Header.Set(headerPriority, p)
	}
	if it.Stream {
		if it.SLO.TTFT > 0 {
			call.scratch = appendMillis(call.scratch[:0], it.SLO.TTFT)
			req.Header.SetBytesV(headerSLOTTFT, call.scratch)
		}
		if it.SLO.TPOT > 0 {
			call.scratch = appendMillis(call.scratch[:0], it.SLO.TPOT)
			req.Header.SetBytesV(headerSLOTPOT, call.scratch)
		}
	} else if it.SLO.E2E > 0 {
		call.scratch = appendMillis(call.scratch[:0], it.SLO.E2E)
		req.Header.SetBytesV(headerSLO, call.scratch)
	}
	timeout := effectiveTimeout(it, c.timeout)
	if timeout > 0 {
		call.scratch = appendMillis(call.scratch[:0], timeout)
		req.Header.SetBytesV(headerTimeout, call.scratch)
	}
	return timeout
}

// appendLLMBody appends the chat or completions body for it.
func appendLLMBody(b []byte, it *Item) []byte {
	b = append(b, `{"model":`...)
	b = jsonw.AppendString(b, it.Model)
	if it.Op == backends.OpChat {
		b = append(b, `,"messages":[`...)
		for i, m := range it.Messages {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"role":`...)
			role := m.Role
			if role == "" {
				role = "user"
			}
			b = jsonw.AppendString(b, role)
			b = append(b, `,"content":`...)
			b = jsonw.AppendString(b, m.Content)
			b = append(b, '}')
		}
		b = append(b, ']')
	} else {
		b = append(b, `,"prompt":`...)
		b = jsonw.AppendString(b, it.Prompt)
	}
	if it.OutputTokens > 0 {
		b = append(b, `,"max_tokens":`...)
		b = strconv.AppendInt(b, int64(it.OutputTokens), 10)
	}
	if it.Stream {
		b = append(b, `,"stream":true,"stream_options":{"include_usage":true}`...)
	}
	return append(b, '}')
}

// appendEmbeddingBody appends the embeddings body for it.
func appendEmbeddingBody(b []byte, it *Item) []byte {
	b = append(b, `{"model":`...)
	b = jsonw.AppendString(b, it.Model)
	b = append(b, `,"input":[`...)
	for i, s := range it.Inputs {
		if i > 0 {
			b = append(b, ',')
		}
		b = jsonw.AppendString(b, s)
	}
	return append(b, "]}"...)
}

func (c *httpClient) doLLM(call *httpCall, it *Item, intended time.Time, o *Outcome) {
	url := c.chatURL
	if it.Op == backends.OpCompletion {
		url = c.complURL
	}
	timeout := c.setHeaders(call, url, it)
	call.body = appendLLMBody(call.body[:0], it)
	call.req.SetBodyRaw(call.body)
	if it.Stream {
		c.doStream(call, it, timeout, intended, o)
		return
	}
	c.doBuffered(call, it, timeout, intended, o)
}

func (c *httpClient) doEmbedding(call *httpCall, it *Item, intended time.Time, o *Outcome) {
	timeout := c.setHeaders(call, c.embedURL, it)
	call.body = appendEmbeddingBody(call.body[:0], it)
	call.req.SetBodyRaw(call.body)
	c.doBuffered(call, it, timeout, intended, o)
}

// finishErr fills o for a request that got no response.
func finishErr(o *Outcome, intended, now time.Time, err error) {
	o.Latency = now.Sub(intended)
	o.TTFT = o.Latency
	o.Status = 0
	o.Kind = classifyErr(err)
	o.OK = false
}

// readGatewayHeaders copies the backend, hardware and cost headers into o.
func readGatewayHeaders(h *fasthttp.ResponseHeader, o *Outcome) {
	o.Backend = internedNames.get(h.Peek(headerBackend))
	o.Hardware = internedNames.get(h.Peek(headerHardware))
	if v := h.Peek(headerCost); len(v) > 0 {
		if f, ok := parseFloatBytes(v); ok {
			o.CostUSD = f
		}
	}
}

// doBuffered sends a non-streaming OpenAI request and reads the whole answer.
func (c *httpClient) doBuffered(call *httpCall, it *Item, timeout time.Duration, intended time.Time, o *Outcome) {
	resp := &call.resp
	resp.StreamBody = false
	err := c.hc.DoDeadline(&call.req, resp, time.Now().Add(timeout+c.grace))
	now := time.Now()
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
	o.InputTokens = it.InputTokens
	if o.OK {
		if in, out, ok := parseUsage(resp.Body()); ok {
			o.InputTokens, o.OutputTokens = in, out
		}
	}
}

// doStream sends a streaming request and parses its server-sent events as
// they arrive.
func (c *httpClient) doStream(call *httpCall, it *Item, timeout time.Duration, intended time.Time, o *Outcome) {
	resp := &call.resp
	resp.StreamBody = true
	err := c.hc.DoDeadline(&call.req, resp, time.Now().Add(timeout+c.grace))
	if err != nil {
		finishErr(o, intended, time.Now(), err)
		return
	}
	defer resp.CloseBodyStream()
	o.Status = resp.StatusCode()
	readGatewayHeaders(&resp.Header, o)
	o.InputTokens = it.InputTokens
	if o.Status != 200 {
		// An error before the stream started: a JSON error body.
		now := time.Now()
		o.Latency = now.Sub(intended)
		o.TTFT = o.Latency
		o.Kind = classifyHTTP(o.Status)
		return
	}
	sp := sseParser{intended: intended, o: o, completion: it.Op == backends.OpCompletion}
	rerr := sp.read(resp.BodyStream(), call.rbuf[:cap(call.rbuf)], &call.rbuf)
	now := time.Now()
	o.Latency = now.Sub(intended)
	if !sp.gotToken {
		o.TTFT = o.Latency
	}
	switch {
	case sp.errKind != "":
		o.Kind = sp.errKind
	case rerr != nil && rerr != io.EOF:
		o.Kind = classifyErr(rerr)
	case !sp.done:
		o.Kind = KindStreamError // the stream ended without [DONE]
	default:
		o.Kind, o.OK = KindOK, true
	}
	if !sp.gotUsage {
		o.OutputTokens = sp.tokens
	}
}
