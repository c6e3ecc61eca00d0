package gateway

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/accelgate/accelgate/backends"
	"github.com/accelgate/accelgate/batcher"
	"github.com/accelgate/accelgate/router"
)

// DefaultMaxAttempts bounds how many backends a non-streaming request tries
// when a backend fails (backends.ErrUnavailable) before any output is sent.
const DefaultMaxAttempts = 2

// Dispatcher is the protocol-independent request pipeline every front calls:
// it places a request with the router (the router core, serialised by a
// mutex), runs it on the chosen backend through that backend's batcher
// (tensor and embeddings requests are merged into batches, LLM requests pass
// its admission queue; see batching.go), feeds the outcome back to the router
// exactly once, and retries elsewhere within the hard timeout when a backend
// fails before producing output.
type Dispatcher struct {
	mu       sync.Mutex
	r        *router.Router
	backends []backends.Backend
	models   map[string]*backends.Model
	sorted   []*backends.Model // models by name, for the listing endpoints
	clock    backends.Clock
	attempts int
	mismatch []bool                    // backends kept out of rotation by CheckMetadata
	batchers []*batcher.Batcher        // one per backend, in router order
	bcfg     map[string]batcher.Config // effective batching settings, by model

	// Generations (reload.go): placements made and not yet ended, and
	// the channel Drain waits on.
	outstanding atomic.Int64
	drainMu     sync.Mutex
	drained     chan struct{}
	retry       *RetryBudget // retries and hedges draw from it (SetRetry); nil: no budget
	hedging     hedgePolicy  // which requests are hedged (SetHedging, hedge.go)
	// unhealthy marks the backends the health checks keep out of rotation
	// (health.go; nil until the first probe), under mu.
	unhealthy []bool
	// rcache is the models' response caches (SetResponseCache, cache.go);
	// nil: none.
	rcache *responseCache
}

