package loadtest

import (
	"bytes"
	"encoding/json"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/accelgate/accelgate/backends"
	"github.com/accelgate/accelgate/backends/catalog"
	"github.com/accelgate/accelgate/backends/fleet"
)

func defaultFleet(t testing.TB) (*fleet.File, *catalog.Catalog) {
	t.Helper()
	cat := catalog.Default()
	f, err := fleet.Default(cat)
	if err != nil {
		t.Fatal(err)
	}
	return f, cat
}

// toyFleet is one L4 serving resnet-50, without jitter.
func toyFleet(t testing.TB) (*fleet.File, *catalog.Catalog) {
	t.Helper()
	cat := catalog.Default()
	f, err := fleet.Parse([]byte(`
models:
  - name: resnet-50
    kind: tensor
    inputs: [{name: input, datatype: FP32, shape: [-1, 3, 224, 224]}]
    outputs: [{name: output, datatype: FP32, shape: [-1, 1000]}]
    timeout: 1s
    slo:
      critical:  {e2e_ms: 15}
      standard:  {e2e_ms: 50}
      sheddable: {e2e_ms: 200}
backends:
  - name: l4-0
    hardware: l4
    models: [resnet-50]
    rtt_ms: 1
    jitter: 0
`))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Validate(cat); err != nil {
		t.Fatal(err)
	}
	return f, cat
}

// itemsSource replays fixed items.
type itemsSource struct {
	items []Item
	i     int
}

func (s *itemsSource) Next(it *Item) bool {
	if s.i >= len(s.items) {
		return false
	}
	*it = s.items[s.i]
	it.Seq = int64(s.i)
	s.i++
	return true
}

func runItems(t *testing.T, f *fleet.File, cat *catalog.Catalog, opts SimOptions, items ...Item) (*RunReport, *SimResult) {
	t.Helper()
	sim, err := NewSim(f, cat, opts)
	if err != nil {
		t.Fatal(err)
	}
	rec := NewRecorder(RecorderOptions{Name: "t"})
	res, err := sim.Run(&itemsSource{items: items}, rec)
	if err != nil {
		t.Fatal(err)
	}
	return rec.Report(res.Duration), res
}

// TestSimEventOrder checks the event loop's timing and its order at equal
// times on one vision executor without jitter.
func TestSimEventOrder(t *testing.T) {
	f, cat := toyFleet(t)
	prof, _ := cat.Get("l4")
	rtt := time.Millisecond
	one := prof.Vision.BatchTime(1, 0)
	img := func(at time.Duration, timeout time.Duration) Item {
		return Item{At: at, Op: backends.OpTensor, Model: ModelVision, Priority: backends.Critical, Images: 1, Timeout: timeout}
	}

	// One request: RTT + one batch.
	rep, res := runItems(t, f, cat, SimOptions{Batching: BatchingOff}, img(time.Second, 0))
	if want := float64((rtt+one)/time.Microsecond) / 1000; rep.OK != 1 || rep.LatencyMS.Max != want {
		t.Errorf("one image: ok %d, latency %v ms, want %v ms", rep.OK, rep.LatencyMS.Max, want)
	}
	if res.Duration != time.Second+rtt+one || res.LastArrival != time.Second {
		t.Errorf("duration %v, last arrival %v", res.Duration, res.LastArrival)
	}

	// Two at once: FIFO on the one executor, the second waits for the first.
	rep, _ = runItems(t, f, cat, SimOptions{Batching: BatchingOff}, img(0, 0), img(0, 0))
	if want := float64((rtt+2*one)/time.Microsecond) / 1000; rep.LatencyMS.Max != want {
		t.Errorf("second of two: latency %v ms, want %v ms", rep.LatencyMS.Max, want)
	}

	// A result due at the very instant of the deadline is delivered; one
	// due a nanosecond after it times out.
	rep, _ = runItems(t, f, cat, SimOptions{Batching: BatchingOff}, img(0, rtt+one))
	if rep.OK != 1 {
		t.Errorf("result at the deadline: ok %d, errors %v", rep.OK, rep.Errors)
	}
	rep, res = runItems(t, f, cat, SimOptions{Batching: BatchingOff}, img(0, rtt+one-1))
	if rep.OK != 0 || rep.Errors["timeout"] != 1 || res.Backends[0].Timeouts != 1 {
		t.Errorf("result after the deadline: ok %d, errors %v", rep.OK, rep.Errors)
	}
	if res.Duration != rtt+one-1 {
		t.Errorf("a timed-out run ends at the deadline, not at %v", res.Duration)
	}

	// An unknown model fails at once; a workload that goes back in time is
	// an error.
	rep, _ = runItems(t, f, cat, SimOptions{Batching: BatchingOff}, Item{Op: backends.OpChat, Model: "nope"})
	if rep.Errors["unknown_model"] != 1 {
		t.Errorf("unknown model: errors %v", rep.Errors)
	}
	sim, _ := NewSim(f, cat, SimOptions{Batching: BatchingOff})
	if _, err := sim.Run(&itemsSource{items: []Item{img(time.Second, 0), img(0, 0)}}, NewRecorder(RecorderOptions{})); err == nil {
		t.Error("items out of order were accepted")
	}
	if _, err := sim.Run(&itemsSource{}, NewRecorder(RecorderOptions{})); err == nil {
		t.Error("a Sim ran twice")
	}

	// A down backend: requests placed on it time out; results it produces
	// while down are lost.
	rep, _ = runItems(t, f, cat, SimOptions{Events: []SimEvent{{At: 0, Backend: 0, Down: true}, {At: 10 * time.Second, Backend: 0}}},
		img(0, 0), img(11*time.Second, 0))
	if rep.OK != 1 || rep.Errors["timeout"] != 1 {
		t.Errorf("down then up: ok %d, errors %v", rep.OK, rep.Errors)
	}
	if _, err := NewSim(f, cat, SimOptions{Events: []SimEvent{{Backend: 5}}}); err == nil {
		t.Error("an event for a backend outside the fleet was accepted")
	}
}

