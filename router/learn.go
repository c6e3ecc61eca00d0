package router

import (
	"math"
	"slices"
	"sync/atomic"
	"time"

	"github.com/accelgate/accelgate/backends"
)

// The online latency model.
//
// For every (backend, model) the router keeps the ratio of what it observed
// to what the profile predicted at placement (the raw prediction, before any
// correction), for the three latencies it checks against SLOs: time to first
// token (or to the result), time per output token, and end to end. Each ratio
// has
//
//   - a mean: an exponentially weighted moving average (weight
//     Config.LearnRate, default 0.1, for the newest sample), which scales the
//     prediction used for cost and ranking, and
//   - a quantile per priority class (Config.Quantiles: the 99th, 94th and
//     85th percentiles by default) of the last 64 ratios, which scales the
//     prediction compared with the SLO. The margin is thus the model's own
//     recent error, not a constant (Config.Margin applies only until a cell
//     has MinSamples samples).
//
// For vision and embeddings requests the ratio is the time from dispatch to
// the result over the profile's round trip plus service time of the batch
// the request actually ran in (Outcome.BatchRows): the backend's speed,
// which the batchers' predictor applies to batches of known sizes. The
// queue ahead (the books' BatchWork) and the batch size expected at
// placement are predicted, not learned.
//
// A backend that turns 3× slower shows ratios near 3 from its next requests
// on: the quantiles move after a handful of samples (4 of 64 above the
// old 94th percentile)
// and the mean within a few dozen; its predictions then miss the SLOs it can
// no longer meet and it stops receiving that traffic. Errors and timeouts are
// samples too: a backend failure (backends.ErrUnavailable) counts as a ratio
// of Config.FailurePenalty (default 4), a timeout as the time it took over
// the prediction (at least the penalty), so a backend that stops answering
// loses its traffic through this feedback alone, before any ejection.
//
// A backend that lost its traffic is probed: when a (backend, model) has
// learned nothing for Config.Forget (default 30 s), the next placement there
// is predicted from the profile alone (as before any sample), once — one
// probe at a time, so that a backend that is still slow receives one
// request, not a burst. A probe that answers within half of what the model
// expected (the backend recovered) resets the learned statistics, so the
// backend regains its share at once; otherwise the statistics stay and the
// next probe comes after another Forget.

// ringN is how many recent ratios the quantiles are taken over.
const ringN = 64

// ratio is one latency's observed/predicted statistics.
type ratio struct {
	mean float64
	// q holds the margin quantile per priority class: q[0] at the quantiles
	// placement uses (steered, attain.go), q[1] at the configured ones, which
	// the batchers plan with (see publish).
	q    [2][backends.NumPriorities]float64
	n    int // samples seen
	ring [ringN]float32
}

// quantiles is the two sets of quantile levels a ratio tracks: [0] for
// placement, [1] for the batchers.
type quantiles = [2][backends.NumPriorities]float64

// add records sample x (observed/predicted).
func (r *ratio) add(x float64, alpha float64, pct *quantiles, scratch *[ringN]float32) {
	if !(x > 0) || math.IsInf(x, 0) {
		return
	}
	x = min(x, 1e3)
	if r.n == 0 {
		r.mean = x
	} else {
		r.mean += alpha * (x - r.mean)
	}
	r.ring[r.n%ringN] = float32(x)
	r.n++
	if r.n > 16 && r.n%4 != 0 {
		return // the percentile is refreshed every 4th sample once warm
	}
	k := min(r.n, ringN)
	*scratch = r.ring
	s := scratch[:k]
	slices.Sort(s)
	for set := range pct {
		for c, p := range pct[set] {
			r.q[set][c] = float64(s[min(max(int(math.Ceil(float64(k)*p-1e-9)), 1), k)-1])
		}
	}
}

// factors returns the mean and quantile factors for a request of priority
// prio: 1 and 1+margin before minSamples samples.
func (r *ratio) factors(prio backends.Priority, minSamples int, margin float64) (mean, q float64) {
	return r.factorsAt(0, prio, minSamples, margin)
}

// factorsAt is factors at quantile set set (0 placement, 1 batchers).
func (r *ratio) factorsAt(set int, prio backends.Priority, minSamples int, margin float64) (mean, q float64) {
	if r.n < minSamples {
		return 1, 1 + margin
	}
	return r.mean, max(r.q[set][prio], r.mean)
}

// seenBatch reports whether the cell already learned from batch id, and
// remembers it otherwise. A batch's members share one execution: counted
// once each, a batch of 200 would fill the ring of recent ratios with one
// observation, and the quantiles would be that batch's ratio, not a spread.
// Members of a few batches may finish interleaved; the last four are kept.
func (c *cell) seenBatch(id uint64) bool {
	for _, b := range c.batches {
		if b == id {
			return true
		}
	}
	c.batches[c.nbatch%uint8(len(c.batches))] = id
	c.nbatch++
	return false
}

// reset forgets every sample.
func (r *ratio) reset() { *r = ratio{} }

