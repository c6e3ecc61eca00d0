package batcher

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/accelgate/accelgate/backends"
)

func mustEnqueue(t *testing.T, c *Core, now time.Time, r *backends.Request) {
	t.Helper()
	if err := c.Enqueue(now, r); err != nil {
		t.Fatal(err)
	}
}

func wantNext(t *testing.T, c *Core, want time.Time) {
	t.Helper()
	got, ok := c.Next()
	if !ok || !got.Equal(want) {
		t.Fatalf("Next = %v (%v), want +%v", got.Sub(t0), ok, want.Sub(t0))
	}
}

func TestOffRunsEachAlone(t *testing.T) {
	c := newTestCore(Config{Mode: ModeOff}, linPred{msd(5), msd(1)})
	a, b, d := vreq(backends.Standard, at(0), 0, 2), vreq(backends.Critical, at(0), 0, 1), vreq(backends.Standard, at(0), 0, 1)
	for _, r := range []*backends.Request{a, b, d} {
		mustEnqueue(t, c, at(0), r)
	}
	wantNext(t, c, at(0))
	bs := c.Poll(at(0), false, nil)
	if len(bs) != 3 {
		t.Fatalf("%d batches, want 3", len(bs))
	}
	for i, want := range []*backends.Request{b, a, d} {
		if len(bs[i].Members) != 1 || bs[i].Members[0] != want || bs[i].Rows != want.Rows {
			t.Errorf("batch %d = %v rows %d, want [%s]", i, ids(bs[i].Members), bs[i].Rows, want.ID)
		}
	}
	if _, ok := c.Next(); ok {
		t.Error("Next reports work on an empty core")
	}
}

func TestFixed(t *testing.T) {
	c := newTestCore(Config{Mode: ModeFixed, MaxBatchSize: 8, PreferredBatchSizes: []int{4}, MaxQueueDelay: msd(3)}, nil)
	r := make([]*backends.Request, 6)
	for i := range r {
		r[i] = vreq(backends.Standard, at(0), 0, 1)
	}
	// Three rows by 2 ms: no preferred size yet; due when the oldest has
	// waited 3 ms.
	mustEnqueue(t, c, at(0), r[0])
	mustEnqueue(t, c, at(1), r[1])
	mustEnqueue(t, c, at(2), r[2])
	if bs := c.Poll(at(2), true, nil); len(bs) != 0 {
		t.Fatalf("dispatched %d batches before a preferred size or the delay", len(bs))
	}
	wantNext(t, c, at(3))
	// A fourth row at 2.5 ms reaches the preferred size 4: due at once.
	mustEnqueue(t, c, at(2.5), r[3])
	wantNext(t, c, at(2.5))
	bs := c.Poll(at(2.5), true, nil)
	if len(bs) != 1 || !slices.Equal(ids(bs[0].Members), ids(r[:4])) || bs[0].Rows != 4 {
		t.Fatalf("batches = %+v, want r0..r3", bs)
	}
	// One row at 5 ms waits its 3 ms, then goes alone.
	mustEnqueue(t, c, at(5), r[4])
	wantNext(t, c, at(8))
	if bs := c.Poll(at(7.9), true, nil); len(bs) != 0 {
		t.Fatal("dispatched before MaxQueueDelay")
	}
	bs = c.Poll(at(8), true, bs[:0])
	if len(bs) != 1 || bs[0].Members[0] != r[4] {
		t.Fatalf("batches = %+v, want [r4]", bs)
	}
}

