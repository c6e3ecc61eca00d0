package gateway

import (
	"sync"
	"time"

	"github.com/accelgate/accelgate/backends/fleet"
)

// RetryWindow is how long a request counts as recent traffic for the retry
// budget, and the span over which RetryBudget's minimum rate is averaged.
const RetryWindow = 10 * time.Second

// retrySlots is the number of one-second slots in RetryWindow.
const retrySlots = int64(RetryWindow / time.Second)

// RetryBudget bounds retries to a share of recent traffic plus a minimum
// rate, so that when backends fail the gateway does not multiply its load
// (a retry storm) while a single failure at low load is still absorbed.
//
// It works like a token bucket whose deposits expire: every first attempt
// deposits ratio tokens (Deposit), every retry or hedge withdraws one
// (Withdraw), and a withdrawal succeeds while the retries of the last
// RetryWindow stay within ratio × the first attempts of that window plus
// minPerSecond × RetryWindow (the reserve). Counts are kept in one-second
// slots, so a burst of traffic earns retries for RetryWindow only.
//
// The caller passes the current time (the Dispatcher's injected clock), so
// tests drive it in fake time. It is safe for concurrent use and does not
// allocate.
type RetryBudget struct {
	ratio   float64 // retries per first attempt
	reserve float64 // retries per window whatever the traffic

	mu    sync.Mutex
	slots [retrySlots]retrySlot
}

type retrySlot struct {
	sec         int64 // the Unix second the counts belong to
	deposits    int64
	withdrawals int64
}

// NewRetryBudget returns a budget that allows percent % of the recent first
// attempts as retries plus minPerSecond retries per second (averaged over
// RetryWindow). Negative values count as 0.
func NewRetryBudget(percent, minPerSecond float64) *RetryBudget {
	return &RetryBudget{
		ratio:   max(percent, 0) / 100,
		reserve: max(minPerSecond, 0) * RetryWindow.Seconds(),
	}
}

// slot returns now's slot, emptied when it held an older second. b.mu held.
func (b *RetryBudget) slot(sec int64) *retrySlot {
	s := &b.slots[((sec%retrySlots)+retrySlots)%retrySlots]
	if s.sec != sec {
		*s = retrySlot{sec: sec}
	}
	return s
}

// Deposit counts one first attempt (a request's first try on a backend).
func (b *RetryBudget) Deposit(now time.Time) {
	sec := now.Unix()
	b.mu.Lock()
	b.slot(sec).deposits++
	b.mu.Unlock()
}

// Withdraw takes one retry from the budget and reports whether there was
// one; when it reports false the caller must not retry.
func (b *RetryBudget) Withdraw(now time.Time) bool {
	sec := now.Unix()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.balanceLocked(sec) < 1 {
		return false
	}
	b.slot(sec).withdrawals++
	return true
}

// Balance returns the retries the budget allows at now.
func (b *RetryBudget) Balance(now time.Time) float64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.balanceLocked(now.Unix())
}

func (b *RetryBudget) balanceLocked(sec int64) float64 {
	var dep, wd int64
	for i := range b.slots {
		s := &b.slots[i]
		if s.sec > sec-retrySlots && s.sec <= sec {
			dep += s.deposits
			wd += s.withdrawals
		}
	}
	return b.ratio*float64(dep) + b.reserve - float64(wd)
}

// SetRetry applies the fleet file's retry section: the attempts one
// non-streaming request may make (max_attempts, the first included) and the
// retry budget that every retry and hedge draws from. Without it a
// Dispatcher tries DefaultMaxAttempts backends and has no budget. Call it
// before the Dispatcher serves requests.
func (d *Dispatcher) SetRetry(cfg fleet.Retry) {
	cfg.SetDefaults()
	d.attempts = max(cfg.MaxAttempts, 1)
	d.retry = NewRetryBudget(*cfg.BudgetPercent, *cfg.MinPerSecond)
}

// RetryBudget returns the budget SetRetry installed, nil when none.
func (d *Dispatcher) RetryBudget() *RetryBudget { return d.retry }
