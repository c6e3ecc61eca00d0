package gateway

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/accelgate/accelgate/backends"
	"github.com/accelgate/accelgate/backends/fakeclock"
	"github.com/accelgate/accelgate/backends/fleet"
	"github.com/accelgate/accelgate/router"
)

func TestRetryBudgetShareOfTraffic(t *testing.T) {
	b := NewRetryBudget(25, 0)
	now := t0
	if b.Withdraw(now) {
		t.Fatal("a budget without traffic or minimum allowed a retry")
	}
	for range 8 {
		b.Deposit(now)
	}
	// 25% of 8 first attempts: 2 retries.
	for k := range 2 {
		if !b.Withdraw(now.Add(time.Duration(k) * time.Second)) {
			t.Fatalf("retry %d refused", k+1)
		}
	}
	if b.Withdraw(now.Add(2 * time.Second)) {
		t.Fatal("a third retry for 8 requests at 25%")
	}
	// Four more requests earn one more retry.
	for range 4 {
		b.Deposit(now.Add(3 * time.Second))
	}
	if !b.Withdraw(now.Add(3 * time.Second)) {
		t.Fatal("the earned retry was refused")
	}
	// The first second's 8 deposits expire after RetryWindow, and with them
	// the retries they allowed; the retries of seconds 0 and 1 expire too.
	later := now.Add(RetryWindow + time.Second)
	if got := b.Balance(later); got != 0.25*4-1 {
		t.Fatalf("balance %v once the first deposits expired, want %v", got, 0.25*4-1)
	}
	if got := b.Balance(now.Add(time.Hour)); got != 0 {
		t.Fatalf("balance %v an hour later, want 0", got)
	}
}

func TestRetryBudgetMinimumRate(t *testing.T) {
	b := NewRetryBudget(0, 3)
	now := t0
	// 3/s over the 10 s window: 30 retries in any window, even in a burst.
	for k := range 30 {
		if !b.Withdraw(now) {
			t.Fatalf("retry %d of the reserve refused", k+1)
		}
	}
	if b.Withdraw(now.Add(9 * time.Second)) {
		t.Fatal("a 31st retry within the window")
	}
	if !b.Withdraw(now.Add(RetryWindow)) {
		t.Fatal("the reserve did not come back after the window")
	}
	// Steady low load: one retry a second, forever.
	b = NewRetryBudget(20, 3)
	for s := range 120 {
		at := now.Add(time.Duration(s) * time.Second)
		b.Deposit(at)
		if !b.Withdraw(at) {
			t.Fatalf("at %ds: a retry refused at one failure a second", s)
		}
	}
}

func TestRetryBudgetDoesNotAllocate(t *testing.T) {
	b := NewRetryBudget(20, 3)
	now := t0
	if n := testing.AllocsPerRun(1000, func() {
		now = now.Add(time.Millisecond)
		b.Deposit(now)
		b.Withdraw(now)
	}); n != 0 {
		t.Fatalf("%v allocations per deposit and withdrawal", n)
	}
}

// failingPair is a dispatcher over a cheap backend that always fails
// (backends.ErrUnavailable) and a dear one that works, with ejection off so
// that every request tries the cheap one first.
func failingPair(t *testing.T, clock backends.Clock) (*Dispatcher, *instant, *instant) {
	t.Helper()
	bad := &instant{desc: &backends.Descriptor{Name: "bad", Profile: testProfile("test-gpu", 0.1), Models: []string{"llm"}, PricePerHour: 0.1},
		err: fmt.Errorf("%w: connection refused (boom)", backends.ErrUnavailable)}
	good := &instant{desc: &backends.Descriptor{Name: "good", Profile: testProfile("test-gpu", 3.6), Models: []string{"llm"}, PricePerHour: 3.6}}
	d, err := NewDispatcher([]backends.Backend{bad, good}, testModels(), router.Config{EjectAfter: 1 << 20, EjectErrorRate: 1}, clock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d, bad, good
}

func chatReq(id string) *backends.Request {
	return &backends.Request{ID: id, Op: backends.OpChat, Model: "llm", Priority: backends.Standard, EstInputTokens: 10, MaxTokens: 4, N: 1,
		Messages: []backends.Message{{Role: "user", Content: "hi"}}}
}

// TestDoRetriesWithinBudget: at low load every request that fails on the
// dying backend is retried on the other and succeeds.
func TestDoRetriesWithinBudget(t *testing.T) {
	clock := fakeclock.New(t0)
	d, bad, good := failingPair(t, clock)
	d.SetRetry(fleet.Retry{})
	for k := range 60 {
		res, desc, err := d.Do(context.Background(), chatReq(fmt.Sprint(k)), d.models["llm"])
		if err != nil || res == nil || desc.Name != "good" {
			t.Fatalf("request %d: %v on %v", k, err, desc)
		}
		clock.Advance(500 * time.Millisecond)
	}
	if bad.calls != 60 || good.calls != 60 {
		t.Fatalf("calls: bad %d, good %d; want every request tried on bad, then retried on good", bad.calls, good.calls)
	}
}

// TestDoRetryBudgetExhausted: when many requests fail at once, retries stop
// at the budget and the rest fail with their backend's error.
func TestDoRetryBudgetExhausted(t *testing.T) {
	clock := fakeclock.New(t0)
	d, bad, good := failingPair(t, clock)
	pct, minRate := 25.0, 3.0
	d.SetRetry(fleet.Retry{BudgetPercent: &pct, MinPerSecond: &minRate})
	ok, failed := 0, 0
	for k := range 100 {
		_, desc, err := d.Do(context.Background(), chatReq(fmt.Sprint(k)), d.models["llm"])
		switch {
		case err == nil:
			ok++
		case errors.Is(err, backends.ErrUnavailable) && strings.Contains(err.Error(), "boom") && desc == nil:
			failed++
		default:
			t.Fatalf("request %d: error %v (backend %v), want the failing backend's own error", k, err, desc)
		}
	}
	// 25% of 100 requests plus the reserve of 3/s × 10 s.
	if ok != 55 || failed != 45 {
		t.Fatalf("%d retried and succeeded, %d failed; want 55 and 45", ok, failed)
	}
	if bad.calls != 100 || good.calls != 55 {
		t.Fatalf("calls: bad %d, good %d", bad.calls, good.calls)
	}
	// The refused retries' placements were released.
	d.mu.Lock()
	l0, l1 := d.r.Load(0), d.r.Load(1)
	d.mu.Unlock()
	if l0.InFlight != 0 || l1.InFlight != 0 {
		t.Fatalf("in flight after the burst: %d, %d", l0.InFlight, l1.InFlight)
	}
	// Once the window has passed, retries are allowed again.
	clock.Advance(RetryWindow)
	if _, _, err := d.Do(context.Background(), chatReq("late"), d.models["llm"]); err != nil {
		t.Fatalf("after the window: %v", err)
	}
}

// TestDoMaxAttempts: max_attempts 1 means no retries at all.
func TestDoMaxAttempts(t *testing.T) {
	d, bad, good := failingPair(t, fakeclock.New(t0))
	d.SetRetry(fleet.Retry{MaxAttempts: 1})
	if _, _, err := d.Do(context.Background(), chatReq("a"), d.models["llm"]); !errors.Is(err, backends.ErrUnavailable) {
		t.Fatalf("error %v", err)
	}
	if bad.calls != 1 || good.calls != 0 {
		t.Fatalf("calls: bad %d, good %d", bad.calls, good.calls)
	}
}
