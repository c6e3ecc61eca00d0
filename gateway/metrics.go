package gateway

import (
	"io"

	"github.com/valyala/fasthttp"
)

// MetricsContentType is the content type of GET /metrics: the Prometheus text
// exposition format, version 0.0.4.
const MetricsContentType = "text/plain; version=0.0.4; charset=utf-8"

// MetricsFunc writes a Prometheus text exposition to w, such as the emulated
// accelerator's emulator.Backend.WriteMetrics.
type MetricsFunc func(w io.Writer) error

// SetMetrics makes GET /metrics answer with what fn writes (nil turns the
// route off again: 404, as without SetMetrics). It is safe to call while the
// server is serving.
func (s *Server) SetMetrics(fn MetricsFunc) {
	if fn == nil {
		s.metrics.Store(nil)
		return
	}
	s.metrics.Store(&fn)
}

// handleMetrics answers GET (and HEAD) /metrics with the metrics writer's
// exposition, or 404 when the server has none.
func (s *Server) handleMetrics(ctx *fasthttp.RequestCtx) {
	fn := s.metrics.Load()
	if fn == nil {
		s.writeError(ctx, errNotFoundPath(ctx.Path(), ctx.Method()))
		return
	}
	if !s.allow(ctx, ctx.Method(), fasthttp.MethodGet) {
		return
	}
	ctx.SetContentType(MetricsContentType)
	if err := (*fn)(ctx); err != nil {
		ctx.Response.ResetBody()
		ctx.SetStatusCode(fasthttp.StatusInternalServerError)
		ctx.SetContentType("text/plain; charset=utf-8")
		ctx.SetBodyString("writing metrics: " + err.Error() + "\n")
	}
}
