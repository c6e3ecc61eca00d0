package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/accelgate/accelgate/backends"
	"github.com/accelgate/accelgate/backends/catalog"
	"github.com/accelgate/accelgate/backends/fleet"
	"github.com/accelgate/accelgate/backends/nvmldisc"
	"github.com/accelgate/accelgate/gateway"
)

// Hot reload.
//
// A generation is everything built from one fleet file: the backends, the
// dispatcher (router and batchers), and what watches them (health checks,
// metadata checks, device monitoring and telemetry). A reload — on SIGHUP,
// on POST /admin/reload, or when the watched file's content changes — loads
// and validates the file, builds a new generation, swaps its dispatcher into
// the fronts (new requests go there at once), then drains the old
// generation in the background: requests already placed finish on the
// backends they were placed on (removed backends drain), and the old
// generation is closed when none is left or its longest hard timeout has
// passed. A file that fails to load or validate changes nothing: the error
// is reported and the running generation stays.

// generation is one fleet file's running state.
type generation struct {
	fl     *fleet.Fleet
	d      *gateway.Dispatcher
	health *gateway.HealthChecker
	lv     *live
	stop   context.CancelFunc // stops the metadata checks
}

// build builds and starts a generation for f.
func (r *reloader) build(f *fleet.File) (g *generation, err error) {
	fl, err := f.Build(r.cat, fleet.BuildOptions{Getenv: r.getenv})
	if err != nil {
		return nil, err
	}
	g = &generation{fl: fl, stop: func() {}}
	defer func() {
		if err != nil {
			g.close() // what was started so far
		}
	}()
	if g.d, err = gateway.NewDispatcher(fl.Backends, fl.Models, fl.Router, nil, gateway.WithBatching(fl.Batching)); err != nil {
		return g, err
	}
	g.d.SetRetry(fl.Retry)
	g.d.SetHedging(fl.Hedging)
	if err = g.d.SetResponseCache(fl.Cache); err != nil { // models[].cache
		return g, err
	}
	g.health = gateway.NewHealthChecker(g.d, fl.HealthChecks, nil, r.logf)
	g.health.Start()
	// Device monitoring (device_uuid) and live telemetry (metrics_url).
	if g.lv, err = startLive(f.Backends, f.Telemetry, g.d, nil, nvmldisc.DiscoverLocal, os.Stderr); err != nil {
		return g, err
	}
	// KServe upstreams: compare their model metadata with the fleet file now
	// and every 30 s (a backend that disagrees stays out of rotation).
	mctx, stop := context.WithCancel(r.ctx)
	g.stop = stop
	go g.d.RunMetadataChecks(mctx, gateway.DefaultMetadataInterval, r.logf)
	return g, nil
}

// close stops the generation's watchers, fails what is still queued in its
// batchers and closes its backends.
func (g *generation) close() {
	g.stop()
	if g.lv != nil {
		g.lv.Close()
	}
	if g.health != nil {
		g.health.Close()
	}
	if g.d != nil {
		g.d.Close()
	}
	g.fl.Close()
}

// maxTimeout is the longest hard timeout of the generation's models: how
// long a drain may take at most.
func (g *generation) maxTimeout() time.Duration {
	t := backends.DefaultTimeout
	for _, m := range g.fl.Models {
		t = max(t, m.Timeout)
	}
	return t
}

// reloader owns the current generation and replaces it.
type reloader struct {
	ctx    context.Context
	path   string // "" for the embedded default fleet (nothing to reload)
	cat    *catalog.Catalog
	getenv func(string) string
	out    io.Writer
	srv    *gateway.Server
	logf   func(format string, a ...any) // "accelgate: " lines on out

	pools *poolSources // nil: no dynamic discovery (tests)

	mu       sync.Mutex // serialises reloads
	cur      *generation
	sum      [32]byte // the loaded file's SHA-256
	seen     [32]byte // SHA-256 of the file as last read, by a reload or the file watch (see checkFile)
	draining sync.WaitGroup
}

// start loads the fleet file and starts its first generation.
func (r *reloader) start() (*generation, error) {
	f, sum, raw, err := r.load()
	if err != nil {
		return nil, err
	}
	g, err := r.build(f)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.cur, r.sum, r.seen = g, sum, raw
	r.mu.Unlock()
	return g, nil
}

// current returns the running generation.
func (r *reloader) current() *generation {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cur
}

