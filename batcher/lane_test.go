package batcher

import (
	"slices"
	"testing"

	"github.com/accelgate/accelgate/backends"
)

// laneCore is an adaptive core on a backend with one vision executor
// (MaxBatch 8) and a 2 ms round trip; the predictor's latency is
// RTT + 2 ms + 1 ms·rows, so a batch of n rows executes for 2 + n ms.
func laneCore(t *testing.T) *Core {
	t.Helper()
	prof := &backends.Profile{Name: "gpu", Vision: &backends.BatchModel{BaseMs: 2, PerItemMs: 1, MaxBatch: 8, Executors: 1}}
	return NewCore(Options{
		Profile:   prof,
		Models:    testModels,
		Configs:   map[string]Config{"resnet": {Mode: ModeAdaptive}},
		Predictor: linPred{msd(4), msd(1)},
		RTT:       msd(2),
	})
}

func TestLaneHoldsBatchesUntilTheExecutorFrees(t *testing.T) {
	c := laneCore(t)
	// A request without company goes at once (no arrival rate yet): it
	// reaches the backend at 1 ms and executes 3 ms, until 4 ms.
	first := vreq(backends.Standard, at(0), msd(100), 1)
	mustEnqueue(t, c, at(0), first)
	bs := c.Poll(at(0), true, nil)
	if len(bs) != 1 || bs[0].ID == 0 {
		t.Fatalf("batches = %+v, want the first request alone with a lane ID", bs)
	}
	id := bs[0].ID
	// Three more arrive while it executes, with 10 ms targets. Alone, the
	// deadline rule would dispatch them at 2 ms (W = 10.5 − L(4) = 2.5 ms,
	// less the 0.5 ms gap), but nothing goes before the lane is ready:
	// RTT/2 before the executor is predicted free, at 3 ms.
	var later []*backends.Request
	for _, ms := range []float64{0.5, 1, 1.5} {
		r := vreq(backends.Standard, at(ms), msd(10), 1)
		later = append(later, r)
		mustEnqueue(t, c, at(ms), r)
	}
	wantNext(t, c, at(3))
	if bs := c.Poll(at(2.4), true, bs[:0]); len(bs) != 0 {
		t.Fatalf("dispatched %v while the executor is busy", ids(bs[0].Members))
	}
	// The first batch comes back early, at 2.5 ms (it executed from 1 to
	// 1.5 ms): the lane is ready, and the three go together at once.
	c.Finished(at(2.5), id, true)
	wantNext(t, c, at(2.5))
	wantOneBatch(t, c.Poll(at(2.5), true, bs[:0]), later)
}

// wantOneBatch checks that bs is one batch of exactly want, in order.
func wantOneBatch(t *testing.T, bs []Batch, want []*backends.Request) {
	t.Helper()
	if len(bs) != 1 || !slices.Equal(ids(bs[0].Members), ids(want)) {
		t.Fatalf("batches = %+v, want one of %v", bs, ids(want))
	}
}

func TestLaneDispatchesHalfARoundTripBeforeTheExecutorFrees(t *testing.T) {
	c := laneCore(t)
	mustEnqueue(t, c, at(0), vreq(backends.Standard, at(0), 0, 1))
	bs := c.Poll(at(0), true, nil) // executes 1 → 4 ms
	if len(bs) != 1 {
		t.Fatalf("%d batches, want 1", len(bs))
	}
	// A batch full at 0.5 ms (the best size is MaxBatch for a linear
	// model) is held until 3 ms: it arrives at 4 ms, as the executor frees.
	var full []*backends.Request
	for range 8 {
		r := vreq(backends.Standard, at(0.5), 0, 1)
		full = append(full, r)
		mustEnqueue(t, c, at(0.5), r)
	}
	wantNext(t, c, at(3))
	if bs := c.Poll(at(2.99), true, bs[:0]); len(bs) != 0 {
		t.Fatal("dispatched the full batch before the lane was ready")
	}
	wantOneBatch(t, c.Poll(at(3), true, bs[:0]), full)
}

