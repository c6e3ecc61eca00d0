package router

import (
	"time"

	"github.com/accelgate/accelgate/backends"
)

// The candidate index.
//
// Place does not predict every backend that serves a model. The backends of a
// model are grouped once, at New, by hardware class — the same profile,
// price, round trip and site — since the profile predicts two backends of a
// class alike but for their load. In a class of at most groupScanAll
// backends every available one is predicted. In a larger class a scan of
// integers (no prediction) picks the few worth predicting: the
// groupLeast least loaded (the fastest candidates: the fallback, and the
// choice of policy fastest), the groupMost most loaded (under continuous
// batching and batch sharing the cheapest candidates, as long as they still
// meet the SLO), and any backend the prefix-affinity table names (it may hold
// the prompt's prefix). Load is requests in flight. So a decision costs a
// bounded number of predictions per hardware class plus a linear scan of
// small integers, however many replicas a class has.

const (
	groupScanAll = 8 // classes up to this size are predicted in full
	groupLeast   = 1 // least loaded backends predicted per larger class
	groupMost    = 3 // most loaded backends predicted per larger class
)

// groupByClass partitions idx by hardware class, in order of first
// appearance.
func groupByClass(descs []*backends.Descriptor, idx []int) [][]int {
	var groups [][]int
	for _, i := range idx {
		d := descs[i]
		placed := false
		for g, members := range groups {
			e := descs[members[0]]
			if e.Profile == d.Profile && e.PricePerHour == d.PricePerHour && e.RTT == d.RTT && e.Site == d.Site {
				groups[g] = append(groups[g], i)
				placed = true
				break
			}
		}
		if !placed {
			groups = append(groups, []int{i})
		}
	}
	return groups
}

// scan is Place's running choice over the candidates it predicted.
type scan struct {
	best, fastest int
	bestP, fastP  Prediction
	p             Prediction // the candidate being predicted
	minWait       time.Duration
	el            time.Duration                                // the request's time since arrival (elapsed)
	picked        [groupLeast + groupMost + affinityWays*2]int // predicted in this class
	npicked       int
}

func (sc *scan) reset() {
	sc.best, sc.fastest, sc.minWait = -1, -1, -1
}

// considerGroup predicts the members of a large class worth predicting.
func (r *Router) considerGroup(ns int64, members []int, req *backends.Request, m *backends.Model, id, exclude int, sc *scan) {
	var least [groupLeast]int
	var most [groupMost]int
	nl, nm := 0, 0
	inflight := func(i int) int { return r.targets[i].load.InFlight }
	for _, i := range members {
		if i == exclude || !availableAt(&r.targets[i], ns) {
			continue
		}
		// Insert into least (ascending) and most (descending), bounded.
		if nl < groupLeast || inflight(i) < inflight(least[nl-1]) {
			k := min(nl, groupLeast-1)
			for k > 0 && inflight(least[k-1]) > inflight(i) {
				least[k] = least[k-1]
				k--
			}
			least[k] = i
			nl = min(nl+1, groupLeast)
		}
		if nm < groupMost || inflight(i) > inflight(most[nm-1]) {
			k := min(nm, groupMost-1)
			for k > 0 && inflight(most[k-1]) < inflight(i) {
				most[k] = most[k-1]
				k--
			}
			most[k] = i
			nm = min(nm+1, groupMost)
		}
	}
	sc.npicked = 0
	pick := func(i int) {
		for k := 0; k < sc.npicked; k++ {
			if sc.picked[k] == i {
				return
			}
		}
		sc.picked[sc.npicked] = i
		sc.npicked++
		if r.admits(&r.targets[i], ns) {
			r.consider(ns, i, req, m, id, sc)
		}
	}
	for k := 0; k < nl; k++ {
		pick(least[k])
	}
	for k := 0; k < nm; k++ {
		pick(most[k])
	}
	if r.aff != nil {
		for j := 0; j < r.aff.nhits; j++ {
			b := int(r.aff.hits[j].b)
			if b == exclude || !availableAt(&r.targets[b], ns) || !inGroup(members, b) {
				continue
			}
			pick(b)
		}
	}
}

func inGroup(members []int, b int) bool {
	for _, i := range members {
		if i == b {
			return true
		}
	}
	return false
}

// consider predicts backend i for req and updates the running choice.
func (r *Router) consider(ns int64, i int, req *backends.Request, m *backends.Model, id int, sc *scan) {
	t := &r.targets[i]
	p := &sc.p
	r.predictInto(ns, i, req, m, id, p)
	if !p.Feasible() {
		return
	}
	if sc.minWait < 0 || p.Wait < sc.minWait {
		sc.minWait = p.Wait
	}
	if sc.fastest < 0 || faster(p, &sc.fastP, req) || (latency(p, req) == latency(&sc.fastP, req) && t.load.InFlight < r.targets[sc.fastest].load.InFlight) {
		sc.fastest, sc.fastP = i, *p
	}
	if r.cfg.Policy == PolicyFastest || !meets(p, req, sc.el) {
		return
	}
	if req.Site != "" {
		// Data produced at a site is served there when the SLO allows: a
		// backend at the site beats any other that meets it.
		if at, bestAt := t.desc.Site == req.Site, sc.best >= 0 && r.targets[sc.best].desc.Site == req.Site; at != bestAt {
			if at {
				sc.best, sc.bestP = i, *p
			}
			return
		}
	}
	if sc.best < 0 || cheaper(p, &sc.bestP, req, t.load.InFlight, r.targets[sc.best].load.InFlight, r.cfg.CostTolerance) {
		sc.best, sc.bestP = i, *p
	}
}
