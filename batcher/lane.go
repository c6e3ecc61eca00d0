package batcher

import (
	"math"
	"slices"
	"time"

	"github.com/accelgate/accelgate/backends"
)

// Lanes: what the core knows of the backend's executors.
//
// A backend runs the batches of one batch class (its vision or its
// embedding BatchModel) on Executors executors, first come first served.
// A batch dispatched while every executor is busy waits at the backend,
// where nothing can join it and nothing can overtake it: a critical request
// that arrives a moment later queues behind a batch of standard ones. So
// the core keeps, per batch class, a lane: its own prediction of when each
// executor is free, from the batches it dispatched there (each predicted
// to take L(rows) − RTT of execution, started when it arrives, RTT/2 after
// dispatch, or when its executor frees) and corrected by every batch that
// comes back (Finished: the executor freed RTT/2 before the result
// arrived). An adaptive batch is never dispatched before its lane is ready
// — RTT/2 before an executor is predicted free, so the batch arrives as the
// executor frees and the backend never idles for the round trip — and
// until then it keeps gathering requests in queue order. Requests that
// arrive while the backend is busy thus join the next batch instead of
// queueing blind at the backend, and the batch size grows with the load.
//
// Predictions drift (the latency model is a quantile, the backend jitters),
// so the lane learns a correction: the EWMA of each finished batch's
// measured execution time (from its start — its arrival, or the previous
// batch's end on that executor — to RTT/2 before its result) over the time
// predicted for it. A batch never reported back only delays its executor
// until its predicted end passes.

// outBatch is one dispatched batch the core has not been told about yet.
type outBatch struct {
	id     uint64
	server int32 // the executor it was predicted to run on
	arrive int64 // dispatch + RTT/2
	exec   int64 // predicted execution time, before the lane's correction
	end    int64 // predicted end of execution
}

// lane is one batch class's executors on the backend.
type lane struct {
	bm      *backends.BatchModel
	free    []int64 // per executor: predicted time it is free
	lastEnd []int64 // per executor: measured end of its last finished batch
	out     []outBatch
	factor  float64 // EWMA of measured/predicted execution time
	dev     float64 // EWMA of the absolute deviation from factor
	groups  []*group
}

// laneAlpha is the weight of the newest batch in a lane's correction.
const laneAlpha = 0.2

// outHorizon is how long after its predicted end a batch never reported
// back is forgotten.
const outHorizon = int64(10 * time.Second)

func newLane(bm *backends.BatchModel) *lane {
	n := bm.Parallelism()
	l := &lane{bm: bm, free: make([]int64, n), lastEnd: make([]int64, n), factor: 1}
	for i := range l.free {
		l.free[i], l.lastEnd[i] = immediate, immediate
	}
	return l
}

// laneFor returns the core's lane for bm, creating it.
func (c *Core) laneFor(bm *backends.BatchModel) *lane {
	for _, l := range c.lanes {
		if l.bm == bm {
			return l
		}
	}
	l := newLane(bm)
	c.lanes = append(c.lanes, l)
	return l
}

// earliest returns the executor that frees first and when.
func (l *lane) earliest() (int, int64) {
	k := 0
	for i, f := range l.free {
		if f < l.free[k] {
			k = i
		}
	}
	return k, l.free[k]
}

// ready returns the earliest time a batch of g may be dispatched to reach a
// free executor: RTT/2 before one is predicted free (immediate for a queue
// without a lane).
func (c *Core) ready(g *group) int64 {
	if g.lane == nil {
		return immediate
	}
	_, f := g.lane.earliest()
	if f == immediate {
		return immediate
	}
	return f - c.half
}

// dispatched records a batch of g with rows rows and tokens tokens sent at
// now; it returns the batch's ID, unique in the core (the lane tracks it
// when g has one).
func (c *Core) dispatched(g *group, now int64, rows, tokens int) uint64 {
	c.lastID++
	l := g.lane
	if l == nil {
		return c.lastID
	}
	k, f := l.earliest()
	exec := max(c.latency(g, rows, tokens, backends.Standard)-2*c.half, 0)
	arrive := now + c.half
	end := max(arrive, f) + l.scale(exec)
	l.free[k] = end
	// Forget batches long overdue (their results were never reported).
	l.out = slices.DeleteFunc(l.out, func(fl outBatch) bool { return fl.end+outHorizon < now })
	l.out = append(l.out, outBatch{id: c.lastID, server: int32(k), arrive: arrive, exec: exec, end: end})
	l.touch()
	return c.lastID
}

// Finished tells the core that the batch with the given ID (Batch.ID) is
// over at now: its results came back (ok), or it failed or was canceled
// (not ok). The lane re-predicts the batches still out on its executor, and
// learns the execution time from a batch that came back (a failure says
// nothing about it). Unknown IDs (0, a queue without a lane, a batch
// already reported) are ignored.
func (c *Core) Finished(now time.Time, id uint64, ok bool) {
	if id == 0 {
		return
	}
	t := now.UnixNano()
	c.now = max(c.now, t)
	for _, l := range c.lanes {
		for i, fl := range l.out {
			if fl.id != id {
				continue
			}
			l.out = append(l.out[:i], l.out[i+1:]...)
			end := t - c.half
			if start := max(fl.arrive, l.lastEnd[fl.server]); ok && fl.exec > 0 && end > start {
				x := float64(end-start) / float64(fl.exec)
				l.dev += laneAlpha * (math.Abs(x-l.factor) - l.dev)
				l.factor += laneAlpha * (x - l.factor)
				l.factor = min(max(l.factor, 0.1), 10)
			}
			l.lastEnd[fl.server] = end
			// Re-predict the executor: what is still out on it starts after
			// this batch's measured end.
			free := end
			for j := range l.out {
				o := &l.out[j]
				if o.server != fl.server {
					continue
				}
				o.end = max(o.arrive, free) + l.scale(o.exec)
				free = o.end
			}
			l.free[fl.server] = free
			l.touch()
			return
		}
	}
}

// scale corrects a predicted execution time to the low side of what the
// lane measured (its mean ratio less twice the mean deviation): a batch that
// arrives a little early waits at the backend for a moment, one that
// arrives late leaves the executor idle.
func (l *lane) scale(exec int64) int64 {
	return int64(float64(exec) * max(l.factor-2*l.dev, 0.1))
}

// touch marks the lane's queues for a new dispatch decision.
func (l *lane) touch() {
	for _, g := range l.groups {
		g.dirty = true
	}
}
