package loadtest

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/accelgate/accelgate/backends"
	"github.com/accelgate/accelgate/backends/catalog"
	"github.com/accelgate/accelgate/backends/fleet"
)

func capClose(got, want, rel float64) bool {
	return math.Abs(got-want) <= rel*math.Max(math.Abs(want), 1e-12)
}

func capMustLP(t *testing.T, share []float64, mu [][]float64, price []float64) *capacityLP {
	t.Helper()
	l, err := newCapacityLP(share, mu, price)
	if err != nil {
		t.Fatalf("newCapacityLP: %v", err)
	}
	return l
}

func capMustCost(t *testing.T, l *capacityLP, rate float64) *CostBound {
	t.Helper()
	b, err := l.cost(rate)
	if err != nil {
		t.Fatalf("cost(%v): %v", rate, err)
	}
	capCheckBound(t, l, b)
	return b
}

// capCheckBound checks that an assignment serves every class its share of the
// rate and keeps every backend within its time, and that its cost adds up.
func capCheckBound(t *testing.T, l *capacityLP, b *CostBound) {
	t.Helper()
	var cost float64
	busy := make([]float64, len(l.price))
	for c, row := range b.Assign {
		var sum float64
		for j, x := range row {
			if x < -1e-9 || (x > 1e-9 && l.mu[c][j] == 0) {
				t.Errorf("class %d on backend %d: rate %v (μ %v)", c, j, x, l.mu[c][j])
			}
			sum += x
			if l.mu[c][j] > 0 {
				busy[j] += x / l.mu[c][j]
				cost += x / l.mu[c][j] * l.price[j]
			}
		}
		if !capClose(sum, l.share[c]*b.Rate, 1e-6) {
			t.Errorf("class %d served at %v req/s, want %v", c, sum, l.share[c]*b.Rate)
		}
	}
	for j, u := range busy {
		if u > 1+1e-6 || !capClose(u, b.Busy[j], 1e-6) && math.Abs(u-b.Busy[j]) > 1e-9 {
			t.Errorf("backend %d busy %v (reported %v)", j, u, b.Busy[j])
		}
	}
	if !capClose(cost, b.CostPerS, 1e-6) || !capClose(b.CostPer1k, cost/b.Rate*1000, 1e-6) {
		t.Errorf("cost %v/s, reported %v/s and %v per 1k", cost, b.CostPerS, b.CostPer1k)
	}
}

func TestCapacityOneClassTwoBackends(t *testing.T) {
	// μ = 100 and 50 req/s: capacity 150.
	l := capMustLP(t, []float64{1}, [][]float64{{100, 50}}, []float64{1, 3})
	if !capClose(l.rps, 150, 1e-9) {
		t.Fatalf("capacity %v, want 150", l.rps)
	}
	// Per request the first backend costs 1/100 = 0.01 USD, the second
	// 3/50 = 0.06: fill the first, then spill.
	for _, tc := range []struct{ rate, per1k float64 }{
		{80, 10},                           // 80 × 0.01 = 0.8 USD/s
		{100, 10},                          // the first is full
		{120, (100*0.01 + 20*0.06) / 0.12}, // 2.2 USD/s
		{150, (1 + 3) / 0.15},              // both full
	} {
		b := capMustCost(t, l, tc.rate)
		if !capClose(b.CostPer1k, tc.per1k, 1e-9) {
			t.Errorf("rate %v: %v per 1k, want %v", tc.rate, b.CostPer1k, tc.per1k)
		}
	}
	// The slower backend is cheaper per request here: it fills first.
	l = capMustLP(t, []float64{1}, [][]float64{{100, 50}}, []float64{2, 0.5})
	for _, tc := range []struct{ rate, per1k float64 }{
		{40, 10},                              // 40 × 0.01
		{50, 10},                              // the slow one is full
		{90, (50*0.01 + 40*0.02) / 90 * 1000}, // 1.3 USD/s
	} {
		b := capMustCost(t, l, tc.rate)
		if !capClose(b.CostPer1k, tc.per1k, 1e-9) {
			t.Errorf("rate %v: %v per 1k, want %v", tc.rate, b.CostPer1k, tc.per1k)
		}
		if tc.rate == 90 && (!capClose(b.Assign[0][1], 50, 1e-9) || !capClose(b.Assign[0][0], 40, 1e-9)) {
			t.Errorf("rate 90: assignment %v, want [40 50]", b.Assign[0])
		}
	}
}

