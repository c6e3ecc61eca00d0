package router

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/accelgate/accelgate/backends"
)

// ShedError is returned by Place when a sheddable request cannot meet its SLO
// anywhere. It wraps backends.ErrShed; RetryAfter is a hint for the client.
type ShedError struct {
	RetryAfter time.Duration
}

func (e *ShedError) Error() string {
	return fmt.Sprintf("request shed: no backend can meet its SLO now (retry after %v)", e.RetryAfter)
}

// Unwrap returns backends.ErrShed.
func (e *ShedError) Unwrap() error { return backends.ErrShed }

// Decision is the result of Place. Pass it back to Done exactly once.
type Decision struct {
	Index   int                  // the backend's index in the slice given to New
	Backend *backends.Descriptor // the chosen backend
	// Prediction is what the router expects on it: the profile's
	// prediction corrected by the online model (mean), with the latencies
	// at the request class's quantile in the *95 fields.
	Prediction Prediction
	// MeetsSLO is false when no backend met the SLO and this one is the
	// fallback, or when the policy ignores SLOs and this one misses.
	MeetsSLO bool
	raw      Prediction
	model    int
	probe    bool             // predicted from the profile alone to probe a backend that lost its traffic
	prefix   *backends.Prefix // the request's prompt prefixes, recorded for affinity on success
	charged  Load
	// bm, rows and tokens are a vision or embeddings request's batch model
	// on the backend, rows and input tokens: Done predicts the batch it
	// actually ran in from them.
	bm     *backends.BatchModel
	rows   int32
	tokens int32
	prio   backends.Priority
}

// Outcome is what Done learns from a placed request's end. Zero durations
// are unknown.
type Outcome struct {
	// Err is the request's error, nil on success.
	Err error
	// E2E is the time from placement to the end (or to the failure).
	E2E time.Duration
	// TTFT is the time to the first token (LLM) or to the result.
	TTFT time.Duration
	// TPOT is the mean time per output token after the first (LLM).
	TPOT time.Duration
	// BatchRows is the rows of the batch the request ran in (vision,
	// embeddings), 0 when unknown.
	BatchRows int
	// BatchID identifies that batch on its backend (0 when unknown): the
	// members of one batch share one observation, so the model learns
	// once per batch, not once per member (see learn.go).
	BatchID uint64
	// SLO says whether the request met its SLO as its client saw it (from
	// its arrival, time held in a batcher included), when the caller knows:
	// it steers the margin quantiles (see attain.go).
	SLO SLOOutcome
}

// target is one backend's state in the router.
type target struct {
	desc         *backends.Descriptor
	load         Load
	prefillFree  int64 // when the prefill pipeline drains the prompts placed so far, ns since the epoch
	failures     int
	ejectedUntil int64  // ns since the epoch; 0 when never ejected
	down         bool   // marked unhealthy from outside (health checks)
	cells        []cell // learned state, by model id
	ext          External
	rtt          time.Duration // measured round trip (SetRTT), 0: the descriptor's
	// Passive outlier detection: an EWMA of the failure rate; after an
	// ejection ends the backend is re-admitted gradually while readmitting.
	errRate     float64
	readmitting bool
}

// External is load on a backend that the router did not place itself, as
// the backend reports it (its metrics endpoint: vLLM's running and waiting
// requests, Triton's pending ones). Other clients may share an upstream, so
// the router predicts with the larger of its own books and this (see
// SetExternal).
type External struct {
	// Seqs is the LLM sequences the backend reports running or waiting.
	Seqs int
	// Pending is the batch (vision, embeddings) requests it reports queued
	// or executing.
	Pending int
}

type modelTargets struct {
	id  int   // the model's index in every target's cells
	idx []int // the backends serving it
	// groups partitions idx by hardware class: backends with the same
	// profile, price, round trip and site, which the profile predicts
	// alike (see considerGroup).
	groups [][]int
	rr     int
}

