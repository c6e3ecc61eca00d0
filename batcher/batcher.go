package batcher

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/accelgate/accelgate/backends"
)

// ErrEvicted is the error a request handed back by Evict ends with: it wraps
// backends.ErrUnavailable, so the gateway places it again elsewhere.
var ErrEvicted = fmt.Errorf("%w: handed back by the batcher before it ran (its backend was ejected, or can no longer meet its SLO)", backends.ErrUnavailable)

// Outcome is one member's result of an executed batch.
type Outcome struct {
	Result *backends.Result
	Err    error
}

// ExecFunc executes one batch of KindBatch (merging and splitting as the
// backend needs: MergeTensors, MergeEmbeddings, SplitResult) and returns one
// Outcome per member, in Members order, or an error that fails every member.
// The batcher never retries: an error that may be retried elsewhere must wrap
// backends.ErrUnavailable. ctx ends at the latest member deadline, or when
// every member's caller has gone away. b.Members is the ExecFunc's own copy.
type ExecFunc func(ctx context.Context, b Batch) ([]Outcome, error)

// waiter is one request's caller.
type waiter struct {
	done     chan struct{} // closed by finish
	res      *backends.Result
	err      error
	finished bool          // guarded by Batcher.mu
	queued   time.Time     // when it entered the queue
	wait     time.Duration // how long it waited there (set at dispatch)
	admitted bool          // admission: slots were taken for it
	fl       *flight       // the batch it runs in, once dispatched
}

// flight is one executing batch.
type flight struct {
	cancel context.CancelFunc
	live   int // members whose callers still wait
}

// Batcher is the goroutine shell around a Core: a mutex, an injected
// backends.Clock and one timer re-armed to Core.Next after every change. It
// is safe for concurrent use.
type Batcher struct {
	clock    backends.Clock
	exec     ExecFunc
	parallel int

	mu       sync.Mutex
	core     *Core
	waiters  map[string]*waiter // queued requests, by ID
	inflight int                // batches executing
	timer    backends.Timer
	timerAt  time.Time
	gen      uint64
	closed   bool
	batches  []Batch
	reqs     []*backends.Request
}

// New returns a batcher for one backend. o.Exec is required.
func New(o Options) (*Batcher, error) {
	if o.Exec == nil {
		return nil, errors.New("batcher: Options.Exec is required")
	}
	clk := o.Clock
	if clk == nil {
		clk = backends.RealClock
	}
	return &Batcher{clock: clk, exec: o.Exec, parallel: max(o.Parallelism, 1), core: NewCore(o), waiters: make(map[string]*waiter)}, nil
}

func (w *waiter) finish(res *backends.Result, err error) {
	if w.finished {
		return
	}
	w.finished, w.res, w.err = true, res, err
	close(w.done)
}

// enqueue queues req and runs a dispatch step.
func (b *Batcher) enqueue(req *backends.Request) (*waiter, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, fmt.Errorf("%w: batcher closed", backends.ErrUnavailable)
	}
	if err := b.core.Enqueue(b.clock.Now(), req); err != nil {
		return nil, err
	}
	w := &waiter{done: make(chan struct{}), queued: b.clock.Now()}
	b.waiters[req.ID] = w
	b.stepLocked()
	return w, nil
}

// Do queues a tensor, embeddings or mergeable completions request
// (Request.Mergeable) and waits for its share of the batch it runs in. When
// ctx ends first, a queued request is removed and one already executing is
// abandoned (its batch is canceled once no member's caller waits); Do then
// returns ctx's error, wrapped in backends.ErrTimeout when ctx's deadline
// passed.
func (b *Batcher) Do(ctx context.Context, req *backends.Request) (*backends.Result, error) {
	if req.Op == backends.OpChat || (req.Op == backends.OpCompletion && !req.Mergeable) {
		return nil, fmt.Errorf("%w: batcher: %s requests go through Admit", backends.ErrBadRequest, req.Op)
	}
	w, err := b.enqueue(req)
	if err != nil {
		return nil, err
	}
	select {
	case <-w.done:
		return w.res, w.err
	case <-ctx.Done():
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if w.finished {
		return w.res, w.err
	}
	b.abandonLocked(req, w)
	return nil, ctxError(ctx)
}

// Admit queues an LLM request in the backend's admission queue and waits
// until its sequences fit the free slots. The caller then runs the request
// and must call release exactly once when it ends, however it ends.
func (b *Batcher) Admit(ctx context.Context, req *backends.Request) (release func(), err error) {
	seqs := req.Sequences()
	var once sync.Once
	release = func() {
		once.Do(func() {
			b.mu.Lock()
			defer b.mu.Unlock()
			b.core.SlotsFree(seqs)
			b.stepLocked()
		})
	}
	b.mu.Lock()
	if !b.closed && b.core.TryAdmit(req) {
		b.mu.Unlock()
		return release, nil // slots free and nobody waiting: no queue
	}
	b.mu.Unlock()
	w, err := b.enqueue(req)
	if err != nil {
		return nil, err
	}
	select {
	case <-w.done:
	case <-ctx.Done():
		b.mu.Lock()
		if !w.finished {
			b.abandonLocked(req, w)
			b.mu.Unlock()
			return nil, ctxError(ctx)
		}
		b.mu.Unlock()
	}
	if w.err != nil {
		return nil, w.err
	}
	if ctx.Err() != nil { // admitted as ctx ended: give the slots back
		release()
		return nil, ctxError(ctx)
	}
	return release, nil
}

func ctxError(ctx context.Context) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("%w: the request did not finish within its hard timeout (%w)", backends.ErrTimeout, ctx.Err())
	}
	return fmt.Errorf("batcher: %w", ctx.Err())
}