func smallConfig(t *testing.T) SimulateConfig {
	f, cat := defaultFleet(t)
	return SimulateConfig{Fleet: f, Catalog: cat, Workload: WorkloadMixed, Loads: []float64{0.3}, Requests: 3000, Seed: 3,
		Policies: Policies()}
}

func marshal(t *testing.T, v any) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := WriteJSON(&b, v); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// simulateAlike runs c one simulation at a time and three at once, checks
// the two reports are the same JSON byte for byte, and returns the first.
func simulateAlike(t *testing.T, c SimulateConfig) *SimReport {
	t.Helper()
	c.Parallel = 1
	a, err := Simulate(c)
	if err != nil {
		t.Fatal(err)
	}
	c.Parallel = 3
	b, err := Simulate(c)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(marshal(t, a), marshal(t, b)) {
		t.Fatal("two simulations with the same seed differ")
	}
	return a
}

// TestSimulateDeterministic: the same seed gives the same JSON byte for byte,
// however many simulations run at once; another seed gives another.
func TestSimulateDeterministic(t *testing.T) {
	c := smallConfig(t)
	a := simulateAlike(t, c)
	ja := marshal(t, a)
	c.Seed = 4
	d, err := Simulate(c)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(ja, marshal(t, d)) {
		t.Error("another seed gave the same report")
	}
	for _, r := range a.Runs {
		if r.Requests != 3000 || r.OK == 0 {
			t.Errorf("%s: %d requests, %d ok", r.Name, r.Requests, r.OK)
		}
	}
}