// Router is the placement core. It is not safe for concurrent use: the live
// gateway serialises calls with a mutex, the simulator calls it from its event
// loop. Factors (the learned corrections for the batchers) may be read
// concurrently.
type Router struct {
	cfg     Config
	pred    Predictor
	targets []target
	byModel map[string]*modelTargets // built once; read-only lookups per request
	rng     *rand.Rand
	pct     quantiles // the margin quantiles in force: [0] placement (steered, attain.go), [1] batchers
	aff     *affinity // prefix affinity; nil when disabled
	cand    []int     // baseline candidates (scratch)
	scan    scan      // Place's running choice (scratch)
	scratch [ringN]float32
	profile bool // pred is ProfilePredictor: called without copies
}

// New builds a router over the fleet's backends, in the given order (Decision
// and SetDown use these indices). cfg is defaulted and validated.
func New(cfg Config, descs []*backends.Descriptor, pred Predictor) (*Router, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if pred == nil {
		pred = ProfilePredictor{}
	}
	_, profile := pred.(ProfilePredictor)
	r := &Router{cfg: cfg, pred: pred, targets: make([]target, len(descs)), byModel: map[string]*modelTargets{},
		rng: rand.New(rand.NewPCG(cfg.Seed, 0x9e3779b97f4a7c15)), profile: profile}
	if cfg.AffinityEntries > 0 {
		r.aff = newAffinity(cfg.AffinityEntries)
	}
	r.pct[0] = cfg.Quantiles.byPriority()
	r.pct[1] = r.pct[0]
	for i, d := range descs {
		if d == nil || d.Profile == nil {
			return nil, fmt.Errorf("router: backend %d has no descriptor or profile", i)
		}
		r.targets[i].desc = d
		for _, m := range d.Models {
			mt := r.byModel[m]
			if mt == nil {
				mt = &modelTargets{id: len(r.byModel)}
				r.byModel[m] = mt
			}
			mt.idx = append(mt.idx, i)
		}
	}
	for _, mt := range r.byModel {
		mt.groups = groupByClass(descs, mt.idx)
	}
	for i := range r.targets {
		r.targets[i].cells = make([]cell, len(r.byModel))
		for k := range r.targets[i].cells {
			r.targets[i].cells[k].rows = 1
		}
	}
	return r, nil
}

// Config returns the effective (defaulted) configuration.
func (r *Router) Config() Config { return r.cfg }

// Factors returns the learned corrections for concurrent readers.
func (r *Router) Factors() Factors { return Factors{r: r} }

// Place chooses a backend for req and charges the request's work to it.
// exclude is a backend index to skip (a retry after it failed), or -1.
//
// Errors: backends.ErrNoBackend when no healthy backend serves the model;
// *ShedError (wrapping backends.ErrShed) when a sheddable request cannot meet
// its SLO anywhere (policy accelgate).
func (r *Router) Place(now time.Time, req *backends.Request, m *backends.Model, exclude int) (Decision, error) {
	mt := r.byModel[req.Model]
	if mt == nil {
		return Decision{}, backends.ErrNoBackend
	}
	if r.aff != nil {
		r.aff.nhits = 0
		if req.Prefix.N > 0 && (req.Op == backends.OpChat || req.Op == backends.OpCompletion) {
			r.aff.lookup(&req.Prefix)
		}
	}
	switch r.cfg.Policy {
	case PolicyAccelgate, PolicyFastest:
	default:
		return r.baseline(now, req, m, mt, exclude)
	}
	sc := &r.scan
	sc.reset()
	sc.el = elapsed(now, req)
	// Times as ns since the epoch in the scan: time.Time's methods decode
	// its wall and monotonic parts at every call, per candidate.
	ns := now.UnixNano()
	for g := range mt.groups {
		members := mt.groups[g]
		if len(members) <= groupScanAll {
			for _, i := range members {
				if i != exclude && r.admits(&r.targets[i], ns) {
					r.consider(ns, i, req, m, mt.id, sc)
				}
			}
			continue
		}
		r.considerGroup(ns, members, req, m, mt.id, exclude, sc)
	}
	if sc.fastest < 0 {
		return Decision{}, backends.ErrNoBackend
	}
	if r.cfg.Policy == PolicyFastest {
		return r.commit(now, sc.fastest, &sc.fastP, req, m, mt.id, meets(&sc.fastP, req, sc.el)), nil
	}
	if sc.best >= 0 {
		return r.commit(now, sc.best, &sc.bestP, req, m, mt.id, true), nil
	}
	if req.Priority == backends.Sheddable && !meetsExpected(&sc.fastP, req, sc.el) {
		ra := sc.minWait
		if ra < time.Second {
			ra = time.Second
		}
		return Decision{}, &ShedError{RetryAfter: ra}
	}
	return r.commit(now, sc.fastest, &sc.fastP, req, m, mt.id, false), nil
}

