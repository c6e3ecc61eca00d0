package upstream

import (
	"context"
	"fmt"
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/accelgate/accelgate/backends"
)

// maxProbeBody bounds the body read from a health answer.
const maxProbeBody = 64 << 10

// Probe asks the upstream whether it is ready: GET <url>/health, which
// vLLM, TGI, SGLang and llama.cpp serve (llama.cpp answers 503 while it
// loads its model), must answer 200. A 404 also counts as up: the server
// answered but has no health endpoint (hosted OpenAI-compatible APIs,
// Ollama, accelgate's own front), so only whether it can be reached is
// checked, and failed requests are left to the router's passive outlier
// detection. The request carries the API key when one is set and uses the
// backend's connection pool, so it measures the round trip a request sees.
// Errors wrap backends.ErrUnavailable, or the context's error.
func (b *Backend) Probe(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return b.ctxError(err)
	}
	hreq := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(hreq)
	hreq.Header.SetMethod(fasthttp.MethodGet)
	hreq.SetRequestURI(strings.TrimSuffix(b.chatPath, "/v1/chat/completions") + "/health")
	hreq.Header.SetHost(b.host)
	hreq.Header.SetUserAgent("accelgate")
	if b.auth != "" {
		hreq.Header.Set(fasthttp.HeaderAuthorization, b.auth)
	}
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseResponse(resp)
	deadline, _ := ctx.Deadline()
	c, err := b.pool.Exchange(ctx, hreq, resp, maxProbeBody)
	if err != nil {
		return b.ioError(ctx, deadline, err)
	}
	c.Finish(!resp.ConnectionClose())
	if status := resp.StatusCode(); status != fasthttp.StatusOK && status != fasthttp.StatusNotFound {
		return fmt.Errorf("upstream %s: %w: GET /health answered %d", b.desc.Name, backends.ErrUnavailable, status)
	}
	return nil
}
