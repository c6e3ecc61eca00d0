package router

import (
	"time"

	"github.com/accelgate/accelgate/backends"
)

// The baseline policies. Each picks a backend by its own rule among the
// available backends that serve the model and whose hardware can run the
// request; none refuses a request for its SLO. They exist to be compared with
// accelgate in the simulator (loadtest simulate -policies all) and may be
// chosen in the fleet file's router section.

// baseline places req by one of the baseline policies.
func (r *Router) baseline(now time.Time, req *backends.Request, m *backends.Model, mt *modelTargets, exclude int) (Decision, error) {
	// The candidates, once (the re-admission gate is random): in the
	// router's scratch slice, so nothing is allocated per request.
	r.cand = r.cand[:0]
	ns := now.UnixNano()
	for _, i := range mt.idx {
		if i != exclude && r.admits(&r.targets[i], ns) && r.capable(i, req) {
			r.cand = append(r.cand, i)
		}
	}
	cnt := len(r.cand)
	if cnt == 0 {
		return Decision{}, backends.ErrNoBackend
	}
	pick := -1
	switch r.cfg.Policy {
	case PolicyRoundRobin:
		// The first candidate at or after the model's cursor.
		n := len(mt.idx)
		for k := 0; k < n && pick < 0; k++ {
			i := mt.idx[(mt.rr+k)%n]
			for _, c := range r.cand {
				if c == i {
					pick, mt.rr = i, (mt.rr+k+1)%n
					break
				}
			}
		}
	case PolicyRandom:
		pick = r.cand[r.rng.IntN(cnt)]
	case PolicyP2C:
		a := r.rng.IntN(cnt)
		pick = r.cand[a]
		if cnt > 1 {
			b := r.rng.IntN(cnt - 1)
			if b >= a {
				b++
			}
			if o := r.cand[b]; r.targets[o].load.InFlight < r.targets[pick].load.InFlight {
				pick = o
			}
		}
	default:
		for _, i := range r.cand {
			if pick < 0 || r.prefer(i, pick, mt.id) {
				pick = i
			}
		}
	}
	var p Prediction
	r.predictInto(ns, pick, req, m, mt.id, &p)
	return r.commit(now, pick, &p, req, m, mt.id, meets(&p, req, elapsed(now, req))), nil
}

// prefer reports whether backend a beats b under the policies that rank
// (least-outstanding, cheapest, latency-ewma); ties keep b, the earlier one.
func (r *Router) prefer(a, b, model int) bool {
	ta, tb := &r.targets[a], &r.targets[b]
	switch r.cfg.Policy {
	case PolicyCheapest:
		pa, pb := ta.desc.PricePerSecond(), tb.desc.PricePerSecond()
		if pa != pb {
			return pa < pb
		}
	case PolicyLatencyEWMA:
		ca, cb := &ta.cells[model], &tb.cells[model]
		switch {
		case ca.nlat == 0 || cb.nlat == 0:
			if (ca.nlat == 0) != (cb.nlat == 0) {
				return ca.nlat == 0 // untried first
			}
		case ca.lat != cb.lat:
			return ca.lat < cb.lat
		}
	}
	return ta.load.InFlight < tb.load.InFlight
}

// capable reports whether backend i's hardware can run req's workload class.
func (r *Router) capable(i int, req *backends.Request) bool {
	p := r.targets[i].desc.Profile
	switch req.Op {
	case backends.OpChat, backends.OpCompletion:
		return p.LLM != nil
	case backends.OpEmbedding:
		return p.Embedding != nil
	}
	return p.Vision != nil
}
