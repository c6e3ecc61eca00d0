package gateway

import (
	"context"
	"errors"
	"time"

	"github.com/accelgate/accelgate/backends"
	"github.com/accelgate/accelgate/backends/fleet"
)

// Hedging: a critical non-streaming request with a tight SLO (at most the
// hedging section's max_slo_ms) that has had no answer from its backend
// once that backend's predicted quantile latency (Placement.Prediction().E2E95)
// has passed gets a second copy on another backend. The first answer wins;
// the other copy's context is canceled, so its backend stops working on it,
// and its placement ends as canceled (context.Canceled), which the router
// neither learns from nor counts as a failure. A copy that fails with
// backends.ErrUnavailable while the other still runs does not end the
// request: the other may still answer. Each hedge draws one retry from the
// retry budget (SetRetry); when the budget is spent, or no other backend
// serves the model, the request runs unhedged. The hedge timer runs on the
// Dispatcher's injected clock.

// hedgePolicy is which requests Do hedges.
type hedgePolicy struct {
	enabled bool
	maxSLO  time.Duration
}

// SetHedging applies the fleet file's hedging section. Without it a
// Dispatcher never hedges. Call it before the Dispatcher serves requests.
func (d *Dispatcher) SetHedging(cfg fleet.Hedging) {
	cfg.SetDefaults()
	d.hedging = hedgePolicy{enabled: cfg.Enabled, maxSLO: cfg.MaxSLO()}
}

// hedgeDelay reports whether req, placed at p, is hedged, and after how
// long without an answer: the placement's predicted quantile latency.
func (d *Dispatcher) hedgeDelay(req *backends.Request, p *Placement) (time.Duration, bool) {
	h := &d.hedging
	if !h.enabled || req.Stream || req.Priority != backends.Critical || req.SLO.E2E <= 0 || req.SLO.E2E > h.maxSLO {
		return 0, false
	}
	delay := p.Prediction().E2E95
	return delay, delay > 0
}

// copyResult is how one copy of a hedged request ended.
type copyResult struct {
	res *backends.Result
	err error
	p   *Placement
}

// runHedged runs the placed request p and, when delay passes without an
// answer, a second copy elsewhere; it returns the answer that ends the
// request, where it ran, and the index of the backend whose failure it is
// (for Do's exclude). The copy that lost is canceled when runHedged returns
// and reports its end to the router on its own.
func (d *Dispatcher) runHedged(ctx context.Context, p *Placement, req *backends.Request, m *backends.Model, delay time.Duration) (*backends.Result, *backends.Descriptor, int, error) {
	cctx, cancel := context.WithCancel(ctx)
	defer cancel() // the losing copy, if it still runs
	results := make(chan copyResult, 2)
	run := func(p *Placement) {
		res, err := d.Run(cctx, p, req, m, nil)
		results <- copyResult{res: res, err: err, p: p}
	}
	due := make(chan struct{})
	timer := d.clock.AfterFunc(delay, func() { close(due) })
	defer timer.Stop()
	go run(p)
	pending := 1
	for {
		select {
		case <-due:
			due = nil
			hp, err := d.Place(req, m, p.dec.Index)
			if err != nil {
				continue // nowhere else to run it: wait for the first copy
			}
			if d.retry != nil && !d.retry.Withdraw(d.clock.Now()) {
				d.Cancel(&hp)
				continue
			}
			pending++
			go run(&hp)
		case r := <-results:
			pending--
			if r.err == nil || pending == 0 || !errors.Is(r.err, backends.ErrUnavailable) {
				return r.res, r.p.Backend(), r.p.dec.Index, r.err
			}
			// This copy's backend failed; the other copy may still answer.
		}
	}
}
