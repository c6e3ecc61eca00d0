package loadtest

import (
	"strconv"
	"sync"
	"time"
)

// progressEvery is how often the live progress line is rewritten.
const progressEvery = 250 * time.Millisecond

// startProgress starts the live progress line when s.opts.Progress is set,
// and returns the function that stops it (printing the last line and a
// newline).
func startProgress(s *runState) (stop func()) {
	w := s.opts.Progress
	if w == nil {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(progressEvery)
		defer t.Stop()
		var (
			hist [5]struct { // ~1 s of samples for the current rate
				at   time.Time
				sent int64
			}
			n   int
			buf []byte
		)
		for {
			final := false
			select {
			case <-t.C:
			case <-done:
				final = true
			}
			now := time.Now()
			sent := s.offered.Load()
			oldest := hist[n%len(hist)]
			hist[n%len(hist)] = struct {
				at   time.Time
				sent int64
			}{now, sent}
			n++
			rate := 0.0
			if n > 1 {
				if n <= len(hist) {
					oldest = hist[0]
				}
				if dt := now.Sub(oldest.at).Seconds(); dt > 0 {
					rate = float64(sent-oldest.sent) / dt
				}
			}
			buf = s.progressLine(buf[:0], now, sent, rate)
			if final {
				buf = append(buf, '\n')
			}
			w.Write(buf)
			if final {
				return
			}
		}
	}()
	return func() {
		close(done)
		wg.Wait()
	}
}

// progressLine formats one progress line: elapsed, sent, current rate, in
// flight, ok, errors, recent p99, and a warning when the generator is more
// than 100 ms behind its schedule.
func (s *runState) progressLine(b []byte, now time.Time, sent int64, rate float64) []byte {
	p := s.opts.Recorder.Progress()
	b = append(b, "\r\x1b[K"...)
	b = strconv.AppendFloat(b, now.Sub(s.start).Seconds(), 'f', 1, 64)
	b = append(b, "s  sent "...)
	b = strconv.AppendInt(b, sent, 10)
	b = append(b, "  rate "...)
	b = strconv.AppendFloat(b, rate, 'f', 1, 64)
	b = append(b, "/s  inflight "...)
	b = strconv.AppendInt(b, s.inflight.Load(), 10)
	b = append(b, "  ok "...)
	b = strconv.AppendInt(b, p.OK, 10)
	b = append(b, "  errors "...)
	b = strconv.AppendInt(b, p.Errors, 10)
	b = append(b, "  p99 "...)
	b = append(b, p.P99.Round(100*time.Microsecond).String()...)
	if s.draining.Load() {
		b = append(b, "  (draining)"...)
	}
	if lag := time.Duration(s.lagNS.Load()); lag > behindThreshold && !s.draining.Load() {
		b = append(b, "  !! FALLING BEHIND schedule by "...)
		b = append(b, lag.Round(time.Millisecond).String()...)
		if s.inflight.Load() >= int64(s.opts.MaxInflight) {
			b = append(b, " (max-inflight reached)"...)
		}
	}
	return b
}