func TestLaneLetsACriticalRequestOvertake(t *testing.T) {
	c := laneCore(t)
	mustEnqueue(t, c, at(0), vreq(backends.Standard, at(0), 0, 1))
	c.Poll(at(0), true, nil) // busy until 4 ms: ready at 3 ms
	var std []*backends.Request
	for range 8 {
		r := vreq(backends.Standard, at(0.2), msd(200), 1)
		std = append(std, r)
		mustEnqueue(t, c, at(0.2), r)
	}
	// Without the lane these eight (a full batch) would already be queued
	// at the backend. The critical request that arrives at 1 ms is served
	// first in the batch dispatched at 3 ms.
	crit := vreq(backends.Critical, at(1), msd(20), 1)
	mustEnqueue(t, c, at(1), crit)
	bs := c.Poll(at(3), true, nil)
	if len(bs) != 1 || len(bs[0].Members) != 8 || bs[0].Members[0] != crit {
		t.Fatalf("batches = %+v, want the critical request first in a batch of 8", bs)
	}
	if !slices.Equal(ids(bs[0].Members[1:]), ids(std[:7])) {
		t.Errorf("members = %v, want the critical request and seven standard ones in order", ids(bs[0].Members))
	}
}

func TestLaneLearnsTheExecutionTime(t *testing.T) {
	c := laneCore(t)
	now := 0.0
	// Every batch of one row takes 6 ms to execute, twice the predicted 3.
	for range 30 {
		mustEnqueue(t, c, at(now), vreq(backends.Standard, at(now), 0, 1))
		bs := c.Poll(at(now), true, nil)
		if len(bs) != 1 {
			t.Fatalf("at %v ms: %d batches, want 1", now, len(bs))
		}
		now += 1 + 6 + 1 // half RTT, execution, half RTT
		c.Finished(at(now), bs[0].ID, true)
	}
	// A batch of one row dispatched now is predicted to free the executor
	// at about now + 1 + 6 ms: a request queued behind it waits until about
	// now + 6 (ready = free − RTT/2). The correction stays on the low side
	// of the measurements (mean less twice the deviation, here 0).
	mustEnqueue(t, c, at(now), vreq(backends.Standard, at(now), 0, 1))
	c.Poll(at(now), true, nil)
	mustEnqueue(t, c, at(now), vreq(backends.Standard, at(now), 0, 1))
	got, ok := c.Next()
	if !ok {
		t.Fatal("nothing due")
	}
	if d := got.Sub(at(now)); d < msd(5.9) || d > msd(6.1) {
		t.Fatalf("next dispatch %v after the previous one, want about 6 ms (3 ms predicted, learned 2x)", d)
	}
}

func TestLaneForgetsABatchNeverReported(t *testing.T) {
	c := laneCore(t)
	mustEnqueue(t, c, at(0), vreq(backends.Standard, at(0), 0, 1))
	c.Poll(at(0), true, nil) // predicted free at 4 ms; never reported back
	r := vreq(backends.Standard, at(0.5), 0, 1)
	mustEnqueue(t, c, at(0.5), r)
	got, ok := c.Next()
	if !ok || got.After(at(3)) {
		t.Fatalf("Next = +%v, want no later than the predicted ready time, 3 ms", got.Sub(t0))
	}
	// Finished for an unknown ID changes nothing.
	c.Finished(at(1), 12345, true)
	c.Finished(at(1), 0, true)
	if got2, _ := c.Next(); !got2.Equal(got) {
		t.Errorf("Next moved from +%v to +%v on unknown IDs", got.Sub(t0), got2.Sub(t0))
	}
}

// A batch that failed says nothing about execution time: the lane frees
// its executor but learns nothing from it.
func TestLaneLearnsNothingFromAFailedBatch(t *testing.T) {
	c := laneCore(t)
	mustEnqueue(t, c, at(0), vreq(backends.Standard, at(0), 0, 1))
	bs := c.Poll(at(0), true, nil)
	c.Finished(at(50), bs[0].ID, false) // failed after a long wait
	// Predicted as before any batch: one row dispatched at 50 ms arrives at
	// 51 ms, executes 3 ms, frees at 54 ms; the next is ready at 53 ms.
	mustEnqueue(t, c, at(50), vreq(backends.Standard, at(50), 0, 1))
	c.Poll(at(50), true, bs[:0])
	mustEnqueue(t, c, at(50), vreq(backends.Standard, at(50), 0, 1))
	wantNext(t, c, at(53))
}
