package gateway

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/accelgate/accelgate/backends"
)

// Fleet changes without downtime.
//
// A Dispatcher is one generation of the fleet: its backends, router,
// batchers and the checks that watch them. To apply a new fleet file, the
// caller builds a new Dispatcher and swaps it in (Server.SwapDispatcher).
// From then on every new request is placed by the new generation; a request
// already placed keeps its placement — its Placement records the
// Dispatcher that made it, and Run and Cancel always go back to that one —
// so nothing in flight is dropped. The old generation is then drained
// (Dispatcher.Drain: it waits until every placement it made has ended) and
// closed: a removed backend finishes its work and is gone, an added one
// receives traffic from the first request after the swap.
//
// The fronts read the current generation from a DispatcherRef once per
// request (or once per step, re-resolving the model by name when a swap
// happened in between), so a request never mixes generations.

// DispatcherRef is the current generation, shared by the HTTP and gRPC
// fronts. Safe for concurrent use.
type DispatcherRef struct {
	p atomic.Pointer[Dispatcher]
}

// NewDispatcherRef returns a reference to d.
func NewDispatcherRef(d *Dispatcher) *DispatcherRef {
	r := &DispatcherRef{}
	r.p.Store(d)
	return r
}

// Load returns the current generation.
func (r *DispatcherRef) Load() *Dispatcher { return r.p.Load() }

// Swap makes d the current generation and returns the previous one.
func (r *DispatcherRef) Swap(d *Dispatcher) *Dispatcher { return r.p.Swap(d) }

// SwapDispatcher makes d the dispatcher of the HTTP front (and of a gRPC
// front built with this server's DispatcherRef) and returns the previous
// one, to drain and close.
func (s *Server) SwapDispatcher(d *Dispatcher) *Dispatcher { return s.ref.Swap(d) }

// DispatcherRef returns the reference the HTTP front reads its dispatcher
// from; pass it in GRPCOptions.Ref so that the gRPC front follows swaps.
func (s *Server) DispatcherRef() *DispatcherRef { return s.ref }

// Outstanding is the number of placements made and not yet ended.
func (d *Dispatcher) Outstanding() int64 { return d.outstanding.Load() }

// Drain blocks until every placement this dispatcher made has ended (run to
// completion, failed or canceled), or ctx ends (its error is returned).
// New placements may still be made during Drain; swap the dispatcher out
// first.
func (d *Dispatcher) Drain(ctx context.Context) error {
	for {
		d.drainMu.Lock()
		if d.outstanding.Load() == 0 {
			d.drainMu.Unlock()
			return nil
		}
		if d.drained == nil {
			d.drained = make(chan struct{})
		}
		ch := d.drained
		d.drainMu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("gateway: %d requests still in flight on the old fleet: %w", d.outstanding.Load(), ctx.Err())
		}
	}
}

// placed counts a new placement.
func (d *Dispatcher) placed() { d.outstanding.Add(1) }

// ended counts a placement's end and wakes Drain when none is left.
func (d *Dispatcher) ended() {
	if d.outstanding.Add(-1) == 0 {
		d.drainMu.Lock()
		if d.drained != nil {
			close(d.drained)
			d.drained = nil
		}
		d.drainMu.Unlock()
	}
}

// current returns this generation's model of the same name as m (a front
// may have looked m up in the previous generation just before a swap), or m
// itself when this generation does not serve it (placing then fails with
// backends.ErrNoBackend).
func (d *Dispatcher) current(m *backends.Model) *backends.Model {
	if mm := d.models[m.Name]; mm != nil {
		return mm
	}
	return m
}
