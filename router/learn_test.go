package router

import (
	"errors"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/accelgate/accelgate/backends"
)

func visReq(prio backends.Priority, e2e time.Duration) *backends.Request {
	return &backends.Request{Op: backends.OpTensor, Model: "vis", Priority: prio, Rows: 1, SLO: backends.SLO{E2E: e2e}}
}

// A backend that turns 3× slower is recognised from its outcomes alone and
// stops receiving traffic it can no longer serve in time; when the slowdown
// is over and the correction fades, it gets its traffic back.
func TestLearnedDriftMovesTraffic(t *testing.T) {
	cheap := desc("cheap", llmProfile("cheap", 1, 8, 100), 0) // vision 2 ms + 0.1 ms/row
	dear := desc("dear", llmProfile("dear", 10, 4, 100), 0)   // vision 1 ms + 0.1 ms/row
	r := newRouter(t, Config{}, cheap, dear)
	slo := 4 * time.Millisecond
	now := t0
	placedOn := func(n int, slowdown float64) (onCheap int) {
		for k := 0; k < n; k++ {
			d, err := r.Place(now, visReq(backends.Standard, slo), visModel, -1)
			if err != nil {
				t.Fatal(err)
			}
			f := 1.0
			if d.Backend == cheap {
				onCheap++
				f = slowdown
			}
			took := time.Duration(float64(d.raw.E2E) * f)
			now = now.Add(10 * time.Millisecond)
			r.Done(now, d, Outcome{E2E: took})
		}
		return onCheap
	}
	if got := placedOn(50, 1); got != 50 {
		t.Fatalf("healthy: %d of 50 on the cheap backend, want all", got)
	}
	// 3× slower: 2.1 ms becomes 6.3 ms, over the 4 ms target.
	if got := placedOn(60, 3); got > 12 {
		t.Fatalf("after a 3x slowdown the cheap backend still got %d of 60 requests", got)
	}
	last := placedOn(20, 3)
	if last != 0 {
		t.Fatalf("the slow backend still gets traffic after 80 requests: %d of the last 20", last)
	}
	// Nothing new is learned about it; after a few Forget time constants
	// its correction has faded and it is tried again.
	now = now.Add(5 * r.Config().Forget)
	if got := placedOn(1, 1); got != 1 {
		t.Fatalf("after the correction faded the cheap backend got %d of 1", got)
	}
}

// Errors and timeouts are feedback: a backend that stops answering loses its
// traffic before it is ejected.
func TestLearnedFailuresMoveTraffic(t *testing.T) {
	cheap := desc("cheap", llmProfile("cheap", 1, 8, 100), 0)
	dear := desc("dear", llmProfile("dear", 10, 4, 100), 0)
	r := newRouter(t, Config{EjectAfter: 1000}, cheap, dear)
	now := t0
	moved := -1
	for k := 0; k < 12; k++ {
		d, _ := r.Place(now, visReq(backends.Standard, 4*time.Millisecond), visModel, -1)
		now = now.Add(time.Millisecond)
		if d.Backend != cheap {
			if moved < 0 {
				moved = k
			}
			r.Done(now, d, Outcome{E2E: d.raw.E2E})
			continue
		}
		if moved >= 0 {
			t.Fatalf("request %d went back to the failing backend", k)
		}
		err := error(backends.ErrTimeout)
		if k%2 == 0 {
			err = backends.ErrUnavailable
		}
		r.Done(now, d, Outcome{Err: err, E2E: time.Second})
	}
	// MinSamples failures are needed before the model trusts itself.
	if moved != r.Config().MinSamples {
		t.Fatalf("traffic moved after %d failures, want %d", moved, r.Config().MinSamples)
	}
	d, _ := r.Place(now, visReq(backends.Standard, 4*time.Millisecond), visModel, -1)
	if !r.Available(0, now) {
		t.Fatal("the backend was ejected: this test is about the learned model alone")
	}
	// A client-side error teaches nothing.
	before := r.targets[1].cells[d.model].e2e.n
	r.Done(now, d, Outcome{Err: backends.ErrBadRequest})
	if r.targets[1].cells[d.model].e2e.n != before {
		t.Fatal("a bad request was counted as a latency sample")
	}
}