// predictInto writes the prediction for req on backend i into p: the
// profile's raw prediction corrected by the online model. Place runs it
// for every candidate, so the raw prediction is not kept: commit computes
// it again (rawInto) for the one chosen, from the same books.
// ns is the time of the placement in ns since the epoch.
func (r *Router) predictInto(ns int64, i int, req *backends.Request, m *backends.Model, id int, p *Prediction) {
	c := &r.targets[i].cells[id]
	r.rawInto(ns, i, req, m, id, p)
	r.correct(p, c, req, r.probes(ns, c))
}

// rawInto writes the predictor's raw prediction for req on backend i,
// before the online model's correction, into p.
func (r *Router) rawInto(ns int64, i int, req *backends.Request, m *backends.Model, id int, p *Prediction) {
	t := &r.targets[i]
	var l Load
	t.loadInto(ns, &l)
	l.BatchRows = t.cells[id].rows
	l.CachedTokens = r.cachedTokens(i)
	if r.profile {
		profilePredict(req, m, t.desc, &l, p)
	} else {
		*p = r.pred.Predict(req, m, t.desc, l)
	}
}

// cachedTokens returns the prompt tokens backend i likely holds in its
// prefix cache for the request being placed (see affinity.go).
func (r *Router) cachedTokens(i int) int {
	if r.aff == nil {
		return 0
	}
	return r.aff.cached(i)
}

// probes reports whether a placement on cell c at ns (since the epoch)
// would probe it: it has learned nothing for Config.Forget and no probe is
// out.
func (r *Router) probes(ns int64, c *cell) bool {
	return c.last != 0 && !c.probing && r.cfg.Forget > 0 && ns-c.last > int64(r.cfg.Forget)
}

// correct scales a raw prediction, in place, by the cell's learned factors:
// the mean for the expected latencies and the busy time (hence the cost),
// the quantile for the *95 latencies that are compared with SLOs.
func (r *Router) correct(p *Prediction, c *cell, req *backends.Request, probe bool) {
	if !p.Feasible() {
		return
	}
	minSamples, margin := r.cfg.MinSamples, r.cfg.Margin
	if probe {
		minSamples = math.MaxInt // the profile alone, as before any sample
	}
	var busy float64
	if req.Op == backends.OpChat || req.Op == backends.OpCompletion {
		ft, ft95 := c.ttft.factors(req.Priority, minSamples, margin)
		fp, fp95 := c.tpot.factors(req.Priority, minSamples, margin)
		ttft, tpot, rest := p.TTFT, p.TPOT, p.E2E-p.TTFT
		p.TTFT, p.TTFT95 = scale(ttft, ft), scale(ttft, ft95)
		p.TPOT, p.TPOT95 = scale(tpot, fp), scale(tpot, fp95)
		p.TPOTExpected = scale(p.TPOTExpected, fp)
		p.E2E, p.E2E95 = p.TTFT+scale(rest, fp), p.TTFT95+scale(rest, fp95)
		busy = fp
	} else {
		// Vision and embeddings: the factor scales the round trip and
		// service (what the batchers' predictor also scales); the queue
		// ahead comes from the books.
		fe, fe95 := c.e2e.factors(req.Priority, minSamples, margin)
		svc := p.E2E - p.Wait
		p.E2E, p.E2E95 = p.Wait+scale(svc, fe), p.Wait+scale(svc, fe95)
		p.TTFT, p.TTFT95 = p.E2E, p.E2E95
		busy = fe
	}
	p.Busy = scale(p.Busy, busy)
	p.CostUSD *= busy
}