func TestCapacityTwoClassesPartialBackend(t *testing.T) {
	// Backend A serves class 1 at 200 req/s and class 2 at 100; B serves only
	// class 1, at 50. Half the requests are each class. B takes 50 req/s of
	// class 1, A the rest: (λ/2 − 50)/200 + (λ/2)/100 = 1 → λ = 500/3.
	mu := [][]float64{{200, 50}, {100, 0}}
	l := capMustLP(t, []float64{0.5, 0.5}, mu, []float64{1, 1})
	if !capClose(l.rps, 500.0/3, 1e-9) {
		t.Fatalf("capacity %v, want 166.67", l.rps)
	}
	// Shares need not be normalised.
	if l2 := capMustLP(t, []float64{3, 3}, mu, []float64{1, 1}); !capClose(l2.rps, l.rps, 1e-12) {
		t.Errorf("unnormalised shares: capacity %v, want %v", l2.rps, l.rps)
	}
	// Cost: per request A costs 1/200 (class 1) and 1/100 (class 2), B 1/50
	// (class 1). At 100 req/s everything fits on A (0.25 + 0.5 of its time):
	// 50/200 + 50/100 = 0.75 USD/s.
	b := capMustCost(t, l, 100)
	if !capClose(b.CostPerS, 0.75, 1e-9) || b.Assign[0][1] > 1e-9 {
		t.Errorf("rate 100: %v USD/s with %v, want 0.75 all on A", b.CostPerS, b.Assign)
	}
	// At 160 A cannot hold everything: 80/100 = 0.8 of A goes to class 2;
	// 0.2 of A serves 40 req/s of class 1, B the other 40:
	// 0.8 + 0.2 + 40/50 = 1.8 USD/s.
	b = capMustCost(t, l, 160)
	if !capClose(b.CostPerS, 1.8, 1e-9) || !capClose(b.Assign[0][1], 40, 1e-9) {
		t.Errorf("rate 160: %v USD/s with %v, want 1.8 with 40 on B", b.CostPerS, b.Assign)
	}
	if !capClose(b.CostPer1k, 1.8/160*1000, 1e-9) {
		t.Errorf("rate 160: %v per 1k", b.CostPer1k)
	}
}

func TestCapacityIdleBackendContributesNothing(t *testing.T) {
	base := capMustLP(t, []float64{0.5, 0.5}, [][]float64{{200, 50}, {100, 0}}, []float64{1, 1})
	// A third backend, nearly free, that serves neither class.
	l := capMustLP(t, []float64{0.5, 0.5}, [][]float64{{200, 50, 0}, {100, 0, 0}}, []float64{1, 1, 1e-6})
	if !capClose(l.rps, base.rps, 1e-12) {
		t.Errorf("capacity %v with an idle backend, want %v", l.rps, base.rps)
	}
	b0, b := capMustCost(t, base, 160), capMustCost(t, l, 160)
	if !capClose(b.CostPer1k, b0.CostPer1k, 1e-9) || b.Busy[2] != 0 {
		t.Errorf("cost %v with an idle backend (busy %v), want %v", b.CostPer1k, b.Busy[2], b0.CostPer1k)
	}
	// A class with no share does not count either, even with no backend.
	l = capMustLP(t, []float64{0.5, 0.5, 0}, [][]float64{{200, 50}, {100, 0}, {0, 0}}, []float64{1, 1})
	if !capClose(l.rps, base.rps, 1e-12) {
		t.Errorf("capacity %v with an empty class, want %v", l.rps, base.rps)
	}
}

