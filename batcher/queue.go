package batcher

import (
	"math"
	"time"

	"github.com/accelgate/accelgate/backends"
)

// Internal times are int64 Unix nanoseconds; never is +∞ ("no target", "no
// deadline") and immediate is -∞ ("due now").
const (
	never     = int64(math.MaxInt64)
	immediate = int64(math.MinInt64)
)

const numClasses = int(backends.NumPriorities)

// Entry is one request in a Queue. It is valid from Push until the request
// leaves the queue (PopFront, Remove); the queue then reuses it, so callers
// must not keep it.
type Entry struct {
	req      *backends.Request
	target   int64  // SLO target (arrival + target), never when none
	push     int64  // when it entered the queue
	seq      uint64 // push order: the tie-break
	class    uint8  // the request's own class
	served   uint8  // the class it is served as (class, or above it after aging)
	hidx     int32  // index in heaps[served]
	didx     int32  // index in the core's deadline heap, -1 when not in it
	prev     *Entry // in lists[class][served], ordered by push
	next     *Entry
	rows     int   // core: rows (batch) or sequences (admission)
	tokens   int   // core: estimated input tokens
	deadline int64 // core: hard deadline, never when none
	g        *group
}

// Request returns the queued request.
func (e *Entry) Request() *backends.Request { return e.req }

// Target returns the request's SLO target time and whether it has one.
func (e *Entry) Target() (time.Time, bool) {
	if e.target == never {
		return time.Time{}, false
	}
	return time.Unix(0, e.target), true
}

// Served returns the class the entry is served as: its own, or a higher one
// after aging (as of the queue's last Age, Front or PopFront).
func (e *Entry) Served() backends.Priority { return backends.Priority(e.served) }

type list struct{ head, tail *Entry }

func (l *list) pushBack(e *Entry) {
	e.next, e.prev = nil, l.tail
	if l.tail != nil {
		l.tail.next = e
	} else {
		l.head = e
	}
	l.tail = e
}

func (l *list) remove(e *Entry) {
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		l.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		l.tail = e.prev
	}
	e.prev, e.next = nil, nil
}

// Queue is the gateway's one queue order: critical before standard before
// sheddable; within a class the earliest SLO target first (arrival + the
// request's target; no target is +∞), then FIFO; and a request that has waited
// longer than its class's aging limit is served as the class above (each
// promotion restarts the count: with the defaults a sheddable request is
// served as standard after 2 s and as critical after 2.5 s), so nothing
// starves.
//
// Push, PopFront and Remove are O(log n); aging costs O(1) per promotion.
// Entries are recycled, so a queue in steady state allocates nothing. The zero
// value is an empty queue without aging; it is not safe for concurrent use.
type Queue struct {
	heaps [numClasses][]*Entry // by served class, ordered by (target, seq)
	// lists[c][s] holds the entries of class c served as s (s ≤ c) in push
	// order, so the oldest of each is the next to age.
	lists [numClasses][numClasses]list
	// after[c][s] is the wait after which an entry of class c is served as s
	// (never when aging is disabled on the way).
	after [numClasses][numClasses]int64
	n     int
	seq   uint64
	free  *Entry
}

// SetAging sets the aging limit of each class (index = backends.Priority): a
// request that has been served as class s for limits[s] is served as s-1. A
// negative limit disables aging out of that class; Critical's is unused. Set
// it before the first Push.
func (q *Queue) SetAging(limits [backends.NumPriorities]time.Duration) {
	for c := range numClasses {
		q.after[c][c] = 0
		for s := c - 1; s >= 0; s-- {
			prev, lim := q.after[c][s+1], limits[s+1]
			if prev == never || lim < 0 {
				q.after[c][s] = never
			} else {
				q.after[c][s] = prev + int64(lim)
			}
		}
	}
}

// Len is the number of queued requests.
func (q *Queue) Len() int { return q.n }

// targetOf is the request's SLO target: arrival (or push when unset) plus
// TTFT for streams that set one, else E2E, else TTFT; never when it has none.
func targetOf(req *backends.Request, push int64) int64 {
	d := req.SLO.E2E
	if (req.Stream && req.SLO.TTFT > 0) || d <= 0 {
		d = req.SLO.TTFT
	}
	if d <= 0 {
		return never
	}
	at := push
	if !req.Arrival.IsZero() {
		at = req.Arrival.UnixNano()
	}
	return at + int64(d)
}

// Push queues req at now and returns its entry.
func (q *Queue) Push(now time.Time, req *backends.Request) *Entry {
	return q.push(now.UnixNano(), req)
}

func (q *Queue) push(now int64, req *backends.Request) *Entry {
	e := q.free
	if e != nil {
		q.free = e.next
		*e = Entry{}
	} else {
		e = new(Entry)
	}
	c := min(int(req.Priority), numClasses-1)
	q.seq++
	e.req, e.push, e.seq, e.target, e.didx = req, now, q.seq, targetOf(req, now), -1
	e.class, e.served = uint8(c), uint8(c)
	q.lists[c][c].pushBack(e)
	q.heapPush(e)
	q.n++
	return e
}

// Age promotes every entry whose wait, as of now, has passed its aging limit.
func (q *Queue) Age(now time.Time) { q.age(now.UnixNano()) }