// load reads and validates the fleet file (or the default fleet), starts
// or stops its pools' discovery, and expands the pools to the endpoints
// known now. The hash sum covers the file and the endpoints; raw is the
// SHA-256 of the file's bytes alone, whenever they could be read (zero for
// the default fleet), also when they do not validate.
func (r *reloader) load() (_ *fleet.File, sum, raw [32]byte, _ error) {
	var (
		f    *fleet.File
		data []byte
		err  error
	)
	if r.path == "" {
		f, err = fleet.Default(r.cat)
	} else if data, err = os.ReadFile(r.path); err == nil {
		raw = sha256.Sum256(data)
		f, err = fleet.Decode(r.path, data, r.cat)
	}
	if err == nil {
		err = checkPools(f)
	}
	if err != nil {
		return nil, sum, raw, err
	}
	if r.pools == nil || len(f.Pools()) == 0 {
		if r.pools != nil {
			r.pools.reconcile(f)
		}
		return f, raw, raw, nil // without pools the sum is the file's hash
	}
	r.pools.reconcile(f)
	eps := r.pools.endpoints()
	h := sha256.New()
	h.Write(data)
	for _, i := range f.Pools() {
		name := f.Backends[i].Name
		fmt.Fprintf(h, "\x00%s=%v", name, eps[name])
	}
	h.Sum(sum[:0])
	return f.ExpandPools(eps), sum, raw, nil
}

// reload applies the fleet file again. When force is false and the file's
// content has not changed it does nothing (the file watch). It returns
// whether a new generation was swapped in.
func (r *reloader) reload(force bool) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.path == "" {
		return false, fmt.Errorf("reload: the gateway runs the embedded default fleet; start it with -config FILE to reload")
	}
	f, sum, raw, err := r.load()
	if raw != ([32]byte{}) {
		r.seen = raw
	}
	if err != nil {
		return false, fmt.Errorf("reload %s: %w (the running fleet stays)", r.path, err)
	}
	if !force && bytes.Equal(sum[:], r.sum[:]) {
		return false, nil
	}
	g, err := r.build(f)
	if err != nil {
		return false, fmt.Errorf("reload %s: %w (the running fleet stays)", r.path, err)
	}
	old := r.cur
	r.cur, r.sum = g, sum
	r.srv.SwapDispatcher(g.d)
	added, removed := diffBackends(old.fl, g.fl)
	r.logf("reloaded %s: %d backends (added %v, removed %v); draining %d requests on the previous fleet",
		r.path, len(g.fl.Backends), added, removed, old.d.Outstanding())
	r.draining.Add(1)
	go func() {
		defer r.draining.Done()
		ctx, cancel := context.WithTimeout(context.Background(), old.maxTimeout())
		defer cancel()
		if err := old.d.Drain(ctx); err != nil {
			r.logf("%v; closing it anyway", err)
		}
		old.close()
	}()
	return true, nil
}

// diffBackends names the backends of b not in a (added) and of a not in b
// (removed).
func diffBackends(a, b *fleet.Fleet) (added, removed []string) {
	in := func(fl *fleet.Fleet, name string) bool {
		for _, be := range fl.Backends {
			if be.Descriptor().Name == name {
				return true
			}
		}
		return false
	}
	for _, be := range b.Backends {
		if n := be.Descriptor().Name; !in(a, n) {
			added = append(added, n)
		}
	}
	for _, be := range a.Backends {
		if n := be.Descriptor().Name; !in(b, n) {
			removed = append(removed, n)
		}
	}
	return added, removed
}

// watch re-reads the fleet file every interval (on clock) and reloads when
// its content changed, until ctx ends. interval <= 0 disables it.
func (r *reloader) watch(ctx context.Context, interval time.Duration, clock backends.Clock) {
	if r.path == "" || interval <= 0 {
		return
	}
	if clock == nil {
		clock = backends.RealClock
	}
	tk := backends.Every(clock, interval, interval, r.checkFile)
	context.AfterFunc(ctx, tk.Stop)
}

// checkFile is the file watch's tick. It reloads only when the file's
// bytes (or the error reading it) differ from what the previous tick read:
// an unchanged file is not parsed and validated again every interval, and
// a file that fails to validate, or is missing, is reported once rather
// than at every tick. SIGHUP and POST /admin/reload always try again.
func (r *reloader) checkFile() {
	data, err := os.ReadFile(r.path)
	seen := sha256.Sum256(data)
	if err != nil {
		seen = sha256.Sum256([]byte("\x00read error: " + err.Error()))
	}
	r.mu.Lock()
	same := seen == r.seen
	r.seen = seen // reload replaces it with the hash of what it read
	r.mu.Unlock()
	if same {
		return
	}
	if _, err := r.reload(false); err != nil {
		r.logf("%v", err)
	}
}

// close closes the current generation after the drains in progress.
func (r *reloader) close() {
	if r.pools != nil {
		r.pools.stop()
	}
	r.draining.Wait()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cur != nil {
		r.cur.close()
		r.cur = nil
	}
}