func TestCapacityInfeasible(t *testing.T) {
	l := capMustLP(t, []float64{1}, [][]float64{{100, 50}}, []float64{1, 3})
	for _, rate := range []float64{150.01, 1e9, math.Inf(1)} {
		if _, err := l.cost(rate); err == nil {
			t.Errorf("cost(%v) above capacity 150: no error", rate)
		} else if rate < 1e10 && !errors.Is(err, ErrOverCapacity) {
			t.Errorf("cost(%v): %v, want ErrOverCapacity", rate, err)
		}
	}
	for _, rate := range []float64{0, -1, math.NaN()} {
		if _, err := l.cost(rate); err == nil {
			t.Errorf("cost(%v): no error", rate)
		}
	}
	// A class no backend serves: capacity 0, every rate infeasible.
	l = capMustLP(t, []float64{0.5, 0.5}, [][]float64{{100, 50}, {0, 0}}, []float64{1, 3})
	if l.rps != 0 {
		t.Errorf("capacity %v with an unservable class, want 0", l.rps)
	}
	if _, err := l.cost(1); !errors.Is(err, ErrOverCapacity) {
		t.Errorf("cost(1) with capacity 0: %v, want ErrOverCapacity", err)
	}
	// Bad data.
	for _, tc := range []struct {
		share []float64
		mu    [][]float64
		price []float64
	}{
		{nil, nil, nil},
		{[]float64{1}, [][]float64{{1, 2}}, []float64{1}},
		{[]float64{0}, [][]float64{{1}}, []float64{1}},
		{[]float64{-1, 2}, [][]float64{{1}, {1}}, []float64{1}},
		{[]float64{1}, [][]float64{{math.NaN()}}, []float64{1}},
		{[]float64{1}, [][]float64{{1}}, []float64{math.Inf(1)}},
	} {
		if _, err := newCapacityLP(tc.share, tc.mu, tc.price); err == nil {
			t.Errorf("newCapacityLP(%v, %v, %v): no error", tc.share, tc.mu, tc.price)
		}
	}
}

// TestCapacityRandomPrograms checks, on random programs of the default
// fleet's size, that the simplex solves both programs, that the capacity is
// attainable (the cost program is feasible at it) and that the bound never
// falls with the rate.
func TestCapacityRandomPrograms(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for n := range 100 {
		nc, nb := 1+r.IntN(18), 1+r.IntN(13)
		share := make([]float64, nc)
		mu := make([][]float64, nc)
		price := make([]float64, nb)
		for j := range price {
			price[j] = math.Pow(10, -4+3*r.Float64())
		}
		for c := range mu {
			share[c] = r.Float64()
			mu[c] = make([]float64, nb)
			for j := range mu[c] {
				if r.IntN(3) > 0 {
					mu[c][j] = math.Pow(10, 5*r.Float64()) // 1 to 100k req/s
				}
			}
			mu[c][r.IntN(nb)] = 1 + r.Float64()
		}
		l, err := newCapacityLP(share, mu, price)
		if err != nil {
			t.Fatalf("program %d: %v", n, err)
		}
		if !(l.rps > 0) || math.IsInf(l.rps, 0) {
			t.Fatalf("program %d: capacity %v", n, l.rps)
		}
		prev := 0.0
		for _, f := range []float64{0.01, 0.3, 0.7, 0.99, 1} {
			b, err := l.cost(f * l.rps)
			if err != nil {
				t.Fatalf("program %d (%d×%d): cost at %v × capacity: %v", n, nc, nb, f, err)
			}
			capCheckBound(t, l, b)
			if b.CostPer1k < prev*(1-1e-6) {
				t.Errorf("program %d: cost per 1k fell from %v to %v at %v × capacity", n, prev, b.CostPer1k, f)
			}
			prev = b.CostPer1k
		}
		if _, err := l.cost(l.rps * 1.001); !errors.Is(err, ErrOverCapacity) {
			t.Errorf("program %d: above capacity: %v", n, err)
		}
	}
}

