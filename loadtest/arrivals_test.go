package loadtest

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// wlGapStats draws n arrivals from a and returns the mean rate (arrivals per
// second) and the coefficient of variation of the inter-arrival gaps.
func wlGapStats(a Arrivals, seed uint64, n int) (rate, cv float64) {
	r := rand.New(rand.NewPCG(seed, 1))
	var t time.Duration
	var sum, sumSq float64
	for range n {
		next := a.Next(r, t)
		g := (next - t).Seconds()
		sum += g
		sumSq += g * g
		t = next
	}
	mean := sum / float64(n)
	sd := math.Sqrt(max(sumSq/float64(n)-mean*mean, 0))
	return float64(n) / t.Seconds(), sd / mean
}

func wlWithin(got, want, tol float64) bool { return math.Abs(got-want) <= tol }

func TestRenewalRatesAndCV(t *testing.T) {
	const n = 200_000
	for _, tc := range []struct {
		name   string
		a      Arrivals
		rate   float64
		cv     float64
		cvTolA float64 // absolute tolerance on the CV
	}{
		{"poisson", Poisson(1000), 1000, 1, 0.05},
		{"constant", Constant(1000), 1000, 0, 0.05},
		{"gamma-cv2", Gamma(1000, 2), 1000, 2, 0.10},
		{"gamma-cv0.5", Gamma(250, 0.5), 250, 0.5, 0.025},
		{"gamma-cv1", Gamma(5000, 1), 5000, 1, 0.05},
		{"gamma-cv4", Gamma(100, 4), 100, 4, 0.20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rate, cv := wlGapStats(tc.a, 42, n)
			if !wlWithin(rate, tc.rate, 0.03*tc.rate) {
				t.Errorf("mean rate %.1f/s, want %.0f ±3%%", rate, tc.rate)
			}
			if !wlWithin(cv, tc.cv, tc.cvTolA) {
				t.Errorf("CV %.3f, want %.2f ±%.3f", cv, tc.cv, tc.cvTolA)
			}
			if r, ok := tc.a.(Renewal); ok && r.Rate() != tc.rate {
				t.Errorf("Rate() = %v, want %v", r.Rate(), tc.rate)
			}
		})
	}
}

func TestRenewalEdgeCases(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, a := range []Arrivals{Poisson(0), Constant(-1), Gamma(math.NaN(), 2), Steps(Poisson(1), nil)} {
		if got := a.Next(r, time.Second); got != Never {
			t.Errorf("%#v.Next = %v, want Never", a, got)
		}
	}
	if got := Constant(4).Next(r, time.Second); got != 1250*time.Millisecond {
		t.Errorf("Constant(4).Next(1s) = %v, want 1.25s", got)
	}
	if g := Gamma(10, 0); g.(renewal).kind != kindConst {
		t.Errorf("Gamma(10, 0) is not constant")
	}
	if g := Gamma(10, 1); g.(renewal).kind != kindExp {
		t.Errorf("Gamma(10, 1) is not Poisson")
	}
}

// wlCountBins counts arrivals of a between consecutive edges (seconds).
func wlCountBins(a Arrivals, seed uint64, edges []float64) []int {
	r := rand.New(rand.NewPCG(seed, 3))
	counts := make([]int, len(edges)-1)
	end := time.Duration(edges[len(edges)-1] * 1e9)
	var t time.Duration
	for {
		t = a.Next(r, t)
		if t >= end {
			return counts
		}
		s := t.Seconds()
		for i := range counts {
			if s >= edges[i] && s < edges[i+1] {
				counts[i]++
				break
			}
		}
	}
}