// The p95 margin: a backend whose latencies scatter gets a wider margin than
// one that is steady, though their means are the same.
func TestLearnedP95Margin(t *testing.T) {
	var steady, noisy ratio
	var scratch [ringN]float32
	pct := &quantiles{{0.99, 0.95, 0.90}, {0.99, 0.95, 0.90}}
	for k := 0; k < 200; k++ {
		steady.add(1, 0.1, pct, &scratch)
		x := 0.9
		if k%10 == 0 {
			x = 1.9 // one in ten is twice as slow
		}
		noisy.add(x, 0.1, pct, &scratch)
	}
	_, s95 := steady.factors(backends.Standard, 8, 0.1)
	nm, n95 := noisy.factors(backends.Standard, 8, 0.1)
	if s95 != 1 {
		t.Errorf("steady p95 factor %v, want 1", s95)
	}
	if math.Abs(nm-1) > 0.1 || n95 < 1.85 {
		t.Errorf("noisy: mean %v (want ≈1), p95 %v (want ≈1.9)", nm, n95)
	}
	// Before MinSamples the configured margin applies.
	var fresh ratio
	fresh.add(5, 0.1, pct, &scratch)
	if m, p := fresh.factors(backends.Standard, 8, 0.25); m != 1 || p != 1.25 {
		t.Errorf("cold cell: %v %v, want 1 and 1.25", m, p)
	}
}

// The batch share: once the router has seen batches of 8 rows on a backend,
// a one-row request is charged an eighth of a batch of 8.
func TestLearnedBatchShare(t *testing.T) {
	p := llmProfile("p", 3.6, 8, 100)
	d := desc("a", p, 0)
	r := newRouter(t, Config{}, d)
	first, _ := r.Place(t0, visReq(backends.Standard, time.Second), visModel, -1)
	alone := p.Vision.BatchTime(1, 0)
	if first.raw.Busy != alone {
		t.Fatalf("before any batch: busy %v, want %v", first.raw.Busy, alone)
	}
	r.Done(t0, first, Outcome{E2E: alone, BatchRows: 8})
	for k := 0; k < 40; k++ {
		dd, _ := r.Place(t0, visReq(backends.Standard, time.Second), visModel, -1)
		r.Done(t0, dd, Outcome{E2E: alone, BatchRows: 8})
	}
	dd, _ := r.Place(t0, visReq(backends.Standard, time.Second), visModel, -1)
	want := p.Vision.BatchTime(8, 0) / 8
	if diff := dd.raw.Busy - want; diff < -want/50 || diff > want/50 {
		t.Fatalf("busy %v, want about %v (an eighth of a batch of 8)", dd.raw.Busy, want)
	}
}

