package backends

import "time"

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