func TestStepsHitTheirRates(t *testing.T) {
	steps := []Step{
		{For: 100 * time.Second, Rate: 1000},
		{For: 20 * time.Second, Rate: 0}, // a pause
		{For: 50 * time.Second, Rate: 4000},
		{For: 0, Rate: 99999}, // skipped
		{For: 100 * time.Second, Rate: 500},
	}
	edges := []float64{0, 100, 120, 170, 270, 370} // the last bin is after the schedule: holds 500
	want := []float64{100_000, 0, 200_000, 50_000, 50_000}
	for _, base := range []Renewal{Poisson(1), Gamma(12345, 2), Constant(7)} {
		got := wlCountBins(Steps(base, steps), 9, edges)
		for i := range want {
			if !wlWithin(float64(got[i]), want[i], max(0.03*want[i], 1)) { // 1: a constant base lands exactly on the pause's start
				t.Errorf("base %#v: segment %d: %d arrivals, want %.0f ±3%%", base, i, got[i], want[i])
			}
		}
	}
	// The modulated process keeps the base's burstiness within a segment.
	_, cv := wlGapStats(Steps(Gamma(1, 2), []Step{{For: time.Hour, Rate: 1000}}), 5, 200_000)
	if !wlWithin(cv, 2, 0.1) {
		t.Errorf("Steps over gamma cv 2: CV %.3f, want 2 ±5%%", cv)
	}
	// A schedule that ends at rate 0 ends.
	a := Steps(Poisson(1), []Step{{For: time.Second, Rate: 100}, {For: time.Second, Rate: 0}})
	r := rand.New(rand.NewPCG(1, 1))
	var tt time.Duration
	n := 0
	for tt = a.Next(r, 0); tt != Never; tt = a.Next(r, tt) {
		if tt >= time.Second {
			t.Fatalf("arrival at %v during the final pause", tt)
		}
		n++
	}
	if n < 60 || n > 140 {
		t.Errorf("%d arrivals in 1 s at 100/s", n)
	}
}

func TestRampHitsItsRates(t *testing.T) {
	const from, to, over = 1000.0, 30000.0, 100.0
	a := Ramp(Poisson(1), from, to, over*time.Second)
	var edges []float64
	for s := 0.0; s <= 120; s += 10 {
		edges = append(edges, s)
	}
	got := wlCountBins(a, 11, edges)
	lambda := func(s float64) float64 { // ∫₀ˢ rate
		if s <= over {
			return from*s + (to-from)/over*s*s/2
		}
		return (from+to)/2*over + to*(s-over)
	}
	for i := range got {
		want := lambda(edges[i+1]) - lambda(edges[i])
		if !wlWithin(float64(got[i]), want, 0.03*want) {
			t.Errorf("[%gs, %gs): %d arrivals, want %.0f ±3%%", edges[i], edges[i+1], got[i], want)
		}
	}
	// A decreasing ramp over a gamma base, to zero: then no more arrivals.
	d := Ramp(Gamma(1, 2), 2000, 0, 100*time.Second)
	got = wlCountBins(d, 12, []float64{0, 50, 100, 200})
	for i, want := range []float64{75_000, 25_000, 0} {
		// ±5%: a gamma cv 2 count's standard deviation is about 2√n (1.3% here).
		if !wlWithin(float64(got[i]), want, 0.05*want) {
			t.Errorf("down-ramp bin %d: %d arrivals, want %.0f ±5%%", i, got[i], want)
		}
	}
	// over ≤ 0 is the constant rate to.
	if rate, _ := wlGapStats(Ramp(Poisson(1), 5, 800, 0), 3, 100_000); !wlWithin(rate, 800, 24) {
		t.Errorf("Ramp(over 0) rate %.1f, want 800", rate)
	}
}

func TestArrivalsDeterministic(t *testing.T) {
	for _, a := range []Arrivals{Poisson(100), Gamma(100, 2), Ramp(Gamma(1, 3), 10, 100, time.Minute)} {
		r1 := rand.New(rand.NewPCG(7, 7))
		r2 := rand.New(rand.NewPCG(7, 7))
		var t1, t2 time.Duration
		for i := range 10_000 {
			t1, t2 = a.Next(r1, t1), a.Next(r2, t2)
			if t1 != t2 {
				t.Fatalf("%#v: arrival %d differs: %v vs %v", a, i, t1, t2)
			}
		}
	}
}

func BenchmarkArrivals(b *testing.B) {
	for _, tc := range []struct {
		name string
		a    Arrivals
	}{
		{"poisson", Poisson(1000)},
		{"gamma-cv2", Gamma(1000, 2)},
		{"steps", Steps(Gamma(1, 2), []Step{{time.Second, 100}, {time.Second, 1000}, {time.Second, 0}, {time.Hour, 500}})},
		{"ramp", Ramp(Poisson(1), 10, 100000, time.Hour)},
	} {
		b.Run(tc.name, func(b *testing.B) {
			r := rand.New(rand.NewPCG(1, 1))
			var t time.Duration
			b.ReportAllocs()
			for b.Loop() {
				t = tc.a.Next(r, t)
			}
		})
	}
}