func TestFixedPreferredLargestAndMax(t *testing.T) {
	c := newTestCore(Config{Mode: ModeFixed, MaxBatchSize: 6, PreferredBatchSizes: []int{4, 2}, MaxQueueDelay: msd(100)}, nil)
	// 2+3+2 rows queued at once (7 > max 6): largest prefix ≤ 6 goes first.
	a, b, d := vreq(backends.Standard, at(0), 0, 2), vreq(backends.Standard, at(0), 0, 3), vreq(backends.Standard, at(0), 0, 2)
	for _, r := range []*backends.Request{a, b, d} {
		mustEnqueue(t, c, at(0), r)
	}
	bs := c.Poll(at(0), true, nil)
	// Batch 1: a+b (5 rows, the next would exceed 6). Then 2 rows remain:
	// preferred size 2 → dispatched too.
	if len(bs) != 2 || bs[0].Rows != 5 || bs[1].Rows != 2 || bs[1].Members[0] != d {
		t.Fatalf("batches = %+v", bs)
	}
}

// TestAdaptiveWorkedExample is the example in doc.go: L(n) = 5 ms + 1 ms·n,
// requests of one row every 2 ms (ĝ = 2 ms), each with a 20 ms E2E target.
func TestAdaptiveWorkedExample(t *testing.T) {
	c := newTestCore(Config{MaxBatchSize: 8}, linPred{msd(5), msd(1)})
	// Warm-up request at -2 ms: the first arrival has no rate, so it goes
	// alone at once.
	mustEnqueue(t, c, at(-2), vreq(backends.Standard, at(-2), msd(20), 1))
	if bs := c.Poll(at(-2), true, nil); len(bs) != 1 {
		t.Fatalf("first request: %d batches, want it dispatched at once", len(bs))
	}
	steps := []struct {
		arrive float64
		due    float64
	}{
		{0, 6.5}, // W = 20 − L(2) = 13; min(13 − 2, (13 + 0)/2)
		{2, 7},   // W = 20 − L(3) = 12; min(10, 7)
		{4, 7.5}, // W = 11; min(9, 7.5)
		{6, 8},   // W = 10; min(8, 8)
	}
	var batch []*backends.Request
	for _, s := range steps {
		r := vreq(backends.Standard, at(s.arrive), msd(20), 1)
		batch = append(batch, r)
		mustEnqueue(t, c, at(s.arrive), r)
		if bs := c.Poll(at(s.arrive), false, nil); len(bs) != 0 {
			t.Fatalf("at %v ms: dispatched early", s.arrive)
		}
		wantNext(t, c, at(s.due))
	}
	bs := c.Poll(at(8), false, nil)
	if len(bs) != 1 || !slices.Equal(ids(bs[0].Members), ids(batch)) {
		t.Fatalf("at 8 ms: batches %+v, want the 4 requests", bs)
	}
	// Done at 8 + L(4) = 17 ms ≤ 20 ms.
	if end := at(8).Add(linPred{msd(5), msd(1)}.BatchLatency(0, nil, 4, 0, backends.Standard)); end.After(at(20)) {
		t.Errorf("batch ends at %v", end.Sub(t0))
	}

	// The variant: had a fifth request arrived at 7 ms, the gap EWMA becomes
	// 2 + 0.2·(1 − 2) = 1.8 ms, W = 20 − L(6) = 9 and due = min(9 − 1.8,
	// (9 + 7)/2) = 7.2 ms: five rows dispatched at 7.2 ms, done at 17.2 ms.
	c = newTestCore(Config{MaxBatchSize: 8}, linPred{msd(5), msd(1)})
	mustEnqueue(t, c, at(-2), vreq(backends.Standard, at(-2), msd(20), 1))
	c.Poll(at(-2), true, nil)
	for _, a := range []float64{0, 2, 4, 6, 7} {
		mustEnqueue(t, c, at(a), vreq(backends.Standard, at(a), msd(20), 1))
		if a < 7 {
			if bs := c.Poll(at(a), false, nil); len(bs) != 0 {
				t.Fatalf("at %v ms: dispatched early", a)
			}
		}
	}
	wantNext(t, c, at(7.2))
	if bs := c.Poll(at(7), false, nil); len(bs) != 0 {
		t.Fatalf("variant: dispatched at 7 ms")
	}
	if bs := c.Poll(at(7.2), false, nil); len(bs) != 1 || bs[0].Rows != 5 {
		t.Fatalf("variant: batches %+v, want one of 5 rows", bs)
	}
}