func TestCapacityClassesShares(t *testing.T) {
	for _, w := range Names() {
		cls, err := CapacityClasses(w)
		if err != nil {
			t.Fatal(err)
		}
		if len(cls) > 20 {
			t.Errorf("%s: %d classes", w, len(cls))
		}
		var sum float64
		names := map[string]bool{}
		for _, c := range cls {
			sum += c.Share
			if names[c.Name] {
				t.Errorf("%s: duplicate class %s", w, c.Name)
			}
			names[c.Name] = true
			if c.Share <= 0 || c.Items <= 0 || (c.Op == backends.OpChat && (c.InputTokens <= 0 || c.OutputTokens < 1)) {
				t.Errorf("%s: class %+v", w, c)
			}
		}
		if !capClose(sum, 1, 1e-12) {
			t.Errorf("%s: shares sum to %v", w, sum)
		}
	}
	if _, err := CapacityClasses("nope"); err == nil {
		t.Error("unknown workload: no error")
	}
	cls, _ := CapacityClasses(WorkloadLLM)
	for _, c := range cls {
		// The SLO is StandardSLO's (linear in the output length, so the E2E
		// target at the mean output is the mean target).
		want := StandardSLO(c.Op, c.Stream, c.Priority, int(c.OutputTokens))
		if c.Stream && c.SLO != want || !c.Stream && math.Abs(float64(c.SLO.E2E-want.E2E)) > float64(sloTPOT) {
			t.Errorf("%s: SLO %+v, want %+v", c.Name, c.SLO, want)
		}
		t.Logf("%-40s share %.4f  prompt %7.1f  output %6.1f  SLO %+v", c.Name, c.Share, c.InputTokens, c.OutputTokens, c.SLO)
	}
}

// TestCapacityClassesMatchMixes draws the standard mixes and compares them
// with the classes' shares and mean lengths, so that a change to a workload
// definition that the classes do not follow fails here.
func TestCapacityClassesMatchMixes(t *testing.T) {
	const n = 40_000
	for _, w := range Names() {
		cls, _ := CapacityClasses(w)
		var wantOp = map[backends.Op]float64{}
		var wantStream, wantIn, wantOut, wantItems, wantEmbTok, wantImages float64
		var wantPrio [backends.NumPriorities]float64
		var llmShare, embShare, visShare float64
		for _, c := range cls {
			wantOp[c.Op] += c.Share
			wantPrio[c.Priority] += c.Share
			switch c.Op {
			case backends.OpChat:
				llmShare += c.Share
				if c.Stream {
					wantStream += c.Share
				}
				wantIn += c.Share * c.InputTokens
				wantOut += c.Share * c.OutputTokens
			case backends.OpEmbedding:
				embShare += c.Share
				wantItems += c.Share * c.Items
				wantEmbTok += c.Share * c.Items * c.InputTokens
			case backends.OpTensor:
				visShare += c.Share
				wantImages += c.Share * c.Items
			}
		}
		mix, _ := StandardMix(w)
		r := rand.New(rand.NewPCG(7, 8))
		gotOp := map[backends.Op]float64{}
		var gotPrio [backends.NumPriorities]float64
		var gotStream, gotIn, gotOut, gotInputs, gotEmbTok, gotImages float64
		var it Item
		for range n {
			it = Item{}
			mix.Fill(r, &it)
			gotOp[it.Op]++
			gotPrio[it.Priority]++
			switch it.Op {
			case backends.OpChat:
				if it.Stream {
					gotStream++
				}
				gotIn += float64(it.InputTokens)
				gotOut += float64(it.OutputTokens)
			case backends.OpEmbedding:
				gotInputs += float64(len(it.Inputs))
				gotEmbTok += float64(it.InputTokens)
			case backends.OpTensor:
				gotImages += float64(it.Images)
			}
		}
		check := func(what string, got, want, tol float64) {
			t.Helper()
			t.Logf("%-10s %-22s mix %9.4g  classes %9.4g", w, what, got, want)
			if math.Abs(got-want) > tol*want {
				t.Errorf("%s: %s: mix %.4g, classes %.4g", w, what, got, want)
			}
		}
		for op, s := range wantOp {
			check("share of "+op.String(), gotOp[op]/n, s, 0.03)
		}
		for p, s := range wantPrio {
			check("share of "+backends.Priority(p).String(), gotPrio[p]/n, s, 0.03)
		}
		if k := gotOp[backends.OpChat]; k > 0 {
			check("stream share", gotStream/k, wantStream/llmShare, 0.03)
			// Session turns cluster (open sessions at the end are cut short),
			// so the lengths get a looser tolerance.
			check("mean prompt", gotIn/k, wantIn/llmShare, 0.05)
			check("mean output", gotOut/k, wantOut/llmShare, 0.05)
		}
		if k := gotOp[backends.OpEmbedding]; k > 0 {
			check("inputs per request", gotInputs/k, wantItems/embShare, 0.03)
			check("tokens per request", gotEmbTok/k, wantEmbTok/embShare, 0.03)
		}
		if k := gotOp[backends.OpTensor]; k > 0 {
			check("images per request", gotImages/k, wantImages/visShare, 0.03)
		}
	}
}

