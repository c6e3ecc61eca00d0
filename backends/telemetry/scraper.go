package telemetry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/accelgate/accelgate/backends"
)

// Defaults for Config.
const (
	DefaultInterval = 5 * time.Second
	DefaultTimeout  = 2 * time.Second
)

// MaxExpositionBytes bounds one scrape's body; a larger exposition fails the
// scrape.
const MaxExpositionBytes = 16 << 20

// maxBodyBytes is MaxExpositionBytes; tests lower it.
var maxBodyBytes int64 = MaxExpositionBytes

// Config is the scraper's configuration.
type Config struct {
	// Interval is the time from the start of one scrape of a target to the
	// start of the next. Default 5s.
	Interval time.Duration `yaml:"interval"`
	// Timeout bounds one scrape (connect, request, body), in wall-clock time
	// whatever the Scraper's clock. Default 2s, or Interval when that is
	// shorter.
	Timeout time.Duration `yaml:"timeout"`
}

// SetDefaults fills the zero fields with the defaults.
func (c *Config) SetDefaults() {
	if c.Interval == 0 {
		c.Interval = DefaultInterval
	}
	if c.Timeout == 0 {
		c.Timeout = min(DefaultTimeout, c.Interval)
	}
}

// Validate checks that both durations are positive and that a scrape ends
// before the next one is due (Timeout <= Interval).
func (c Config) Validate() error {
	var errs []error
	if c.Interval <= 0 {
		errs = append(errs, fmt.Errorf("telemetry: interval: must be positive, got %v", c.Interval))
	}
	if c.Timeout <= 0 {
		errs = append(errs, fmt.Errorf("telemetry: timeout: must be positive, got %v", c.Timeout))
	} else if c.Interval > 0 && c.Timeout > c.Interval {
		errs = append(errs, fmt.Errorf("telemetry: timeout: %v is longer than the interval %v", c.Timeout, c.Interval))
	}
	return errors.Join(errs...)
}

// MaxAge is the age past which a snapshot should be treated as stale (the
// maxAge of Merge and Snapshot.Fresh): three intervals, that is, two missed
// scrapes.
func (c Config) MaxAge() time.Duration { return 3 * c.Interval }

// Target is one upstream to scrape.
type Target struct {
	// Name identifies the target (the backend's name, typically).
	Name string
	// URL is the upstream's Prometheus endpoint, http or https
	// (e.g. http://10.0.0.5:8000/metrics).
	URL string
}

// Options are the Scraper's run-time dependencies.
type Options struct {
	// Clock schedules the scrapes and stamps the snapshots; nil means
	// backends.RealClock.
	Clock backends.Clock
	// Client performs the requests; nil means a client of its own over
	// http.DefaultTransport. Its own Timeout, if any, also applies.
	Client *http.Client
}

// Scraper scrapes a fixed set of targets at Config.Interval and publishes
// each target's latest snapshot for lock-free reads (Latest, LatestByName).
// Each target has one timer on the clock; a scrape re-arms its target's timer
// when it ends, so scrapes of one target never overlap. A failed scrape
// publishes the last good snapshot again with Err set (or, before any success,
// a snapshot that knows nothing); its numbers keep their At, so Fresh turns
// false both on the error and as they age.
type Scraper struct {
	cfg     Config
	clock   backends.Clock
	client  *http.Client
	targets []target
	index   map[string]int

	ctx    context.Context // cancelled by Close: aborts in-flight scrapes
	cancel context.CancelFunc

	mu      sync.Mutex
	started bool
	closed  bool
	wg      sync.WaitGroup // in-flight scrapes
}

// target is one target's state.
type target struct {
	Target
	snap atomic.Pointer[Snapshot] // the latest published snapshot
	// last is the last good snapshot. Only the target's scrape touches it,
	// and the target's scrapes never overlap.
	last  *Snapshot
	timer backends.Timer // guarded by Scraper.mu
}

