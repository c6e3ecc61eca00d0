package telemetry

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/accelgate/accelgate/backends/fakeclock"
)

var t0 = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

// upstream is an httptest server whose /metrics body and status the test
// sets; it counts the scrapes.
type upstream struct {
	srv    *httptest.Server
	mu     sync.Mutex
	body   string
	status int
	hits   atomic.Int64
}

func newUpstream(t *testing.T, body string) *upstream {
	u := &upstream{body: body, status: http.StatusOK}
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.hits.Add(1)
		if r.URL.Path != "/metrics" {
			http.NotFound(w, r)
			return
		}
		u.mu.Lock()
		body, status := u.body, u.status
		u.mu.Unlock()
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		w.WriteHeader(status)
		w.Write([]byte(body))
	}))
	t.Cleanup(u.srv.Close)
	return u
}

func (u *upstream) set(status int, body string) {
	u.mu.Lock()
	u.status, u.body = status, body
	u.mu.Unlock()
}

func (u *upstream) url() string { return u.srv.URL + "/metrics" }

func newScraper(t *testing.T, clk *fakeclock.Clock, targets ...Target) *Scraper {
	t.Helper()
	s, err := New(Config{Interval: 5 * time.Second, Timeout: 2 * time.Second}, targets, Options{Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConfig(t *testing.T) {
	var c Config
	c.SetDefaults()
	if c.Interval != DefaultInterval || c.Timeout != DefaultTimeout {
		t.Errorf("defaults %+v", c)
	}
	if err := c.Validate(); err != nil {
		t.Error(err)
	}
	c = Config{Interval: time.Second}
	c.SetDefaults()
	if c.Timeout != time.Second {
		t.Errorf("timeout default with a 1s interval: %v, want 1s", c.Timeout)
	}
	for _, bad := range []Config{
		{Interval: -time.Second, Timeout: time.Second},
		{Interval: time.Second, Timeout: -1},
		{Interval: time.Second, Timeout: 2 * time.Second},
	} {
		if err := bad.Validate(); err == nil {
			t.Errorf("%+v: no error", bad)
		}
	}
	if c := (Config{Interval: 5 * time.Second}); c.MaxAge() != 15*time.Second {
		t.Errorf("MaxAge %v", c.MaxAge())
	}
}

func TestNewRejectsTargets(t *testing.T) {
	for _, targets := range [][]Target{
		{{Name: "", URL: "http://a/metrics"}},
		{{Name: "a", URL: "http://a/metrics"}, {Name: "a", URL: "http://b/metrics"}},
		{{Name: "a", URL: "ftp://a/metrics"}},
		{{Name: "a", URL: "/metrics"}},
		{{Name: "a", URL: "http://%zz"}},
	} {
		if _, err := New(Config{}, targets, Options{}); err == nil {
			t.Errorf("%+v: no error", targets)
		}
	}
}

func TestScraperPublishesAndRepeats(t *testing.T) {
	clk := fakeclock.New(t0)
	vllm := newUpstream(t, fixture(t, "vllm_v1.prom"))
	triton := newUpstream(t, fixture(t, "triton.prom"))
	s := newScraper(t, clk, Target{Name: "vllm-0", URL: vllm.url()}, Target{Name: "triton-0", URL: triton.url()})
	if s.Latest(0) != nil || s.LatestByName("vllm-0") != nil {
		t.Fatal("snapshot before the first scrape")
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err == nil {
		t.Error("second Start: no error")
	}
	clk.Advance(0) // the first scrapes are due at once; they run inside Advance

	v := s.LatestByName("vllm-0")
	if v == nil || v.Err != "" || v.Source != SourceVLLM || v.Running != 5 || v.Waiting != 1 || !v.At.Equal(t0) {
		t.Fatalf("vllm snapshot %+v", v)
	}
	if i, ok := s.Index("triton-0"); !ok || i != 1 {
		t.Fatalf("Index: %d %v", i, ok)
	}
	tr := s.Latest(1)
	if tr == nil || tr.Source != SourceTriton || tr.Pending != 3 || tr.QueueTimeMs != 0 {
		t.Fatalf("triton snapshot %+v", tr)
	}
	if !v.Fresh(clk.Now(), s.cfg.MaxAge()) {
		t.Error("first snapshot not fresh")
	}

	// Nothing before the interval is up.
	triton.set(http.StatusOK, fixture(t, "triton_later.prom"))
	clk.Advance(4 * time.Second)
	if triton.hits.Load() != 1 || s.Latest(1) != tr {
		t.Fatalf("scraped early: %d hits", triton.hits.Load())
	}
	clk.Advance(time.Second)
	tr2 := s.Latest(1)
	if triton.hits.Load() != 2 || !tr2.At.Equal(t0.Add(5*time.Second)) {
		t.Fatalf("second scrape: %d hits, %+v", triton.hits.Load(), tr2)
	}
	// The counter deltas between the two scrapes (see TestParseTritonCounterDeltas).
	if !near(tr2.QueueTimeMs, 3) || !near(tr2.ComputeTimeMs, 5) || tr2.Pending != 1 {
		t.Errorf("second triton snapshot %+v", tr2)
	}
	if got := s.Targets(); len(got) != 2 || got[0].Name != "vllm-0" || got[1].URL != triton.url() {
		t.Errorf("Targets %+v", got)
	}
	if s.Latest(-1) != nil || s.Latest(2) != nil || s.LatestByName("nope") != nil {
		t.Error("out-of-range lookups")
	}
}

func TestScraperFailedTargetKeepsLastSnapshot(t *testing.T) {
	clk := fakeclock.New(t0)
	u := newUpstream(t, fixture(t, "sglang.prom"))
	s := newScraper(t, clk, Target{Name: "sg", URL: u.url()})
	s.Start()
	clk.Advance(0)
	good := s.Latest(0)
	if good.Err != "" || good.Running != 7 {
		t.Fatalf("good snapshot %+v", good)
	}
	maxAge := s.cfg.MaxAge()

	for _, fail := range []struct {
		status int
		body   string
		want   string
	}{
		{http.StatusServiceUnavailable, "overloaded", "503"},
		{http.StatusOK, "sglang:num_running_reqs{model_name=\"m\" 3\n", "parsing"},
	} {
		u.set(fail.status, fail.body)
		clk.Advance(5 * time.Second)
		bad := s.Latest(0)
		if bad.Err == "" || !strings.Contains(bad.Err, fail.want) {
			t.Fatalf("failed scrape: Err %q, want it to mention %q", bad.Err, fail.want)
		}
		if bad.Running != good.Running || bad.Waiting != good.Waiting || bad.KVCacheUsage != good.KVCacheUsage || !bad.At.Equal(good.At) {
			t.Errorf("failed scrape lost the last good numbers: %+v, had %+v", bad, good)
		}
		if bad.Fresh(clk.Now(), maxAge) {
			t.Error("errored snapshot is fresh")
		}
		if e := Merge(Placed{Running: 1}, bad, clk.Now(), maxAge); e.Upstream || e.Running != 1 {
			t.Errorf("merge used an errored snapshot: %+v", e)
		}
	}
	if good.Err != "" {
		t.Error("the published snapshot was modified")
	}

	// Recovery: fresh again, stamped now.
	u.set(http.StatusOK, fixture(t, "sglang.prom"))
	clk.Advance(5 * time.Second)
	if r := s.Latest(0); r.Err != "" || !r.At.Equal(clk.Now()) || !r.Fresh(clk.Now(), maxAge) {
		t.Errorf("after recovery %+v", r)
	}
	// Staleness without errors: an unreachable upstream ages the snapshot
	// out; a stale snapshot is not fresh even before its Err is read.
	last := s.Latest(0)
	if last.Fresh(last.At.Add(maxAge+time.Nanosecond), maxAge) {
		t.Error("snapshot older than maxAge is fresh")
	}
}

func TestScraperUnreachableBeforeAnySuccess(t *testing.T) {
	clk := fakeclock.New(t0)
	dead := httptest.NewServer(http.NotFoundHandler())
	url := dead.URL + "/metrics"
	dead.Close()
	s := newScraper(t, clk, Target{Name: "dead", URL: url})
	s.Start()
	clk.Advance(0)
	snap := s.Latest(0)
	if snap == nil || snap.Err == "" || snap.Source != SourceUnknown || snap.KVCacheUsage != -1 || !snap.At.IsZero() {
		t.Fatalf("%+v", snap)
	}
	if snap.Fresh(clk.Now(), time.Hour) {
		t.Error("fresh without a success")
	}
	if clk.Pending() != 1 {
		t.Errorf("%d timers pending, want the next scrape's", clk.Pending())
	}
}

func TestScraperClose(t *testing.T) {
	clk := fakeclock.New(t0)
	u := newUpstream(t, fixture(t, "tgi.prom"))
	s := newScraper(t, clk, Target{Name: "a", URL: u.url()}, Target{Name: "b", URL: u.url()})
	s.Start()
	clk.Advance(0)
	if u.hits.Load() != 2 || clk.Pending() != 2 {
		t.Fatalf("%d hits, %d timers", u.hits.Load(), clk.Pending())
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if clk.Pending() != 0 {
		t.Errorf("%d timers left after Close", clk.Pending())
	}
	clk.Advance(time.Minute)
	if u.hits.Load() != 2 {
		t.Errorf("scraped after Close: %d hits", u.hits.Load())
	}
	if s.Latest(0) == nil || s.Latest(0).Running != 12 {
		t.Error("snapshots not readable after Close")
	}
	if err := s.Close(); err != nil {
		t.Error(err)
	}
	if err := s.Start(); err == nil {
		t.Error("Start after Close: no error")
	}
}

// TestScraperCloseWaitsForInFlight: Close aborts a scrape blocked in the
// upstream and returns only once it has ended (published its error).
func TestScraperCloseWaitsForInFlight(t *testing.T) {
	clk := fakeclock.New(t0)
	entered := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-r.Context().Done() // until the client gives up
	}))
	defer srv.Close()
	s, err := New(Config{Interval: time.Second, Timeout: time.Second}, []Target{{Name: "slow", URL: srv.URL + "/metrics"}}, Options{Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	advanced := make(chan struct{})
	go func() {
		defer close(advanced)
		clk.Advance(0) // runs the scrape, which blocks in the handler
	}()
	<-entered
	s.Close()
	snap := s.Latest(0)
	if snap == nil || snap.Err == "" {
		t.Fatalf("Close returned before the in-flight scrape ended: %+v", snap)
	}
	<-advanced
	if clk.Pending() != 0 {
		t.Errorf("the aborted scrape re-armed its timer after Close")
	}
}

func TestScraperBodyLimit(t *testing.T) {
	defer func(n int64) { maxBodyBytes = n }(maxBodyBytes)
	maxBodyBytes = 4 << 10
	clk := fakeclock.New(t0)
	big := strings.Repeat("# padding padding padding padding padding padding padding padding\n", 4<<10/64+16)
	u := newUpstream(t, big+"vllm:num_requests_running 1\n")
	s := newScraper(t, clk, Target{Name: "big", URL: u.url()})
	s.Start()
	clk.Advance(0)
	if snap := s.Latest(0); snap == nil || !strings.Contains(snap.Err, "larger than") {
		t.Fatalf("%+v", snap)
	}
}

func BenchmarkLatest(b *testing.B) {
	s, err := New(Config{}, []Target{{Name: "a", URL: "http://a/metrics"}}, Options{})
	if err != nil {
		b.Fatal(err)
	}
	s.targets[0].snap.Store(&Snapshot{Running: 1})
	b.ReportAllocs()
	var sink *Snapshot
	for b.Loop() {
		sink = s.Latest(0)
	}
	_ = sink
}

func TestLatestAllocs(t *testing.T) {
	s, err := New(Config{}, []Target{{Name: "a", URL: "http://a/metrics"}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.targets[0].snap.Store(&Snapshot{Running: 1, At: t0})
	if n := testing.AllocsPerRun(100, func() {
		_ = Merge(Placed{}, s.LatestByName("a"), t0, time.Second)
		_ = s.Latest(0)
	}); n != 0 {
		t.Errorf("Latest+Merge allocate %v times", n)
	}
}