func (q *Queue) age(now int64) {
	for c := 1; c < numClasses; c++ {
		for s := c; s >= 1; s-- {
			l := &q.lists[c][s]
			lim := q.after[c][s-1]
			if lim == never {
				break
			}
			for e := l.head; e != nil && e.push+lim <= now; e = l.head {
				l.remove(e)
				q.heapRemove(e)
				e.served = uint8(s - 1)
				q.lists[c][s-1].pushBack(e)
				q.heapPush(e)
			}
		}
	}
}

// NextAging returns when the next promotion falls due.
func (q *Queue) NextAging() (time.Time, bool) {
	best := never
	for c := 1; c < numClasses; c++ {
		for s := c; s >= 1; s-- {
			if h, lim := q.lists[c][s].head, q.after[c][s-1]; h != nil && lim != never {
				best = min(best, h.push+lim)
			}
		}
	}
	if best == never {
		return time.Time{}, false
	}
	return time.Unix(0, best), true
}

// Front ages the queue to now and returns its first entry, or nil.
func (q *Queue) Front(now time.Time) *Entry {
	q.age(now.UnixNano())
	return q.front()
}

func (q *Queue) front() *Entry {
	for s := range numClasses {
		if h := q.heaps[s]; len(h) > 0 {
			return h[0]
		}
	}
	return nil
}

// PopFront ages the queue to now and removes and returns its first request,
// or nil when it is empty.
func (q *Queue) PopFront(now time.Time) *backends.Request {
	e := q.Front(now)
	if e == nil {
		return nil
	}
	req := e.req
	q.Remove(e)
	return req
}

// Remove takes e out of the queue (e must be queued in q).
func (q *Queue) Remove(e *Entry) {
	q.lists[e.class][e.served].remove(e)
	q.heapRemove(e)
	q.n--
	e.req, e.g = nil, nil
	e.next = q.free
	q.free = e
}

// Oldest returns the push time of the longest-waiting request.
func (q *Queue) Oldest() (time.Time, bool) {
	if t := q.oldest(); t != never {
		return time.Unix(0, t), true
	}
	return time.Time{}, false
}

func (q *Queue) oldest() int64 {
	best := never
	for c := range numClasses {
		for s := 0; s <= c; s++ {
			if h := q.lists[c][s].head; h != nil {
				best = min(best, h.push)
			}
		}
	}
	return best
}

// EarliestTarget returns the earliest SLO target among the queued requests.
func (q *Queue) EarliestTarget() (time.Time, bool) {
	if t, _ := q.earliestTarget(); t != never {
		return time.Unix(0, t), true
	}
	return time.Time{}, false
}

// earliestTarget returns the earliest SLO target among the queued requests
// and the priority class of the request that holds it.
func (q *Queue) earliestTarget() (int64, backends.Priority) {
	best, prio := never, backends.Standard
	for s := range numClasses {
		if h := q.heaps[s]; len(h) > 0 && h[0].target < best {
			best, prio = h[0].target, h[0].prio()
		}
	}
	return best, prio
}

// prio is the request's own priority class.
func (e *Entry) prio() backends.Priority { return backends.Priority(e.class) }

// each calls f for every queued entry, in no particular order; f must not
// change the queue.
func (q *Queue) each(f func(*Entry)) {
	for s := range numClasses {
		for _, e := range q.heaps[s] {
			f(e)
		}
	}
}

// before is the order within one served class.
func before(a, b *Entry) bool {
	return a.target < b.target || (a.target == b.target && a.seq < b.seq)
}

// less reports whether a is served before b.
func less(a, b *Entry) bool {
	return a.served < b.served || (a.served == b.served && before(a, b))
}

func (q *Queue) heapPush(e *Entry) {
	h := &q.heaps[e.served]
	e.hidx = int32(len(*h))
	*h = append(*h, e)
	siftUp(*h, int(e.hidx), before, setH)
}

func (q *Queue) heapRemove(e *Entry) {
	h := &q.heaps[e.served]
	heapDelete(h, int(e.hidx), before, setH)
}

func setH(e *Entry, i int) { e.hidx = int32(i) }
func setD(e *Entry, i int) { e.didx = int32(i) }

// The binary heap helpers, shared by the class heaps and the core's deadline
// heap (each with its own order and index field).

func siftUp(h []*Entry, i int, lt func(a, b *Entry) bool, set func(*Entry, int)) {
	for i > 0 {
		p := (i - 1) / 2
		if !lt(h[i], h[p]) {
			break
		}
		h[i], h[p] = h[p], h[i]
		set(h[i], i)
		set(h[p], p)
		i = p
	}
}

func siftDown(h []*Entry, i int, lt func(a, b *Entry) bool, set func(*Entry, int)) {
	n := len(h)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		m := l
		if r := l + 1; r < n && lt(h[r], h[l]) {
			m = r
		}
		if !lt(h[m], h[i]) {
			return
		}
		h[i], h[m] = h[m], h[i]
		set(h[i], i)
		set(h[m], m)
		i = m
	}
}

func heapDelete(hp *[]*Entry, i int, lt func(a, b *Entry) bool, set func(*Entry, int)) {
	h := *hp
	last := len(h) - 1
	if i != last {
		h[i] = h[last]
		set(h[i], i)
	}
	h[last] = nil
	h = h[:last]
	*hp = h
	if i < last {
		siftDown(h, i, lt, set)
		siftUp(h, i, lt, set)
	}
}