func TestBaselines(t *testing.T) {
	mk := func(policy string) *Router {
		return newRouter(t, Config{Policy: policy},
			desc("a", llmProfile("a", 3, 10, 100), 0),
			desc("b", llmProfile("b", 1, 30, 100), 0),
			desc("c", llmProfile("c", 2, 20, 100), 0))
	}
	req := visReq(backends.Standard, time.Millisecond) // nobody meets it: baselines do not care
	// cheapest: b, always (ties by load would move it, prices differ).
	r := mk(PolicyCheapest)
	for k := 0; k < 5; k++ {
		if d, _ := r.Place(t0, req, visModel, -1); d.Backend.Name != "b" {
			t.Fatalf("cheapest placed on %s", d.Backend.Name)
		}
	}
	// least-outstanding spreads: a, b, c, then a again once a is done.
	r = mk(PolicyLeastOutstanding)
	var got []string
	var first Decision
	for k := 0; k < 3; k++ {
		d, _ := r.Place(t0, req, visModel, -1)
		if k == 0 {
			first = d
		}
		got = append(got, d.Backend.Name)
	}
	r.Done(t0, first, Outcome{})
	d, _ := r.Place(t0, req, visModel, -1)
	if got = append(got, d.Backend.Name); got[0] != "a" || got[1] != "b" || got[2] != "c" || got[3] != "a" {
		t.Fatalf("least-outstanding order %v", got)
	}
	// random and power-of-two-choices: every backend gets some, and p2c
	// never picks the busier of two... over many draws, p2c's loads stay
	// within one of each other when nothing finishes.
	for _, pol := range []string{PolicyRandom, PolicyP2C} {
		r = mk(pol)
		count := map[string]int{}
		for k := 0; k < 300; k++ {
			d, _ := r.Place(t0, req, visModel, -1)
			count[d.Backend.Name]++
		}
		for _, n := range []string{"a", "b", "c"} {
			if count[n] < 40 {
				t.Errorf("%s: %s got %d of 300", pol, n, count[n])
			}
		}
		if pol == PolicyP2C {
			lo, hi := 300, 0
			for _, n := range count {
				lo, hi = min(lo, n), max(hi, n)
			}
			if hi-lo > 30 {
				t.Errorf("p2c loads %v are not balanced", count)
			}
		}
	}
	// latency-ewma: untried first, then the lowest observed latency.
	r = mk(PolicyLatencyEWMA)
	lat := map[string]time.Duration{"a": 5 * time.Millisecond, "b": 2 * time.Millisecond, "c": 9 * time.Millisecond}
	var order []string
	for k := 0; k < 5; k++ {
		d, _ := r.Place(t0, req, visModel, -1)
		order = append(order, d.Backend.Name)
		r.Done(t0, d, Outcome{E2E: lat[d.Backend.Name]})
	}
	if order[0] != "a" || order[1] != "b" || order[2] != "c" || order[3] != "b" || order[4] != "b" {
		t.Fatalf("latency-ewma order %v", order)
	}
	// Every baseline skips excluded and ejected backends.
	for _, pol := range Policies()[1:] {
		r = mk(pol)
		r.SetDown(1, true)
		for k := 0; k < 20; k++ {
			d, err := r.Place(t0, req, visModel, 0)
			if err != nil || d.Backend.Name != "c" {
				t.Fatalf("%s with a excluded and b down: %v %v", pol, d.Backend, err)
			}
			r.Done(t0, d, Outcome{})
		}
	}
}

func TestBatchPredictorServesBatcher(t *testing.T) {
	p := llmProfile("p", 1, 8, 100)
	p.Vision.MaxBatch = 4
	d := desc("x", p, 3*time.Millisecond)
	r := newRouter(t, Config{Margin: 0.5}, d)
	bp := r.BatchPredictor()
	f := 1.5 // the margin, before samples
	want := func(t time.Duration) time.Duration { return 3*time.Millisecond + scale(t, f) }
	if got := bp.BatchLatency(0, visModel, 3, 0, backends.Standard); got != want(p.Vision.BatchTime(3, 0)) {
		t.Fatalf("3 rows: %v", got)
	}
	if got := bp.BatchLatency(0, visModel, 6, 0, backends.Standard); got != want(p.Vision.BatchTime(4, 0)+p.Vision.BatchTime(2, 0)) {
		t.Fatalf("6 rows: %v", got)
	}
	if got := bp.BatchLatency(0, llmModel, 1, 500, backends.Standard); got != want(p.LLM.PrefillTime(500)) {
		t.Fatalf("llm: %v", got)
	}
	// The expected latency has no margin: the profile's, before samples.
	if got := bp.ExpectedLatency(0, visModel, 3, 0); got != 3*time.Millisecond+p.Vision.BatchTime(3, 0) {
		t.Fatalf("expected, before samples: %v", got)
	}
	// After samples showing the backend twice as slow as its profile, the
	// batcher's predictions double too, expected and at the margin alike
	// (steady samples: the quantile is the mean).
	for k := 0; k < 20; k++ {
		dd, _ := r.Place(t0, visReq(backends.Standard, time.Second), visModel, -1)
		r.Done(t0, dd, Outcome{E2E: 2 * dd.raw.E2E})
	}
	if got := bp.BatchLatency(0, visModel, 3, 0, backends.Standard); got != 3*time.Millisecond+scale(p.Vision.BatchTime(3, 0), 2) {
		t.Fatalf("learned: %v", got)
	}
	if got := bp.ExpectedLatency(0, visModel, 3, 0); got != 3*time.Millisecond+scale(p.Vision.BatchTime(3, 0), 2) {
		t.Fatalf("learned, expected: %v", got)
	}

	if n := testing.AllocsPerRun(100, func() { bp.BatchLatency(0, visModel, 5, 10, backends.Standard) }); n != 0 {
		t.Fatalf("%v allocs", n)
	}
	_ = errors.New
}