// TestSimReportEnvelope decodes the envelope into maps and checks its keys.
func TestSimReportEnvelope(t *testing.T) {
	f, cat := toyFleet(t)
	c := SimulateConfig{Fleet: f, Catalog: cat, Workload: WorkloadVision, Rates: []float64{100}, Requests: 500,
		Policies: []string{"accelgate", "fastest"}, FindMax: true, Scenario: ScenarioDrift}
	rep, err := Simulate(c)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(marshal(t, rep), &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"workload", "scenario", "fleet", "seed", "capacity_rps", "lower_bound_cost_usd_per_1k", "runs", "max_rates"} {
		if _, ok := m[k]; !ok {
			t.Errorf("envelope has no %q", k)
		}
	}
	if m["fleet"] != "default" || m["scenario"] != "drift" || m["workload"] != "vision" {
		t.Errorf("envelope %v %v %v", m["fleet"], m["scenario"], m["workload"])
	}
	runs := m["runs"].([]any)
	if len(runs) != 2 {
		t.Fatalf("%d runs", len(runs))
	}
	run := runs[0].(map[string]any)
	for _, k := range []string{"policy", "batching", "load", "rate_rps", "name", "requests", "ok", "shed", "errors",
		"duration_s", "window_s", "throughput_rps", "goodput_rps", "slo_attainment", "attainment_by_priority", "latency_ms",
		"ttft_ms", "itl_ms", "cost_usd_per_1k", "cost_usd_per_1m_tokens", "by_hardware", "timeseries",
		"mean_batch_size", "lower_bound_cost_usd_per_1k", "scenario_plan", "by_backend"} {
		if _, ok := run[k]; !ok {
			t.Errorf("run has no %q", k)
		}
	}
	if run["name"] != "accelgate@100rps" || run["batching"] != "adaptive" || run["load"] != nil || run["mean_batch_size"].(float64) < 1 {
		t.Errorf("run %v %v %v %v", run["name"], run["batching"], run["load"], run["mean_batch_size"])
	}
	if p := run["scenario_plan"].(map[string]any); p["backend"] != "l4-0" || p["factor"].(float64) != DriftFactor || p["start_s"].(float64) != 2.5 {
		t.Errorf("scenario plan %v", p)
	}
	mr := m["max_rates"].([]any)[0].(map[string]any)
	for _, k := range []string{"policy", "batching", "max_rate_rps", "load", "probes"} {
		if _, ok := mr[k]; !ok {
			t.Errorf("max_rates entry has no %q", k)
		}
	}
}

// TestFindMax: on a toy fleet the bisection brackets the highest rate with
// 99% attainment to within 1%.
func TestFindMax(t *testing.T) {
	f, cat := toyFleet(t)
	c := SimulateConfig{Fleet: f, Catalog: cat, Workload: WorkloadVision, Requests: 2000, Seed: 1, FindMax: true,
		Policies: []string{"accelgate"}}
	rep, err := Simulate(c)
	if err != nil {
		t.Fatal(err)
	}
	mr := rep.MaxRates[0]
	if !(mr.MaxRateRPS > 0) {
		t.Fatalf("max rate %v; probes %+v", mr.MaxRateRPS, mr.Probes)
	}
	// The answer is a passing probe, and the lowest failing probe is within
	// 1% above it.
	var passed bool
	lowestFail := 0.0
	for _, p := range mr.Probes {
		if p.RateRPS == mr.MaxRateRPS && p.SLOAttainment >= FindMaxAttainment {
			passed = true
		}
		if p.SLOAttainment < FindMaxAttainment && (lowestFail == 0 || p.RateRPS < lowestFail) {
			lowestFail = p.RateRPS
		}
		if p.RateRPS < mr.MaxRateRPS && p.SLOAttainment < FindMaxAttainment {
			t.Errorf("probe %+v failed below the answer %v", p, mr.MaxRateRPS)
		}
	}
	if !passed || lowestFail == 0 || lowestFail > mr.MaxRateRPS*1.0102 {
		t.Errorf("max %v (passed %v), lowest failing probe %v: %+v", mr.MaxRateRPS, passed, lowestFail, mr.Probes)
	}
	// The capacity bound is an upper bound on what the simulation sustains
	// with every request in time; at 99% attainment up to 1% may be refused
	// (queued sheddable requests that can no longer make it are handed back
	// and refused, freeing the backend for the others), and a 2,000-request
	// probe is partly transient: within 3%.
	if mr.MaxRateRPS > *rep.CapacityRPS*1.03 {
		t.Errorf("max %v above the capacity bound %v", mr.MaxRateRPS, *rep.CapacityRPS)
	}
	t.Logf("capacity %.1f, max %.1f req/s after %d probes", *rep.CapacityRPS, mr.MaxRateRPS, len(mr.Probes))
}

