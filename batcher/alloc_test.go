//go:build !race

package batcher

import (
	"testing"
	"time"

	"github.com/accelgate/accelgate/backends"
)

// TestEnqueueDecideAllocs guards the per-request bookkeeping: once the
// buffers have grown, Enqueue plus the dispatch decision allocates nothing.
func TestEnqueueDecideAllocs(t *testing.T) {
	for name, r := range map[string]*benchRig{"no lanes": newBenchRig(), "lanes": newLaneBenchRig()} {
		for range 4096 {
			r.step()
		}
		if n := testing.AllocsPerRun(2000, r.step); n != 0 {
			t.Errorf("%s: Enqueue + decision allocates %v times per request, want 0", name, n)
		}
	}
}

// TestQueueAllocs guards the ordered queue: Push, PopFront and Remove reuse
// entries.
func TestQueueAllocs(t *testing.T) {
	var q Queue
	q.SetAging(DefaultConfig().AgingLimit)
	reqs := make([]*backends.Request, 64)
	for i := range reqs {
		reqs[i] = &backends.Request{Priority: backends.Priority(i % 3)}
		q.Push(t0, reqs[i])
	}
	now := t0
	if n := testing.AllocsPerRun(1000, func() {
		now = now.Add(10 * time.Millisecond) // ages entries too
		req := q.PopFront(now)
		e := q.Push(now, req)
		q.Remove(e)
		q.Push(now, req)
	}); n != 0 {
		t.Errorf("queue operations allocate %v times, want 0", n)
	}
}