func TestAdaptiveBestSize(t *testing.T) {
	// L(n) = 4 ms for n ≤ 4, then 4 ms + 2 ms·(n−4): throughput peaks at 4.
	c := newTestCore(Config{MaxBatchSize: 8}, kneePred{})
	for i := range 4 {
		r := vreq(backends.Standard, at(float64(i)*0.1), msd(1000), 1)
		mustEnqueue(t, c, at(float64(i)*0.1), r)
		bs := c.Poll(at(float64(i)*0.1), false, nil)
		if i == 0 {
			continue // the first arrival has no rate: alone at once
		}
		if i < 3 && len(bs) != 0 {
			t.Fatalf("dispatched at %d rows", i)
		}
		if i == 3 && (len(bs) != 0 || c.Len() != 3) {
			t.Fatalf("i=3: %d batches, %d queued", len(bs), c.Len())
		}
	}
	r := vreq(backends.Standard, at(0.4), msd(1000), 1)
	mustEnqueue(t, c, at(0.4), r)
	bs := c.Poll(at(0.4), false, nil)
	if len(bs) != 1 || bs[0].Rows != 4 {
		t.Fatalf("at the best size 4: %+v", bs)
	}
}

type kneePred struct{}

func (kneePred) BatchLatency(_ int, _ *backends.Model, rows, _ int, _ backends.Priority) time.Duration {
	return msd(4) + msd(2)*time.Duration(max(rows-4, 0))
}

func TestAdaptiveNoTargetUsesIdleAndDelay(t *testing.T) {
	c := newTestCore(Config{MaxBatchSize: 8, MaxQueueDelay: msd(10)}, linPred{msd(5), msd(1)})
	mustEnqueue(t, c, at(0), vreq(backends.Standard, at(0), 0, 1))
	c.Poll(at(0), true, nil) // no rate yet: alone at once
	mustEnqueue(t, c, at(1), vreq(backends.Standard, at(1), 0, 1))
	// Busy backend: hold until the queue delay is spent (1 + 10 ms).
	if bs := c.Poll(at(1), false, nil); len(bs) != 0 {
		t.Fatal("dispatched while busy")
	}
	wantNext(t, c, at(11))
	// Idle backend: ĝ = 1 ms; w = 11 ms; due = min(11 − 1, (11 + 1)/2) = 6 ms.
	if bs := c.Poll(at(1), true, nil); len(bs) != 0 {
		t.Fatal("dispatched before the idle rule")
	}
	wantNext(t, c, at(6))
	if bs := c.Poll(at(6), true, nil); len(bs) != 1 {
		t.Fatalf("idle at 6 ms: %d batches", len(bs))
	}
}

// TestAdaptiveNeverMissesAvoidably drives random traffic (mixed classes,
// rows and targets) and checks every batch at its dispatch time: each member
// whose target a batch of its own would meet is met by the batch.
func TestAdaptiveNeverMissesAvoidably(t *testing.T) {
	pred := linPred{msd(3), msd(0.5)}
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := range 20 {
		c := newTestCore(Config{MaxBatchSize: 16}, pred)
		now := at(0)
		var bs []Batch
		check := func() {
			for _, b := range bs {
				l := pred.BatchLatency(0, nil, b.Rows, 0, backends.Standard)
				for _, m := range b.Members {
					alone := pred.BatchLatency(0, nil, m.Rows, 0, backends.Standard)
					tg := m.Arrival.Add(m.SLO.E2E)
					if m.SLO.E2E > 0 && !now.Add(alone).After(tg) && now.Add(l).After(tg) {
						t.Fatalf("trial %d at %v: %s (target %v) misses in a batch of %d rows; alone it would meet it",
							trial, now.Sub(t0), m.ID, tg.Sub(t0), b.Rows)
					}
				}
			}
		}
		for range 300 {
			arr := now.Add(time.Duration(rng.ExpFloat64() * float64(msd(0.7))))
			// Decisions falling due before the next arrival.
			for {
				nx, ok := c.Next()
				if !ok || nx.After(arr) {
					break
				}
				now = nx
				bs = c.Poll(now, rng.IntN(2) == 0, bs[:0])
				check()
			}
			now = arr
			var e2e time.Duration
			if rng.IntN(5) > 0 {
				e2e = msd(4 + rng.Float64()*20)
			}
			r := vreq(backends.Priority(rng.IntN(3)), now, e2e, 1+rng.IntN(4))
			mustEnqueue(t, c, now, r)
			bs = c.Poll(now, rng.IntN(2) == 0, bs[:0])
			check()
		}
	}
}