// TestScenarioDrift: on a fleet of one H100 (and an L4 that only embeds),
// the H100 is the drifting backend (the first GPU in the file); the p99 of the second
// half of the run, after it became 3× slower, is well above the first
// half's, and a steady run shows no such step.
func TestScenarioDrift(t *testing.T) {
	cat := catalog.Default()
	f, err := fleet.Parse([]byte(`
models:
  - name: llama-3.1-8b-instruct
    kind: llm
    slo:
      critical:  {ttft_ms: 300,  tpot_ms: 60}
      standard:  {ttft_ms: 1000, tpot_ms: 60}
      sheddable: {ttft_ms: 3000, tpot_ms: 60}
  - name: bge-base-en-v1.5
    kind: embedding
    dimension: 768
backends:
  - name: h100-0
    hardware: h100-sxm-80gb
    models: [llama-3.1-8b-instruct]
  - name: l4-0
    hardware: l4
    models: [bge-base-en-v1.5]
`))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Validate(cat); err != nil {
		t.Fatal(err)
	}
	c := SimulateConfig{Fleet: f, Catalog: cat, Workload: WorkloadLLM, Loads: []float64{0.3}, Requests: 3000, Seed: 1,
		Scenario: ScenarioDrift}
	rep, err := Simulate(c)
	if err != nil {
		t.Fatal(err)
	}
	run := rep.Runs[0]
	plan := run.ScenarioPlan
	if plan.Backend != "h100-0" || plan.Factor != 3 {
		t.Fatalf("plan %+v", plan)
	}
	before, after := seriesP99(run.Timeseries, 0, plan.StartS), seriesP99(run.Timeseries, plan.StartS, run.DurationS)
	t.Logf("median per-second p99: %.1f ms before, %.1f ms after the drift", before, after)
	if !(after > 2*before) {
		t.Errorf("p99 %.1f ms after the drift, %.1f ms before: no visible effect", after, before)
	}
	steady := c
	steady.Scenario = ScenarioSteady
	srep, err := Simulate(steady)
	if err != nil {
		t.Fatal(err)
	}
	sb, sa := seriesP99(srep.Runs[0].Timeseries, 0, plan.StartS), seriesP99(srep.Runs[0].Timeseries, plan.StartS, run.DurationS)
	t.Logf("steady: %.1f ms, then %.1f ms", sb, sa)
	if sa > 1.3*sb || sb > 1.3*sa {
		t.Errorf("steady run: p99 %.1f ms in the second half, %.1f ms in the first", sa, sb)
	}
}

// seriesP99 is the median of the per-second p99 over seconds [from, to).
func seriesP99(ts []TimePoint, from, to float64) float64 {
	var v []float64
	for _, p := range ts {
		if float64(p.T) >= from && float64(p.T) < to && p.OK > 0 {
			v = append(v, p.P99MS)
		}
	}
	if len(v) == 0 {
		return 0
	}
	for i := 1; i < len(v); i++ {
		for j := i; j > 0 && v[j] < v[j-1]; j-- {
			v[j], v[j-1] = v[j-1], v[j]
		}
	}
	return v[len(v)/2]
}

// TestScenarioEdgeFailure: the edge node's outage shows as timeouts of the
// requests sent during it, and none outside it.
func TestScenarioEdgeFailure(t *testing.T) {
	f, cat := defaultFleet(t)
	c := SimulateConfig{Fleet: f, Catalog: cat, Workload: WorkloadVision, Rates: []float64{200}, Requests: 8000, Seed: 1,
		Scenario: ScenarioEdgeFailure}
	rep, err := Simulate(c)
	if err != nil {
		t.Fatal(err)
	}
	run := rep.Runs[0]
	plan := run.ScenarioPlan
	if plan.Backend != "edge-0" || plan.StartS != 10 || plan.EndS != 30 || plan.Note == "" {
		t.Fatalf("plan %+v", plan)
	}
	var in, out int64
	for _, p := range run.Timeseries {
		// Requests already at the node when it goes silent were sent in
		// the second before; a request sent during the window but placed
		// on the node times out too.
		if float64(p.T) >= plan.StartS-1 && float64(p.T) < plan.EndS {
			in += p.Errors
		} else {
			out += p.Errors
		}
	}
	t.Logf("errors: %d in the window, %d outside; by backend %+v", in, out, run.ByBackend["edge-0"])
	if in == 0 || out != 0 || run.Errors["timeout"] != in || run.ByBackend["edge-0"].Timeouts != in {
		t.Errorf("errors %d in the window, %d outside, %v", in, out, run.Errors)
	}
}

