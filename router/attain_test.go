package router

import (
	"math"
	"testing"
	"time"

	"github.com/accelgate/accelgate/backends"
)

// The margin quantile of a class settles where the class meets its
// attainment target: one miss in 200 requests (99.5%, the standard default)
// leaves it where it was; more misses raise it (to at most 1), none lowers
// it (to at least attainMin). Other classes are untouched.
func TestAttainmentSteersTheClassQuantile(t *testing.T) {
	d := desc("x", llmProfile("p", 1, 8, 100), 0)
	run := func(r *Router, misses, mets, rounds int) {
		for range rounds {
			for k := 0; k < misses+mets; k++ {
				dd, err := r.Place(t0, visReq(backends.Standard, time.Second), visModel, -1)
				if err != nil {
					t.Fatal(err)
				}
				o := SLOMet
				if k < misses {
					o = SLOMissed
				}
				r.Done(t0, dd, Outcome{E2E: dd.raw.E2E - dd.raw.Wait, SLO: o})
			}
		}
	}
	r := newRouter(t, Config{}, d)
	start := r.Quantile(backends.Standard)
	if start != 0.94 {
		t.Fatalf("starts at %v, want Quantiles.Standard 0.94", start)
	}
	run(r, 1, 199, 20)
	if q := r.Quantile(backends.Standard); math.Abs(q-start) > 0.003 {
		t.Fatalf("at the target attainment the quantile moved from %v to %v", start, q)
	}
	run(r, 1, 49, 20) // 98%: below the target
	if q := r.Quantile(backends.Standard); q < start+0.02 {
		t.Fatalf("at 98%% attainment the quantile rose only to %v (from %v)", q, start)
	}
	run(r, 1, 0, 100)
	if q := r.Quantile(backends.Standard); q != 1 {
		t.Fatalf("after misses only: %v, want the cap 1", q)
	}
	run(r, 0, 1, 100000)
	if q := r.Quantile(backends.Standard); q != attainMin {
		t.Fatalf("after met SLOs only: %v, want the floor %v", q, attainMin)
	}
	if q := r.Quantile(backends.Critical); q != 0.99 {
		t.Fatalf("the critical quantile moved to %v on standard outcomes", q)
	}

	// Unknown outcomes, fixed quantiles and the baselines do not steer.
	for _, cfg := range []Config{{FixedQuantiles: true}, {Policy: PolicyFastest}} {
		r := newRouter(t, cfg, d)
		run(r, 1, 0, 50)
		if q := r.Quantile(backends.Standard); q != 0.94 {
			t.Fatalf("%+v: the quantile moved to %v", cfg, q)
		}
	}
	r = newRouter(t, Config{}, d)
	for range 50 {
		dd, _ := r.Place(t0, visReq(backends.Standard, time.Second), visModel, -1)
		r.Done(t0, dd, Outcome{E2E: dd.raw.E2E})
	}
	if q := r.Quantile(backends.Standard); q != 0.94 {
		t.Fatalf("unjudged outcomes moved the quantile to %v", q)
	}
}

// A higher steered quantile widens placement's margin (the latency compared
// with the SLO), while the batchers keep planning at the configured quantile.
func TestSteeredQuantileWidensThePlacementMargin(t *testing.T) {
	d := desc("x", llmProfile("p", 1, 8, 100), 0)
	r := newRouter(t, Config{}, d)
	bp := r.BatchPredictor()
	feed := func(o SLOOutcome) {
		for k := 0; k < 64; k++ {
			dd, _ := r.Place(t0, visReq(backends.Standard, time.Second), visModel, -1)
			r.Done(t0, dd, Outcome{E2E: scale(dd.raw.E2E-dd.raw.Wait, 1+float64(k%32)/31), SLO: o})
		}
	}
	margin := func() time.Duration {
		dd, _ := r.Place(t0, visReq(backends.Standard, time.Second), visModel, -1)
		r.Done(t0, dd, Outcome{})
		return dd.Prediction.E2E95
	}
	feed(SLOMet)
	before, batchBefore := margin(), bp.BatchLatency(0, visModel, 4, 0, backends.Standard)
	feed(SLOMissed) // the same ratios, every SLO missed: the quantile rises
	if after := margin(); after <= before {
		t.Fatalf("placement margin %v after misses, %v before: want wider", after, before)
	}
	if after := bp.BatchLatency(0, visModel, 4, 0, backends.Standard); after != batchBefore {
		t.Fatalf("the batchers' prediction moved from %v to %v with steering", batchBefore, after)
	}
}