// The learned ratio of a vision or embeddings request compares what it
// observed with the batch it actually ran in (Outcome.BatchRows), not with
// the batch size expected at placement: batches bigger than expected do not
// make the backend look slow, and the batchers' predictor (which asks about
// batches of known sizes) stays at the backend's speed.
func TestLearnedRatioUsesTheBatchItRanIn(t *testing.T) {
	p := llmProfile("p", 1, 8, 100)
	p.Vision.MaxBatch = 64
	d := desc("x", p, time.Millisecond)
	r := newRouter(t, Config{}, d)
	bp := r.BatchPredictor()
	// Every request runs in a batch of 48 rows at exactly the profile's
	// speed, while placement still expects smaller batches.
	for k := 0; k < 40; k++ {
		dd, _ := r.Place(t0, visReq(backends.Standard, time.Second), visModel, -1)
		e2e := time.Millisecond + p.Vision.BatchTime(48, 0)
		r.Done(t0, dd, Outcome{E2E: e2e, BatchRows: 48})
	}
	want := time.Millisecond + p.Vision.BatchTime(48, 0)
	if got := bp.BatchLatency(0, visModel, 48, 0, backends.Standard); got < want*99/100 || got > want*101/100 {
		t.Fatalf("a batch of 48 rows at the profile's speed: predicted %v, want %v", got, want)
	}
	// Twice as slow as the profile, in the same batches: the factor doubles.
	for k := 0; k < 64; k++ {
		dd, _ := r.Place(t0, visReq(backends.Standard, time.Second), visModel, -1)
		r.Done(t0, dd, Outcome{E2E: 2 * (time.Millisecond + p.Vision.BatchTime(48, 0)), BatchRows: 48})
	}
	if got := bp.BatchLatency(0, visModel, 48, 0, backends.Standard); got < 2*want*99/100-time.Millisecond || got > 2*want*101/100 {
		t.Fatalf("twice as slow: predicted %v, want about %v", got, 2*want-time.Millisecond)
	}
}

// Telemetry: a backend that reports more work than the router placed (other
// clients share it) is predicted with the larger queue.
func TestExternalLoadMerges(t *testing.T) {
	a := desc("a", llmProfile("a", 1, 10, 4), 0)
	r := newRouter(t, Config{}, a)
	req := chat(backends.Standard, 100*time.Millisecond, true)
	d0, _ := r.Place(t0, req, llmModel, -1)
	r.Done(t0, d0, Outcome{})
	quiet := d0.raw.TTFT
	r.SetExternal(0, External{Seqs: 12}) // 3× the slots busy elsewhere
	d1, _ := r.Place(t0, req, llmModel, -1)
	r.Done(t0, d1, Outcome{})
	if d1.raw.Wait <= 0 || d1.raw.TTFT <= quiet {
		t.Fatalf("reported load ignored: wait %v, ttft %v (quiet %v)", d1.raw.Wait, d1.raw.TTFT, quiet)
	}
	r.SetExternal(0, External{})
	d2, _ := r.Place(t0, req, llmModel, -1)
	if d2.raw.TTFT != quiet {
		t.Fatalf("forgotten report still counts: %v vs %v", d2.raw.TTFT, quiet)
	}
}