func TestFullQueueRefuses(t *testing.T) {
	c := newTestCore(Config{Mode: ModeFixed, MaxQueueSize: 2, MaxQueueDelay: msd(100), MaxBatchSize: 8}, nil)
	mustEnqueue(t, c, at(0), vreq(backends.Standard, at(0), 0, 1))
	mustEnqueue(t, c, at(0), vreq(backends.Standard, at(0), 0, 1))
	err := c.Enqueue(at(0), vreq(backends.Critical, at(0), 0, 1))
	if !errors.Is(err, backends.ErrShed) {
		t.Fatalf("third request: %v, want ErrShed", err)
	}
	if c.Len() != 2 {
		t.Errorf("Len = %d", c.Len())
	}
}

func TestEnqueueErrors(t *testing.T) {
	c := newTestCore(Config{}, nil)
	r := vreq(backends.Standard, at(0), 0, 1)
	mustEnqueue(t, c, at(0), r)
	if err := c.Enqueue(at(0), r); !errors.Is(err, backends.ErrBadRequest) {
		t.Errorf("duplicate: %v", err)
	}
	if err := c.Enqueue(at(0), &backends.Request{ID: "x", Model: "nope"}); !errors.Is(err, backends.ErrUnknownModel) {
		t.Errorf("unknown model: %v", err)
	}
}

func TestDeadlineDropNeverDispatches(t *testing.T) {
	c := newTestCore(Config{Mode: ModeFixed, MaxBatchSize: 8, MaxQueueDelay: msd(10)}, nil)
	a := vreq(backends.Standard, at(0), 0, 1)
	a.Deadline = at(5)
	b := vreq(backends.Standard, at(0), 0, 1)
	mustEnqueue(t, c, at(0), a)
	mustEnqueue(t, c, at(0), b)
	wantNext(t, c, at(5))
	// Poll past a's deadline without Drop: a is set aside, not dispatched.
	if bs := c.Poll(at(6), true, nil); len(bs) != 0 {
		t.Fatalf("batches %+v", bs)
	}
	wantNext(t, c, at(6)) // a waits for Drop
	dropped := c.Drop(at(6), nil)
	if len(dropped) != 1 || dropped[0] != a {
		t.Fatalf("dropped %v, want [a]", ids(dropped))
	}
	if d := c.Drop(at(7), nil); len(d) != 0 {
		t.Fatalf("dropped twice: %v", ids(d))
	}
	bs := c.Poll(at(10), true, nil)
	if len(bs) != 1 || len(bs[0].Members) != 1 || bs[0].Members[0] != b {
		t.Fatalf("batches %+v, want [b]", bs)
	}
}

