package gateway

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/accelgate/accelgate/backends"
	"github.com/accelgate/accelgate/backends/fleet"
)

// Prober is implemented by backends that can be asked whether they are up:
// the OpenAI-compatible upstreams (GET <url>/health, which vLLM, TGI, SGLang
// and llama.cpp serve), KServe v2 HTTP servers (GET /v2/health/ready) and
// KServe v2 gRPC servers (the ServerReady RPC). Probe returns nil when the
// backend is ready for traffic. It honours ctx, may do I/O, and is never
// called on the request path. In-process backends (the emulator) do not
// implement it: they are always healthy.
type Prober interface {
	Probe(ctx context.Context) error
}

// rttAlpha is the EWMA weight of the newest probe's round trip.
const rttAlpha = 0.3

// errProbeTimeout is the cause of a probe's context when its timeout passed.
var errProbeTimeout = errors.New("probe timed out")

// HealthChecker probes every backend that implements Prober at its
// health_check interval and acts on the outcomes:
//
//   - after unhealthy_threshold consecutive failures (an error, a non-ready
//     answer, no answer within timeout) the backend is marked down in the
//     router and receives no traffic; after healthy_threshold consecutive
//     successes it is marked up again;
//   - the round trip of every successful probe feeds an EWMA that the router
//     uses instead of the descriptor's rtt_ms (Dispatcher.SetRTT), so the
//     predictions for an edge node include its real link latency.
//
// Backends start healthy. Probes run in their own goroutines, one at a time
// per backend, under the injected clock: the clock's AfterFunc schedules
// them and bounds each (timeout), so tests drive the checker with a fake
// clock. Start begins probing; Close stops it and waits for the probes in
// flight.
type HealthChecker struct {
	d       *Dispatcher
	clock   backends.Clock
	logf    func(format string, a ...any)
	targets []*probeTarget

	ctx    context.Context // canceled by Close: ends the probes in flight
	cancel context.CancelFunc
	wg     sync.WaitGroup // probes in flight

	mu      sync.Mutex // guards the fields below and the targets' state
	started bool
	closed  bool

	probed func(i int, err error) // test hook: after each probe's outcome is applied
}

// probeTarget is one probed backend.
type probeTarget struct {
	i    int
	name string
	p    Prober
	cfg  fleet.HealthCheck

	// Under HealthChecker.mu.
	timer    backends.Timer // the next probe
	inflight bool
	healthy  bool
	succ     int           // consecutive successes
	fail     int           // consecutive failures
	rtt      time.Duration // EWMA of successful probes' round trips; 0 before the first
	lastErr  error
	last     time.Time // when the last probe ended
}

// NewHealthChecker returns a checker for d's backends. cfgs holds each
// backend's settings in router order (fleet.Fleet.HealthChecks); a missing
// entry means the defaults. Backends that do not implement Prober, and those
// whose checks are disabled, are not probed. clock nil means d's clock; logf
// (nil: silent) receives a line when a backend goes down or comes back.
func NewHealthChecker(d *Dispatcher, cfgs []fleet.HealthCheck, clock backends.Clock, logf func(format string, a ...any)) *HealthChecker {
	if clock == nil {
		clock = d.clock
	}
	if logf == nil {
		logf = func(string, ...any) {}
	}
	hc := &HealthChecker{d: d, clock: clock, logf: logf}
	hc.ctx, hc.cancel = context.WithCancel(context.Background())
	for i, b := range d.backends {
		var cfg fleet.HealthCheck
		if i < len(cfgs) {
			cfg = cfgs[i]
		}
		cfg.SetDefaults()
		p, ok := b.(Prober)
		if !ok || !cfg.On() {
			continue
		}
		hc.targets = append(hc.targets, &probeTarget{i: i, name: b.Descriptor().Name, p: p, cfg: cfg, healthy: true})
	}
	return hc
}

// Start probes every target at once and then at its interval. It is a no-op
// after the first call and after Close.
func (hc *HealthChecker) Start() {
	hc.mu.Lock()
	defer hc.mu.Unlock()
	if hc.started || hc.closed {
		return
	}
	hc.started = true
	for _, t := range hc.targets {
		hc.launchLocked(t)
	}
}

// Close stops the probing, cancels the probes in flight and waits for them.
// The backends keep the state the last probes left them in. Close is
// idempotent.
func (hc *HealthChecker) Close() error {
	hc.mu.Lock()
	hc.closed = true
	for _, t := range hc.targets {
		if t.timer != nil {
			t.timer.Stop()
			t.timer = nil
		}
	}
	hc.mu.Unlock()
	hc.cancel()
	hc.wg.Wait()
	return nil
}

// tick is a target's timer: the next probe is due.
func (hc *HealthChecker) tick(t *probeTarget) {
	hc.mu.Lock()
	defer hc.mu.Unlock()
	if hc.closed {
		return
	}
	hc.launchLocked(t)
}