// BenchmarkSimulateMixed simulates b.N requests of the mixed workload at half
// the default fleet's capacity with the accelgate policy; ns/op is per
// request.
func BenchmarkSimulateMixed(b *testing.B) {
	f, cat := defaultFleet(b)
	capy, err := FleetCapacity(f, cat, WorkloadMixed)
	if err != nil {
		b.Fatal(err)
	}
	src, err := Standard(WorkloadMixed, capy.RPS*0.5, 1, Limit{Requests: b.N})
	if err != nil {
		b.Fatal(err)
	}
	sim, err := NewSim(f, cat, SimOptions{})
	if err != nil {
		b.Fatal(err)
	}
	rec := NewRecorder(RecorderOptions{})
	b.ReportAllocs()
	b.ResetTimer()
	res, err := sim.Run(src, rec)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(res.Events)/float64(b.N), "events/request")
}

// TestSimulateTrace replays a trace at its own timing: no capacity, no load,
// the rate from the trace.
func TestSimulateTrace(t *testing.T) {
	f, cat := defaultFleet(t)
	src, err := Standard(WorkloadVision, 100, 1, Limit{Requests: 300})
	if err != nil {
		t.Fatal(err)
	}
	path := t.TempDir() + "/t.jsonl"
	var b bytes.Buffer
	if err := WriteTraceJSONL(&b, src, 0); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	rep, err := Simulate(SimulateConfig{Fleet: f, Catalog: cat, Workload: "trace:" + path, Requests: 200})
	if err != nil {
		t.Fatal(err)
	}
	run := rep.Runs[0]
	if rep.CapacityRPS != nil || run.Load != nil || run.Requests != 200 || run.RateRPS < 80 || run.RateRPS > 125 || run.Name != "accelgate" {
		t.Errorf("trace run: capacity %v, load %v, %d requests at %.1f req/s, %q", rep.CapacityRPS, run.Load, run.Requests, run.RateRPS, run.Name)
	}
}

