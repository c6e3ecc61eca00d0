package gateway

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/metadata"

	"github.com/accelgate/accelgate/backends"
	"github.com/accelgate/accelgate/backends/fakeclock"
	"github.com/accelgate/accelgate/backends/fleet"
	"github.com/accelgate/accelgate/backends/kserve"
	"github.com/accelgate/accelgate/backends/kservegrpc"
	"github.com/accelgate/accelgate/backends/upstream"
	"github.com/accelgate/accelgate/router"
)

// The upstream transports can be probed.
var (
	_ Prober = (*upstream.Backend)(nil)
	_ Prober = (*kserve.HTTPBackend)(nil)
	_ Prober = (*kservegrpc.Backend)(nil)
)

// probeOutcome is one probe the health checker applied.
type probeOutcome struct {
	i   int
	err error
}

// watchProbes installs the checker's test hook and returns the channel it
// reports every applied probe on.
func watchProbes(hc *HealthChecker) <-chan probeOutcome {
	ch := make(chan probeOutcome, 64)
	hc.probed = func(i int, err error) { ch <- probeOutcome{i, err} }
	return ch
}

func nextProbe(t *testing.T, ch <-chan probeOutcome) probeOutcome {
	t.Helper()
	select {
	case o := <-ch:
		return o
	case <-time.After(10 * time.Second):
		t.Fatal("no probe was applied")
		return probeOutcome{}
	}
}

// waitUntil yields until cond holds (state another goroutine settles right
// after the event the test synchronised on), failing after a generous guard.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	guard := time.After(10 * time.Second)
	for !cond() {
		select {
		case <-guard:
			t.Fatalf("timed out waiting until %s", what)
		default:
			runtime.Gosched()
		}
	}
}

func available(d *Dispatcher, i int) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.r.Available(i, d.clock.Now())
}

// TestHealthCheckMarksDownAndUp probes a real OpenAI-compatible upstream
// (an httptest server whose /health the test flips): three failed probes
// take it out of rotation, two successful ones bring it back.
func TestHealthCheckMarksDownAndUp(t *testing.T) {
	var status atomic.Int32
	status.Store(http.StatusOK)
	var healthHits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/health" || r.Method != http.MethodGet {
			http.NotFound(w, r)
			return
		}
		healthHits.Add(1)
		w.WriteHeader(int(status.Load()))
	}))
	defer srv.Close()
	desc := &backends.Descriptor{Name: "vllm-0", Profile: testProfile("test-gpu", 3.6), Models: []string{"llm"}, Transport: "openai", PricePerHour: 3.6}
	up, err := upstream.New(desc, upstream.Config{URL: srv.URL + "/v1"})
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	clock := fakeclock.New(t0)
	d, err := NewDispatcher([]backends.Backend{up}, testModels(), router.Config{}, clock)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	cfg := fleet.HealthCheck{Interval: 5 * time.Second, Timeout: time.Second}
	hc := NewHealthChecker(d, []fleet.HealthCheck{cfg}, nil, t.Logf)
	probes := watchProbes(hc)
	hc.Start()
	defer hc.Close()

	if o := nextProbe(t, probes); o.err != nil || o.i != 0 {
		t.Fatalf("first probe: %+v, want a success on backend 0", o)
	}
	if !d.Ready() {
		t.Fatal("a healthy upstream is not ready")
	}
	status.Store(http.StatusServiceUnavailable)
	for k := 1; k <= 3; k++ {
		clock.Advance(5 * time.Second)
		o := nextProbe(t, probes)
		if !errors.Is(o.err, backends.ErrUnavailable) || !strings.Contains(o.err.Error(), "503") {
			t.Fatalf("failed probe %d: error %v, want one wrapping ErrUnavailable that names the 503", k, o.err)
		}
		if want := k < 3; d.Ready() != want {
			t.Fatalf("after %d failed probes: ready %v, want %v", k, d.Ready(), want)
		}
	}
	if s := hc.Status(); len(s) != 1 || s[0].Healthy || s[0].LastError == nil || s[0].Name != "vllm-0" {
		t.Fatalf("status after 3 failures: %+v", s)
	}
	// A request now finds no backend.
	if _, err := d.Place(&backends.Request{Op: backends.OpChat, Model: "llm", Priority: backends.Standard}, d.models["llm"], -1); !errors.Is(err, backends.ErrNoBackend) {
		t.Fatalf("placement on a down fleet: %v, want ErrNoBackend", err)
	}

	status.Store(http.StatusOK)
	clock.Advance(5 * time.Second)
	if o := nextProbe(t, probes); o.err != nil {
		t.Fatalf("recovering probe 1: %v", o.err)
	}
	if d.Ready() {
		t.Fatal("back in rotation after one success (healthy_threshold is 2)")
	}
	clock.Advance(5 * time.Second)
	if o := nextProbe(t, probes); o.err != nil {
		t.Fatalf("recovering probe 2: %v", o.err)
	}
	if !d.Ready() {
		t.Fatal("not back in rotation after two successes")
	}
	if got := healthHits.Load(); got != 6 {
		t.Fatalf("the server saw %d health probes, want 6", got)
	}
}