// launchLocked schedules t's next probe and starts one now unless one is
// still in flight (a probe ends within its timeout, which is at most the
// interval, so this is rare). hc.mu held.
func (hc *HealthChecker) launchLocked(t *probeTarget) {
	t.timer = hc.clock.AfterFunc(t.cfg.Interval, func() { hc.tick(t) })
	if t.inflight {
		return
	}
	t.inflight = true
	hc.wg.Add(1)
	go hc.probe(t)
}

// probe runs one probe of t under its timeout and applies the outcome.
func (hc *HealthChecker) probe(t *probeTarget) {
	defer hc.wg.Done()
	ctx, cancel := context.WithCancelCause(hc.ctx)
	timeout := hc.clock.AfterFunc(t.cfg.Timeout, func() { cancel(errProbeTimeout) })
	start := hc.clock.Now()
	err := t.p.Probe(ctx)
	end := hc.clock.Now()
	timeout.Stop()
	timedOut := errors.Is(context.Cause(ctx), errProbeTimeout)
	cancel(nil)
	if hc.ctx.Err() != nil {
		hc.mu.Lock()
		t.inflight = false
		hc.mu.Unlock()
		return // closing: the outcome says nothing about the backend
	}
	if err != nil && timedOut {
		err = fmt.Errorf("no answer within %v: %w", t.cfg.Timeout, err)
	}
	hc.record(t, end, end.Sub(start), err)
}

// record applies a probe's outcome: the thresholds, the RTT EWMA, the router.
func (hc *HealthChecker) record(t *probeTarget, now time.Time, rtt time.Duration, err error) {
	hc.mu.Lock()
	t.inflight = false
	t.last, t.lastErr = now, err
	wasHealthy := t.healthy
	if err == nil {
		t.succ, t.fail = t.succ+1, 0
		if t.rtt == 0 {
			t.rtt = rtt
		} else {
			t.rtt += time.Duration(rttAlpha * float64(rtt-t.rtt))
		}
		if !t.healthy && t.succ >= t.cfg.HealthyThreshold {
			t.healthy = true
		}
	} else {
		t.succ, t.fail = 0, t.fail+1
		if t.healthy && t.fail >= t.cfg.UnhealthyThreshold {
			t.healthy = false
		}
	}
	healthy, ewma, fails := t.healthy, t.rtt, t.fail
	hook := hc.probed
	hc.mu.Unlock()

	if err == nil {
		hc.d.SetRTT(t.i, ewma)
	}
	// The state is applied after every probe, not only on a change, so that
	// a backend put back by another source of SetDown (CheckMetadata) while
	// it fails its probes is taken out again at the next one.
	hc.d.setUnhealthy(t.i, !healthy)
	switch {
	case wasHealthy && !healthy:
		hc.logf("backend %s: out of rotation after %d failed health checks: %v", t.name, fails, err)
	case !wasHealthy && healthy:
		hc.logf("backend %s: passed %d health checks; back in rotation (round trip %v)", t.name, t.cfg.HealthyThreshold, ewma)
	}
	if hook != nil {
		hook(t.i, err)
	}
}

// HealthStatus is one probed backend's state in the health checker.
type HealthStatus struct {
	// Index is the backend's router index; Name its name.
	Index int
	Name  string
	// Healthy is false while the checks keep the backend out of rotation.
	Healthy bool
	// RTT is the EWMA of the successful probes' round trips (0 before the
	// first success).
	RTT time.Duration
	// LastProbe is when the last probe ended (zero before the first);
	// LastError its error, nil when it succeeded.
	LastProbe time.Time
	LastError error
}

// Status returns the state of every probed backend, in router order.
func (hc *HealthChecker) Status() []HealthStatus {
	hc.mu.Lock()
	defer hc.mu.Unlock()
	out := make([]HealthStatus, len(hc.targets))
	for k, t := range hc.targets {
		out[k] = HealthStatus{Index: t.i, Name: t.name, Healthy: t.healthy, RTT: t.rtt, LastProbe: t.last, LastError: t.lastErr}
	}
	return out
}

// SetRTT passes backend i's measured network round trip to the router, which
// uses it instead of the descriptor's in its predictions; 0 goes back to the
// descriptor's. See router.Router.SetRTT.
func (d *Dispatcher) SetRTT(i int, rtt time.Duration) {
	d.mu.Lock()
	d.r.SetRTT(i, rtt)
	d.mu.Unlock()
}

// setUnhealthy records whether the health checks keep backend i out of
// rotation and marks it down in the router when they do or when its
// metadata disagrees with the fleet file (CheckMetadata).
func (d *Dispatcher) setUnhealthy(i int, unhealthy bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.unhealthy == nil {
		d.unhealthy = make([]bool, len(d.backends))
	}
	d.unhealthy[i] = unhealthy
	d.r.SetDown(i, unhealthy || d.mismatch[i])
}
