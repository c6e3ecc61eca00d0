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
	n := len(mt.idx)
	ok := func(i int) bool {
		return i != exclude && r.available(&r.targets[i], now) && r.capable(i, req)
	}
	pick := -1
	switch r.cfg.Policy {
	case PolicyRoundRobin:
		for k := 0; k < n; k++ {
			if i := mt.idx[(mt.rr+k)%n]; ok(i) {
				pick, mt.rr = i, (mt.rr+k+1)%n
				break
			}
		}
	case PolicyRandom, PolicyP2C:
		cnt := 0
		for _, i := range mt.idx {
			if ok(i) {
				cnt++
			}
		}
		if cnt == 0 {
			break
		}
		pick = r.nth(mt, ok, r.rng.IntN(cnt))
		if r.cfg.Policy == PolicyP2C && cnt > 1 {
			k := r.rng.IntN(cnt - 1)
			other := r.nth(mt, ok, k)
			if other == pick {
				other = r.nth(mt, ok, cnt-1)
			}
			if r.targets[other].load.InFlight < r.targets[pick].load.InFlight {
				pick = other
			}
		}
	default:
		for _, i := range mt.idx {
			if ok(i) && (pick < 0 || r.prefer(i, pick, mt.id)) {
				pick = i
			}
		}
	}
	if pick < 0 {
		return Decision{}, backends.ErrNoBackend
	}
	raw, p := r.predict(now, &r.targets[pick], req, m, mt.id)
	return r.commit(now, pick, raw, p, req, mt.id, meets(p, req)), nil
}

// nth returns the k-th (from 0) backend of mt that passes ok.
func (r *Router) nth(mt *modelTargets, ok func(int) bool, k int) int {
	for _, i := range mt.idx {
		if ok(i) {
			if k == 0 {
				return i
			}
			k--
		}
	}
	return -1
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