// ranIn returns the profile's round trip and service time of the batch of
// rows rows a vision or embeddings request ran in (its own rows, split into
// MaxBatch-row batches, when they are more), or 0 when unknown. The learned
// ratio thus measures the backend's speed, not how far the batch differed
// from the size the placement expected: the batchers' predictor scales
// batches of known sizes by it.
func (r *Router) ranIn(t *target, d Decision, rows int) time.Duration {
	bm := d.bm
	if bm == nil || rows <= 0 {
		return 0
	}
	rtt := t.desc.RTT
	if t.rtt > 0 {
		rtt = t.rtt
	}
	own, tokens := int(d.rows), int(d.tokens)
	n := own // more rows than MaxBatch: it ran alone, split
	if own <= bm.MaxBatch {
		n = min(max(rows, own), max(bm.MaxBatch, 1))
	}
	return rtt + bm.SplitTime(n, tokens*n/max(own, 1))
}

func scale(d time.Duration, f float64) time.Duration { return time.Duration(float64(d) * f) }

// commit charges the request's work to backend i, whose prediction is p,
// and returns the decision. It runs before the books change, so the raw
// prediction it computes again is the one p was corrected from.
func (r *Router) commit(now time.Time, i int, p *Prediction, req *backends.Request, m *backends.Model, model int, meets bool) Decision {
	t := &r.targets[i]
	d := Decision{Index: i, Backend: t.desc, Prediction: *p, MeetsSLO: meets, model: model,
		prio: min(req.Priority, backends.Sheddable)}
	ns := now.UnixNano()
	r.rawInto(ns, i, req, m, model, &d.raw)
	c := charge(req, p)
	if c.Seqs > 0 && t.desc.Profile.LLM != nil {
		// The prompt joins the prefill pipeline behind those placed before it.
		lm := t.desc.Profile.LLM
		t.prefillFree = max(t.prefillFree, ns) + int64(lm.PrefillTime(max(req.EstInputTokens-r.cachedTokens(i), 1))+lm.DecodeStep(t.load.Seqs+c.Seqs))
	}
	t.load.Seqs += c.Seqs
	t.load.PromptTokens += c.PromptTokens
	t.load.OutputTokens += c.OutputTokens
	t.load.BatchWork += c.BatchWork
	t.load.InFlight += c.InFlight
	probe := r.probes(ns, &t.cells[model])
	if probe {
		t.cells[model].probing = true
	}
	d.probe, d.charged = probe, c
	switch req.Op {
	case backends.OpTensor:
		d.bm = t.desc.Profile.Vision
	case backends.OpEmbedding:
		d.bm = t.desc.Profile.Embedding
	}
	if d.bm != nil {
		d.rows, d.tokens = int32(max(req.Rows, 1)), int32(max(req.EstInputTokens, 0))
	}
	if r.aff != nil && req.Prefix.N > 0 && c.Seqs > 0 {
		d.prefix = &req.Prefix
	}
	return d
}