func TestCapacityLengthMean(t *testing.T) {
	// The unclamped lognormal's mean is median·exp(σ²/2).
	d := lengthDist{median: 100, sigma: 0.5, lo: 0, hi: 1 << 40}
	if got, want := d.mean(), 100*math.Exp(0.125); !capClose(got, want, 1e-6) {
		t.Errorf("mean %v, want %v", got, want)
	}
	// Clamped: against a Monte Carlo of draw.
	r := rand.New(rand.NewPCG(3, 4))
	var sum float64
	const n = 400_000
	for range n {
		sum += float64(convPrompt.draw(r))
	}
	if got := convPrompt.mean(); !capClose(got, sum/n, 0.01) {
		t.Errorf("conversation prompt mean %v, Monte Carlo %v", got, sum/n)
	}
}

func TestCapacityServiceRates(t *testing.T) {
	// LLM, stream: decode 10 + 0.1·n ms ≤ 60 → n ≤ 500, capped at 100;
	// prefill 3 + 20·1 = 23 ms; 1/μ = 0.023 + 99·0.020/100 s.
	m := &backends.LLMModel{PrefillBaseMs: 3, PrefillMsPer1kTokens: 20, DecodeBaseMs: 10, DecodePerSeqMs: 0.1, MaxConcurrency: 100}
	slo := backends.SLO{TTFT: 300e6, TPOT: 60e6}
	if got, want := llmRate(m, 1e6, slo, true, 1000, 100), 1/(0.023+99*0.020/100); !capClose(got, want, 1e-9) {
		t.Errorf("llm stream: μ %v, want %v", got, want)
	}
	// TPOT binds: decode 10 + 1·n ≤ 60 → n = 50.
	m2 := *m
	m2.DecodePerSeqMs = 1
	if got, want := llmRate(&m2, 0, slo, true, 1000, 100), 50/(50*0.023+99*0.060); !capClose(got, want, 1e-9) {
		t.Errorf("llm TPOT-bound: μ %v, want %v", got, want)
	}
	// TTFT misses: RTT 280 ms + 23 ms > 300 ms.
	if got := llmRate(m, 280e6, slo, true, 1000, 100); got != 0 {
		t.Errorf("llm TTFT miss: μ %v, want 0", got)
	}
	// Non-stream: 23 + 99·(10 + n) ≤ 1000 ms needs n ≤ −0.13: none.
	if got := llmRate(&m2, 0, backends.SLO{E2E: 1000e6}, false, 1000, 100); got != 0 {
		t.Errorf("llm E2E miss: μ %v, want 0", got)
	}
	// 23 + 99·(10+n) ≤ 2000 → n ≤ 9.96 → 9.
	if got, want := llmRate(&m2, 0, backends.SLO{E2E: 2000e6}, false, 1000, 100), 9/(9*0.023+99*0.019); !capClose(got, want, 1e-9) {
		t.Errorf("llm E2E: μ %v, want %v", got, want)
	}
	if llmRate(nil, 0, slo, true, 1, 1) != 0 {
		t.Error("no LLM model: μ > 0")
	}

	// Batches: 1 + 0.5·B ms ≤ 20 − 2 → B ≤ 34, capped at 32; two executors;
	// requests of 2 items: μ = 2·16/(17 ms).
	bm := &backends.BatchModel{BaseMs: 1, PerItemMs: 0.5, MaxBatch: 32, Executors: 2}
	if got, want := batchRate(bm, 2e6, 20e6, 2, 0), 2*16/0.017; !capClose(got, want, 1e-9) {
		t.Errorf("batch: μ %v, want %v", got, want)
	}
	// SLO binds: 1 + 0.5·B ≤ 8 → B = 14; tokens: 0.5 ms per item + 1 ms per
	// 1k tokens × 500 = 1 ms per item → B = 7.
	bm.PerKTokensMs = 1
	if got, want := batchRate(bm, 2e6, 10e6, 2, 500), 2*3.5/0.008; !capClose(got, want, 1e-9) {
		t.Errorf("batch tokens: μ %v, want %v", got, want)
	}
	// Not even one request: B = 7 < 8 items.
	if got := batchRate(bm, 2e6, 10e6, 8, 500); got != 0 {
		t.Errorf("batch too big for the SLO: μ %v, want 0", got)
	}
	// More items than MaxBatch (4): 3 batches of 10/3 items, two executors,
	// two rounds of 1 + 3.33 ms ≤ 10 ms; μ = 2/(3 × 4.33 ms).
	bm = &backends.BatchModel{BaseMs: 1, PerItemMs: 1, MaxBatch: 4, Executors: 2}
	if got, want := batchRate(bm, 0, 10e6, 10, 0), 2/(3*(1+10.0/3)/1000); !capClose(got, want, 1e-9) {
		t.Errorf("split request: μ %v, want %v", got, want)
	}
}