// abandonLocked forgets a caller that stopped waiting.
func (b *Batcher) abandonLocked(req *backends.Request, w *waiter) {
	w.finished = true
	if w.fl == nil {
		if _, ok := b.core.Cancel(req.ID); ok {
			delete(b.waiters, req.ID)
			b.rearmLocked()
		}
		return
	}
	w.fl.live--
	if w.fl.live == 0 {
		w.fl.cancel()
	}
}

// stepLocked drops expired requests, dispatches what is due and re-arms the
// timer.
func (b *Batcher) stepLocked() {
	if b.closed {
		return
	}
	now := b.clock.Now()
	b.reqs = b.core.Drop(now, b.reqs[:0])
	for i, r := range b.reqs {
		if w := b.waiters[r.ID]; w != nil {
			delete(b.waiters, r.ID)
			w.finish(nil, fmt.Errorf("%w: the request's deadline passed while it was queued for a batch", backends.ErrTimeout))
		}
		b.reqs[i] = nil
	}
	b.batches = b.core.Poll(now, b.inflight < b.parallel, b.batches[:0])
	for i := range b.batches {
		bt := b.batches[i]
		b.batches[i] = Batch{}
		if bt.Kind == KindAdmission {
			for _, r := range bt.Members {
				if w := b.waiters[r.ID]; w != nil {
					delete(b.waiters, r.ID)
					w.admitted = true
					w.finish(nil, nil)
				}
			}
			continue
		}
		bt.Members = append([]*backends.Request(nil), bt.Members...)
		ws := make([]*waiter, len(bt.Members))
		var deadline time.Time
		bounded := true
		for k, r := range bt.Members {
			ws[k] = b.waiters[r.ID]
			delete(b.waiters, r.ID)
			if r.Deadline.IsZero() {
				bounded = false
			} else if r.Deadline.After(deadline) {
				deadline = r.Deadline
			}
		}
		ctx, cancel := context.WithCancel(context.Background())
		if bounded {
			ctx, cancel = context.WithDeadline(context.Background(), deadline)
		}
		fl := &flight{cancel: cancel, live: len(ws)}
		now := b.clock.Now()
		for _, w := range ws {
			if w != nil {
				w.fl = fl
				w.wait = now.Sub(w.queued)
			}
		}
		b.inflight++
		go b.run(ctx, fl, bt, ws)
	}
	b.rearmLocked()
}

// run executes one batch and hands each member its outcome.
func (b *Batcher) run(ctx context.Context, fl *flight, bt Batch, ws []*waiter) {
	outs, err := b.exec(ctx, bt)
	fl.cancel()
	if err == nil && len(outs) != len(ws) {
		err = fmt.Errorf("%w: batch executor returned %d outcomes for %d members", backends.ErrUnavailable, len(outs), len(ws))
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.inflight--
	b.core.Finished(b.clock.Now(), bt.ID, err == nil)
	for k, w := range ws {
		if w == nil {
			continue
		}
		if err != nil {
			w.finish(nil, err)
		} else {
			if res := outs[k].Result; res != nil {
				if res.Timing.BatchRows == 0 {
					res.Timing.BatchRows = bt.Rows
				}
				res.Timing.BatchID = bt.ID
				res.Timing.BatchWait = w.wait
			}
			w.finish(outs[k].Result, outs[k].Err)
		}
	}
	b.stepLocked()
}

// rearmLocked points the timer at the core's next decision.
func (b *Batcher) rearmLocked() {
	t, ok := b.core.Next()
	if !ok || b.closed {
		if b.timer != nil {
			b.timer.Stop()
			b.timer = nil
		}
		return
	}
	if b.timer != nil && b.timerAt.Equal(t) {
		return
	}
	if b.timer != nil {
		b.timer.Stop()
	}
	b.gen++
	gen := b.gen
	b.timerAt = t
	b.timer = b.clock.AfterFunc(t.Sub(b.clock.Now()), func() { b.fire(gen) })
}

func (b *Batcher) fire(gen uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if gen != b.gen {
		return
	}
	b.timer = nil
	b.stepLocked()
}

// Evict hands back the queued requests that can no longer meet their SLO on
// this backend (see Core.Evict): each one's Do or Admit returns ErrEvicted,
// which wraps backends.ErrUnavailable, so the gateway places it again. It
// returns them.
func (b *Batcher) Evict() []*backends.Request {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.handBackLocked(b.core.Evict(b.clock.Now(), nil))
}

// handBackLocked ends the waits of requests taken out of the core with
// ErrEvicted and returns them.
func (b *Batcher) handBackLocked(out []*backends.Request) []*backends.Request {
	for _, r := range out {
		if w := b.waiters[r.ID]; w != nil {
			delete(b.waiters, r.ID)
			w.finish(nil, ErrEvicted)
		}
	}
	b.rearmLocked()
	return out
}

// EvictAll hands every queued request back (their callers get ErrEvicted),
// for a backend that was ejected; the batcher stays open.
func (b *Batcher) EvictAll() []*backends.Request {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.handBackLocked(b.core.EvictAll(nil))
}

// Len is the number of queued requests.
func (b *Batcher) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.core.Len()
}

// Close fails every queued request with backends.ErrUnavailable (so it may be
// placed elsewhere) and refuses new ones. Executing batches run to the end.
func (b *Batcher) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	for _, r := range b.core.Close(nil) {
		if w := b.waiters[r.ID]; w != nil {
			delete(b.waiters, r.ID)
			w.finish(nil, fmt.Errorf("%w: batcher closed", backends.ErrUnavailable))
		}
	}
	if b.timer != nil {
		b.timer.Stop()
		b.timer = nil
	}
	return nil
}
