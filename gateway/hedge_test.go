package gateway

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/accelgate/accelgate/backends"
	"github.com/accelgate/accelgate/backends/fakeclock"
	"github.com/accelgate/accelgate/backends/fleet"
	"github.com/accelgate/accelgate/router"
)

// slowBackend answers only when its context ends; it reports each call's
// start and how its context ended.
type slowBackend struct {
	desc    *backends.Descriptor
	started chan struct{}
	ended   chan error
}

func (b *slowBackend) Descriptor() *backends.Descriptor { return b.desc }
func (b *slowBackend) Close() error                     { return nil }

func (b *slowBackend) Do(ctx context.Context, req *backends.Request, m *backends.Model, _ backends.StreamFunc) (*backends.Result, error) {
	b.started <- struct{}{}
	<-ctx.Done()
	b.ended <- ctx.Err()
	return nil, fmt.Errorf("slow %s: %w", b.desc.Name, ctx.Err())
}

// hedgePair is a dispatcher over a cheap slow backend and a dear fast one,
// with hedging on and the retry budget in place.
func hedgePair(t *testing.T, clock backends.Clock) (*Dispatcher, *slowBackend, *instant) {
	t.Helper()
	slow := &slowBackend{desc: &backends.Descriptor{Name: "slow", Profile: testProfile("test-gpu", 1), Models: []string{"llm"}, PricePerHour: 1},
		started: make(chan struct{}, 8), ended: make(chan error, 8)}
	fast := &instant{desc: &backends.Descriptor{Name: "fast", Profile: testProfile("test-gpu", 3.6), Models: []string{"llm"}, PricePerHour: 3.6}}
	d, err := NewDispatcher([]backends.Backend{slow, fast}, testModels(), router.Config{}, clock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	d.SetRetry(fleet.Retry{})
	d.SetHedging(fleet.Hedging{Enabled: true})
	return d, slow, fast
}

func criticalReq(id string, slo time.Duration) *backends.Request {
	r := chatReq(id)
	r.Priority, r.SLO = backends.Critical, backends.SLO{E2E: slo}
	return r
}

func wait[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		var zero T
		return zero
	}
}

// TestHedgeFastBackendWins: a critical request with a tight SLO that has no
// answer from its (slow) backend once the predicted p95 has passed gets a
// copy on the other backend; that answer wins, the slow copy's context is
// canceled, and the router neither counts the loser as failed nor keeps its
// placement.
func TestHedgeFastBackendWins(t *testing.T) {
	clock := fakeclock.New(t0)
	d, slow, fast := hedgePair(t, clock)
	m := d.models["llm"]
	req := criticalReq("h1", 150*time.Millisecond)
	p, err := d.Place(req, m, -1)
	if err != nil {
		t.Fatal(err)
	}
	delay, ok := d.hedgeDelay(req, &p)
	d.Cancel(&p)
	if !ok || p.dec.Index != 0 || delay <= 0 || delay > req.SLO.E2E {
		t.Fatalf("hedge delay %v, %v on backend %d; want the slow backend's p95 within the SLO", delay, ok, p.dec.Index)
	}
	balance := d.RetryBudget().Balance(clock.Now())

	type outcome struct {
		res  *backends.Result
		desc *backends.Descriptor
		err  error
	}
	done := make(chan outcome, 1)
	go func() {
		res, desc, err := d.Do(context.Background(), req, m)
		done <- outcome{res, desc, err}
	}()
	wait(t, slow.started, "the first copy to start")
	select {
	case o := <-done:
		t.Fatalf("the request ended before the hedge: %+v", o)
	default:
	}
	clock.Advance(delay)
	o := wait(t, done, "the hedged answer")
	if o.err != nil || o.res == nil || o.desc.Name != "fast" {
		t.Fatalf("hedged request: %v on %v, want the fast backend's answer", o.err, o.desc)
	}
	if err := wait(t, slow.ended, "the loser's cancellation"); !errors.Is(err, context.Canceled) {
		t.Fatalf("the losing copy's context ended with %v, want context.Canceled", err)
	}
	waitUntil(t, "the loser's placement is released", func() bool {
		d.mu.Lock()
		defer d.mu.Unlock()
		return d.r.Load(0).InFlight == 0 && d.r.Load(1).InFlight == 0
	})
	if fast.calls != 1 {
		t.Fatalf("the fast backend ran %d copies", fast.calls)
	}
	// One deposit (0.2) for the request, one withdrawal for the hedge.
	if got, want := d.RetryBudget().Balance(clock.Now()), balance+0.2-1; got < want-1e-9 || got > want+1e-9 {
		t.Fatalf("retry budget %v after the hedge, want %v", got, want)
	}
	// Canceled losers are not failures: after more hedged requests than
	// router.eject_after, the slow backend is still in rotation and still
	// chosen first.
	for k := range 4 {
		go func() {
			res, desc, err := d.Do(context.Background(), criticalReq(fmt.Sprint("h", k+2), 150*time.Millisecond), m)
			done <- outcome{res, desc, err}
		}()
		wait(t, slow.started, "the first copy to start")
		clock.Advance(delay)
		if o := wait(t, done, "the hedged answer"); o.err != nil || o.desc.Name != "fast" {
			t.Fatalf("hedged request %d: %v on %v", k+2, o.err, o.desc)
		}
		wait(t, slow.ended, "the loser's cancellation")
		waitUntil(t, "the loser's placement is released", func() bool {
			d.mu.Lock()
			defer d.mu.Unlock()
			return d.r.Load(0).InFlight == 0
		})
	}
	if !available(d, 0) {
		t.Fatal("canceled hedge losers ejected the slow backend")
	}
}

