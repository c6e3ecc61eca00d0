package gateway

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/accelgate/accelgate/backends"
	"github.com/accelgate/accelgate/backends/fakeclock"
	"github.com/accelgate/accelgate/backends/telemetry"
	"github.com/accelgate/accelgate/router"
)

// fakeVLLM is an upstream's /metrics that reports what the test sets, under
// vLLM's metric names; fail makes it answer 503.
type fakeVLLM struct {
	waiting atomic.Int64
	fail    atomic.Bool
}

func (f *fakeVLLM) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if f.fail.Load() {
		http.Error(w, "engine restarting", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	fmt.Fprintf(w, "# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running{model_name=\"llm\"} 0\n"+
		"# TYPE vllm:num_requests_waiting gauge\nvllm:num_requests_waiting{model_name=\"llm\"} %d\n"+
		"# TYPE vllm:kv_cache_usage_perc gauge\nvllm:kv_cache_usage_perc{model_name=\"llm\"} 0.5\n", f.waiting.Load())
}

// placeHeld places n critical streaming LLM requests (TTFT target 300 ms)
// without finishing them (so each sees the load of the ones before) and
// returns how many went to each backend; then it cancels them all. On the
// test profile (64 slots) 500 sequences ahead mean a predicted wait of about
// 0.6 s for a slot, so a backend reporting them misses the target.
func placeHeld(t *testing.T, d *Dispatcher, n int) map[string]int {
	t.Helper()
	m := d.Models()["llm"]
	got := map[string]int{}
	var held []Placement
	for i := range n {
		req := &backends.Request{ID: fmt.Sprint("r", i), Op: backends.OpChat, Model: "llm", N: 1, Rows: 1,
			Stream: true, EstInputTokens: 500, MaxTokens: 64, Priority: backends.Critical, SLO: m.SLO[backends.Critical],
			Messages: []backends.Message{{Role: "user", Content: "hello"}}}
		p, err := d.Place(req, m, -1)
		if err != nil {
			t.Fatalf("place %d: %v", i, err)
		}
		got[p.Backend().Name]++
		held = append(held, p)
	}
	for i := range held {
		d.Cancel(&held[i])
	}
	return got
}

// TestTelemetryMovesPlacements: two equal LLM backends; backend b0's
// upstream reports 500 requests waiting on its /metrics (load the gateway did
// not place: other clients). After one scrape the router sends the
// placements to b1; when the report fails or goes stale, they come back.
func TestTelemetryMovesPlacements(t *testing.T) {
	clock := fakeclock.New(t0)
	b0 := &instant{desc: &backends.Descriptor{Name: "b0", Profile: testProfile("test-gpu", 3.6), Models: []string{"llm"}, PricePerHour: 3.6}}
	b1 := &instant{desc: &backends.Descriptor{Name: "b1", Profile: testProfile("test-gpu", 3.6), Models: []string{"llm"}, PricePerHour: 3.6}}
	d, err := NewDispatcher([]backends.Backend{b0, b1}, testModels(), router.Config{}, clock)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()

	up := &fakeVLLM{}
	up.waiting.Store(500)
	ts := httptest.NewServer(up)
	defer ts.Close()
	const interval = time.Second
	sc, err := telemetry.New(telemetry.Config{Interval: interval, Timeout: interval},
		[]telemetry.Target{{Name: "b0", URL: ts.URL + "/metrics"}}, telemetry.Options{Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()

	const n = 8
	before := placeHeld(t, d, n)
	if before["b0"] == 0 {
		t.Fatalf("without telemetry b0 (first, equal) should get placements: %v", before)
	}

	if err := sc.Start(); err != nil {
		t.Fatal(err)
	}
	w, err := d.WatchTelemetry(sc, map[string]int{"b0": 0}, clock, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	clock.Advance(0) // the first scrape, then the first apply
	if s := sc.Latest(0); s == nil || s.Err != "" || s.Waiting != 500 {
		t.Fatalf("snapshot after the first scrape: %+v", s)
	}
	if r := w.Reported(0); r != (router.External{Seqs: 500, Pending: 500}) {
		t.Fatalf("reported load %+v, want 500 sequences", r)
	}
	if got := placeHeld(t, d, n); got["b1"] != n {
		t.Fatalf("with b0 reporting 500 waiting: placements %v, want all %d on b1", got, n)
	}
	st := d.Status()
	if len(st) != 2 || st[0].Name != "b0" || !st[0].Available || st[0].Load.Seqs != 0 {
		t.Errorf("status %+v: the router's own books hold nothing; the report is merged at placement", st)
	}

	// A failed scrape: the report is dropped at the next apply.
	up.fail.Store(true)
	clock.Advance(interval)
	if s := sc.Latest(0); s == nil || s.Err == "" {
		t.Fatalf("snapshot after a failed scrape: %+v", s)
	}
	if r := w.Reported(0); r != (router.External{}) {
		t.Fatalf("reported load after a failed scrape: %+v, want none", r)
	}
	if got := placeHeld(t, d, n); got["b0"] == 0 {
		t.Fatalf("with b0's report failed: placements %v, want some back on b0", got)
	}

	// It recovers: the report moves the placements again.
	up.fail.Store(false)
	clock.Advance(interval)
	if got := placeHeld(t, d, n); got["b1"] != n {
		t.Fatalf("after recovery: placements %v, want all %d on b1", got, n)
	}

	// The scraper stops (the last report was good): it is trusted until it
	// is older than MaxAge, then forgotten.
	sc.Close()
	maxAge := sc.Config().MaxAge()
	clock.Advance(maxAge - interval)
	if r := w.Reported(0); r.Seqs != 500 {
		t.Fatalf("report %v old dropped early: %+v", maxAge, r)
	}
	clock.Advance(2 * interval)
	if r := w.Reported(0); r != (router.External{}) {
		t.Fatalf("stale report kept: %+v", r)
	}
	if got := placeHeld(t, d, n); got["b0"] == 0 {
		t.Fatalf("with b0's report stale: placements %v, want some back on b0", got)
	}

	// Stop forgets what it passed, and later ticks do nothing.
	w.Stop()
	w.Stop()
	if clock.Pending() != 0 {
		t.Errorf("%d timers left after Stop and Close", clock.Pending())
	}
}

// TestReportedLoad: the conversion from a snapshot to the router's External.
func TestReportedLoad(t *testing.T) {
	const maxAge = 15 * time.Second
	for _, tc := range []struct {
		name string
		s    *telemetry.Snapshot
		now  time.Time
		want router.External
	}{
		{"nil", nil, t0, router.External{}},
		{"vllm", &telemetry.Snapshot{At: t0, Running: 3, Waiting: 4.4, Source: telemetry.SourceVLLM}, t0, router.External{Seqs: 7, Pending: 7}},
		{"triton", &telemetry.Snapshot{At: t0, Waiting: 9, Pending: 9, Source: telemetry.SourceTriton}, t0.Add(maxAge), router.External{Seqs: 9, Pending: 9}},
		{"stale", &telemetry.Snapshot{At: t0, Running: 3}, t0.Add(maxAge + time.Nanosecond), router.External{}},
		{"errored", &telemetry.Snapshot{At: t0, Running: 3, Err: "boom"}, t0, router.External{}},
		{"never stamped", &telemetry.Snapshot{Running: 3}, t0, router.External{}},
		{"absurd", &telemetry.Snapshot{At: t0, Waiting: 1e300}, t0, router.External{Seqs: maxReported, Pending: maxReported}},
	} {
		if got := ReportedLoad(tc.s, tc.now, maxAge); got != tc.want {
			t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

// TestWatchTelemetryRejectsBadTargets: unknown names, out-of-range and
// repeated backend indices are errors.
func TestWatchTelemetryRejectsBadTargets(t *testing.T) {
	e := newEnv(t, Config{}, &instant{}, &instant{})
	sc, err := telemetry.New(telemetry.Config{}, []telemetry.Target{{Name: "a", URL: "http://127.0.0.1:9/metrics"}, {Name: "b", URL: "http://127.0.0.1:9/metrics"}},
		telemetry.Options{Clock: fakeclock.New(t0)})
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	d := e.srv.Dispatcher()
	for _, tc := range []struct {
		targets map[string]int
		want    string
	}{
		{map[string]int{"c": 0}, `"c" is not a target`},
		{map[string]int{"a": 2}, "out of range"},
		{map[string]int{"a": -1}, "out of range"},
		{map[string]int{"a": 1, "b": 1}, "both report backend 1"},
	} {
		if _, err := d.WatchTelemetry(sc, tc.targets, nil, 0); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want %q", tc.targets, err, tc.want)
		}
	}
	if _, err := d.WatchTelemetry(nil, nil, nil, 0); err == nil {
		t.Error("nil scraper accepted")
	}
}

// TestTelemetryFromEmulator: the emulated accelerator as the upstream. Its
// vLLM-named /metrics (emulator.Backend.WriteMetrics, what cmd/emulator
// serves) is scraped, and the load other clients put on it reaches the
// router: a critical request that would have gone to b0 goes to b1.
func TestTelemetryFromEmulator(t *testing.T) {
	const slots, n = 2, 12
	emu, emuClock := llmEmulator(t, "b0", slots)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", MetricsContentType)
		emu.WriteMetrics(w)
	}))
	defer ts.Close()

	// The gateway's view: two equal backends; b0 stands for the emulator.
	prof := emu.Descriptor().Profile
	clock := fakeclock.New(t0)
	b0 := &instant{desc: &backends.Descriptor{Name: "b0", Profile: prof, Models: []string{"llm"}, PricePerHour: 3.6}}
	b1 := &instant{desc: &backends.Descriptor{Name: "b1", Profile: prof, Models: []string{"llm"}, PricePerHour: 3.6}}
	d, err := NewDispatcher([]backends.Backend{b0, b1}, testModels(), router.Config{}, clock)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if got := placeHeld(t, d, 1); got["b0"] != 1 {
		t.Fatalf("idle: placement %v, want b0", got)
	}
	sc, err := telemetry.New(telemetry.Config{Interval: time.Second}, []telemetry.Target{{Name: "b0", URL: ts.URL + "/metrics"}},
		telemetry.Options{Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	if err := sc.Start(); err != nil {
		t.Fatal(err)
	}
	w, err := d.WatchTelemetry(sc, map[string]int{"b0": 0}, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	clock.Advance(0)
	if r := w.Reported(0); r != (router.External{}) {
		t.Fatalf("idle emulator reported %+v", r)
	}

	// Other clients load the emulator directly.
	defer loadEmulator(t, emu, n)()
	emuClock.Advance(0) // they arrive; two hold the slots
	clock.Advance(time.Second)
	if s := sc.Latest(0); s == nil || s.Running != slots || s.Waiting != n-slots {
		t.Fatalf("emulator snapshot %+v", s)
	}
	if r := w.Reported(0); r != (router.External{Seqs: n, Pending: n}) {
		t.Fatalf("reported %+v, want %d sequences", r, n)
	}
	if got := placeHeld(t, d, 1); got["b1"] != 1 {
		t.Fatalf("with the emulator busy: placement %v, want b1", got)
	}
}
