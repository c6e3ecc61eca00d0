package batcher

import (
	"slices"
	"testing"
	"time"

	"github.com/accelgate/accelgate/backends"
)

func drain(q *Queue, now time.Time) []string {
	var out []string
	for q.Len() > 0 {
		out = append(out, q.PopFront(now).ID)
	}
	return out
}

func TestQueueOrder(t *testing.T) {
	var q Queue
	q.SetAging(DefaultConfig().AgingLimit)
	push := func(id string, p backends.Priority, e2e time.Duration) {
		q.Push(t0, &backends.Request{ID: id, Priority: p, Arrival: t0, SLO: backends.SLO{E2E: e2e}})
	}
	push("shed-10ms", backends.Sheddable, msd(10))
	push("std-50ms", backends.Standard, msd(50))
	push("std-20ms", backends.Standard, msd(20))
	push("crit-none", backends.Critical, 0)
	push("crit-100ms", backends.Critical, msd(100))
	push("std-none-1", backends.Standard, 0)
	push("std-none-2", backends.Standard, 0)
	if q.Len() != 7 {
		t.Fatalf("Len = %d", q.Len())
	}
	if tg, ok := q.EarliestTarget(); !ok || !tg.Equal(at(10)) {
		t.Errorf("EarliestTarget = %v %v, want +10ms", tg, ok)
	}
	got := drain(&q, at(1))
	want := []string{"crit-100ms", "crit-none", "std-20ms", "std-50ms", "std-none-1", "std-none-2", "shed-10ms"}
	if !slices.Equal(got, want) {
		t.Errorf("order = %v\nwant    %v", got, want)
	}
}

func TestQueueStreamTargetIsTTFT(t *testing.T) {
	var q Queue
	q.Push(t0, &backends.Request{ID: "e2e", Arrival: t0, SLO: backends.SLO{E2E: msd(30)}})
	q.Push(t0, &backends.Request{ID: "stream", Stream: true, Arrival: t0, SLO: backends.SLO{E2E: msd(900), TTFT: msd(20)}})
	if got := drain(&q, t0); !slices.Equal(got, []string{"stream", "e2e"}) {
		t.Errorf("order = %v", got)
	}
}

func TestQueueAging(t *testing.T) {
	var q Queue
	q.SetAging(DefaultConfig().AgingLimit) // standard 500 ms, sheddable 2 s
	x := q.Push(at(0), &backends.Request{ID: "x", Priority: backends.Sheddable})
	q.Push(at(1900), &backends.Request{ID: "y", Priority: backends.Standard})
	if f := q.Front(at(1999)); f.Request().ID != "y" {
		t.Fatalf("at 1.999 s front = %s, want y", f.Request().ID)
	}
	// At 2 s x has waited its class's limit: served as standard, ahead of y
	// (no targets: FIFO).
	if f := q.Front(at(2000)); f.Request().ID != "x" || x.Served() != backends.Standard {
		t.Fatalf("at 2 s front = %s served %v, want x as standard", f.Request().ID, x.Served())
	}
	q.Push(at(2100), &backends.Request{ID: "z", Priority: backends.Critical})
	if f := q.Front(at(2399)); f.Request().ID != "z" {
		t.Fatalf("at 2.399 s front = %s, want z", f.Request().ID)
	}
	if na, ok := q.NextAging(); !ok || !na.Equal(at(2400)) {
		// y (standard, pushed at 1.9 s) ages at 2.4 s, before x's 2.5 s.
		t.Errorf("NextAging = %v %v, want 2.4 s", na, ok)
	}
	// At 2.5 s x is critical too (500 ms as standard), and older than z; y
	// became critical at 2.4 s.
	if got := drain(&q, at(2500)); !slices.Equal(got, []string{"x", "y", "z"}) {
		t.Errorf("order at 2.5 s = %v, want [x y z]", got)
	}
}

func TestQueueAgingDisabled(t *testing.T) {
	var q Queue
	lim := DefaultConfig().AgingLimit
	lim[backends.Sheddable] = -1
	q.SetAging(lim)
	q.Push(at(0), &backends.Request{ID: "shed", Priority: backends.Sheddable})
	q.Push(at(9000), &backends.Request{ID: "std", Priority: backends.Standard})
	if got := drain(&q, at(9000)); !slices.Equal(got, []string{"std", "shed"}) {
		t.Errorf("order = %v", got)
	}
}

func TestQueueRemove(t *testing.T) {
	var q Queue
	var es []*Entry
	for i := range 20 {
		es = append(es, q.Push(at(float64(i)), &backends.Request{ID: string(rune('a' + i)), Arrival: t0, SLO: backends.SLO{E2E: msd(float64(100 - i))}}))
	}
	q.Remove(es[5])
	q.Remove(es[19]) // the front
	q.Remove(es[0])  // the back
	if q.Len() != 17 {
		t.Fatalf("Len = %d", q.Len())
	}
	if old, _ := q.Oldest(); !old.Equal(at(1)) {
		t.Errorf("Oldest = %v", old)
	}
	got := drain(&q, at(30))
	var want []string
	for i := 18; i >= 1; i-- {
		if i != 5 {
			want = append(want, string(rune('a'+i)))
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("order = %v\nwant    %v", got, want)
	}
	if q.PopFront(at(30)) != nil || q.Front(at(30)) != nil {
		t.Error("empty queue returned an entry")
	}
}