func TestCancelRemoves(t *testing.T) {
	c := newTestCore(Config{Mode: ModeFixed, MaxBatchSize: 8, MaxQueueDelay: msd(10)}, nil)
	a, b := vreq(backends.Standard, at(0), 0, 1), vreq(backends.Standard, at(0), 0, 1)
	a.Deadline = at(100)
	mustEnqueue(t, c, at(0), a)
	mustEnqueue(t, c, at(0), b)
	if r, ok := c.Cancel(a.ID); !ok || r != a {
		t.Fatal("Cancel did not find a")
	}
	if _, ok := c.Cancel(a.ID); ok {
		t.Fatal("Cancel found a twice")
	}
	bs := c.Poll(at(10), true, nil)
	if len(bs) != 1 || !slices.Equal(ids(bs[0].Members), []string{b.ID}) {
		t.Fatalf("batches %+v", bs)
	}
	if d := c.Drop(at(200), nil); len(d) != 0 {
		t.Fatalf("canceled request dropped: %v", ids(d))
	}
}

func TestCloseReturnsEverything(t *testing.T) {
	c := newTestCore(Config{Mode: ModeFixed, MaxBatchSize: 8, MaxQueueDelay: msd(10)}, nil)
	var all []string
	for i := range 5 {
		r := vreq(backends.Priority(i%3), at(0), 0, 1)
		if i == 0 {
			r.Deadline = at(1)
		}
		mustEnqueue(t, c, at(0), r)
		all = append(all, r.ID)
	}
	lr := &backends.Request{ID: "llm", Op: backends.OpChat, Model: "llama", N: 9}
	mustEnqueue(t, c, at(0), lr)
	all = append(all, lr.ID)
	c.Poll(at(2), false, nil) // sets the expired one aside (and admits the LLM request? it needs 9 > 4 slots, but all are free)
	got := ids(c.Close(nil))
	if c.Len() != 0 {
		t.Errorf("Len after Close = %d", c.Len())
	}
	slices.Sort(got)
	want := slices.Clone(all)
	slices.Sort(want)
	// The LLM request was admitted by Poll (all slots free), so it is not queued.
	want = slices.DeleteFunc(want, func(s string) bool { return s == "llm" })
	if !slices.Equal(got, want) {
		t.Errorf("Close returned %v, want %v", got, want)
	}
	if err := c.Enqueue(at(3), vreq(backends.Standard, at(3), 0, 1)); !errors.Is(err, backends.ErrUnavailable) {
		t.Errorf("Enqueue after Close: %v", err)
	}
}

func TestAdmissionReleasesOnSlotsFree(t *testing.T) {
	c := newTestCore(Config{}, nil) // 4 slots
	llm := func(id string, p backends.Priority, n int) *backends.Request {
		return &backends.Request{ID: id, Op: backends.OpChat, Model: "llama", Priority: p, N: n}
	}
	big := llm("big", backends.Standard, 3)
	crit := llm("crit", backends.Critical, 2)
	small := llm("small", backends.Sheddable, 1)
	late := llm("late", backends.Critical, 1)
	for _, r := range []*backends.Request{big, crit, small} {
		mustEnqueue(t, c, at(0), r)
	}
	bs := c.Poll(at(0), true, nil)
	// crit (2 slots) first; big needs 3 of the 2 left: it and everything
	// behind it wait, in order.
	if len(bs) != 1 || bs[0].Members[0] != crit || bs[0].Kind != KindAdmission || bs[0].Rows != 2 {
		t.Fatalf("batches %+v, want [crit]", bs)
	}
	if free, _ := c.Slots(); free != 2 {
		t.Fatalf("free slots = %d", free)
	}
	if _, ok := c.Next(); ok {
		t.Error("Next reports a decision while the head does not fit")
	}
	mustEnqueue(t, c, at(1), late)
	bs = c.Poll(at(1), true, bs[:0]) // late is critical: ahead of big, and fits
	if len(bs) != 1 || bs[0].Members[0] != late {
		t.Fatalf("batches %+v, want [late]", bs)
	}
	c.SlotsFree(1) // 2 free: big still does not fit
	if bs = c.Poll(at(2), true, bs[:0]); len(bs) != 0 {
		t.Fatalf("batches %+v, want none", bs)
	}
	c.SlotsFree(2) // 4 free
	bs = c.Poll(at(3), true, bs[:0])
	var got []string
	for _, b := range bs {
		got = append(got, ids(b.Members)...)
	}
	if !slices.Equal(got, []string{"big", "small"}) {
		t.Fatalf("released %v, want [big small]", got)
	}
}

