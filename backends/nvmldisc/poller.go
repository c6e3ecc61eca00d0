package nvmldisc

import (
	"sync"
	"time"

	"github.com/accelgate/accelgate/backends"
)

// DefaultPollInterval is the Poller's interval when NewPoller is given none.
const DefaultPollInterval = 10 * time.Second

// Poller re-discovers at a fixed interval and keeps the latest inventory, so
// readers (a fleet backend joining live utilisation by UUID, the admin
// handler) do not each call NVML. Its timing comes from a backends.Clock, so
// tests drive it with backends/fakeclock instead of sleeping. It is safe for
// concurrent use.
type Poller struct {
	discover func() Inventory
	interval time.Duration
	clock    backends.Clock

	mu      sync.Mutex
	inv     Inventory
	at      time.Time
	ticker  *backends.Ticker
	started bool
	stopped bool
}

// NewPoller returns a stopped Poller that calls discover (DiscoverLocal when
// nil) every interval (DefaultPollInterval when <= 0) on clock
// (backends.RealClock when nil). Call Start to begin.
func NewPoller(discover func() Inventory, interval time.Duration, clock backends.Clock) *Poller {
	if discover == nil {
		discover = DiscoverLocal
	}
	if interval <= 0 {
		interval = DefaultPollInterval
	}
	if clock == nil {
		clock = backends.RealClock
	}
	return &Poller{discover: discover, interval: interval, clock: clock}
}

// Start discovers once before it returns, then again every interval until
// Stop. Calls after the first do nothing.
func (p *Poller) Start() {
	p.mu.Lock()
	if p.started || p.stopped {
		p.mu.Unlock()
		return
	}
	p.started = true
	p.mu.Unlock()
	p.poll()
	p.mu.Lock()
	if !p.stopped {
		p.ticker = backends.Every(p.clock, p.interval, p.interval, p.poll)
	}
	p.mu.Unlock()
}

// poll discovers (outside the lock: NVML calls can be slow) and stores the
// result.
func (p *Poller) poll() {
	inv := p.discover()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		return
	}
	p.inv, p.at = inv, p.clock.Now()
}

// Stop cancels the next discovery; the last inventory stays readable. A
// discovery already running finishes but is not stored.
func (p *Poller) Stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stopped = true
	if p.ticker != nil {
		p.ticker.Stop()
	}
}

// Inventory returns the latest inventory (the zero Inventory, Available
// false, before the first discovery). Its slices are shared between callers:
// treat them as read-only. Its signature fits NewHandler.
func (p *Poller) Inventory() Inventory {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.inv
}

// Updated returns the clock time of the latest stored discovery (zero
// before the first).
func (p *Poller) Updated() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.at
}

// Find looks uuid up in the latest inventory (see Inventory.Find).
func (p *Poller) Find(uuid string) (DeviceStats, bool) {
	return p.Inventory().Find(uuid)
}