// Done releases a placed request's work and feeds its outcome to the online
// model (see learn.go). Consecutive backend failures
// (backends.ErrUnavailable) eject the backend for Config.EjectFor; Done
// reports whether this call ejected it.
func (r *Router) Done(now time.Time, d Decision, o Outcome) (ejected bool) {
	if d.Backend == nil || d.Index < 0 || d.Index >= len(r.targets) {
		return false
	}
	t := &r.targets[d.Index]
	t.load.Seqs -= d.charged.Seqs
	t.load.PromptTokens -= d.charged.PromptTokens
	t.load.OutputTokens -= d.charged.OutputTokens
	if ns := now.UnixNano(); t.load.Seqs == 0 && t.prefillFree > ns {
		t.prefillFree = ns // nothing left: no prompt can still be waiting
	}
	t.load.BatchWork -= d.charged.BatchWork
	t.load.InFlight -= d.charged.InFlight
	r.attain(d, o.SLO)
	r.learn(now, t, d, o)
	if o.Err == nil && d.prefix != nil && r.aff != nil {
		r.aff.record(d.prefix, d.Index)
	}
	failed := errors.Is(o.Err, backends.ErrUnavailable) || errors.Is(o.Err, backends.ErrTimeout)
	switch {
	case o.Err == nil:
		t.failures = 0
		t.errRate -= errRateAlpha * t.errRate
	case failed:
		t.errRate += errRateAlpha * (1 - t.errRate)
		if errors.Is(o.Err, backends.ErrUnavailable) {
			t.failures++
		}
		if t.failures >= r.cfg.EjectAfter || (r.cfg.EjectErrorRate < 1 && t.errRate > r.cfg.EjectErrorRate) {
			r.eject(t, now)
			return true
		}
	}
	return false
}

// errRateAlpha is the EWMA weight of the newest outcome in a backend's
// failure rate (about the last 20 requests).
const errRateAlpha = 0.05

// eject takes t out of rotation for EjectFor, after which it is re-admitted
// gradually over EjectFor (see admits).
func (r *Router) eject(t *target, now time.Time) {
	t.failures = 0
	t.errRate = 0
	t.ejectedUntil = now.Add(r.cfg.EjectFor).UnixNano()
	t.readmitting = true
}

// learn records o in the decision's cell.
func (r *Router) learn(now time.Time, t *target, d Decision, o Outcome) {
	if d.model < 0 || d.model >= len(t.cells) || !d.raw.Feasible() {
		return
	}
	c := &t.cells[d.model]
	ns := now.UnixNano()
	a := r.cfg.LearnRate
	llm := d.raw.TPOT > 0
	if d.probe {
		c.probing = false
	}
	c.last = ns
	var x float64 // the sample for every latency when the request failed
	switch {
	case o.Err == nil:
	case errors.Is(o.Err, backends.ErrTimeout):
		x = r.cfg.FailurePenalty
		if o.E2E > 0 && d.raw.E2E > 0 {
			x = max(x, float64(o.E2E)/float64(d.raw.E2E))
		}
	case errors.Is(o.Err, backends.ErrUnavailable):
		x = r.cfg.FailurePenalty
	default:
		return // the client's doing (bad request, canceled) or a refusal: nothing learned
	}
	if x > 0 {
		c.e2e.add(x, a, &r.pct, &r.scratch)
		if llm {
			c.ttft.add(x, a, &r.pct, &r.scratch)
			c.tpot.add(x, a, &r.pct, &r.scratch)
		}
		c.observeLatency(x*float64(d.raw.E2E), a)
		r.publish(c, llm)
		return
	}
	if d.probe && o.E2E > 0 && d.raw.E2E > 0 {
		// A probe that answered within half of what the learned model
		// expected: the backend recovered, start afresh.
		if mean, _ := c.e2e.factors(backends.Standard, 1, 0); float64(o.E2E) < 0.5*mean*float64(d.raw.E2E) {
			c.ttft.reset()
			c.tpot.reset()
			c.e2e.reset()
		}
	}
	// The members of one batch share one execution: its ratio is learned
	// once (seenBatch), the batch size it shows once per member.
	if fresh := o.BatchID == 0 || !c.seenBatch(o.BatchID); fresh && o.E2E > 0 && d.raw.E2E > 0 {
		pred := d.raw.E2E
		if svc := r.ranIn(t, d, o.BatchRows); svc > 0 {
			pred = svc // the round trip and the batch it ran in
		} else if !llm && d.raw.E2E > d.raw.Wait {
			pred = d.raw.E2E - d.raw.Wait // the round trip and service (see correct)
		}
		c.e2e.add(float64(o.E2E)/float64(pred), a, &r.pct, &r.scratch)
	}
	if llm {
		tt, tp := o.TTFT, o.TPOT
		if tt <= 0 && tp <= 0 && o.E2E > 0 && d.raw.E2E > 0 {
			// Only the end-to-end time is known: it scales both.
			e := float64(o.E2E) / float64(d.raw.E2E)
			tt, tp = scale(d.raw.TTFT, e), scale(d.raw.TPOT, e)
		}
		if tt > 0 && d.raw.TTFT > 0 {
			c.ttft.add(float64(tt)/float64(d.raw.TTFT), a, &r.pct, &r.scratch)
		}
		if tp > 0 {
			c.tpot.add(float64(tp)/float64(d.raw.TPOT), a, &r.pct, &r.scratch)
		}
	} else if o.BatchRows > 0 {
		c.rows += rowsAlpha * (float64(o.BatchRows) - c.rows)
	}
	switch {
	case o.TTFT > 0 && (llm || o.E2E <= 0):
		c.observeLatency(float64(o.TTFT), a)
	case o.E2E > 0:
		c.observeLatency(float64(o.E2E), a)
	}
	r.publish(c, llm)
}