// NewDispatcher builds the pipeline over a fleet's backends (in router order)
// and models, with one batcher per backend (WithBatching sets the models'
// batching settings; models without settings are not batched). Close closes the
// batchers.
func NewDispatcher(bs []backends.Backend, models map[string]*backends.Model, rc router.Config, clock backends.Clock, opts ...DispatcherOption) (*Dispatcher, error) {
	var o dispatcherOptions
	for _, opt := range opts {
		opt(&o)
	}
	if clock == nil {
		clock = backends.RealClock
	}
	descs := make([]*backends.Descriptor, len(bs))
	for i, b := range bs {
		descs[i] = b.Descriptor()
	}
	r, err := router.New(rc, descs, nil)
	if err != nil {
		return nil, err
	}
	d := &Dispatcher{r: r, backends: bs, models: models, clock: clock, attempts: DefaultMaxAttempts, mismatch: make([]bool, len(bs))}
	for _, m := range models {
		d.sorted = append(d.sorted, m)
	}
	slices.SortFunc(d.sorted, func(a, b *backends.Model) int { return strings.Compare(a.Name, b.Name) })
	if err := d.newBatchers(o.batching); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

// Model returns the named model's settings, or backends.ErrUnknownModel.
func (d *Dispatcher) Model(name string) (*backends.Model, error) {
	m := d.models[name]
	if m == nil {
		return nil, fmt.Errorf("%w: the model %q does not exist", backends.ErrUnknownModel, name)
	}
	return m, nil
}

// Models returns the model table (read-only).
func (d *Dispatcher) Models() map[string]*backends.Model { return d.models }

// SortedModels returns the models ordered by name (read-only; built once).
func (d *Dispatcher) SortedModels() []*backends.Model { return d.sorted }

// Backends returns the fleet's backends in router order.
func (d *Dispatcher) Backends() []backends.Backend { return d.backends }

// Ready reports whether at least one backend may receive traffic.
func (d *Dispatcher) Ready() bool {
	now := d.clock.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	for i := 0; i < d.r.Len(); i++ {
		if d.r.Available(i, now) {
			return true
		}
	}
	return false
}

// ModelReady reports whether a backend serving the model may receive traffic.
func (d *Dispatcher) ModelReady(name string) bool {
	now := d.clock.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	for i, b := range d.backends {
		if b.Descriptor().ServesModel(name) && d.r.Available(i, now) {
			return true
		}
	}
	return false
}

// Placement is a routing decision that has not run yet. Run or Cancel it
// exactly once.
type Placement struct {
	dec     router.Decision
	b       backends.Backend
	at      time.Time   // when it was placed
	first   time.Time   // when the first output reached the front (streams), zero before
	release func()      // set once the request holds admission slots (PlaceAdmitted)
	d       *Dispatcher // the generation that made it (reload.go)
	// The request's SLO as its client sees it, from its arrival: judged at
	// the end for the router's margin steering (router.Outcome.SLO).
	arrival time.Time
	slo     backends.SLO
	stream  bool
}

// FirstOutput records when the placed request's first output (a streamed
// token) was produced, for the router's time-to-first-token learning. Only
// the first call counts.
func (p *Placement) FirstOutput(t time.Time) {
	if p.first.IsZero() {
		p.first = t
	}
}

// Backend describes where the request was placed.
func (p *Placement) Backend() *backends.Descriptor { return p.dec.Backend }

// Prediction is the router's prediction for the placement.
func (p *Placement) Prediction() router.Prediction { return p.dec.Prediction }

// Place asks the router for a backend. exclude is a backend index to skip, or -1.
func (d *Dispatcher) Place(req *backends.Request, m *backends.Model, exclude int) (Placement, error) {
	now := d.clock.Now()
	d.mu.Lock()
	dec, err := d.r.Place(now, req, m, exclude)
	d.mu.Unlock()
	if err != nil {
		return Placement{}, err
	}
	d.placed()
	arrival := req.Arrival
	if arrival.IsZero() {
		arrival = now
	}
	return Placement{dec: dec, b: d.backends[dec.Index], at: now, d: d, arrival: arrival, slo: req.SLO, stream: req.Stream}, nil
}

// sloOutcome judges the placement's SLO at now, as its client sees it (from
// the request's arrival), for the router: a timeout or an unavailable
// backend misses it; other errors (the client's doing, a refusal) and
// requests without a target are not judged.
func (p *Placement) sloOutcome(now time.Time, res *backends.Result, err error) router.SLOOutcome {
	if p.slo.Zero() {
		return router.SLOUnknown
	}
	if err != nil {
		if errors.Is(err, backends.ErrTimeout) || errors.Is(err, backends.ErrUnavailable) {
			return router.SLOMissed
		}
		return router.SLOUnknown
	}
	e2e := now.Sub(p.arrival)
	var ttft, tpot time.Duration
	stream := p.stream && !p.first.IsZero()
	if stream {
		ttft = p.first.Sub(p.arrival)
		if n := res.Usage.CompletionTokens; n > 1 {
			tpot = (e2e - ttft) / time.Duration(n-1)
		}
	}
	if p.slo.Met(stream, e2e, ttft, tpot) {
		return router.SLOMet
	}
	return router.SLOMissed
}

// Cancel releases a placement that will not run.
func (d *Dispatcher) Cancel(p *Placement) {
	if p.d != nil && p.d != d {
		p.d.Cancel(p) // placed by another generation (reload.go)
		return
	}
	if p.release != nil {
		p.release()
		p.release = nil
	}
	d.done(p, nil, context.Canceled)
}

// done reports a placement's outcome to the router: its error, and when it
// succeeded, the latencies the gateway saw (placement to end, to the first
// streamed token, per output token after it) and the batch it ran in.
func (d *Dispatcher) done(p *Placement, res *backends.Result, err error) (ejected bool) {
	defer d.ended()
	now := d.clock.Now()
	o := router.Outcome{Err: err, E2E: now.Sub(p.at)}
	if err == nil && res != nil {
		// The router learns the backend's latency: the time a batch member
		// was held on purpose in the gateway's batcher (within its SLO) is
		// the batcher's doing, not the backend's.
		o.E2E -= res.Timing.BatchWait
		o.BatchRows = res.Timing.BatchRows
		o.BatchID = res.Timing.BatchID
		if !p.first.IsZero() {
			o.TTFT = p.first.Sub(p.at)
			if n := res.Usage.CompletionTokens; n > 1 {
				o.TPOT = (o.E2E - o.TTFT) / time.Duration(n-1)
			}
		}
	}
	if errors.Is(err, batcher.ErrEvicted) {
		o.Err = nil // handed back unexecuted: not the backend's failure
		o.E2E = 0
	} else if res != nil || err != nil {
		o.SLO = p.sloOutcome(now, res, err)
	}
	d.mu.Lock()
	ejected = d.r.Done(now, p.dec, o)
	d.mu.Unlock()
	return ejected
}

// Run executes a placed request through the backend's batcher and reports its
// outcome to the router. ctx carries the hard timeout.
func (d *Dispatcher) Run(ctx context.Context, p *Placement, req *backends.Request, m *backends.Model, stream backends.StreamFunc) (*backends.Result, error) {
	if p.d != nil && p.d != d {
		return p.d.Run(ctx, p, req, m, stream) // placed by another generation (reload.go)
	}
	m = d.current(m)
	if stream != nil {
		inner := stream
		stream = func(c backends.Chunk) error {
			p.FirstOutput(d.clock.Now())
			return inner(c)
		}
	}
	res, err := d.runBatched(ctx, p, req, m, stream)
	if err != nil && ctx.Err() != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, backends.ErrTimeout) {
		err = fmt.Errorf("%w: the request did not finish within its hard timeout (%w)", backends.ErrTimeout, err)
	}
	switch {
	case d.done(p, res, err):
		// The backend was just ejected: everything queued for it goes back
		// to the router.
		d.batchers[p.dec.Index].EvictAll()
	case err == nil && missed(req, d.clock.Now().Sub(p.at)):
		// It fell behind: the queued requests it can no longer serve in
		// time go back to the router.
		d.batchers[p.dec.Index].Evict()
	}
	return res, err
}