// A measured round trip replaces the descriptor's in predictions.
func TestSetRTT(t *testing.T) {
	a := desc("edge", llmProfile("a", 1, 10, 10), 5*time.Millisecond)
	r := newRouter(t, Config{}, a)
	d0, _ := r.Place(t0, visReq(backends.Standard, time.Second), visModel, -1)
	r.Done(t0, d0, Outcome{})
	r.SetRTT(0, 80*time.Millisecond)
	d1, _ := r.Place(t0, visReq(backends.Standard, time.Second), visModel, -1)
	if got := d1.raw.E2E - d0.raw.E2E; got != 75*time.Millisecond {
		t.Fatalf("a measured RTT of 80 ms moved E2E by %v, want 75 ms", got)
	}
}

// x-accelgate-site: a backend at the request's site wins when it meets the
// SLO, even when another is cheaper; when it cannot, the SLO wins.
func TestSitePreference(t *testing.T) {
	cheap := desc("cheap", llmProfile("cheap", 1, 8, 100), 0)
	edge := desc("edge", llmProfile("edge", 5, 8, 100), 0)
	edge.Site = "plant-7"
	r := newRouter(t, Config{}, cheap, edge)
	req := visReq(backends.Standard, time.Second)
	if d, _ := r.Place(t0, req, visModel, -1); d.Backend != cheap {
		t.Fatalf("no site: %s", d.Backend.Name)
	}
	req.Site = "plant-7"
	if d, _ := r.Place(t0, req, visModel, -1); d.Backend != edge {
		t.Fatalf("site plant-7: %s", d.Backend.Name)
	}
	tight := visReq(backends.Standard, 2100*time.Microsecond) // only the 2.1 ms cheap... neither edge
	tight.Site = "plant-7"
	edge.Profile = llmProfile("edge", 5, 40, 100) // edge vision now 10 ms
	if d, _ := r.Place(t0, tight, visModel, -1); d.Backend == edge && d.MeetsSLO {
		t.Fatalf("the site's backend cannot meet the SLO but was chosen as meeting it")
	}
}

// Passive outlier detection by error rate, and gradual re-admission.
func TestErrorRateEjectionAndReadmission(t *testing.T) {
	a := desc("a", llmProfile("a", 1, 8, 100), 0)
	b := desc("b", llmProfile("b", 9, 8, 100), 0)
	r := newRouter(t, Config{EjectAfter: 1000, EjectFor: 10 * time.Second, Forget: 100 * time.Millisecond}, a, b) // the learned penalty fades at once: this is about the gate
	now := t0
	ejected := false
	for k := 0; k < 40 && !ejected; k++ {
		d, _ := r.Place(now, visReq(backends.Standard, time.Second), visModel, 1) // only a
		ejected = r.Done(now, d, Outcome{Err: backends.ErrTimeout, E2E: time.Second})
	}
	if !ejected || r.Available(0, now) {
		t.Fatal("a backend whose every request times out was not ejected by its error rate")
	}
	// During the 10 s after the ejection ends it gets a growing share.
	share := func(at time.Time) float64 {
		n := 0
		for k := 0; k < 1000; k++ {
			d, _ := r.Place(at, visReq(backends.Standard, time.Second), visModel, -1)
			if d.Index == 0 {
				n++
			}
			r.Done(at, d, Outcome{E2E: d.raw.E2E})
		}
		return float64(n) / 1000
	}
	early, late := share(now.Add(10*time.Second+time.Second)), share(now.Add(10*time.Second+9*time.Second))
	if early > 0.35 || late < 0.8 || early >= late {
		t.Fatalf("re-admission shares: 1 s in %.2f, 9 s in %.2f; want a ramp from ~10%% to ~100%%", early, late)
	}
	if s := share(now.Add(21 * time.Second)); s != 1 {
		t.Fatalf("after the ramp the cheap backend gets %.2f of the traffic, want all", s)
	}
}