// rowsAlpha is the EWMA weight of the newest batch in the expected batch
// size.
const rowsAlpha = 0.2

func (c *cell) observeLatency(v, a float64) {
	if c.nlat == 0 {
		c.lat = v
	} else {
		c.lat += a * (v - c.lat)
	}
	c.nlat++
}

// publish stores the cell's quantile factors, per priority class, for Factors
// (the batchers' predictor). They are taken at the configured quantiles, not
// the steered ones: steering decides how densely placement packs the fleet;
// a batcher deciding how long to hold a request it already has gains little
// from the last of the slack and loses the request if it misjudges it.
func (r *Router) publish(c *cell, llm bool) {
	st := &c.e2e
	if llm {
		st = &c.ttft
	}
	for prio := range c.pub {
		_, f := st.factorsAt(1, backends.Priority(prio), r.cfg.MinSamples, r.cfg.Margin)
		c.pub[prio].Store(math.Float64bits(f))
	}
	mean, _ := st.factorsAt(1, backends.Standard, r.cfg.MinSamples, r.cfg.Margin)
	c.pubMean.Store(math.Float64bits(mean))
}

// SetDown marks backend i unhealthy (down = true) or healthy again, for
// health checks that live outside the router.
func (r *Router) SetDown(i int, down bool) { r.targets[i].down = down }

// Available reports whether backend i may receive traffic at now.
func (r *Router) Available(i int, now time.Time) bool {
	return availableAt(&r.targets[i], now.UnixNano())
}

// Load returns backend i's books.
func (r *Router) Load(i int) Load { return r.targets[i].load }

// Len is the number of backends.
func (r *Router) Len() int { return len(r.targets) }

// SetExternal records backend i's self-reported load (a telemetry scrape);
// the zero External forgets it (a stale or failed scrape). The merge rule:
// the queue a new request joins is the larger of what the router placed and
// what the backend reports — LLM sequences max(placed, reported) (the
// placed prompts' tokens scaled along), batch work scaled by reported
// pending ÷ placed in flight when that is more than 1.
func (r *Router) SetExternal(i int, e External) { r.targets[i].ext = e }

// SetRTT records backend i's measured network round trip (active health
// checks), which replaces the descriptor's in every prediction; 0 goes back
// to the descriptor's.
func (r *Router) SetRTT(i int, rtt time.Duration) { r.targets[i].rtt = max(rtt, 0) }