// TestHedgeFirstAnswerWins: when the first copy answers before the hedge
// delay, no hedge is sent and the budget is not drawn.
func TestHedgeFirstAnswerWins(t *testing.T) {
	clock := fakeclock.New(t0)
	first := &instant{desc: &backends.Descriptor{Name: "first", Profile: testProfile("test-gpu", 1), Models: []string{"llm"}, PricePerHour: 1}}
	other := &instant{desc: &backends.Descriptor{Name: "other", Profile: testProfile("test-gpu", 3.6), Models: []string{"llm"}, PricePerHour: 3.6}}
	d, err := NewDispatcher([]backends.Backend{first, other}, testModels(), router.Config{}, clock)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	d.SetRetry(fleet.Retry{})
	d.SetHedging(fleet.Hedging{Enabled: true})
	_, desc, err := d.Do(context.Background(), criticalReq("x", 150*time.Millisecond), d.models["llm"])
	if err != nil || desc.Name != "first" {
		t.Fatalf("%v on %v", err, desc)
	}
	clock.Advance(time.Second)
	if first.calls != 1 || other.calls != 0 {
		t.Fatalf("calls: first %d, other %d; want no hedge", first.calls, other.calls)
	}
	if got := d.RetryBudget().Balance(clock.Now()); got != 30.2 {
		t.Fatalf("budget %v, want 30.2 (the reserve and one deposit, nothing drawn)", got)
	}
}

// TestHedgeEligibility: only critical non-streaming requests with an SLO at
// most max_slo_ms are hedged, and only when hedging is on.
func TestHedgeEligibility(t *testing.T) {
	d, _, _ := hedgePair(t, fakeclock.New(t0))
	m := d.models["llm"]
	p, err := d.Place(criticalReq("p", 150*time.Millisecond), m, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Cancel(&p)
	stream := criticalReq("s", 150*time.Millisecond)
	stream.Stream = true
	std := criticalReq("std", 150*time.Millisecond)
	std.Priority = backends.Standard
	for _, tc := range []struct {
		name string
		req  *backends.Request
		want bool
	}{
		{"critical, tight SLO", criticalReq("a", 150*time.Millisecond), true},
		{"critical, SLO at the limit", criticalReq("b", 200*time.Millisecond), true},
		{"critical, loose SLO", criticalReq("c", 300*time.Millisecond), false},
		{"critical, no SLO", criticalReq("d", 0), false},
		{"standard", std, false},
		{"stream", stream, false},
	} {
		if _, got := d.hedgeDelay(tc.req, &p); got != tc.want {
			t.Errorf("%s: hedged %v, want %v", tc.name, got, tc.want)
		}
	}
	d.SetHedging(fleet.Hedging{})
	if _, got := d.hedgeDelay(criticalReq("a", 150*time.Millisecond), &p); got {
		t.Error("hedged with hedging off")
	}
}
