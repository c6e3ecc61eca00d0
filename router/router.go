package router

import (
	"errors"
	"fmt"
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
	Index      int                  // the backend's index in the slice given to New
	Backend    *backends.Descriptor // the chosen backend
	Prediction Prediction           // what the router expects on it
	MeetsSLO   bool                 // false when the request went to the fastest backend as a fallback
	charged    Load
}

// target is one backend's state in the router.
type target struct {
	desc         *backends.Descriptor
	load         Load
	prefillFree  time.Time // when the prefill pipeline drains the prompts placed so far
	failures     int
	ejectedUntil time.Time
	down         bool // marked unhealthy from outside (health checks)
}

type modelTargets struct {
	idx []int
	rr  int
}

// Router is the placement core. It is not safe for concurrent use: the live
// gateway serialises calls with a mutex, the simulator calls it from its event
// loop.
type Router struct {
	cfg     Config
	pred    Predictor
	targets []target
	byModel map[string]*modelTargets // built once; read-only lookups per request
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
	r := &Router{cfg: cfg, pred: pred, targets: make([]target, len(descs)), byModel: map[string]*modelTargets{}}
	for i, d := range descs {
		if d == nil || d.Profile == nil {
			return nil, fmt.Errorf("router: backend %d has no descriptor or profile", i)
		}
		r.targets[i].desc = d
		for _, m := range d.Models {
			mt := r.byModel[m]
			if mt == nil {
				mt = &modelTargets{}
				r.byModel[m] = mt
			}
			mt.idx = append(mt.idx, i)
		}
	}
	return r, nil
}

// Config returns the effective (defaulted) configuration.
func (r *Router) Config() Config { return r.cfg }

// Place chooses a backend for req and charges the request's work to it.
// exclude is a backend index to skip (a retry after it failed), or -1.
//
// Errors: backends.ErrNoBackend when no healthy backend serves the model;
// *ShedError (wrapping backends.ErrShed) when a sheddable request cannot meet
// its SLO anywhere.
func (r *Router) Place(now time.Time, req *backends.Request, m *backends.Model, exclude int) (Decision, error) {
	mt := r.byModel[req.Model]
	if mt == nil {
		return Decision{}, backends.ErrNoBackend
	}
	best, fastest := -1, -1
	var bestP, fastP Prediction
	var minWait time.Duration = -1
	if r.cfg.Policy == PolicyRoundRobin {
		return r.roundRobin(now, req, m, mt, exclude)
	}
	for _, i := range mt.idx {
		t := &r.targets[i]
		if i == exclude || !r.available(t, now) {
			continue
		}
		p := r.pred.Predict(req, m, t.desc, t.loadAt(now))
		if !p.Feasible() {
			continue
		}
		if minWait < 0 || p.Wait < minWait {
			minWait = p.Wait
		}
		if fastest < 0 || faster(p, fastP, req) || (latency(p, req) == latency(fastP, req) && t.load.InFlight < r.targets[fastest].load.InFlight) {
			fastest, fastP = i, p
		}
		if r.cfg.Policy == PolicyFastest || !r.meets(p, req) {
			continue
		}
		if best < 0 || cheaper(p, bestP, req, t.load.InFlight, r.targets[best].load.InFlight) {
			best, bestP = i, p
		}
	}
	if fastest < 0 {
		return Decision{}, backends.ErrNoBackend
	}
	if r.cfg.Policy == PolicyFastest {
		return r.commit(now, fastest, fastP, req, r.meets(fastP, req)), nil
	}
	if best >= 0 {
		return r.commit(now, best, bestP, req, true), nil
	}
	if req.Priority == backends.Sheddable {
		ra := minWait
		if ra < time.Second {
			ra = time.Second
		}
		return Decision{}, &ShedError{RetryAfter: ra}
	}
	return r.commit(now, fastest, fastP, req, false), nil
}

// roundRobin takes the first available backend at or after the model's cursor.
func (r *Router) roundRobin(now time.Time, req *backends.Request, m *backends.Model, mt *modelTargets, exclude int) (Decision, error) {
	n := len(mt.idx)
	for k := 0; k < n; k++ {
		i := mt.idx[(mt.rr+k)%n]
		t := &r.targets[i]
		if i == exclude || !r.available(t, now) {
			continue
		}
		p := r.pred.Predict(req, m, t.desc, t.loadAt(now))
		if !p.Feasible() {
			continue
		}
		mt.rr = (mt.rr + k + 1) % n
		return r.commit(now, i, p, req, r.meets(p, req)), nil
	}
	return Decision{}, backends.ErrNoBackend
}