// loadInto writes the target's books into l, with the prefill backlog as
// seen at now and the backend's own report merged in.
func (t *target) loadInto(ns int64, l *Load) {
	*l = t.load
	l.RTT = t.rtt
	if e := t.ext; e.Seqs > l.Seqs {
		if l.Seqs > 0 {
			l.PromptTokens = l.PromptTokens * e.Seqs / l.Seqs
			l.OutputTokens = l.OutputTokens * e.Seqs / l.Seqs
		}
		l.Seqs = e.Seqs
	}
	if e := t.ext; e.Pending > l.InFlight && l.InFlight > 0 {
		l.BatchWork = l.BatchWork * time.Duration(e.Pending) / time.Duration(l.InFlight)
	}
	if t.prefillFree > ns {
		l.PrefillBacklog = time.Duration(t.prefillFree - ns)
	}
}

// availableAt reports whether t is in rotation at ns nanoseconds since the
// epoch: not marked down, not ejected.
func availableAt(t *target, ns int64) bool {
	return !t.down && (t.ejectedUntil == 0 || ns >= t.ejectedUntil)
}

// admits reports whether t may receive this placement at now. After an
// ejection a backend is re-admitted gradually: during the EjectFor that
// follows it, it accepts a share of the placements that grows linearly from
// 10% to 100% (the others skip it), so a backend that comes back still
// broken fails only a few requests before it is ejected again.
func (r *Router) admits(t *target, ns int64) bool {
	if !availableAt(t, ns) {
		return false
	}
	if t.readmitting && r.cfg.EjectFor > 0 {
		f := float64(ns-t.ejectedUntil) / float64(r.cfg.EjectFor)
		if f >= 1 {
			t.readmitting = false
			return true
		}
		return r.rng.Float64() < 0.1+0.9*f
	}
	return true
}

// meets reports whether p's quantile latencies meet req's SLO (TTFT and TPOT
// for streams, end to end otherwise) after el, the time the request has
// already spent since its arrival (see elapsed).
func meets(p *Prediction, req *backends.Request, el time.Duration) bool {
	return req.SLO.Met(req.Stream, el+p.E2E95, el+p.TTFT95, p.TPOT95)
}

// meetsExpected reports whether p's expected latencies (the learned mean,
// without the class's margin; TPOTExpected for streams) meet req's SLO
// after el.
func meetsExpected(p *Prediction, req *backends.Request, el time.Duration) bool {
	return req.SLO.Met(req.Stream, el+p.E2E, el+p.TTFT, p.TPOTExpected)
}

// elapsed is the time req has spent since its arrival at now, which counts
// against its TTFT and end-to-end targets: the client's clock started
// then. It is about zero at a first placement; a request that a batcher
// handed back (it could no longer meet its SLO where it waited) is judged
// on what is left, so a sheddable one that cannot make it any more is
// refused rather than served late. 0 without an arrival time.
func elapsed(now time.Time, req *backends.Request) time.Duration {
	if req.Arrival.IsZero() || !now.After(req.Arrival) {
		return 0
	}
	return now.Sub(req.Arrival)
}

// latency is the figure "fastest" minimises: TTFT for streams (what the user
// waits for), end to end otherwise.
func latency(p *Prediction, req *backends.Request) time.Duration {
	if req.Stream {
		return p.TTFT + p.TPOT
	}
	return p.E2E
}

func faster(a, b *Prediction, req *backends.Request) bool { return latency(a, req) < latency(b, req) }

// cheaper orders feasible candidates: lower cost, where costs within the
// relative tolerance tol are a tie, then lower predicted latency, then
// fewer requests in flight.
func cheaper(a, b *Prediction, req *backends.Request, aLoad, bLoad int, tol float64) bool {
	if d := a.CostUSD - b.CostUSD; d < -tol*b.CostUSD {
		return true
	} else if d > tol*b.CostUSD {
		return false
	}
	if la, lb := latency(a, req), latency(b, req); la != lb {
		return la < lb
	}
	return aLoad < bLoad
}