// Do places and runs a non-streaming request, retrying on another backend
// when one fails with backends.ErrUnavailable while time is left, at most
// d.attempts backends in all. Every retry draws from the retry budget
// (SetRetry): when it is spent, the request fails with its backend's error
// instead of retrying. A critical request with a tight SLO may be hedged
// (SetHedging, hedge.go). It returns the result and where it ran.
func (d *Dispatcher) Do(ctx context.Context, req *backends.Request, m *backends.Model) (*backends.Result, *backends.Descriptor, error) {
	if d.retry != nil {
		d.retry.Deposit(d.clock.Now())
	}
	exclude := -1
	var lastErr error
	evicted := false // the last attempt was handed back unexecuted, not failed
	evictions := 0
	for attempt := 0; attempt < d.attempts; attempt++ {
		var p Placement
		var err error
		if evicted {
			p, err = d.placeEvicted(req, m, exclude)
		} else {
			p, err = d.Place(req, m, exclude)
		}
		if err != nil {
			if lastErr != nil && errors.Is(err, backends.ErrNoBackend) {
				return nil, nil, lastErr
			}
			return nil, nil, err
		}
		if attempt > 0 && !evicted && d.retry != nil && !d.retry.Withdraw(d.clock.Now()) {
			// The budget is spent (many requests are failing): the
			// original error, rather than more load on the fleet.
			d.Cancel(&p)
			return nil, nil, lastErr
		}
		var (
			res    *backends.Result
			at     *backends.Descriptor
			failed int
		)
		if delay, ok := d.hedgeDelay(req, &p); ok {
			res, at, failed, err = d.runHedged(ctx, &p, req, m, delay)
		} else {
			res, err = d.Run(ctx, &p, req, m, nil)
			at, failed = p.Backend(), p.dec.Index
		}
		if err == nil {
			return res, at, nil
		}
		if !errors.Is(err, backends.ErrUnavailable) || ctx.Err() != nil {
			return nil, at, err
		}
		lastErr, exclude = err, failed
		if evicted = errors.Is(err, batcher.ErrEvicted); evicted && evictions < maxEvictions {
			evictions++
			attempt-- // a re-placement, not a retry: it ran nowhere
		}
	}
	return nil, nil, lastErr
}

// maxEvictions bounds how often one request is handed back by batchers and
// placed again without counting as an attempt.
const maxEvictions = 3

