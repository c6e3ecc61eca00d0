package batcher

import (
	"strconv"
	"testing"
	"time"

	"github.com/accelgate/accelgate/backends"
)

// benchRig is a core fed 1-row requests 100 µs apart (20 ms targets, L(n) =
// 2 ms + 0.1 ms·n, max batch 32), each followed by the shell's decision
// calls: Drop, Poll and Next.
type benchRig struct {
	c    *Core
	reqs []*backends.Request
	out  []Batch
	drop []*backends.Request
	now  time.Time
	i    int
	// With lanes: the batches out at the backend and when each comes back.
	lanes bool
	back  []sentBatch
}

type sentBatch struct {
	id uint64
	at time.Time
}

func newBenchRig() *benchRig {
	r := &benchRig{
		c:   newTestCore(Config{MaxBatchSize: 32}, linPred{msd(2), msd(0.1)}),
		now: t0,
	}
	r.fill()
	return r
}

// newLaneBenchRig is newBenchRig on a backend with one executor and a 1 ms
// round trip (L(n) = 1.5 ms + 0.02 ms·n, so the executor keeps up), whose
// batches come back when predicted (Finished).
func newLaneBenchRig() *benchRig {
	prof := &backends.Profile{Name: "gpu", Vision: &backends.BatchModel{BaseMs: 1, PerItemMs: 0.1, MaxBatch: 32, Executors: 1}}
	r := &benchRig{
		c: NewCore(Options{Profile: prof, Models: testModels, Configs: map[string]Config{"resnet": {MaxBatchSize: 32}},
			Predictor: linPred{msd(1.5), msd(0.02)}, RTT: msd(1)}),
		now:   t0,
		lanes: true,
	}
	r.fill()
	return r
}

func (r *benchRig) fill() {
	for i := range 1024 {
		r.reqs = append(r.reqs, &backends.Request{ID: "b" + strconv.Itoa(i), Op: backends.OpTensor, Model: "resnet",
			Priority: backends.Priority(i % 3), Rows: 1, SLO: backends.SLO{E2E: msd(20)}})
	}
}

func (r *benchRig) step() {
	req := r.reqs[r.i%len(r.reqs)]
	r.i++
	r.now = r.now.Add(100 * time.Microsecond)
	req.Arrival, req.Deadline = r.now, r.now.Add(time.Second)
	if err := r.c.Enqueue(r.now, req); err != nil {
		panic(err)
	}
	r.drop = r.c.Drop(r.now, r.drop[:0])
	if r.lanes {
		k := 0
		for _, b := range r.back {
			if b.at.After(r.now) {
				r.back[k] = b
				k++
				continue
			}
			r.c.Finished(r.now, b.id, true)
		}
		r.back = r.back[:k]
	}
	r.out = r.c.Poll(r.now, true, r.out[:0])
	for _, b := range r.out {
		if r.lanes {
			r.back = append(r.back, sentBatch{b.ID, r.now.Add(msd(1.5 + 0.02*float64(b.Rows)))})
		}
	}
	r.c.Next()
}

// BenchmarkEnqueueDecide is the bookkeeping for one 1-row request: Enqueue
// plus the dispatch decision (Drop, Poll, Next).
func BenchmarkEnqueueDecide(b *testing.B) { runBench(b, newBenchRig()) }

// BenchmarkEnqueueDecideLanes is BenchmarkEnqueueDecide on a backend whose
// executor the core tracks (lane.go), batches reported back with Finished.
func BenchmarkEnqueueDecideLanes(b *testing.B) { runBench(b, newLaneBenchRig()) }

// runBench warms r up (buffers grown, queues in steady state), then times
// its steps.
func runBench(b *testing.B, r *benchRig) {
	for range 4096 {
		r.step()
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		r.step()
	}
}

// BenchmarkQueuePushPop is the ordered queue alone with 256 requests queued.
func BenchmarkQueuePushPop(b *testing.B) {
	var q Queue
	q.SetAging(DefaultConfig().AgingLimit)
	reqs := make([]*backends.Request, 256)
	for i := range reqs {
		reqs[i] = &backends.Request{Priority: backends.Priority(i % 3), Arrival: t0, SLO: backends.SLO{E2E: time.Duration(i%17) * time.Millisecond}}
		q.Push(t0, reqs[i])
	}
	now := t0
	b.ReportAllocs()
	for b.Loop() {
		now = now.Add(time.Microsecond)
		q.Push(now, q.PopFront(now))
	}
}