func capDefaultFleet(t *testing.T) (*fleet.File, *catalog.Catalog) {
	t.Helper()
	cat := catalog.Default()
	f, err := fleet.Default(cat)
	if err != nil {
		t.Fatal(err)
	}
	return f, cat
}

func TestCapacityDefaultFleet(t *testing.T) {
	f, cat := capDefaultFleet(t)
	for _, w := range Names() {
		c, err := FleetCapacity(f, cat, w)
		if err != nil {
			t.Fatalf("%s: %v", w, err)
		}
		if !(c.RPS > 0) || math.IsInf(c.RPS, 0) || len(c.Unservable) > 0 {
			t.Fatalf("%s: capacity %v req/s (unservable %v)", w, c.RPS, c.Unservable)
		}
		if len(c.Backends) != len(f.Backends) {
			t.Errorf("%s: %d backends, want %d", w, len(c.Backends), len(f.Backends))
		}
		prev := 0.0
		for _, frac := range []float64{0.05, 0.25, 0.5, 0.75, 0.9, 1} {
			b, err := c.LowerBound(frac * c.RPS)
			if err != nil {
				t.Fatalf("%s: bound at %.0f%%: %v", w, frac*100, err)
			}
			capCheckBound(t, c.lp, b)
			if b.CostPer1k < prev*(1-1e-9) {
				t.Errorf("%s: the bound fell from %v to %v at %.0f%% of capacity", w, prev, b.CostPer1k, frac*100)
			}
			prev = b.CostPer1k
			t.Logf("%-10s %3.0f%% = %9.2f req/s: $%.4g per 1k requests", w, frac*100, b.Rate, b.CostPer1k)
		}
		lo, _ := c.LowerBoundCostPer1k(0.05 * c.RPS)
		if !(prev > lo) {
			t.Errorf("%s: the bound at capacity %v is not above the bound at 5%% %v", w, prev, lo)
		}
		if _, err := c.LowerBoundCostPer1k(c.RPS * 1.01); !errors.Is(err, ErrOverCapacity) {
			t.Errorf("%s: above capacity: %v", w, err)
		}
		full, _ := c.LowerBound(c.RPS)
		t.Logf("%-10s capacity %.2f req/s", w, c.RPS)
		for j, name := range c.Backends {
			var rates []string
			for i := range c.Classes {
				if v := c.ServiceRate(i, j); v > 0 {
					rates = append(rates, strings.TrimPrefix(c.Classes[i].Name, w+"/")+"="+fmt.Sprintf("%.4g", v))
				}
			}
			t.Logf("    %-14s busy %5.1f%% at capacity; μ: %s", name, full.Busy[j]*100, strings.Join(rates, " "))
		}
	}
}