func TestIncompatibleTensorsSplitBatches(t *testing.T) {
	c := newTestCore(Config{Mode: ModeFixed, MaxBatchSize: 8, MaxQueueDelay: msd(1)}, nil)
	a, b, d := vreq(backends.Standard, at(0), 0, 1), vreq(backends.Standard, at(0), 0, 1), vreq(backends.Standard, at(0), 0, 1)
	b.Tensors[0].Shape = []int64{1, 3}
	b.Tensors[0].Data = make([]byte, 12)
	for _, r := range []*backends.Request{a, b, d} {
		mustEnqueue(t, c, at(0), r)
	}
	bs := c.Poll(at(1), true, nil)
	if len(bs) != 3 {
		t.Fatalf("%d batches, want 3 (the odd shape in the middle splits them)", len(bs))
	}
}

func TestEvict(t *testing.T) {
	c := newTestCore(Config{Mode: ModeFixed, MaxBatchSize: 8, MaxQueueDelay: msd(100)}, linPred{msd(5), msd(1)})
	tight := vreq(backends.Standard, at(0), msd(10), 1)
	loose := vreq(backends.Standard, at(0), msd(50), 1)
	none := vreq(backends.Standard, at(0), 0, 1)
	for _, r := range []*backends.Request{tight, loose, none} {
		mustEnqueue(t, c, at(0), r)
	}
	// At 5 ms: tight needs 5 + 6 = 11 > 10.
	out := c.Evict(at(5), nil)
	if len(out) != 1 || out[0] != tight || c.Len() != 2 {
		t.Fatalf("evicted %v (Len %d), want [tight]", ids(out), c.Len())
	}
}

// expPred predicts latencies at a class margin twice the expected ones.
type expPred struct{ linPred }

func (p expPred) BatchLatency(b int, m *backends.Model, rows, tokens int, prio backends.Priority) time.Duration {
	return 2 * p.linPred.BatchLatency(b, m, rows, tokens, prio)
}

func (p expPred) ExpectedLatency(b int, m *backends.Model, rows, tokens int) time.Duration {
	return p.linPred.BatchLatency(b, m, rows, tokens, backends.Standard)
}

// TestEvictExpected: with a predictor that has an expectation (Expecter),
// Evict hands back only the requests that miss even the expected latency; a
// request that misses only at its class margin stays.
func TestEvictExpected(t *testing.T) {
	c := newTestCore(Config{Mode: ModeFixed, MaxBatchSize: 8, MaxQueueDelay: msd(100)}, expPred{linPred{msd(5), msd(1)}})
	tight := vreq(backends.Standard, at(0), msd(10), 1)
	margin := vreq(backends.Standard, at(0), msd(14), 1)
	for _, r := range []*backends.Request{tight, margin} {
		mustEnqueue(t, c, at(0), r)
	}
	// At 5 ms: expected 5 + 6 = 11 misses tight's 10 and meets margin's 14,
	// which the margin's 5 + 12 = 17 would miss.
	out := c.Evict(at(5), nil)
	if len(out) != 1 || out[0] != tight || c.Len() != 1 {
		t.Fatalf("evicted %v (Len %d), want [tight]", ids(out), c.Len())
	}
}

