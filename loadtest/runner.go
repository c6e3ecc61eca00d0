package loadtest

import (
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultMaxInflight is the default bound on requests in flight (the
// -max-inflight flag).
const DefaultMaxInflight = 10000

// batchWindow is how close to its intended time an item must be for the
// scheduler to send it without sleeping: items due within it go out together,
// so the scheduler does not pay a timer per request at high rates. An item
// sent early is measured from when it was actually sent.
const batchWindow = 100 * time.Microsecond

// behindThreshold is how late the generator may send before the progress
// line warns that it is falling behind its schedule.
const behindThreshold = 100 * time.Millisecond

// RunOptions configure RunOpen and RunClosed.
type RunOptions struct {
	Client   Client    // sends each Item (required)
	Recorder *Recorder // gets Offered once per Item and Record once per Outcome (required)

	// Duration stops the run: open loop, items meant for Duration or later
	// are not sent; closed loop, users stop starting requests. 0 = no limit.
	Duration time.Duration
	// Requests stops the run after that many items. 0 = no limit.
	Requests int
	// MaxInflight bounds the requests in flight (default DefaultMaxInflight).
	// In an open loop an item that finds the bound reached waits — and is
	// still measured from its intended send time.
	MaxInflight int
	// Progress, when set, receives a live progress line (rewritten with \r
	// about four times a second) and the final newline.
	Progress io.Writer

	clock runClock // nil = the real clock; tests run schedules in virtual time
}

// RunStats is what the runner itself counted.
type RunStats struct {
	Offered     int64         // items offered (Recorder.Offered calls)
	Recorded    int64         // outcomePool recorded; equals Offered after a run
	Elapsed     time.Duration // run start → last outcome recorded (the drain included)
	MaxSentLate time.Duration // worst delay between an item's intended and actual send time
	SentLate    int64         // items sent more than 100 ms behind schedule
}

// runClock is the runner's view of time.
type runClock interface {
	Now() time.Time
	// SleepUntil returns at t, or false early when ctx is done.
	SleepUntil(ctx context.Context, t time.Time) bool
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) SleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func (o *RunOptions) check() error {
	if o.Client == nil || o.Recorder == nil {
		return errors.New("loadtest: RunOptions need a Client and a Recorder")
	}
	if o.MaxInflight <= 0 {
		o.MaxInflight = DefaultMaxInflight
	}
	if o.clock == nil {
		o.clock = realClock{}
	}
	return nil
}

// runState is shared by the scheduler, the workers and the progress line.
type runState struct {
	opts  *RunOptions
	start time.Time

	offered  atomic.Int64
	recorded atomic.Int64
	inflight atomic.Int64
	lagNS    atomic.Int64 // SentLate of the most recently sent item
	maxLate  atomic.Int64
	late     atomic.Int64
	draining atomic.Bool
}

var outcomePool = sync.Pool{New: func() any { return &Outcome{ITL: make([]time.Duration, 0, 64)} }}

// send runs one item through the client and records its outcome. intended
// is the item's intended send time and now when it was handed to the client
// (after any wait for a free slot); an item sent early (within batchWindow)
// is measured from when it was actually sent.
func (s *runState) send(ctx context.Context, it *Item, intended, now time.Time) {
	late := now.Sub(intended)
	from := intended
	if late < 0 {
		late, from = 0, now
	}
	s.lagNS.Store(int64(late))
	if int64(late) > s.maxLate.Load() {
		s.maxLate.Store(int64(late)) // racy max: good enough for a statistic
	}
	if late > behindThreshold {
		s.late.Add(1)
	}
	o := outcomePool.Get().(*Outcome)
	*o = Outcome{ITL: o.ITL[:0], SentLate: late}
	s.opts.Client.Do(ctx, it, from, o)
	o.Item = it
	o.SentLate = late
	s.opts.Recorder.Record(o)
	s.recorded.Add(1)
	if cap(o.ITL) <= 1<<14 {
		outcomePool.Put(o)
	}
}

func (s *runState) stats(end time.Time) RunStats {
	return RunStats{
		Offered:     s.offered.Load(),
		Recorded:    s.recorded.Load(),
		Elapsed:     end.Sub(s.start),
		MaxSentLate: time.Duration(s.maxLate.Load()),
		SentLate:    s.late.Load(),
	}
}

// runJob is an item handed to a worker.
type runJob struct {
	it       *Item
	intended time.Time
	sent     time.Time // when a slot was free and the job was handed over
}

// workerPool runs jobs on up to max goroutines, started on demand and kept
// until close, so steady-state sends neither spawn goroutines nor regrow
// their stacks.
type workerPool struct {
	s       *runState
	ctx     context.Context
	work    chan runJob
	sem     chan struct{} // one token per busy worker
	wg      sync.WaitGroup
	workers int
	max     int
}

func newWorkerPool(ctx context.Context, s *runState, max int) *workerPool {
	return &workerPool{s: s, ctx: ctx, work: make(chan runJob), sem: make(chan struct{}, max), max: max}
}

// submit hands j to an idle worker, starts one, or waits for one to free up
// when max are busy.
func (p *workerPool) submit(j runJob) {
	p.sem <- struct{}{} // blocks while max requests are in flight
	p.s.inflight.Add(1)
	j.sent = p.s.opts.clock.Now()
	select {
	case p.work <- j:
		return
	default:
	}
	if p.workers < p.max {
		p.workers++
		p.wg.Add(1)
		go p.worker(j)
		return
	}
	p.work <- j
}

func (p *workerPool) worker(j runJob) {
	defer p.wg.Done()
	for {
		p.s.send(p.ctx, j.it, j.intended, j.sent)
		p.s.inflight.Add(-1)
		<-p.sem
		var ok bool
		if j, ok = <-p.work; !ok {
			return
		}
	}
}

// close waits for every submitted runJob to finish.
func (p *workerPool) close() {
	close(p.work)
	p.wg.Wait()
}

// RunOpen runs an open-loop test: each Item from src is sent at its intended
// time (run start + Item.At) whether or not earlier requests have answered,
// and measured from that time. It returns when src is exhausted or a limit
// in opts is reached and every request in flight has finished (each bounded
// by its timeout), or — stopping early but still draining — when ctx is done.
func RunOpen(ctx context.Context, src Source, opts RunOptions) (RunStats, error) {
	if err := opts.check(); err != nil {
		return RunStats{}, err
	}
	clk := opts.clock
	s := &runState{opts: &opts, start: clk.Now()}
	stopProgress := startProgress(s)
	pool := newWorkerPool(ctx, s, opts.MaxInflight)
	for n := 0; opts.Requests <= 0 || n < opts.Requests; n++ {
		it := new(Item)
		if !src.Next(it) {
			break
		}
		if opts.Duration > 0 && it.At >= opts.Duration {
			break
		}
		due := s.start.Add(it.At)
		if due.Sub(clk.Now()) > batchWindow && !clk.SleepUntil(ctx, due) {
			break
		}
		if ctx.Err() != nil {
			break
		}
		opts.Recorder.Offered()
		s.offered.Add(1)
		pool.submit(runJob{it: it, intended: due})
	}
	s.draining.Store(true)
	pool.close()
	st := s.stats(clk.Now())
	stopProgress()
	return st, nil
}