func TestCapacityFleetServesNothing(t *testing.T) {
	f, cat := capDefaultFleet(t)
	// Vision on the default fleet, then with an extra cheap backend that
	// serves only the LLM: same capacity and bound.
	base, err := FleetCapacity(f, cat, WorkloadVision)
	if err != nil {
		t.Fatal(err)
	}
	g := *f
	zero := 0.0
	g.Backends = append(append([]fleet.BackendSpec(nil), f.Backends...), fleet.BackendSpec{
		Name: "llm-only", Hardware: "h100-sxm-80gb", Models: []string{ModelLLM}, PricePerHour: &zero, Transport: fleet.TransportEmulated,
	})
	c, err := FleetCapacity(&g, cat, WorkloadVision)
	if err != nil {
		t.Fatal(err)
	}
	if !capClose(c.RPS, base.RPS, 1e-9) {
		t.Errorf("capacity %v with an LLM-only backend, want %v", c.RPS, base.RPS)
	}
	b0, _ := base.LowerBoundCostPer1k(base.RPS / 2)
	b1, _ := c.LowerBoundCostPer1k(base.RPS / 2)
	if !capClose(b1, b0, 1e-9) {
		t.Errorf("bound %v with an LLM-only backend, want %v", b1, b0)
	}
	// The LLM-only backends of the default fleet serve nothing of vision.
	for j, name := range base.Backends {
		if name == "h100-mig-3g-0" || name == "inf2-llm-0" {
			for i := range base.Classes {
				if base.ServiceRate(i, j) != 0 {
					t.Errorf("%s serves %s", name, base.Classes[i].Name)
				}
			}
		}
	}
	// A fleet with only edge nodes cannot meet vision's critical 15 ms over a
	// 20 ms round trip: capacity 0, classes named, every rate infeasible.
	g = *f
	g.Backends = nil
	for _, b := range f.Backends {
		if strings.HasPrefix(b.Name, "edge-") {
			g.Backends = append(g.Backends, b)
		}
	}
	c, err = FleetCapacity(&g, cat, WorkloadVision)
	if err != nil {
		t.Fatal(err)
	}
	if c.RPS != 0 || len(c.Unservable) != 1 || c.Unservable[0] != "vision/critical" {
		t.Errorf("edge-only vision: capacity %v, unservable %v", c.RPS, c.Unservable)
	}
	if _, err := c.LowerBoundCostPer1k(1); !errors.Is(err, ErrOverCapacity) {
		t.Errorf("edge-only vision at 1 req/s: %v", err)
	}
	if _, err := FleetCapacity(f, cat, "nope"); err == nil {
		t.Error("unknown workload: no error")
	}
}

func TestCapacityPriceOverride(t *testing.T) {
	f, cat := capDefaultFleet(t)
	base, err := FleetCapacity(f, cat, WorkloadEmbeddings)
	if err != nil {
		t.Fatal(err)
	}
	// Every backend at twice its price: the same capacity, twice the bound.
	g := *f
	g.Backends = append([]fleet.BackendSpec(nil), f.Backends...)
	for i := range g.Backends {
		prof, _ := cat.Get(g.Backends[i].Hardware)
		p := 2 * prof.PricePerHour
		g.Backends[i].PricePerHour = &p
	}
	c, err := FleetCapacity(&g, cat, WorkloadEmbeddings)
	if err != nil {
		t.Fatal(err)
	}
	if !capClose(c.RPS, base.RPS, 1e-9) {
		t.Errorf("capacity %v, want %v", c.RPS, base.RPS)
	}
	for _, frac := range []float64{0.2, 0.8} {
		b0, _ := base.LowerBoundCostPer1k(frac * base.RPS)
		b1, _ := c.LowerBoundCostPer1k(frac * base.RPS)
		if !capClose(b1, 2*b0, 1e-6) {
			t.Errorf("at %.0f%%: bound %v at twice the prices, want %v", frac*100, b1, 2*b0)
		}
	}
}