func TestVersionsAreSeparateQueues(t *testing.T) {
	c := newTestCore(Config{Mode: ModeFixed, MaxBatchSize: 8, MaxQueueDelay: msd(1)}, nil)
	a, b, d := vreq(backends.Standard, at(0), 0, 1), vreq(backends.Standard, at(0), 0, 1), vreq(backends.Standard, at(0), 0, 1)
	b.ModelVersion = "2"
	d.ModelVersion = "1" // the default version: same queue as a
	for _, r := range []*backends.Request{a, b, d} {
		mustEnqueue(t, c, at(0), r)
	}
	bs := c.Poll(at(1), true, nil)
	if len(bs) != 2 || bs[0].Rows+bs[1].Rows != 3 {
		t.Fatalf("batches %+v", bs)
	}
	for _, b := range bs {
		if b.Version == "1" && !slices.Equal(ids(b.Members), []string{a.ID, d.ID}) {
			t.Errorf("version 1 batch = %v", ids(b.Members))
		}
	}
}

func TestProfileCapsMaxBatch(t *testing.T) {
	prof := &backends.Profile{Name: "p", Vision: &backends.BatchModel{MaxBatch: 2, PerItemMs: 1}}
	c := NewCore(Options{Models: testModels, Profile: prof, Configs: map[string]Config{"resnet": {Mode: ModeFixed, MaxBatchSize: 64}}})
	for range 5 {
		mustEnqueue(t, c, at(0), vreq(backends.Standard, at(0), 0, 1))
	}
	bs := c.Poll(at(0), true, nil)
	if len(bs) != 2 || bs[0].Rows != 2 || bs[1].Rows != 2 || c.Len() != 1 {
		t.Fatalf("batches %+v, Len %d", bs, c.Len())
	}
	if err := c.Enqueue(at(0), &backends.Request{ID: "e", Op: backends.OpEmbedding, Model: "bge", Inputs: []string{"x"}}); !errors.Is(err, backends.ErrUnavailable) {
		t.Errorf("embedding on a profile without embeddings: %v", err)
	}
}

// A client that sends its next request only when the previous one is
// answered (closed loop, one at a time) never brings company: after
// futileLimit holds that end alone, an idle backend runs each request the
// moment it arrives. A burst that queues while the backend is busy forms a
// batch again, and then holding resumes.
func TestAdaptiveStopsHoldingForSequentialClient(t *testing.T) {
	c := newTestCore(Config{MaxBatchSize: 8}, linPred{base: msd(5), per: msd(1)})
	now := at(0)
	var held []time.Duration
	for i := 0; i < 8; i++ {
		r := vreq(backends.Standard, now, msd(200), 1)
		if err := c.Enqueue(now, r); err != nil {
			t.Fatal(err)
		}
		due, ok := c.Next()
		if !ok {
			t.Fatal("nothing due with a request queued")
		}
		if due.Before(now) {
			due = now
		}
		held = append(held, due.Sub(now))
		bs := c.Poll(due, true, nil)
		if len(bs) != 1 || len(bs[0].Members) != 1 || bs[0].Members[0] != r {
			t.Fatalf("request %d: want it dispatched alone at %v, got %d batches", i, due, len(bs))
		}
		now = due.Add(msd(6)) // the answer comes back; the client sends the next at once
	}
	// The first request has no arrival rate to wait for; the next
	// futileLimit requests are held, every later one is not.
	if held[0] != 0 {
		t.Errorf("first request held %v", held[0])
	}
	for i := 1; i <= futileLimit; i++ {
		if held[i] == 0 {
			t.Errorf("request %d was not held: the rule should still expect company", i)
		}
	}
	for i := futileLimit + 1; i < len(held); i++ {
		if held[i] != 0 {
			t.Errorf("request %d held %v after %d futile holds", i, held[i], futileLimit)
		}
	}

	// Three requests queue while the backend is busy: one batch of three
	// forms when it frees up, which resets the count, so an idle backend
	// holds again.
	for i := 0; i < 3; i++ {
		now = now.Add(msd(1))
		if err := c.Enqueue(now, vreq(backends.Standard, now, msd(200), 1)); err != nil {
			t.Fatal(err)
		}
	}
	if bs := c.Poll(now, false, nil); len(bs) != 0 {
		t.Fatalf("busy backend: dispatched %d batches before the deadline rule", len(bs))
	}
	bs := c.Poll(now, true, nil)
	if len(bs) != 1 || len(bs[0].Members) != 3 {
		t.Fatalf("want one batch of 3 when the backend frees up, got %v", bs)
	}
	now = now.Add(msd(2))
	if err := c.Enqueue(now, vreq(backends.Standard, now, msd(200), 1)); err != nil {
		t.Fatal(err)
	}
	if due, _ := c.Next(); !due.After(now) {
		t.Errorf("after a batch of 3 an idle backend should hold again; due %v, now %v", due, now)
	}
}