// probeFake is a backend with a scripted Probe: each probe takes rtt of fake
// time (it advances the clock) and returns err; with block it waits for its
// context instead.
type probeFake struct {
	instant
	clock   *fakeclock.Clock
	pmu     sync.Mutex
	rtt     time.Duration
	perr    error
	pblock  bool
	started chan struct{}
	ended   chan error // the context error a blocked probe saw
}

func (p *probeFake) Probe(ctx context.Context) error {
	p.pmu.Lock()
	rtt, err, block := p.rtt, p.perr, p.pblock
	p.pmu.Unlock()
	if block {
		p.started <- struct{}{}
		<-ctx.Done()
		p.ended <- ctx.Err()
		return ctx.Err()
	}
	p.clock.Advance(rtt)
	return err
}

func (p *probeFake) set(rtt time.Duration, err error) {
	p.pmu.Lock()
	p.rtt, p.perr = rtt, err
	p.pmu.Unlock()
}

func newProbeFake(name string, clock *fakeclock.Clock) *probeFake {
	p := &probeFake{clock: clock, started: make(chan struct{}, 4), ended: make(chan error, 4)}
	p.desc = &backends.Descriptor{Name: name, Profile: testProfile("test-gpu", 3.6), Models: []string{"llm", "emb"}, PricePerHour: 3.6}
	return p
}

// predictE2E places a chat request and cancels it, returning the router's
// expected end-to-end latency on backend i.
func predictE2E(t *testing.T, d *Dispatcher, i int) time.Duration {
	t.Helper()
	req := &backends.Request{Op: backends.OpChat, Model: "llm", Priority: backends.Standard, EstInputTokens: 100, MaxTokens: 16}
	p, err := d.Place(req, d.models["llm"], -1)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Cancel(&p)
	if p.dec.Index != i {
		t.Fatalf("placed on backend %d, want %d", p.dec.Index, i)
	}
	return p.Prediction().E2E
}

// TestHealthCheckRTTReachesRouter: the EWMA of successful probes' round
// trips replaces the descriptor's RTT in the router's predictions; failed
// probes do not move it; backends without Probe are not probed.
func TestHealthCheckRTTReachesRouter(t *testing.T) {
	clock := fakeclock.New(t0)
	edge := newProbeFake("edge-0", clock)
	edge.desc.RTT = 5 * time.Millisecond
	local := &instant{desc: &backends.Descriptor{Name: "local", Profile: testProfile("test-gpu", 3.6), Models: []string{"emb"}, PricePerHour: 3.6}}
	d, err := NewDispatcher([]backends.Backend{edge, local}, testModels(), router.Config{}, clock)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	before := predictE2E(t, d, 0)

	hc := NewHealthChecker(d, nil, nil, nil) // defaults: every 5s
	probes := watchProbes(hc)
	edge.set(40*time.Millisecond, nil)
	hc.Start()
	defer hc.Close()
	if o := nextProbe(t, probes); o.err != nil || o.i != 0 {
		t.Fatalf("probe: %+v", o)
	}
	if got, want := predictE2E(t, d, 0)-before, 35*time.Millisecond; got != want {
		t.Fatalf("a measured 40ms round trip moved the prediction by %v, want %v (40ms instead of the descriptor's 5ms)", got, want)
	}
	edge.set(80*time.Millisecond, nil)
	clock.Advance(5 * time.Second)
	nextProbe(t, probes)
	// EWMA: 40 + 0.3 × (80 − 40) = 52 ms.
	if s := hc.Status(); len(s) != 1 || s[0].RTT != 52*time.Millisecond || !s[0].Healthy {
		t.Fatalf("status %+v, want one probed backend with RTT 52ms (the instant backend has no Probe)", s)
	}
	if got, want := predictE2E(t, d, 0)-before, 47*time.Millisecond; got != want {
		t.Fatalf("prediction moved by %v, want %v", got, want)
	}
	edge.set(500*time.Millisecond, errors.New("refused"))
	clock.Advance(5 * time.Second)
	if o := nextProbe(t, probes); o.err == nil {
		t.Fatal("failing probe reported success")
	}
	if s := hc.Status(); s[0].RTT != 52*time.Millisecond {
		t.Fatalf("a failed probe moved the RTT to %v", s[0].RTT)
	}
}

