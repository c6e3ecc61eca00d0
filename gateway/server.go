package gateway

import (
	"errors"
	"math"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/accelgate/accelgate/backends"
)

// Defaults for Config.
const (
	DefaultHTTPAddr     = "127.0.0.1:8080"
	DefaultMaxBodyBytes = 32 << 20
)

// Config is the HTTP front's configuration.
type Config struct {
	// MaxBodyBytes bounds a request body; larger bodies get 413. Default 32 MiB.
	MaxBodyBytes int
	// ReadTimeout bounds reading one request (headers and body). Default 30s.
	ReadTimeout time.Duration
	// IdleTimeout closes idle keep-alive connections. Default 120s.
	IdleTimeout time.Duration
	// Name is the server name in metadata responses. Default "accelgate".
	Name string
	// Version is reported by metadata endpoints.
	Version string
}

func (c *Config) setDefaults() {
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.ReadTimeout <= 0 {
		c.ReadTimeout = 30 * time.Second
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = 120 * time.Second
	}
	if c.Name == "" {
		c.Name = "accelgate"
	}
	if c.Version == "" {
		c.Version = "0.1.0"
	}
}

// Server is the HTTP front: the OpenAI-compatible API and the health
// endpoints on one fasthttp listener. Handlers decode the client's bytes
// into a backends.Request (copying out of fasthttp's buffers, which are not
// retained past the handler), hand it to the Dispatcher and encode the
// result or the error in the client's protocol.
type Server struct {
	cfg   Config
	ref   *DispatcherRef // the current generation (reload.go)
	clock backends.Clock
	srv   *fasthttp.Server
	ids   atomic.Uint64
	idPfx string

	metrics atomic.Pointer[MetricsFunc] // GET /metrics; see SetMetrics
}

// NewServer builds the HTTP front over a dispatcher.
func NewServer(cfg Config, d *Dispatcher, clock backends.Clock) *Server {
	cfg.setDefaults()
	if clock == nil {
		clock = backends.RealClock
	}
	s := &Server{cfg: cfg, ref: NewDispatcherRef(d), clock: clock}
	s.idPfx = strconv.FormatInt(clock.Now().UnixNano()&0xffffffff, 36)
	s.srv = &fasthttp.Server{
		Handler:                       s.Handle,
		ErrorHandler:                  s.handleTransportError,
		Name:                          cfg.Name,
		MaxRequestBodySize:            readLimit(cfg.MaxBodyBytes),
		ReadTimeout:                   cfg.ReadTimeout,
		IdleTimeout:                   cfg.IdleTimeout,
		NoDefaultServerHeader:         true,
		NoDefaultContentType:          true,
		DisableHeaderNamesNormalizing: false,
		CloseOnShutdown:               true,
	}
	return s
}

// Serve accepts connections on ln until Shutdown.
func (s *Server) Serve(ln net.Listener) error { return s.srv.Serve(ln) }

// Shutdown stops accepting connections and waits for open ones to finish.
func (s *Server) Shutdown() error { return s.srv.Shutdown() }

// Handle is the fasthttp request handler (exported for in-memory tests and
// benchmarks).
func (s *Server) Handle(ctx *fasthttp.RequestCtx) {
	path := ctx.Path()
	method := ctx.Method()
	if len(ctx.Request.Body()) > s.cfg.MaxBodyBytes {
		s.handleTransportError(ctx, fasthttp.ErrBodyTooLarge)
		return
	}
	if isKServePath(path) {
		s.handleKServe(ctx)
		return
	}
	switch string(path) {
	case "/v1/chat/completions":
		if s.allow(ctx, method, fasthttp.MethodPost) {
			s.handleLLM(ctx, backends.OpChat)
		}
	case "/v1/completions":
		if s.allow(ctx, method, fasthttp.MethodPost) {
			s.handleLLM(ctx, backends.OpCompletion)
		}
	case "/v1/embeddings":
		if s.allow(ctx, method, fasthttp.MethodPost) {
			s.handleEmbeddings(ctx)
		}
	case "/v1/models":
		if s.allow(ctx, method, fasthttp.MethodGet) {
			s.handleModels(ctx)
		}
	case "/metrics":
		s.handleMetrics(ctx)
	case "/healthz":
		if s.allow(ctx, method, fasthttp.MethodGet) {
			ctx.SetContentType("application/json")
			ctx.SetBodyString(`{"status":"ok"}`)
		}
	case "/readyz":
		if s.allow(ctx, method, fasthttp.MethodGet) {
			ctx.SetContentType("application/json")
			if s.ref.Load().Ready() {
				ctx.SetBodyString(`{"status":"ready"}`)
			} else {
				ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
				ctx.SetBodyString(`{"status":"not ready","reason":"no healthy backend"}`)
			}
		}
	default:
		if strings.HasPrefix(string(path), "/v1/models/") && string(method) == fasthttp.MethodGet {
			s.handleModel(ctx, string(path[len("/v1/models/"):]))
			return
		}
		s.writeError(ctx, errNotFoundPath(path, method))
	}
}

