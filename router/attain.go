package router

import "github.com/accelgate/accelgate/backends"

// Steering the margins by SLO attainment.
//
// The margin quantile of a priority class (Config.Quantiles) trades SLOs
// for cost: a high one keeps headroom on every backend, a low one packs
// work densely. Which quantile meets a class's SLOs depends on the load and
// the traffic's burstiness — at half the fleet's capacity a lower quantile
// still meets them and costs less, near capacity a higher one is needed —
// so the router steers it from what its callers report (Outcome.SLO):
// every request that missed its SLO raises its class's quantile by
// attainStep, every one that met it lowers it by attainStep × (1 − A) / A,
// where A is the class's Config.Attainment. The quantile stops moving on
// average when a fraction A of the class's requests meet their SLO: a
// stochastic-approximation controller with that fixed point. It stays in
// [attainMin, 1] and starts at Config.Quantiles; Config.FixedQuantiles turns
// steering off. Outcomes the caller cannot judge (SLOUnknown) do not move
// it, nor do outcomes of requests without an SLO.

// SLOOutcome is whether a request met its SLO, as its client saw it.
type SLOOutcome int8

// The SLO outcomes.
const (
	SLOUnknown SLOOutcome = iota // not judged (no SLO, or the caller cannot tell)
	SLOMet
	SLOMissed
)

const (
	// attainStep is how far one missed SLO raises the class's quantile.
	attainStep = 0.002
	// attainMin is the lowest quantile steering goes to.
	attainMin = 0.5
)

// attain moves the decision's class quantile by the request's SLO outcome.
func (r *Router) attain(d Decision, o SLOOutcome) {
	if r.cfg.FixedQuantiles || o == SLOUnknown || r.cfg.Policy != PolicyAccelgate {
		return
	}
	a := r.cfg.Attainment.byPriority()[d.prio]
	q := &r.pct[0][d.prio]
	if o == SLOMissed {
		*q = min(*q+attainStep, 1)
	} else {
		*q = max(*q-attainStep*(1-a)/a, attainMin)
	}
}

// Quantile returns the margin quantile in force for priority class prio.
func (r *Router) Quantile(prio backends.Priority) float64 {
	return r.pct[0][min(prio, backends.Sheddable)]
}
