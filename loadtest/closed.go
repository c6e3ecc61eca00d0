package loadtest

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"time"
)

// ClosedOptions configure a closed-loop run: Users simulated users, each
// repeatedly filling an Item from its own Mix, sending it, waiting for the
// answer and thinking for Think before the next one.
type ClosedOptions struct {
	NewMix func() (Mix, error) // a fresh Mix per user (Mixes keep state and are not shared)
	Users  int                 // concurrent users (at least 1)
	Think  time.Duration       // pause between a response and the user's next request
	Seed   int64               // user u draws from a PCG seeded (Seed, u): runs are repeatable per user
}

// RunClosed runs a closed-loop test. A request's intended send time is when
// its user decided to send it (after thinking), so time spent waiting for a
// connection or a worker still counts. It stops when opts.Duration has
// passed or opts.Requests requests have been started, or ctx is done, and
// returns once every user's last request has finished.
func RunClosed(ctx context.Context, c ClosedOptions, opts RunOptions) (RunStats, error) {
	if err := opts.check(); err != nil {
		return RunStats{}, err
	}
	if c.Users < 1 {
		return RunStats{}, errors.New("loadtest: a closed loop needs at least one user")
	}
	users := min(c.Users, opts.MaxInflight)
	mixes := make([]Mix, users)
	for u := range mixes {
		m, err := c.NewMix()
		if err != nil {
			return RunStats{}, err
		}
		mixes[u] = m
	}
	clk := opts.clock
	s := &runState{opts: &opts, start: clk.Now()}
	stopProgress := startProgress(s)
	var (
		mu   sync.Mutex
		next int64 // Seq of the next request
	)
	// claim reserves the next sequence number, or reports that the run is over.
	claim := func(now time.Time) (int64, bool) {
		mu.Lock()
		defer mu.Unlock()
		if ctx.Err() != nil ||
			opts.Requests > 0 && next >= int64(opts.Requests) ||
			opts.Duration > 0 && now.Sub(s.start) >= opts.Duration {
			return 0, false
		}
		next++
		return next - 1, true
	}
	var wg sync.WaitGroup
	for u := range users {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(c.Seed), uint64(u)))
			for {
				now := clk.Now()
				seq, ok := claim(now)
				if !ok {
					return
				}
				it := &Item{Seq: seq, At: now.Sub(s.start)}
				mixes[u].Fill(r, it)
				opts.Recorder.Offered()
				s.offered.Add(1)
				s.inflight.Add(1)
				s.send(ctx, it, now, now)
				s.inflight.Add(-1)
				if c.Think > 0 && !clk.SleepUntil(ctx, clk.Now().Add(c.Think)) {
					return
				}
			}
		}()
	}
	wg.Wait()
	s.draining.Store(true)
	st := s.stats(clk.Now())
	stopProgress()
	return st, nil
}