// isKServePath reports whether a path belongs to the KServe v2 front: /v2 and
// everything under /v2/.
func isKServePath(path []byte) bool {
	return len(path) >= 3 && string(path[:3]) == "/v2" && (len(path) == 3 || path[3] == '/')
}

func errNotFoundPath(path, method []byte) error {
	return &routeError{err: ErrNotFound, msg: "unknown route " + string(method) + " " + string(path)}
}

// routeError is a 404/405 with a message naming the route.
type routeError struct {
	err error
	msg string
}

func (e *routeError) Error() string { return e.msg }
func (e *routeError) Unwrap() error { return e.err }

// allow answers 405 (with Allow) when the method is wrong.
func (s *Server) allow(ctx *fasthttp.RequestCtx, method []byte, want string) bool {
	if string(method) == want || (want == fasthttp.MethodGet && string(method) == fasthttp.MethodHead) {
		return true
	}
	ctx.Response.Header.Set("Allow", want)
	s.writeError(ctx, &routeError{err: ErrMethodNotAllowed, msg: "method " + string(method) + " is not allowed on " + string(ctx.Path()) + "; use " + want})
	return false
}

// readLimit is how much body fasthttp reads before it gives up on a request.
// It is above the configured limit so that a moderately oversized body is
// read whole and answered with a clean 413 on a connection that stays open:
// when fasthttp itself refuses a body it closes the connection at once, and a
// client still writing sees a reset instead of the 413. Bodies beyond the
// read limit still get fasthttp's refusal.
func readLimit(limit int) int {
	extra := max(limit, 1<<20)
	if limit > math.MaxInt32-extra {
		return math.MaxInt32
	}
	return limit + extra
}

// handleTransportError answers errors fasthttp raises before a handler runs
// (oversized body, malformed HTTP, read timeouts) in the OpenAI error format,
// or in the KServe v2 format ({"error": "..."}) for /v2 paths.
func (s *Server) handleTransportError(ctx *fasthttp.RequestCtx, err error) {
	kserve := isKServePath(ctx.Path())
	writeErr := s.writeError
	if kserve {
		writeErr = s.writeKServeError
	}
	var small *fasthttp.ErrSmallBuffer
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		writeErr(ctx, &routeError{err: ErrBodyTooLarge, msg: "request body exceeds the limit of " + strconv.Itoa(s.cfg.MaxBodyBytes) + " bytes"})
	case errors.As(err, &small):
		ctx.Response.Reset()
		ctx.SetStatusCode(fasthttp.StatusRequestHeaderFieldsTooLarge)
		if kserve {
			writeKServeErrorBody(ctx, "request headers are too large")
			return
		}
		writeOpenAIError(ctx, "request headers are too large", "invalid_request_error", "", "headers_too_large")
	default:
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			ctx.Response.Reset()
			ctx.SetStatusCode(fasthttp.StatusRequestTimeout)
			if kserve {
				writeKServeErrorBody(ctx, "timed out reading the request")
				return
			}
			writeOpenAIError(ctx, "timed out reading the request", "invalid_request_error", "", "request_timeout")
			return
		}
		writeErr(ctx, backends.BadRequestf("", "malformed HTTP request: %v", err))
	}
}