func (r *Router) commit(now time.Time, i int, p Prediction, req *backends.Request, meets bool) Decision {
	t := &r.targets[i]
	c := charge(req, p)
	if c.Seqs > 0 && t.desc.Profile.LLM != nil {
		// The prompt joins the prefill pipeline behind those placed before it.
		lm := t.desc.Profile.LLM
		if t.prefillFree.Before(now) {
			t.prefillFree = now
		}
		t.prefillFree = t.prefillFree.Add(lm.PrefillTime(req.EstInputTokens) + lm.DecodeStep(t.load.Seqs+c.Seqs))
	}
	t.load.Seqs += c.Seqs
	t.load.PromptTokens += c.PromptTokens
	t.load.BatchWork += c.BatchWork
	t.load.InFlight += c.InFlight
	return Decision{Index: i, Backend: t.desc, Prediction: p, MeetsSLO: meets, charged: c}
}

// Done releases a placed request's work and records its outcome. err is the
// request's error (nil on success). Consecutive backend failures
// (backends.ErrUnavailable) eject the backend for Config.EjectFor.
func (r *Router) Done(now time.Time, d Decision, err error) {
	if d.Backend == nil || d.Index < 0 || d.Index >= len(r.targets) {
		return
	}
	t := &r.targets[d.Index]
	t.load.Seqs -= d.charged.Seqs
	t.load.PromptTokens -= d.charged.PromptTokens
	if t.load.Seqs == 0 && t.prefillFree.After(now) {
		t.prefillFree = now // nothing left: no prompt can still be waiting
	}
	t.load.BatchWork -= d.charged.BatchWork
	t.load.InFlight -= d.charged.InFlight
	switch {
	case err == nil:
		t.failures = 0
	case errors.Is(err, backends.ErrUnavailable):
		t.failures++
		if t.failures >= r.cfg.EjectAfter {
			t.failures = 0
			t.ejectedUntil = now.Add(r.cfg.EjectFor)
		}
	}
}

// SetDown marks backend i unhealthy (down = true) or healthy again, for
// health checks that live outside the router.
func (r *Router) SetDown(i int, down bool) { r.targets[i].down = down }

// Available reports whether backend i may receive traffic at now.
func (r *Router) Available(i int, now time.Time) bool { return r.available(&r.targets[i], now) }

// Load returns backend i's books.
func (r *Router) Load(i int) Load { return r.targets[i].load }

// Len is the number of backends.
func (r *Router) Len() int { return len(r.targets) }

// loadAt is the target's books with the prefill backlog as seen at now.
func (t *target) loadAt(now time.Time) Load {
	l := t.load
	if t.prefillFree.After(now) {
		l.PrefillBacklog = t.prefillFree.Sub(now)
	}
	return l
}

func (r *Router) available(t *target, now time.Time) bool {
	return !t.down && !now.Before(t.ejectedUntil)
}

// meets reports whether p, inflated by the margin, meets req's SLO.
func (r *Router) meets(p Prediction, req *backends.Request) bool {
	f := 1 + r.cfg.Margin
	over := func(pred, target time.Duration) bool {
		return target > 0 && float64(pred)*f > float64(target)
	}
	if req.Stream {
		return !over(p.TTFT, req.SLO.TTFT) && !over(p.TPOT, req.SLO.TPOT)
	}
	return !over(p.E2E, req.SLO.E2E)
}

// latency is the figure "fastest" minimises: TTFT for streams (what the user
// waits for), end to end otherwise.
func latency(p Prediction, req *backends.Request) time.Duration {
	if req.Stream {
		return p.TTFT + p.TPOT
	}
	return p.E2E
}

func faster(a, b Prediction, req *backends.Request) bool { return latency(a, req) < latency(b, req) }

// cheaper orders feasible candidates: lower cost (relative tolerance 1e-9),
// then lower latency, then fewer requests in flight.
func cheaper(a, b Prediction, req *backends.Request, aLoad, bLoad int) bool {
	const tol = 1e-9
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