// The candidate index: in a class larger than groupScanAll, Place still
// finds the most loaded backend that meets the SLO (the cheapest under
// continuous batching), honours exclude, and considers an affinity hit.
func TestIndexLargeClass(t *testing.T) {
	p := llmProfile("h", 2, 8, 64)
	var ds []*backends.Descriptor
	for i := 0; i < 20; i++ {
		ds = append(ds, desc(fmt.Sprint("h", i), p, 0))
	}
	r := newRouter(t, Config{}, ds...)
	if g := r.byModel["llm"].groups; len(g) != 1 || len(g[0]) != 20 {
		t.Fatalf("groups %v", g)
	}
	req := chat(backends.Standard, 200*time.Millisecond, true)
	first, _ := r.Place(t0, req, llmModel, -1)
	// Packing: while it meets the SLO, the next request joins the busiest.
	for k := 0; k < 5; k++ {
		d, _ := r.Place(t0, req, llmModel, -1)
		if d.Index != first.Index || !d.MeetsSLO {
			t.Fatalf("request %d went to %d (meets %v), want the busy backend %d", k, d.Index, d.MeetsSLO, first.Index)
		}
	}
	if d, _ := r.Place(t0, req, llmModel, first.Index); d.Index == first.Index {
		t.Fatal("exclude ignored in a large class")
	}
}

// The batchers' predictor answers at the margin of the class asked about:
// after ratios spread between 1 and 2, the critical quantile (99th) is
// above the standard one (94th), which is above the sheddable one (85th).
func TestBatchPredictorPerClassMargin(t *testing.T) {
	p := llmProfile("p", 1, 8, 100)
	d := desc("x", p, 0)
	r := newRouter(t, Config{}, d)
	bp := r.BatchPredictor()
	for k := 0; k < 64; k++ {
		dd, _ := r.Place(t0, visReq(backends.Standard, time.Second), visModel, -1)
		r.Done(t0, dd, Outcome{E2E: scale(dd.raw.E2E-dd.raw.Wait, 1+float64(k%32)/31)})
	}
	crit := bp.BatchLatency(0, visModel, 4, 0, backends.Critical)
	std := bp.BatchLatency(0, visModel, 4, 0, backends.Standard)
	shed := bp.BatchLatency(0, visModel, 4, 0, backends.Sheddable)
	if !(crit > std && std > shed) {
		t.Fatalf("critical %v, standard %v, sheddable %v: want strictly decreasing", crit, std, shed)
	}
	if base := p.Vision.BatchTime(4, 0); crit > 2*base || shed < base {
		t.Fatalf("factors outside the observed ratios 1..2: critical %v, sheddable %v, profile %v", crit, shed, base)
	}
}

// The members of one batch are one observation: 32 batches twice as slow as
// the profile, then one batch of 100 members at the profile's speed, leave
// the standard quantile at 2 — counted per member, that last batch alone
// would fill the ring of recent ratios and pull it to 1.
func TestLearnsOncePerBatch(t *testing.T) {
	p := llmProfile("p", 1, 8, 100)
	p.Vision.MaxBatch = 64
	d := desc("x", p, 0)
	r := newRouter(t, Config{}, d)
	bp := r.BatchPredictor()
	run := func(id uint64, members int, ratio float64) {
		for range members {
			dd, _ := r.Place(t0, visReq(backends.Standard, time.Second), visModel, -1)
			r.Done(t0, dd, Outcome{E2E: scale(p.Vision.BatchTime(32, 0), ratio), BatchRows: 32, BatchID: id})
		}
	}
	for id := uint64(1); id <= 32; id++ {
		run(id, 3, 2)
	}
	run(33, 100, 1)
	want := scale(p.Vision.BatchTime(32, 0), 2)
	if got := bp.BatchLatency(0, visModel, 32, 0, backends.Standard); got < want*99/100 {
		t.Fatalf("standard-quantile prediction %v after 32 slow batches and one fast one, want about %v", got, want)
	}
}
