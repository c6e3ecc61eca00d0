package loadtest

import (
	"math"
	"math/rand/v2"
	"sort"
	"time"
)

// Never is what Arrivals.Next returns when no further arrival will come (a
// rate of zero from then on). Sources end there.
const Never = time.Duration(math.MaxInt64)

// Arrivals is an arrival process: it produces absolute intended send times.
//
// Next returns the arrival that follows one at prev (for the first arrival,
// prev is 0, so the first request is sent one inter-arrival gap after the
// start), drawing randomness only from r; it returns a time ≥ prev, or Never.
// The processes in this package keep no state between calls — the time
// passed in is the whole state — so one value may serve many sources and
// goroutines, each with its own *rand.Rand, and a seeded r makes the
// sequence reproducible.
type Arrivals interface {
	Next(r *rand.Rand, prev time.Duration) time.Duration
}

// Renewal is a homogeneous arrival process with independent, identically
// distributed inter-arrival gaps: Poisson, Constant and Gamma. Besides being
// Arrivals at their own rate, renewal processes give the shape that the
// schedules (Steps, Ramp) modulate.
type Renewal interface {
	Arrivals
	// Rate is the mean number of arrivals per second.
	Rate() float64
	// UnitGap draws one inter-arrival gap of the process run at rate 1
	// (mean 1, same coefficient of variation).
	UnitGap(r *rand.Rand) float64
}

type renewalKind uint8

const (
	kindExp renewalKind = iota
	kindConst
	kindGamma
)

// renewal implements Poisson, Constant and Gamma.
type renewal struct {
	kind renewalKind
	rate float64 // arrivals per second; ≤ 0 means none
	// Gamma with shape k = 1/cv² and scale 1/k (mean 1), by Marsaglia and
	// Tsang's method on shape a = k (k ≥ 1) or a = k+1 boosted by U^(1/k).
	d, c, invK float64
	boost      bool
}

// Poisson is a Poisson process: exponential inter-arrival gaps, mean rate
// arrivals per second (coefficient of variation 1). A rate that is not
// positive produces no arrivals.
func Poisson(rate float64) Renewal { return renewal{kind: kindExp, rate: rate} }

// Constant sends exactly every 1/rate seconds (coefficient of variation 0).
// A rate that is not positive produces no arrivals.
func Constant(rate float64) Renewal { return renewal{kind: kindConst, rate: rate} }

// Gamma is a gamma renewal process: inter-arrival gaps are gamma distributed
// with mean 1/rate and coefficient of variation cv (shape 1/cv²). cv = 1 is
// exactly Poisson; cv > 1 is bursty (clusters of arrivals separated by long
// gaps; cv 2–4 mimics production LLM traffic); cv ≤ 0 is Constant.
func Gamma(rate, cv float64) Renewal {
	switch {
	case cv == 1:
		return Poisson(rate)
	case !(cv > 0) || math.IsInf(cv, 0):
		return Constant(rate)
	}
	k := 1 / (cv * cv)
	g := renewal{kind: kindGamma, rate: rate, invK: 1 / k}
	a := k
	if k < 1 {
		a, g.boost = k+1, true
	}
	g.d = a - 1.0/3
	g.c = 1 / math.Sqrt(9*g.d)
	return g
}

// Rate returns the mean arrival rate per second.
func (g renewal) Rate() float64 { return g.rate }

// UnitGap draws one gap of the process at rate 1.
func (g renewal) UnitGap(r *rand.Rand) float64 {
	switch g.kind {
	case kindExp:
		return r.ExpFloat64()
	case kindConst:
		return 1
	}
	// Marsaglia & Tsang (2000), "A simple method for generating gamma variables".
	var x float64
	for {
		n := r.NormFloat64()
		v := 1 + g.c*n
		if v <= 0 {
			continue
		}
		v = v * v * v
		u := r.Float64()
		n2 := n * n
		if u < 1-0.0331*n2*n2 || math.Log(u) < 0.5*n2+g.d*(1-v+math.Log(v)) {
			x = g.d * v
			break
		}
	}
	if g.boost {
		x *= math.Pow(r.Float64(), g.invK)
	}
	return x * g.invK // scale to mean 1
}

// Next returns prev plus one gap.
func (g renewal) Next(r *rand.Rand, prev time.Duration) time.Duration {
	if !(g.rate > 0) || math.IsInf(g.rate, 0) {
		return Never
	}
	return addSeconds(prev, g.UnitGap(r)/g.rate)
}

// addSeconds returns t + s seconds, rounded to the nanosecond and saturating
// at Never.
func addSeconds(t time.Duration, s float64) time.Duration {
	ns := float64(t) + s*1e9
	if !(ns < float64(Never)) {
		return Never
	}
	d := time.Duration(math.Round(ns))
	return max(d, t)
}