// cell is the learned state of one (backend, model).
type cell struct {
	ttft, tpot, e2e ratio
	// rows is the EWMA of the rows of the batches this backend ran the
	// model's requests in (batch classes; 1 before any).
	rows float64
	// lat is the EWMA of observed latency (TTFT for streams, end to end
	// otherwise), in ns: the latency-ewma baseline's signal.
	lat  float64
	nlat int
	// last is when the cell last learned something; probing is set while
	// a probe (see learn.go's notes) is out.
	last    int64
	probing bool
	// batches holds the IDs of the last batches learned from (see
	// seenBatch).
	batches [4]uint64
	nbatch  uint8
	// pub is the published E2E (batch) or TTFT (LLM) quantile factor, per
	// priority class, for readers outside the router's lock (the batchers'
	// predictor).
	pub [backends.NumPriorities]atomic.Uint64
	// pubMean is the published mean factor of the same ratio (Expected).
	pubMean atomic.Uint64
}

// Factors is the learned correction published for readers that do not hold
// the router (the batchers): per backend, model and priority class, the
// quantile factor the router applies to the profile's latency. Safe for
// concurrent use.
type Factors struct {
	r *Router
}

// Latency returns the quantile factor of priority class prio for backend i
// and the model: 1 + Margin before any sample, 1 for an unknown backend or
// model.
func (f Factors) Latency(i int, model string, prio backends.Priority) float64 {
	c := f.cell(i, model)
	if c == nil {
		return 1
	}
	v := c.pub[min(prio, backends.Sheddable)].Load()
	if v == 0 {
		return 1 + f.r.cfg.Margin // no samples yet
	}
	return math.Float64frombits(v)
}

// Expected returns the learned mean factor of backend i for model (the
// latency the batchers scale: end to end for batch models, TTFT for LLMs),
// 1 before it has samples. Safe for concurrent use.
func (f Factors) Expected(i int, model string) float64 {
	if c := f.cell(i, model); c != nil {
		if v := c.pubMean.Load(); v != 0 {
			return math.Float64frombits(v)
		}
	}
	return 1
}

// cell returns backend i's learned state for model, or nil for an unknown
// backend or model.
func (f Factors) cell(i int, model string) *cell {
	if f.r == nil || i < 0 || i >= len(f.r.targets) {
		return nil
	}
	mt := f.r.byModel[model]
	if mt == nil {
		return nil
	}
	return &f.r.targets[i].cells[mt.id]
}

// BatchPredictor serves the batcher's Predictor interface
// (batcher.Predictor) from the router's model: the profile's time for a
// batch of rows rows holding tokens tokens on backend i (split into
// MaxBatch-row batches when larger; for an LLM model, the prefill of a
// request admitted now), scaled by the learned quantile factor of the
// priority class asked about (the batcher asks with the class of the target
// it checks, so a critical target is planned at the critical quantile, as
// the router places it) for that backend and model (1 + Config.Margin until
// it has samples), plus the round trip.
// It is safe for concurrent use and allocates nothing.
type BatchPredictor struct {
	f Factors
}

// BatchPredictor returns the batcher-facing view of the router's model.
func (r *Router) BatchPredictor() BatchPredictor { return BatchPredictor{f: r.Factors()} }

// BatchLatency implements batcher.Predictor.
func (p BatchPredictor) BatchLatency(backend int, m *backends.Model, rows, tokens int, prio backends.Priority) time.Duration {
	rtt, t, ok := p.profileTime(backend, m, rows, tokens)
	if !ok {
		return rtt
	}
	return rtt + scale(t, p.f.Latency(backend, m.Name, prio))
}

// ExpectedLatency implements batcher.Expecter: the same batch scaled by the
// learned mean factor instead of a class's quantile (1 until it has
// samples: the profile, without Config.Margin).
func (p BatchPredictor) ExpectedLatency(backend int, m *backends.Model, rows, tokens int) time.Duration {
	rtt, t, ok := p.profileTime(backend, m, rows, tokens)
	if !ok {
		return rtt
	}
	return rtt + scale(t, p.f.Expected(backend, m.Name))
}

// profileTime returns backend's round trip and the profile's time for the
// batch; ok is false when there is nothing to scale (an unknown backend, or
// hardware without a model of that kind).
func (p BatchPredictor) profileTime(backend int, m *backends.Model, rows, tokens int) (rtt, t time.Duration, ok bool) {
	if p.f.r == nil || backend < 0 || backend >= len(p.f.r.targets) {
		return 0, 0, false
	}
	d := p.f.r.targets[backend].desc
	prof := d.Profile
	var bm *backends.BatchModel
	switch m.Kind {
	case backends.ModelLLM:
		if prof.LLM == nil {
			return d.RTT, 0, false
		}
		return d.RTT, prof.LLM.PrefillTime(tokens), true
	case backends.ModelTensor:
		bm = prof.Vision
	default:
		bm = prof.Embedding
	}
	if bm == nil {
		return d.RTT, 0, false
	}
	return d.RTT, bm.SplitTime(rows, tokens), true
}