// l4LLMFleet is a fleet of L4s (40 LLM sequence slots each) named names,
// serving ModelLLM without jitter, with a 600 s timeout.
func l4LLMFleet(t *testing.T, names ...string) (*fleet.File, *catalog.Catalog) {
	t.Helper()
	y := "models:\n  - {name: " + ModelLLM + ", kind: llm, timeout: 600s}\nbackends:\n"
	for _, n := range names {
		y += "  - {name: " + n + ", hardware: l4, models: [" + ModelLLM + "], jitter: 0}\n"
	}
	cat := catalog.Default()
	f, err := fleet.Parse([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Validate(cat); err != nil {
		t.Fatal(err)
	}
	return f, cat
}

// TestSimAdmissionPriority: LLM requests pass the backend's admission queue,
// as in the gateway. On an L4 (40 sequence slots) a burst of 80 sheddable
// requests fills the slots and queues 40; critical requests that arrive a
// moment later are admitted before the queued sheddable ones (priority
// order; the first slots free well before the queued ones age, after 2 s),
// where the emulator's own first-come queue would serve them last. With
// batching off there is no admission queue, and they are served last.
func TestSimAdmissionPriority(t *testing.T) {
	f, cat := l4LLMFleet(t, "l4-0")
	slo := backends.SLO{TTFT: 500 * time.Second, TPOT: time.Second, E2E: 550 * time.Second} // never refused
	var items []Item
	for k := range 90 {
		it := Item{Op: backends.OpChat, Model: ModelLLM, Priority: backends.Sheddable, Stream: true,
			InputTokens: 200, OutputTokens: 20, SLO: slo}
		if k >= 80 {
			it.At, it.Priority = time.Millisecond, backends.Critical
		}
		items = append(items, it)
	}
	run := func(batching string) (critMax time.Duration, shedAfter int) {
		sim, err := NewSim(f, cat, SimOptions{Batching: batching})
		if err != nil {
			t.Fatal(err)
		}
		var ttft [2][]time.Duration
		rec := NewRecorder(RecorderOptions{Observe: func(o *Outcome) {
			if !o.OK {
				t.Errorf("%s: %+v failed", batching, o)
				return
			}
			k := 0
			if o.Item.Priority == backends.Critical {
				k = 1
			}
			ttft[k] = append(ttft[k], o.TTFT+o.Item.At)
		}})
		if _, err := sim.Run(&itemsSource{items: items}, rec); err != nil {
			t.Fatal(err)
		}
		if len(ttft[0]) != 80 || len(ttft[1]) != 10 {
			t.Fatalf("%s: %d sheddable and %d critical outcomes", batching, len(ttft[0]), len(ttft[1]))
		}
		critMax = slices.Max(ttft[1])
		for _, d := range ttft[0] {
			if d > critMax {
				shedAfter++
			}
		}
		return critMax, shedAfter
	}
	// First tokens, in time since the start. When the first 40 end, 40 of
	// the 50 queued fit: with the admission queue the 10 critical requests
	// are among them, and 10 sheddable ones wait for the next round.
	if crit, after := run(BatchingAdaptive); after != 10 {
		t.Errorf("adaptive: last critical first token at %v, %d sheddable first tokens after it, want 10", crit, after)
	}
	if crit, after := run(BatchingOff); after != 0 {
		t.Errorf("off: last critical first token at %v, %d sheddable first tokens after it, want 0 (first come, first served)", crit, after)
	}
}

// TestSimEvictsLateQueue: when a request finishes past its end-to-end
// target, the requests queued on its backend that can no longer meet theirs
// there are handed back and placed again, as in the gateway. Of two L4s (40
// LLM sequence slots each) one becomes 20× slower from the start, before the
// router can have learned it; a burst of 100 streams fills both admission
// queues. When the first request on the slow one finishes, late, the
// requests still waiting for its slots are past their first-token target
// and move to the other L4; sheddable ones, which can no longer meet their
// SLO anywhere, are refused instead (the router judges a request from its
// arrival).
func TestSimEvictsLateQueue(t *testing.T) {
	f, cat := l4LLMFleet(t, "l4-a", "l4-b")
	const n = 100
	run := func(prio backends.Priority) (*RunReport, SimBackendStats, SimBackendStats) {
		var items []Item
		for k := range n {
			items = append(items, Item{At: time.Duration(k) * 10 * time.Microsecond, Op: backends.OpChat, Model: ModelLLM,
				Priority: prio, Stream: true, InputTokens: 200, OutputTokens: 20,
				SLO: backends.SLO{TTFT: 10 * time.Second, TPOT: time.Second, E2E: 20 * time.Second}})
		}
		rep, res := runItems(t, f, cat, SimOptions{Batching: BatchingAdaptive, Events: []SimEvent{{Backend: 0, Slowdown: 20}}}, items...)
		a, b := res.Backends[0], res.Backends[1]
		t.Logf("%v: a: %+v\nb: %+v\nok %d, errors %v", prio, a, b, rep.OK, rep.Errors)
		if a.Evicted == 0 {
			t.Fatalf("%v: nothing was handed back from the slow backend", prio)
		}
		if b.Evicted != 0 {
			t.Errorf("%v: %d handed back from the fast backend", prio, b.Evicted)
		}
		return rep, a, b
	}
	// Standard: every hand-back is placed again (a standard request is never
	// refused), and every request ends well.
	rep, a, b := run(backends.Standard)
	if a.Placed+b.Placed != n+a.Evicted || rep.OK != n {
		t.Errorf("placed %d + %d for %d requests and %d hand-backs; ok %d, errors %v", a.Placed, b.Placed, n, a.Evicted, rep.OK, rep.Errors)
	}
	if a.OK+b.OK != n || b.OK <= n/2 {
		t.Errorf("completed %d on the slow backend and %d on the other", a.OK, b.OK)
	}
	// Sheddable: the hand-backs are past their first-token target, so none
	// can meet its SLO anywhere any more; each is refused (429), not served
	// late.
	rep, a, b = run(backends.Sheddable)
	if rep.Shed != a.Evicted || a.Placed+b.Placed != n || rep.OK != n-a.Evicted {
		t.Errorf("sheddable: %d shed of %d hand-backs, placed %d + %d for %d requests, ok %d", rep.Shed, a.Evicted, a.Placed, b.Placed, n, rep.OK)
	}
}