// Step is one segment of a Steps schedule: Rate arrivals per second for For.
type Step struct {
	For  time.Duration
	Rate float64
}

// Steps modulates base with a piecewise-constant rate: each step's Rate for
// its For, one after the other from time 0; after the last step its rate
// holds (a Limit on the Source ends the run). A rate of 0 pauses arrivals.
// The shape of base (its coefficient of variation) is kept and its own rate
// is ignored.
//
// The method is time rescaling: with Λ(t) = ∫₀ᵗ λ(s) ds the schedule's
// cumulative rate, arrivals are t_i = Λ⁻¹(Λ(t_{i−1}) + g_i) where g_i are
// base's unit-rate gaps (UnitGap). For a Poisson base this is exactly the
// non-homogeneous Poisson process with rate λ(t); for others each segment is
// the same renewal process run at the segment's rate, so a step's count and
// burstiness both match.
func Steps(base Renewal, steps []Step) Arrivals {
	m := &modulated{base: base}
	var at float64
	for _, s := range steps {
		if s.For <= 0 {
			continue
		}
		r := max(s.Rate, 0)
		end := at + s.For.Seconds()
		m.add(at, end, r, r)
		at = end
		m.hold = r
	}
	return m
}

// Ramp modulates base with a rate that changes linearly from from to to
// arrivals per second over the given duration, then holds to. Like Steps it
// keeps base's shape, ignores base's rate, and works by time rescaling (the
// cumulative rate is quadratic during the ramp and is inverted in closed
// form).
func Ramp(base Renewal, from, to float64, over time.Duration) Arrivals {
	m := &modulated{base: base, hold: max(to, 0)}
	if over > 0 {
		m.add(0, over.Seconds(), max(from, 0), max(to, 0))
	}
	return m
}

// modulated is a renewal shape under a piecewise-linear rate schedule.
type modulated struct {
	base Renewal
	segs []segment
	hold float64 // rate after the last segment
}

// segment is [start, end) seconds with a rate going linearly from r0 to r1;
// cum is Λ(start) and cumEnd Λ(end).
type segment struct {
	start, end, r0, r1, cum, cumEnd float64
}

func (m *modulated) add(start, end, r0, r1 float64) {
	var cum float64
	if n := len(m.segs); n > 0 {
		cum = m.segs[n-1].cumEnd
	}
	m.segs = append(m.segs, segment{start, end, r0, r1, cum, cum + (r0+r1)/2*(end-start)})
}

// lambda is Λ(t) for t in seconds.
func (m *modulated) lambda(t float64) float64 {
	n := len(m.segs)
	if n == 0 {
		return m.hold * t
	}
	if last := m.segs[n-1]; t >= last.end {
		return last.cumEnd + m.hold*(t-last.end)
	}
	i := sort.Search(n, func(i int) bool { return m.segs[i].end > t })
	s := m.segs[i]
	x := t - s.start
	return s.cum + s.r0*x + (s.r1-s.r0)/(2*(s.end-s.start))*x*x
}

// inverse is Λ⁻¹(l): the first time the cumulative rate reaches l (+Inf if never).
func (m *modulated) inverse(l float64) float64 {
	n := len(m.segs)
	var end, cum float64
	if n > 0 {
		last := m.segs[n-1]
		end, cum = last.end, last.cumEnd
	}
	if l > cum {
		if !(m.hold > 0) {
			return math.Inf(1)
		}
		return end + (l-cum)/m.hold
	}
	// The first segment whose cumulative end reaches l has positive mass
	// (zero-rate segments end where their predecessor did).
	i := sort.Search(n, func(i int) bool { return m.segs[i].cumEnd >= l })
	s := m.segs[i]
	dl := max(l-s.cum, 0)
	a := (s.r1 - s.r0) / (s.end - s.start)
	// Solve a/2·x² + r0·x = dl in the form that is stable for a → 0.
	den := s.r0 + math.Sqrt(max(s.r0*s.r0+2*a*dl, 0))
	x := s.end - s.start
	if den > 0 {
		x = min(2*dl/den, x)
	}
	return s.start + x
}

// Next returns Λ⁻¹(Λ(prev) + g) for one unit-rate gap g of the base process.
func (m *modulated) Next(r *rand.Rand, prev time.Duration) time.Duration {
	t := m.inverse(m.lambda(prev.Seconds()) + m.base.UnitGap(r))
	if !(t*1e9 < float64(Never)) {
		return Never
	}
	return max(time.Duration(math.Round(t*1e9)), prev)
}