// TestHealthCheckTimeoutAndClose: a probe without an answer fails when its
// timeout passes on the injected clock; Close cancels a probe in flight and
// waits for it; a disabled check probes nothing.
func TestHealthCheckTimeoutAndClose(t *testing.T) {
	clock := fakeclock.New(t0)
	edge := newProbeFake("edge-0", clock)
	edge.pblock = true
	off := newProbeFake("off", clock)
	d, err := NewDispatcher([]backends.Backend{edge, off}, testModels(), router.Config{}, clock)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	no := false
	hc := NewHealthChecker(d, []fleet.HealthCheck{{Interval: 2 * time.Second, Timeout: 500 * time.Millisecond}, {Enabled: &no}}, nil, nil)
	probes := watchProbes(hc)
	hc.Start()
	<-edge.started
	clock.Advance(500 * time.Millisecond)
	o := nextProbe(t, probes)
	if o.err == nil || !strings.Contains(o.err.Error(), "no answer within 500ms") {
		t.Fatalf("timed-out probe: %v", o.err)
	}
	if err := <-edge.ended; !errors.Is(err, context.Canceled) {
		t.Fatalf("the probe's context ended with %v", err)
	}
	clock.Advance(1500 * time.Millisecond) // the next probe is due
	<-edge.started
	hc.Close()
	select {
	case err := <-edge.ended:
		if err == nil {
			t.Fatal("the probe in flight was not canceled")
		}
	default:
		t.Fatal("Close returned before the probe in flight ended")
	}
	select {
	case o := <-probes:
		t.Fatalf("a probe canceled by Close was applied: %+v", o)
	default:
	}
	if len(hc.Status()) != 1 {
		t.Fatalf("status %+v: the disabled backend is probed", hc.Status())
	}
	clock.Advance(time.Minute)
	if n := clock.Pending(); n != 0 {
		t.Fatalf("%d timers left after Close", n)
	}
}

// TestHealthCheckKeepsMetadataMismatchDown: a backend down for a metadata
// mismatch stays down when its probes succeed.
func TestHealthCheckKeepsMetadataMismatchDown(t *testing.T) {
	clock := fakeclock.New(t0)
	edge := newProbeFake("edge-0", clock)
	d, err := NewDispatcher([]backends.Backend{edge}, testModels(), router.Config{}, clock)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	d.mu.Lock()
	d.mismatch[0] = true
	d.r.SetDown(0, true)
	d.mu.Unlock()
	hc := NewHealthChecker(d, nil, nil, nil)
	probes := watchProbes(hc)
	hc.Start()
	defer hc.Close()
	nextProbe(t, probes)
	if available(d, 0) {
		t.Fatal("a successful probe put a backend with mismatched metadata back in rotation")
	}
}

// TestSiteHeaderReachesRouter: x-accelgate-site places a request on the
// backend at that site when it meets the SLO, on the OpenAI routes and over
// gRPC metadata.
func TestSiteHeaderReachesRouter(t *testing.T) {
	dc := &instant{desc: &backends.Descriptor{Name: "dc-0", Site: "dc-east", Profile: testProfile("test-gpu", 1), Models: []string{"llm", "emb"}, PricePerHour: 1}}
	edge := &instant{desc: &backends.Descriptor{Name: "edge-0", Site: "edge-1", Profile: testProfile("test-gpu", 3.6), Models: []string{"llm", "emb"}, PricePerHour: 3.6}}
	e := newEnv(t, Config{}, dc, edge)
	body := `{"model":"llm","messages":[{"role":"user","content":"hi"}],"max_tokens":4}`
	for _, tc := range []struct {
		headers []string
		want    string
	}{
		{nil, "dc-0"}, // the cheaper
		{[]string{HeaderSite, "edge-1"}, "edge-0"},
		{[]string{HeaderSite, "nowhere"}, "dc-0"},
	} {
		resp := e.do(t, "POST", "/v1/chat/completions", body, tc.headers...)
		if resp.StatusCode() != 200 || string(resp.Header.Peek(HeaderBackend)) != tc.want {
			t.Errorf("headers %v: status %d, backend %q, want %q", tc.headers, resp.StatusCode(), resp.Header.Peek(HeaderBackend), tc.want)
		}
	}
	edge.mu.Lock()
	site := edge.lastReq.Site
	edge.mu.Unlock()
	if site != "edge-1" {
		t.Errorf("the request reached the backend with site %q", site)
	}
	resp := e.do(t, "POST", "/v1/chat/completions", body, HeaderSite, strings.Repeat("x", 300))
	if resp.StatusCode() != 400 || !strings.Contains(string(resp.Body()), HeaderSite) {
		t.Errorf("an oversized site: status %d, body %s", resp.StatusCode(), resp.Body())
	}

	g := newGRPCEnv(t,
		&tensorFake{desc: &backends.Descriptor{Name: "dc-0", Site: "dc-east", Profile: visionProfile(), Models: []string{"resnet-50"}, PricePerHour: 1}},
		&tensorFake{desc: &backends.Descriptor{Name: "edge-0", Site: "edge-1", Profile: visionProfile(), Models: []string{"resnet-50"}, PricePerHour: 3.6}})
	ctx := metadata.AppendToOutgoingContext(tctx(t), HeaderSite, "edge-1")
	if _, err := g.client.ModelInfer(ctx, resnetRaw(1, "a")); err != nil {
		t.Fatal(err)
	}
	if r := g.be[1].lastReq(); r == nil || r.Site != "edge-1" {
		t.Fatalf("gRPC: the edge backend got %+v, want the request with site edge-1", r)
	}
	if _, err := g.client.ModelInfer(tctx(t), resnetRaw(1, "b")); err != nil {
		t.Fatal(err)
	}
	if r := g.be[0].lastReq(); r == nil || r.Site != "" {
		t.Fatalf("gRPC without site: the dc backend got %+v", r)
	}
}
