package backends

import (
	"sync"
	"time"
)

// Clock is the source of time for the goroutine shells that wrap accelgate's
// single-threaded cores (the emulator's timing, the router's accounting). The
// cores themselves take the current time as an argument, so a discrete-event
// simulator drives them in virtual time; the shells take a Clock so tests drive
// them with a fake one instead of sleeping.
type Clock interface {
	Now() time.Time
	// AfterFunc calls f in its own goroutine once d has passed, like
	// time.AfterFunc. The returned Timer's Stop cancels it.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a pending AfterFunc call.
type Timer interface {
	// Stop prevents the call if it has not started; it reports whether it did.
	Stop() bool
}

// RealClock is the wall clock.
var RealClock Clock = realClock{}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }

// Ticker is a callback repeated on a Clock; see Every.
type Ticker struct {
	mu      sync.Mutex
	t       Timer
	stopped bool
}

// Every calls f after first, then every interval after each call returns,
// on clock, until Stop. The calls never overlap. Periodic work in the
// gateway (file and device polls, applying telemetry) runs on it, so tests
// drive it with a fake clock.
func Every(clock Clock, first, interval time.Duration, f func()) *Ticker {
	k := &Ticker{}
	var tick func()
	tick = func() {
		k.mu.Lock()
		stopped := k.stopped
		k.mu.Unlock()
		if stopped {
			return
		}
		f()
		k.mu.Lock()
		if !k.stopped {
			k.t = clock.AfterFunc(interval, tick)
		}
		k.mu.Unlock()
	}
	k.mu.Lock()
	k.t = clock.AfterFunc(first, tick)
	k.mu.Unlock()
	return k
}

// Stop cancels the next call; a call in progress finishes, and none follows
// it. It is idempotent.
func (k *Ticker) Stop() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.stopped = true
	if k.t != nil {
		k.t.Stop()
	}
}
