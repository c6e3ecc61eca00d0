package fakeclock

import (
	"sort"
	"sync"
	"time"

	"github.com/accelgate/accelgate/backends"
)

// Clock is a fake clock. The zero value is not usable; call New.
type Clock struct {
	mu     sync.Mutex
	now    time.Time
	seq    int
	timers []*timer
}

type timer struct {
	c    *Clock
	when time.Time
	seq  int
	f    func()
	done bool
}

// New returns a fake clock set to start.
func New(start time.Time) *Clock { return &Clock{now: start} }

// Now returns the fake time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// AfterFunc schedules f to run when the fake time reaches Now()+d. A d <= 0
// runs at the next Advance (even Advance(0)).
func (c *Clock) AfterFunc(d time.Duration, f func()) backends.Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	t := &timer{c: c, when: c.now.Add(d), seq: c.seq, f: f}
	c.timers = append(c.timers, t)
	return t
}

// Pending is the number of scheduled callbacks that have not run or been stopped.
func (c *Clock) Pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, t := range c.timers {
		if !t.done {
			n++
		}
	}
	return n
}

// NextDeadline returns the earliest pending callback time.
func (c *Clock) NextDeadline() (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var best time.Time
	ok := false
	for _, t := range c.timers {
		if !t.done && (!ok || t.when.Before(best)) {
			best, ok = t.when, true
		}
	}
	return best, ok
}

// Advance moves time forward by d, running every callback that falls due, in
// order of deadline, each with the clock set to its deadline.
func (c *Clock) Advance(d time.Duration) { c.Set(c.Now().Add(d)) }

// Set moves time forward to t (never backwards), running due callbacks.
func (c *Clock) Set(t time.Time) {
	for {
		c.mu.Lock()
		var due []*timer
		for _, tm := range c.timers {
			if !tm.done && !tm.when.After(t) {
				due = append(due, tm)
			}
		}
		if len(due) == 0 {
			if t.After(c.now) {
				c.now = t
			}
			c.compact()
			c.mu.Unlock()
			return
		}
		sort.Slice(due, func(i, j int) bool {
			if due[i].when.Equal(due[j].when) {
				return due[i].seq < due[j].seq
			}
			return due[i].when.Before(due[j].when)
		})
		first := due[0]
		first.done = true
		if first.when.After(c.now) {
			c.now = first.when
		}
		c.mu.Unlock()
		first.f() // outside the lock: it may schedule more callbacks
	}
}

func (c *Clock) compact() {
	keep := c.timers[:0]
	for _, t := range c.timers {
		if !t.done {
			keep = append(keep, t)
		}
	}
	for i := len(keep); i < len(c.timers); i++ {
		c.timers[i] = nil
	}
	c.timers = keep
}

// Stop cancels the callback if it has not run.
func (t *timer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	if t.done {
		return false
	}
	t.done = true
	return true
}
