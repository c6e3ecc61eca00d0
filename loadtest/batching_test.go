package loadtest

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/accelgate/accelgate/backends"
)

// TestSimBatchingAdaptive: adaptive batching on a small vision workload
// forms batches of more than one image, and every request is accounted for
// exactly once (offered = ok + errors, and per backend placed = ok +
// timeouts).
func TestSimBatchingAdaptive(t *testing.T) {
	f, cat := defaultFleet(t)
	c := SimulateConfig{Fleet: f, Catalog: cat, Workload: WorkloadVision, Rates: []float64{20000}, Requests: 5000, Seed: 2,
		Batching: []string{BatchingOff, BatchingAdaptive}, Parallel: 2}
	rep, err := Simulate(c)
	if err != nil {
		t.Fatal(err)
	}
	off, ad := rep.Runs[0], rep.Runs[1]
	if off.Batching != BatchingOff || ad.Batching != BatchingAdaptive || ad.Name != "accelgate/adaptive@20000rps" {
		t.Fatalf("runs %q (%s), %q (%s)", off.Name, off.Batching, ad.Name, ad.Batching)
	}
	if !(ad.MeanBatchSize > 1.5) || !(ad.MeanBatchSize > off.MeanBatchSize) {
		t.Errorf("mean batch size: adaptive %.2f, off %.2f", ad.MeanBatchSize, off.MeanBatchSize)
	}
	for _, run := range rep.Runs {
		var errs int64
		for _, n := range run.Errors {
			errs += n
		}
		if run.Requests != 5000 || run.OK+errs != run.Requests {
			t.Errorf("%s: %d offered, %d ok + %d errors %v", run.Name, run.Requests, run.OK, errs, run.Errors)
		}
		var placed, done int64
		for _, b := range run.ByBackend {
			placed += b.Placed
			done += b.OK + b.Timeouts
		}
		if placed != done {
			t.Errorf("%s: %d placed, %d ok or timed out", run.Name, placed, done)
		}
	}
	if ad.SLOAttainment < 0.99 {
		t.Errorf("adaptive attainment %.4f at a fifth of the off mode's maximum", ad.SLOAttainment)
	}
	t.Logf("mean batch size %.2f (off %.2f), attainment %.4f, cost per 1k $%.6f (off $%.6f)",
		ad.MeanBatchSize, off.MeanBatchSize, ad.SLOAttainment, ad.CostUSDPer1K, off.CostUSDPer1K)
}

// TestSimBatchingDeterministic: with batching on, the same configuration
// gives the same JSON byte for byte, however many simulations run at once.
func TestSimBatchingDeterministic(t *testing.T) {
	f, cat := defaultFleet(t)
	c := SimulateConfig{Fleet: f, Catalog: cat, Workload: WorkloadMixed, Loads: []float64{0.4}, Requests: 3000, Seed: 5,
		Batching: []string{BatchingFixed, BatchingAdaptive}}
	a := simulateAlike(t, c)
	fixed := a.Runs[0]
	if fixed.MaxQueueDelayUs == nil || len(fixed.Calibration) != len(FixedDelays) {
		t.Fatalf("fixed run: delay %v, calibration %+v", fixed.MaxQueueDelayUs, fixed.Calibration)
	}
	for _, d := range fixed.Calibration {
		if d.SLOAttainment > fixed.SLOAttainment {
			t.Errorf("kept %d us (%.4f) though %d us reached %.4f", *fixed.MaxQueueDelayUs, fixed.SLOAttainment, d.MaxQueueDelayUs, d.SLOAttainment)
		}
	}
}

// TestSimBatchingDeadlineDrop: a request whose hard deadline passes while it
// waits in the batcher times out without being executed, and the others of
// its batch are unaffected.
func TestSimBatchingDeadlineDrop(t *testing.T) {
	f, cat := toyFleet(t)
	img := func(at, timeout time.Duration, p backends.Priority) Item {
		return Item{At: at, Op: backends.OpTensor, Model: ModelVision, Priority: p, Images: 1, Timeout: timeout}
	}
	// Fixed with a 20 ms queue delay holds the first request; the second's
	// 5 ms hard timeout passes in the queue.
	rep, res := runItems(t, f, cat, SimOptions{Batching: BatchingFixed, MaxQueueDelay: 20 * time.Millisecond},
		img(0, 0, backends.Sheddable), img(time.Millisecond, 5*time.Millisecond, backends.Sheddable))
	if rep.OK != 1 || rep.Errors["timeout"] != 1 || res.Batches != 1 || res.BatchItems != 1 || res.Backends[0].BusySeconds == 0 {
		t.Errorf("ok %d, errors %v, %d batches of %d items", rep.OK, rep.Errors, res.Batches, res.BatchItems)
	}
	prof, _ := cat.Get("l4")
	if want := 20*time.Millisecond + time.Millisecond + prof.Vision.BatchTime(1, 0); math.Abs(rep.LatencyMS.Max-float64(want)/1e6) > 0.05 {
		t.Errorf("latency %v ms, want %v (queue delay + RTT + batch)", rep.LatencyMS.Max, want)
	}
	// Two requests at once under fixed batching go in one batch of two.
	rep, res = runItems(t, f, cat, SimOptions{Batching: BatchingFixed, MaxQueueDelay: time.Millisecond},
		img(0, 0, backends.Critical), img(0, 0, backends.Critical))
	if rep.OK != 2 || res.Batches != 1 || res.BatchItems != 2 {
		t.Errorf("two at once: ok %d, %d batches of %d items", rep.OK, res.Batches, res.BatchItems)
	}
	if _, err := NewSim(f, cat, SimOptions{Batching: "eager"}); err == nil || !strings.Contains(err.Error(), `unknown batching mode "eager"`) {
		t.Errorf("unknown mode: %v", err)
	}
}

func TestParseBatching(t *testing.T) {
	for in, want := range map[string]string{"off": "off", "fixed, adaptive": "fixed,adaptive", "all": "off,fixed,adaptive"} {
		got, err := ParseBatching(in)
		if err != nil || strings.Join(got, ",") != want {
			t.Errorf("%q: %v, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "on", "off,off", "fixed,Adaptive"} {
		if _, err := ParseBatching(in); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
	c := SimulateConfig{Batching: []string{"sometimes"}}
	f, cat := toyFleet(t)
	c.Fleet, c.Catalog, c.Workload = f, cat, WorkloadVision
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "unknown batching mode") {
		t.Errorf("Validate: %v", err)
	}
}