// SetExternal passes backend i's self-reported load (a telemetry scrape) to
// the router; the zero value forgets it. See router.Router.SetExternal.
func (d *Dispatcher) SetExternal(i int, e router.External) {
	d.mu.Lock()
	d.r.SetExternal(i, e)
	d.mu.Unlock()
}

// PlaceAdmitted places an LLM request and waits, before anything is sent to
// the client, until the chosen backend's admission queue lets it in: a
// streaming front calls it before writing its response headers, so a full
// queue is still a 429 and a hard timeout a 504. A request handed back by
// the queue (its backend was ejected, or can no longer meet its SLO) is
// placed again elsewhere. On success the placement holds the admission; Run
// it (or Cancel it) exactly once.
func (d *Dispatcher) PlaceAdmitted(ctx context.Context, req *backends.Request, m *backends.Model) (Placement, error) {
	if d.retry != nil {
		d.retry.Deposit(d.clock.Now()) // a first attempt: traffic the retry budget is a share of
	}
	return d.placeAdmitted(ctx, req, m, -1)
}

// placeAdmitted is PlaceAdmitted avoiding backend exclude (-1: none).
func (d *Dispatcher) placeAdmitted(ctx context.Context, req *backends.Request, m *backends.Model, exclude int) (Placement, error) {
	m = d.current(m)
	for attempt := 0; ; attempt++ {
		var p Placement
		var err error
		if attempt > 0 { // exclude handed it back
			p, err = d.placeEvicted(req, m, exclude)
		} else {
			p, err = d.Place(req, m, exclude)
		}
		if err != nil {
			return Placement{}, err
		}
		if d.bcfg[m.Name].Mode == batcher.ModeOff || (req.Op != backends.OpChat && req.Op != backends.OpCompletion) {
			return p, nil
		}
		release, err := d.batchers[p.dec.Index].Admit(ctx, req)
		if err == nil {
			p.release = release
			return p, nil
		}
		if ctx.Err() != nil && !errors.Is(err, backends.ErrTimeout) {
			err = fmt.Errorf("%w: the request waited for admission past its hard timeout (%w)", backends.ErrTimeout, err)
		}
		d.done(&p, nil, err)
		if !errors.Is(err, batcher.ErrEvicted) || attempt+1 >= d.attempts {
			return Placement{}, err
		}
		exclude = p.dec.Index
	}
}

// placeEvicted places a request that backend from handed back unexecuted
// (batcher.ErrEvicted): elsewhere when another backend serves the model,
// else on from again — it never ran there.
func (d *Dispatcher) placeEvicted(req *backends.Request, m *backends.Model, from int) (Placement, error) {
	p, err := d.Place(req, m, from)
	if errors.Is(err, backends.ErrNoBackend) {
		p, err = d.Place(req, m, -1)
	}
	return p, err
}

// RetryStream places a stream again, on another backend than p's, after p
// failed with err before anything was sent to the client but its headers:
// a backend failure (backends.ErrUnavailable) within the hard timeout, the
// attempt limit and the retry budget. ok is false when it may not be
// retried; the caller then reports err.
func (d *Dispatcher) RetryStream(ctx context.Context, p *Placement, req *backends.Request, m *backends.Model, attempt int, err error) (np Placement, ok bool) {
	if p.d != nil && p.d != d {
		return p.d.RetryStream(ctx, p, req, m, attempt, err)
	}
	if !errors.Is(err, backends.ErrUnavailable) || ctx.Err() != nil || attempt >= d.attempts {
		return Placement{}, false
	}
	if d.retry != nil && !d.retry.Withdraw(d.clock.Now()) {
		return Placement{}, false
	}
	np, perr := d.placeAdmitted(ctx, req, m, p.dec.Index)
	return np, perr == nil
}

// missed reports whether a request that took elapsed missed its end-to-end
// SLO target.
func missed(req *backends.Request, elapsed time.Duration) bool {
	return req.SLO.E2E > 0 && elapsed > req.SLO.E2E
}

// Deadline computes a request's hard deadline: the model's timeout, shortened
// by the client's timeout when it is smaller.
func Deadline(now time.Time, m *backends.Model, client time.Duration) time.Time {
	t := m.Timeout
	if t <= 0 {
		t = backends.DefaultTimeout
	}
	if client > 0 && client < t {
		t = client
	}
	return now.Add(t)
}