// TryAdmit: an uncontended LLM request takes its slots at once; it never
// jumps a request already waiting, nor takes slots that are not free.
func TestTryAdmitFastPath(t *testing.T) {
	c := newTestCore(Config{}, nil) // 4 slots
	llm := func(n int) *backends.Request {
		nextID++
		return &backends.Request{ID: fmt.Sprint("l", nextID), Op: backends.OpChat, Model: "llama", Priority: backends.Standard, N: n}
	}
	if !c.TryAdmit(llm(3)) {
		t.Fatal("3 of 4 free slots, nobody waiting: not admitted at once")
	}
	if free, _ := c.Slots(); free != 1 {
		t.Fatalf("%d slots free after taking 3, want 1", free)
	}
	if c.TryAdmit(llm(2)) {
		t.Fatal("admitted 2 sequences with 1 slot free")
	}
	waiting := llm(2)
	mustEnqueue(t, c, at(0), waiting)
	c.SlotsFree(3)
	if c.TryAdmit(llm(1)) {
		t.Fatal("jumped a request waiting in the admission queue")
	}
	if bs := c.Poll(at(0), true, nil); len(bs) != 1 || bs[0].Members[0] != waiting {
		t.Fatalf("the waiting request was not released first: %v", bs)
	}
	if !c.TryAdmit(llm(1)) {
		t.Fatal("queue empty and slots free, but not admitted")
	}
	c.Close(nil)
	if c.TryAdmit(llm(1)) {
		t.Fatal("admitted on a closed core")
	}
}

// classPred predicts base + per·rows at the standard margin and twice that
// at the critical one.
type classPred struct{ linPred }

func (p classPred) BatchLatency(b int, m *backends.Model, rows, tokens int, prio backends.Priority) time.Duration {
	l := p.linPred.BatchLatency(b, m, rows, tokens, prio)
	if prio == backends.Critical {
		l *= 2
	}
	return l
}

// The deadline rule checks a target at the margin of its request's class:
// the same 40 ms target is planned with the critical prediction when a
// critical request holds it.
func TestAdaptivePlansEachTargetAtItsClassMargin(t *testing.T) {
	for _, tc := range []struct {
		prio backends.Priority
		due  float64
	}{
		// W = 40 − L(3); due = min(W − 2, (W + 2) / 2).
		{backends.Standard, 17}, // L(3) = 8 ms: W = 32
		{backends.Critical, 13}, // L(3) = 16 ms: W = 24
	} {
		c := newTestCore(Config{Mode: ModeAdaptive, MaxBatchSize: 8}, classPred{linPred{msd(5), msd(1)}})
		mustEnqueue(t, c, at(0), vreq(tc.prio, at(0), msd(40), 1))
		c.Poll(at(0), true, nil) // the first goes at once: no arrival rate yet
		mustEnqueue(t, c, at(2), vreq(tc.prio, at(2), msd(38), 1))
		mustEnqueue(t, c, at(2), vreq(tc.prio, at(2), msd(38), 1))
		wantNext(t, c, at(tc.due))
	}
}
