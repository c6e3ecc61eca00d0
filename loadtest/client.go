package loadtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/accelgate/accelgate/backends"
)

// Client sends one Item to a target and describes what happened in an
// Outcome. Implementations are safe for concurrent use.
type Client interface {
	// Do sends it and fills o (o.Item, Status, Kind, OK, Latency, TTFT, ITL,
	// cost, backend, hardware, tokens). intended is the item's intended send
	// time on the wall clock (run start + it.At): every duration in o is
	// measured from it, never from when the request actually left, so time
	// spent waiting for the generator or a connection counts. o.SentLate is
	// the caller's. Do does not retain it or o after it returns, except that
	// o.Item = it.
	Do(ctx context.Context, it *Item, intended time.Time, o *Outcome)
	// Close releases connections.
	Close() error
}

// Request headers the clients set from an Item (the gateway's names).
const (
	headerPriority = "x-accelgate-priority"
	headerSLO      = "x-accelgate-slo-ms"
	headerSLOTTFT  = "x-accelgate-slo-ttft-ms"
	headerSLOTPOT  = "x-accelgate-slo-tpot-ms"
	headerTimeout  = "x-accelgate-timeout-ms"
	headerBackend  = "x-accelgate-backend"
	headerHardware = "x-accelgate-hardware"
	headerCost     = "x-accelgate-cost-usd"
)

// Outcome kinds the clients report besides "http_<code>" and "grpc_<code>".
const (
	KindOK                 = "ok"
	KindShed               = "shed"
	KindNoBackend          = "no_backend"
	KindTimeout            = "timeout"
	KindBadRequest         = "bad_request"
	KindConnError          = "conn_error"
	KindStreamError        = "stream_error"
	KindBadResponse        = "bad_response"
	KindGRPCUnavailable    = "grpc_unavailable"
	KindCanceled           = "canceled"
	KindBackendUnavailable = "backend_unavailable"
)

// DefaultConnections is the default number of keep-alive connections per
// target (the -connections flag). HTTP/1.1 carries one request per connection
// at a time, so an open loop needs about as many connections as requests in
// flight: LLM streams last seconds, and at a few hundred requests per second
// hundreds are in flight. Too few connections would make requests queue in
// the generator (still measured from their intended send time, so they would
// show as latency the server did not cause).
const DefaultConnections = 4096

// DefaultTimeout is the default per-request hard timeout (the -timeout flag).
const DefaultTimeout = 60 * time.Second

// timeoutGrace is how long past a request's hard timeout (counted from when
// it was actually sent) the client waits for the gateway's own 504 before it
// gives up and reports a client-side "timeout".
const timeoutGrace = time.Second

// ClientOptions configure NewClient.
type ClientOptions struct {
	// Target is the gateway's base URL (http://host:port or https://…); the
	// OpenAI routes (/v1/…) and the KServe v2 route (/v2/models/{m}/infer)
	// are appended.
	Target string
	// GRPC, when set (host:port), sends tensor items over KServe v2 gRPC
	// instead of HTTP.
	GRPC string
	// TensorJSON sends KServe v2 HTTP tensors as JSON data instead of the
	// binary tensor data extension.
	TensorJSON bool
	// Connections is the number of keep-alive HTTP connections to the target
	// (default DefaultConnections). Requests beyond it wait for a free
	// connection — measured, as everything, from their intended send time.
	Connections int
	// Timeout is the per-request hard timeout (default DefaultTimeout). It is
	// sent as x-accelgate-timeout-ms (an Item's own, shorter Timeout wins)
	// and the client abandons a request Timeout + 1 s after sending it.
	Timeout time.Duration
}

