package kserve

import (
	"context"
	"fmt"

	"github.com/valyala/fasthttp"

	"github.com/accelgate/accelgate/backends"
)

// Probe asks the server whether it is ready: GET /v2/health/ready (KServe
// v2's server readiness) must answer 200. It uses the backend's connection
// pool, so it measures the round trip a request sees. Errors wrap
// backends.ErrUnavailable, or the context's error.
func (b *HTTPBackend) Probe(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return b.ctxError(err)
	}
	hreq := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(hreq)
	hreq.Header.SetMethod(fasthttp.MethodGet)
	hreq.SetRequestURI(b.base + "/v2/health/ready")
	hreq.Header.SetHost(b.host)
	hreq.Header.SetUserAgent("accelgate")
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseResponse(resp)
	c, err := b.exchange(ctx, hreq, resp)
	if err != nil {
		return err
	}
	c.Finish(!resp.ConnectionClose())
	if status := resp.StatusCode(); status != fasthttp.StatusOK {
		return fmt.Errorf("kserve %s: %w: GET /v2/health/ready answered %d", b.desc.Name, backends.ErrUnavailable, status)
	}
	return nil
}
