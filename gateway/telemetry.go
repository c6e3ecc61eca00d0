package gateway

import (
	"fmt"
	"math"
	"sort"
	"sync"
	"time"

	"github.com/accelgate/accelgate/backends"
	"github.com/accelgate/accelgate/backends/telemetry"
	"github.com/accelgate/accelgate/router"
)

// Live telemetry: from an upstream's /metrics to the router.
//
// A telemetry.Scraper scrapes each upstream that has a metrics_url every
// interval and publishes its latest Snapshot. WatchTelemetry reads those
// snapshots on the same interval and passes each backend's self-reported
// load to the router (SetExternal):
//
//   - LLM sequences: Seqs = running + waiting (vLLM's num_requests_running
//     and num_requests_waiting, SGLang's and TGI's equivalents);
//   - batch requests (vision, embeddings): Pending = the larger of Triton's
//     pending count and running + waiting.
//
// The merge rule is the router's (router.Router.SetExternal): the queue a
// new request joins on a backend is the larger of what the router itself
// placed there and what the backend reports, never the sum, since the
// upstream's counts already include the gateway's requests that reached it:
//
//	LLM:   seqs       = max(placed seqs, reported Seqs)  (the placed prompts' tokens scaled along)
//	batch: batch work = placed work × reported Pending ÷ placed in flight, when that ratio is above 1
//
// So a backend that other clients keep busy looks busy to the router, and
// the gateway's own placements that the upstream has not reported yet still
// count. A report is used only while it is fresh (telemetry.Snapshot.Fresh):
// the last scrape succeeded and is at most maxAge old (three intervals by
// default: two missed scrapes). A stale or failed report is forgotten (the
// zero router.External), and the router goes back to its own books.

// maxReported caps a reported count, so that an absurd exposition cannot
// overflow the router's arithmetic.
const maxReported = 1 << 30

// ReportedLoad converts a backend's latest snapshot into the load the
// router merges (see the merge rule above): the zero External when s is nil,
// errored or older than maxAge at now.
func ReportedLoad(s *telemetry.Snapshot, now time.Time, maxAge time.Duration) router.External {
	if !s.Fresh(now, maxAge) {
		return router.External{}
	}
	n := reportedCount(s.Running + s.Waiting)
	return router.External{Seqs: n, Pending: max(n, reportedCount(s.Pending))}
}

// reportedCount rounds a summed count to an int in [0, maxReported].
func reportedCount(v float64) int {
	if !(v > 0) {
		return 0
	}
	return int(math.Round(min(v, maxReported)))
}

// TelemetryWatch passes a Scraper's snapshots to a Dispatcher's router; see
// WatchTelemetry.
type TelemetryWatch struct {
	d        *Dispatcher
	s        *telemetry.Scraper
	clock    backends.Clock
	interval time.Duration
	maxAge   time.Duration
	pairs    []watchPair

	mu      sync.Mutex // held by a whole apply, so Stop waits for one in progress
	ticker  *backends.Ticker
	stopped bool
}

// watchPair joins a scraper target to a backend, with what was last passed
// to the router for it.
type watchPair struct {
	target, backend int
	last            router.External
}

// WatchTelemetry applies the scraper's snapshots to the router: at once (the
// clock's next tick), then every scrape interval on clock (d's clock when
// nil), for each target, it sets the target's backend's reported load
// (ReportedLoad with maxAge; the scraper's Config.MaxAge when maxAge <= 0)
// with SetExternal, and only when it changed. targets maps a scraper target's
// name to the backend's router index; every name must be a target of s and
// every index a backend of d, each used once. Timing comes from clock's
// AfterFunc only: no goroutine of its own, and with backends/fakeclock the
// applies run inside Advance. The snapshot applied is at most about one
// interval behind the scrape, well within maxAge.
//
// Call Stop (it does not stop the scraper) before closing d.
func (d *Dispatcher) WatchTelemetry(s *telemetry.Scraper, targets map[string]int, clock backends.Clock, maxAge time.Duration) (*TelemetryWatch, error) {
	if s == nil {
		return nil, fmt.Errorf("gateway: WatchTelemetry: no scraper")
	}
	if clock == nil {
		clock = d.clock
	}
	if maxAge <= 0 {
		maxAge = s.Config().MaxAge()
	}
	w := &TelemetryWatch{d: d, s: s, clock: clock, interval: s.Config().Interval, maxAge: maxAge}
	names := make([]string, 0, len(targets))
	for name := range targets {
		names = append(names, name)
	}
	sort.Strings(names)
	used := make(map[int]string, len(targets))
	for _, name := range names {
		ti, ok := s.Index(name)
		if !ok {
			return nil, fmt.Errorf("gateway: WatchTelemetry: %q is not a target of the scraper", name)
		}
		bi := targets[name]
		if bi < 0 || bi >= len(d.backends) {
			return nil, fmt.Errorf("gateway: WatchTelemetry: target %q: backend index %d out of range [0, %d)", name, bi, len(d.backends))
		}
		if other, dup := used[bi]; dup {
			return nil, fmt.Errorf("gateway: WatchTelemetry: targets %q and %q both report backend %d", other, name, bi)
		}
		used[bi] = name
		w.pairs = append(w.pairs, watchPair{target: ti, backend: bi})
	}
	w.mu.Lock()
	w.ticker = backends.Every(clock, 0, w.interval, w.tick)
	w.mu.Unlock()
	return w, nil
}

// tick applies the latest snapshots.
func (w *TelemetryWatch) tick() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped {
		return
	}
	now := w.clock.Now()
	for k := range w.pairs {
		p := &w.pairs[k]
		if e := ReportedLoad(w.s.Latest(p.target), now, w.maxAge); e != p.last {
			w.d.SetExternal(p.backend, e)
			p.last = e
		}
	}
}

// Reported returns what the watch last passed to the router for backend i
// (the zero External when it passed nothing or i is not watched).
func (w *TelemetryWatch) Reported(i int) router.External {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, p := range w.pairs {
		if p.backend == i {
			return p.last
		}
	}
	return router.External{}
}

// Stop ends the watch and makes the router forget every reported load (its
// own books stand alone again). An apply in progress finishes first. It is
// idempotent.
func (w *TelemetryWatch) Stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped {
		return
	}
	w.stopped = true
	if w.ticker != nil {
		w.ticker.Stop()
	}
	for k := range w.pairs {
		p := &w.pairs[k]
		if p.last != (router.External{}) {
			w.d.SetExternal(p.backend, router.External{})
			p.last = router.External{}
		}
	}
}