// New returns a scraper for targets (names unique and non-empty, URLs
// absolute http or https). cfg's zero fields take the defaults. It does not
// scrape until Start.
func New(cfg Config, targets []Target, opts Options) (*Scraper, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Scraper{cfg: cfg, clock: opts.Clock, client: opts.Client,
		targets: make([]target, len(targets)), index: make(map[string]int, len(targets))}
	if s.clock == nil {
		s.clock = backends.RealClock
	}
	if s.client == nil {
		s.client = &http.Client{}
	}
	for i, t := range targets {
		if t.Name == "" {
			return nil, fmt.Errorf("telemetry: targets[%d]: name is empty", i)
		}
		if _, dup := s.index[t.Name]; dup {
			return nil, fmt.Errorf("telemetry: targets[%d]: duplicate name %q", i, t.Name)
		}
		u, err := url.Parse(t.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("telemetry: target %q: url %q is not an absolute http(s) URL", t.Name, t.URL)
		}
		s.index[t.Name] = i
		s.targets[i].Target = t
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s, nil
}

// Config returns the effective configuration (defaults filled).
func (s *Scraper) Config() Config { return s.cfg }

// Targets returns the targets in index order (a copy).
func (s *Scraper) Targets() []Target {
	out := make([]Target, len(s.targets))
	for i := range s.targets {
		out[i] = s.targets[i].Target
	}
	return out
}

// Index returns the index of the target named name.
func (s *Scraper) Index(name string) (int, bool) {
	i, ok := s.index[name]
	return i, ok
}

// Latest returns target i's latest snapshot, or nil before its first scrape
// ends or when i is out of range. It takes no lock and does not allocate;
// the snapshot must not be modified.
func (s *Scraper) Latest(i int) *Snapshot {
	if i < 0 || i >= len(s.targets) {
		return nil
	}
	return s.targets[i].snap.Load()
}

// LatestByName is Latest for the target named name.
func (s *Scraper) LatestByName(name string) *Snapshot {
	i, ok := s.index[name]
	if !ok {
		return nil
	}
	return s.targets[i].snap.Load()
}

// Start schedules every target's first scrape at once (the clock's next
// tick); each scrape schedules the next one Interval after it started. It
// fails after Close or a second Start.
func (s *Scraper) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("telemetry: scraper closed")
	}
	if s.started {
		return errors.New("telemetry: scraper already started")
	}
	s.started = true
	for i := range s.targets {
		s.armLocked(i, 0)
	}
	return nil
}

// Close stops every timer, aborts the scrapes in flight and waits for them to
// end. The published snapshots stay readable. It is idempotent.
func (s *Scraper) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	for i := range s.targets {
		if t := s.targets[i].timer; t != nil {
			t.Stop()
			s.targets[i].timer = nil
		}
	}
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
	return nil
}

func (s *Scraper) armLocked(i int, d time.Duration) {
	s.targets[i].timer = s.clock.AfterFunc(d, func() { s.tick(i) })
}

// tick is a target's timer: it scrapes, then re-arms the timer for the next
// scrape unless the scraper was closed meanwhile.
func (s *Scraper) tick(i int) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.targets[i].timer = nil
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()

	start := s.clock.Now()
	s.scrape(&s.targets[i])

	s.mu.Lock()
	if !s.closed {
		s.armLocked(i, max(s.cfg.Interval-s.clock.Now().Sub(start), 0))
	}
	s.mu.Unlock()
}

// scrape fetches and parses one target and publishes the result.
func (s *Scraper) scrape(t *target) {
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.Timeout)
	defer cancel()
	snap, err := s.fetch(ctx, t)
	if err != nil {
		fail := unknownSnapshot()
		if t.last != nil {
			fail = *t.last
		}
		fail.Err = err.Error()
		t.snap.Store(&fail)
		return
	}
	snap.At = s.clock.Now()
	t.last = &snap
	t.snap.Store(&snap)
}

func (s *Scraper) fetch(ctx context.Context, t *target) (Snapshot, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.URL, nil)
	if err != nil {
		return Snapshot{}, fmt.Errorf("telemetry: %s: %w", t.Name, err)
	}
	req.Header.Set("Accept", "text/plain;version=0.0.4;q=1,*/*;q=0.1")
	resp, err := s.client.Do(req)
	if err != nil {
		return Snapshot{}, fmt.Errorf("telemetry: %s: %w", t.Name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return Snapshot{}, fmt.Errorf("telemetry: %s: GET %s: %s", t.Name, t.URL, resp.Status)
	}
	body := &io.LimitedReader{R: resp.Body, N: maxBodyBytes + 1}
	snap, err := Parse(body, t.last)
	if body.N <= 0 {
		return Snapshot{}, fmt.Errorf("telemetry: %s: exposition larger than %d bytes", t.Name, maxBodyBytes)
	}
	if err != nil {
		return Snapshot{}, fmt.Errorf("%w (target %s, %s)", err, t.Name, t.URL)
	}
	return snap, nil
}