func (o *ClientOptions) setDefaults() {
	if o.Connections <= 0 {
		o.Connections = DefaultConnections
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
}

// NewClient returns the client for a target: OpenAI over HTTP for chat,
// completions and embeddings, KServe v2 over HTTP — or over gRPC when
// opts.GRPC is set — for tensors.
func NewClient(opts ClientOptions) (Client, error) {
	opts.setDefaults()
	h, err := newHTTPClient(opts)
	if err != nil {
		return nil, err
	}
	mc := &mux{http: h}
	if opts.GRPC != "" {
		g, err := newGRPCClient(opts)
		if err != nil {
			return nil, err
		}
		mc.grpc = g
	}
	return mc, nil
}

// mux sends tensors over gRPC when configured, everything else over HTTP.
type mux struct {
	http *httpClient
	grpc *grpcClient
}

func (m *mux) Do(ctx context.Context, it *Item, intended time.Time, o *Outcome) {
	if it.Op == backends.OpTensor && m.grpc != nil {
		m.grpc.Do(ctx, it, intended, o)
		return
	}
	m.http.Do(ctx, it, intended, o)
}

func (m *mux) Close() error {
	var err error
	if m.grpc != nil {
		err = m.grpc.Close()
	}
	return errors.Join(err, m.http.Close())
}

// effectiveTimeout is the hard timeout for an item: the item's own when it
// has one shorter than the client's, else the client's.
func effectiveTimeout(it *Item, def time.Duration) time.Duration {
	if it.Timeout > 0 && (def <= 0 || it.Timeout < def) {
		return it.Timeout
	}
	return def
}

// millis formats d as whole milliseconds (at least 1) into b.
func appendMillis(b []byte, d time.Duration) []byte {
	ms := int64((d + time.Millisecond - 1) / time.Millisecond)
	if ms < 1 {
		ms = 1
	}
	return strconv.AppendInt(b, ms, 10)
}

// priorityNames are the header values, indexed by backends.Priority.
var priorityNames = [...]string{backends.Critical: "critical", backends.Standard: "standard", backends.Sheddable: "sheddable"}

func priorityName(p backends.Priority) string {
	if int(p) < len(priorityNames) {
		return priorityNames[p]
	}
	return ""
}

// httpKinds holds "http_<code>" for every status, so classifying needs no
// formatting.
var httpKinds = func() []string {
	k := make([]string, 600)
	for i := range k {
		k[i] = "http_" + strconv.Itoa(i)
	}
	return k
}()

// classifyHTTP returns the outcome kind for an HTTP status.
func classifyHTTP(status int) string {
	switch status {
	case 200:
		return KindOK
	case 400:
		return KindBadRequest
	case 429:
		return KindShed
	case 503:
		return KindNoBackend
	case 504:
		return KindTimeout
	}
	if status >= 0 && status < len(httpKinds) {
		return httpKinds[status]
	}
	return "http_" + strconv.Itoa(status)
}

// classifyErr returns the kind for a transport error.
func classifyErr(err error) string {
	switch {
	case err == nil:
		return KindOK
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, fasthttp.ErrTimeout),
		errors.Is(err, fasthttp.ErrNoFreeConns), errors.Is(err, fasthttp.ErrDialTimeout):
		return KindTimeout
	case errors.Is(err, context.Canceled):
		return KindCanceled
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return KindTimeout
	}
	return KindConnError
}

// classifyOpenAICode maps the error.code of an OpenAI error event (a stream
// that failed after its headers were sent) to a kind.
func classifyOpenAICode(code []byte) string {
	switch string(code) {
	case "timeout":
		return KindTimeout
	case "slo_unattainable":
		return KindShed
	case "no_backend":
		return KindNoBackend
	case "backend_unavailable":
		return KindBackendUnavailable
	}
	return KindStreamError
}

// interner returns one shared string per distinct byte sequence (backend and
// hardware names), so recording them costs no allocation after the first.
type interner struct {
	mu sync.RWMutex
	m  map[string]string
}

var internedNames = &interner{m: make(map[string]string)}

func (in *interner) get(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	in.mu.RLock()
	s, ok := in.m[string(b)]
	in.mu.RUnlock()
	if ok {
		return s
	}
	s = string(b)
	in.mu.Lock()
	if len(in.m) < 4096 {
		in.m[s] = s
	}
	in.mu.Unlock()
	return s
}

// parseTarget splits a base URL into the dial address, whether it is TLS,
// and the base to prefix paths with.
func parseTarget(target string) (addr string, tls bool, base string, err error) {
	if !strings.Contains(target, "://") {
		target = "http://" + target
	}
	u, err := url.Parse(target)
	if err != nil {
		return "", false, "", fmt.Errorf("target %q: %w", target, err)
	}
	switch u.Scheme {
	case "http":
	case "https":
		tls = true
	default:
		return "", false, "", fmt.Errorf("target %q: scheme must be http or https", target)
	}
	if u.Host == "" {
		return "", false, "", fmt.Errorf("target %q: no host", target)
	}
	addr = u.Host
	if u.Port() == "" {
		if tls {
			addr += ":443"
		} else {
			addr += ":80"
		}
	}
	base = u.Scheme + "://" + u.Host + strings.TrimSuffix(u.Path, "/")
	return addr, tls, base, nil
}
