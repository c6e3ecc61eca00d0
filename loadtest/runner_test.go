package loadtest

import (
	"bytes"
	"context"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/accelgate/accelgate/backends"
)

// virtualClock is a clock whose time moves only when someone sleeps: the
// runner's schedule runs instantly and every wait is exact.
type virtualClock struct {
	mu  sync.Mutex
	now time.Time
}

func newVirtualClock() *virtualClock {
	return &virtualClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
}

func (c *virtualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *virtualClock) SleepUntil(ctx context.Context, t time.Time) bool {
	c.mu.Lock()
	if t.After(c.now) {
		c.now = t
	}
	c.mu.Unlock()
	return ctx.Err() == nil
}

// sliceSource yields fixed items.
type sliceSource struct {
	items []Item
	i     int
}

func (s *sliceSource) Next(it *Item) bool {
	if s.i >= len(s.items) {
		return false
	}
	*it = s.items[s.i]
	s.i++
	return true
}

// seenCall is what fakeClient saw of one Do.
type seenCall struct {
	seq      int64
	at       time.Duration
	intended time.Time
}

// fakeClient answers every item at once, OK, and remembers the calls. When
// gate is set, each call waits for a token from it.
type fakeClient struct {
	mu       sync.Mutex
	calls    []seenCall
	gate     chan struct{}
	inflight atomic.Int64
	maxSeen  atomic.Int64
}

func (f *fakeClient) Do(ctx context.Context, it *Item, intended time.Time, o *Outcome) {
	n := f.inflight.Add(1)
	for {
		m := f.maxSeen.Load()
		if n <= m || f.maxSeen.CompareAndSwap(m, n) {
			break
		}
	}
	if f.gate != nil {
		<-f.gate
	}
	f.mu.Lock()
	f.calls = append(f.calls, seenCall{it.Seq, it.At, intended})
	f.mu.Unlock()
	o.Item = it
	o.Status, o.Kind, o.OK = 200, KindOK, true
	o.Latency, o.TTFT = time.Millisecond, time.Millisecond
	o.ITL = append(o.ITL, time.Millisecond)
	o.Hardware, o.CostUSD = "h100-sxm-80gb", 1e-6
	f.inflight.Add(-1)
}

func (f *fakeClient) Close() error { return nil }

// countingRecorder wraps a real Recorder's inputs check: it counts Record
// calls per Seq.
func checkCalls(t *testing.T, f *fakeClient, items []Item, start time.Time) {
	t.Helper()
	seen := map[int64]int{}
	for _, c := range f.calls {
		seen[c.seq]++
		want := start.Add(c.at)
		// Every item is measured from its intended time, or — sent early
		// inside the batch window — from when it was actually sent.
		if c.intended.After(want) || c.intended.Before(want.Add(-batchWindow)) {
			t.Errorf("item %d: measured from %v, intended %v", c.seq, c.intended.Sub(start), c.at)
		}
	}
	for _, it := range items {
		if seen[it.Seq] != 1 {
			t.Errorf("item %d sent %d times", it.Seq, seen[it.Seq])
		}
	}
	if len(f.calls) != len(items) {
		t.Errorf("%d calls for %d items", len(f.calls), len(items))
	}
}

func testItems(n int) []Item {
	items := make([]Item, n)
	at := time.Duration(0)
	for i := range items {
		// Bursts inside the batch window, and gaps that need a sleep.
		switch i % 4 {
		case 0:
			at += 10 * time.Millisecond
		case 1:
			at += 30 * time.Microsecond
		case 2:
			at += batchWindow + time.Microsecond
		case 3:
			at += 0
		}
		items[i] = Item{Seq: int64(i), At: at, Op: backends.OpChat, Priority: backends.Priority(i % 3)}
	}
	return items
}

func TestRunOpenEveryItemOnce(t *testing.T) {
	items := testItems(200)
	clk := newVirtualClock()
	start := clk.Now()
	f := &fakeClient{}
	rec := NewRecorder(RecorderOptions{Name: "t"})
	st, err := RunOpen(context.Background(), &sliceSource{items: items}, RunOptions{Client: f, Recorder: rec, clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	checkCalls(t, f, items, start)
	if st.Offered != 200 || st.Recorded != 200 || st.SentLate != 0 || st.MaxSentLate != 0 {
		t.Errorf("stats %+v", st)
	}
	if want := items[len(items)-1].At; st.Elapsed != want {
		t.Errorf("elapsed %v, want the last item's intended time %v (virtual time)", st.Elapsed, want)
	}
	rep := rec.Report(st.Elapsed)
	if rep.Requests != 200 || rep.OK != 200 || rep.ByHardware["h100-sxm-80gb"].Requests != 200 {
		t.Errorf("report: requests %d ok %d by hardware %v", rep.Requests, rep.OK, rep.ByHardware)
	}
}

func TestRunOpenLimits(t *testing.T) {
	items := testItems(100)
	for _, tc := range []struct {
		opts RunOptions
		want int
	}{
		{RunOptions{Requests: 17}, 17},
		{RunOptions{Duration: items[40].At}, 40},
		{RunOptions{Duration: items[40].At, Requests: 50}, 40},
		{RunOptions{Duration: time.Hour, Requests: 50}, 50},
	} {
		f := &fakeClient{}
		clk := newVirtualClock()
		opts := tc.opts
		opts.Client, opts.Recorder, opts.clock = f, NewRecorder(RecorderOptions{}), clk
		start := clk.Now()
		st, err := RunOpen(context.Background(), &sliceSource{items: items}, opts)
		if err != nil {
			t.Fatal(err)
		}
		if st.Offered != int64(tc.want) || st.Recorded != int64(tc.want) {
			t.Errorf("%+v: stats %+v, want %d", tc.opts, st, tc.want)
		}
		checkCalls(t, f, items[:tc.want], start)
	}
}

func TestRunOpenMaxInflight(t *testing.T) {
	items := testItems(60)
	f := &fakeClient{gate: make(chan struct{})}
	go func() {
		for range items {
			f.gate <- struct{}{}
		}
	}()
	clk := newVirtualClock()
	start := clk.Now()
	st, err := RunOpen(context.Background(), &sliceSource{items: items},
		RunOptions{Client: f, Recorder: NewRecorder(RecorderOptions{}), MaxInflight: 3, clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	if m := f.maxSeen.Load(); m > 3 || m < 1 {
		t.Errorf("saw %d requests in flight, bound 3", m)
	}
	if st.Offered != 60 || st.Recorded != 60 {
		t.Errorf("stats %+v", st)
	}
	checkCalls(t, f, items, start)
}

func TestRunOpenCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	f := &fakeClient{}
	st, err := RunOpen(ctx, &sliceSource{items: testItems(10)},
		RunOptions{Client: f, Recorder: NewRecorder(RecorderOptions{}), clock: newVirtualClock()})
	if err != nil || st.Offered != st.Recorded || st.Offered != 0 {
		t.Errorf("stats %+v err %v", st, err)
	}
}

// lateClock is a virtual clock that jumps ahead after each item, so the
// generator is always behind.
type lateClock struct {
	virtualClock
	step time.Duration
}

func (c *lateClock) SleepUntil(ctx context.Context, t time.Time) bool {
	c.virtualClock.SleepUntil(ctx, t)
	c.mu.Lock()
	c.now = c.now.Add(c.step)
	c.mu.Unlock()
	return true
}

func TestRunOpenSentLate(t *testing.T) {
	items := make([]Item, 10)
	for i := range items {
		items[i] = Item{Seq: int64(i), At: time.Duration(i) * time.Second}
	}
	clk := &lateClock{virtualClock: *newVirtualClock(), step: 200 * time.Millisecond}
	f := &fakeClient{}
	st, err := RunOpen(context.Background(), &sliceSource{items: items},
		RunOptions{Client: f, Recorder: NewRecorder(RecorderOptions{}), clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	// Item 0 is due at once (no sleep); the other nine are each sent 200 ms
	// late and measured from their intended time.
	if st.SentLate != 9 || st.MaxSentLate != 200*time.Millisecond {
		t.Errorf("stats %+v", st)
	}
	for _, c := range f.calls {
		if c.intended.Sub(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)) != c.at {
			t.Errorf("item %d measured from %v, intended %v", c.seq, c.intended, c.at)
		}
	}
}

func TestRunClosed(t *testing.T) {
	clk := newVirtualClock()
	f := &fakeClient{}
	rec := NewRecorder(RecorderOptions{})
	var mixes atomic.Int64
	st, err := RunClosed(context.Background(), ClosedOptions{
		NewMix: func() (Mix, error) { mixes.Add(1); return constMix{}, nil },
		Users:  4, Think: 100 * time.Millisecond, Seed: 3,
	}, RunOptions{Client: f, Recorder: rec, Requests: 41, clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	if st.Offered != 41 || st.Recorded != 41 || mixes.Load() != 4 {
		t.Errorf("stats %+v, %d mixes", st, mixes.Load())
	}
	seqs := map[int64]bool{}
	for _, c := range f.calls {
		if seqs[c.seq] {
			t.Errorf("seq %d twice", c.seq)
		}
		seqs[c.seq] = true
		if c.seq < 0 || c.seq >= 41 {
			t.Errorf("seq %d out of range", c.seq)
		}
	}
	if rep := rec.Report(st.Elapsed); rep.Requests != 41 || rep.OK != 41 {
		t.Errorf("report requests %d ok %d", rep.Requests, rep.OK)
	}

	// A duration limit: users stop starting requests once it has passed.
	clk = newVirtualClock()
	f = &fakeClient{}
	st, err = RunClosed(context.Background(), ClosedOptions{
		NewMix: func() (Mix, error) { return constMix{}, nil }, Users: 2, Think: time.Second,
	}, RunOptions{Client: f, Recorder: NewRecorder(RecorderOptions{}), Duration: 10 * time.Second, clock: clk})
	if err != nil || st.Offered == 0 || st.Offered != st.Recorded || int(st.Offered) != len(f.calls) {
		t.Errorf("duration-limited: stats %+v, %d calls, err %v", st, len(f.calls), err)
	}
	for _, c := range f.calls {
		if c.at >= 10*time.Second || !c.intended.Equal(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(c.at)) {
			t.Errorf("item %d intended %v (At %v)", c.seq, c.intended, c.at)
		}
	}
}

type constMix struct{}

func (constMix) Fill(r *rand.Rand, it *Item) {
	it.Op, it.Model, it.Priority = backends.OpEmbedding, ModelEmbeddings, backends.Standard
	it.Inputs = []string{"x"}
}

func TestRunOptionsErrors(t *testing.T) {
	if _, err := RunOpen(context.Background(), &sliceSource{}, RunOptions{}); err == nil {
		t.Error("RunOpen without a client")
	}
	if _, err := RunClosed(context.Background(), ClosedOptions{}, RunOptions{Client: &fakeClient{}, Recorder: NewRecorder(RecorderOptions{})}); err == nil {
		t.Error("RunClosed without users")
	}
}

func TestProgressLine(t *testing.T) {
	var buf bytes.Buffer
	rec := NewRecorder(RecorderOptions{})
	st, err := RunOpen(context.Background(), &sliceSource{items: testItems(8)},
		RunOptions{Client: &fakeClient{}, Recorder: rec, Progress: &buf, clock: newVirtualClock()})
	if err != nil || st.Recorded != 8 {
		t.Fatal(st, err)
	}
	out := buf.String()
	if !strings.Contains(out, "sent 8") || !strings.HasSuffix(out, "\n") || !strings.Contains(out, "p99") {
		t.Errorf("progress output %q", out)
	}

	s := &runState{opts: &RunOptions{Recorder: rec, MaxInflight: 2}, start: time.Now()}
	s.lagNS.Store(int64(1500 * time.Millisecond))
	s.inflight.Store(2)
	line := string(s.progressLine(nil, time.Now(), 10, 5))
	if !strings.Contains(line, "FALLING BEHIND schedule by 1.5s") || !strings.Contains(line, "max-inflight reached") {
		t.Errorf("no falling-behind warning in %q", line)
	}
}

func TestParseSchedule(t *testing.T) {
	for _, tc := range []struct {
		s   string
		len time.Duration
	}{
		{"step:10s@100,10s@200", 20 * time.Second},
		{"step:1m@5", time.Minute},
		{"ramp:100-500@60s", time.Minute},
		{"ramp:0-10@1s", time.Second},
	} {
		arr, d, err := ParseSchedule(tc.s, WorkloadLLM)
		if err != nil || arr == nil || d != tc.len {
			t.Errorf("%q: %v %v", tc.s, d, err)
		}
	}
	for _, s := range []string{"", "step", "step:", "step:10s", "step:x@1", "step:1s@-1", "ramp:1@1s", "ramp:a-b@1s", "ramp:1-2@0s", "sine:1"} {
		if _, _, err := ParseSchedule(s, WorkloadLLM); err == nil {
			t.Errorf("%q: no error", s)
		}
	}
	// A step schedule sends about its rates: 10 s at 100/s then 10 s at 200/s.
	arr, _, _ := ParseSchedule("step:10s@100,10s@200", WorkloadLLM)
	src := NewSource(arr, constMix{}, 1, Limit{Duration: 20 * time.Second})
	var it Item
	var first, second int
	for src.Next(&it) {
		if it.At < 10*time.Second {
			first++
		} else {
			second++
		}
	}
	if first < 850 || first > 1150 || second < 1750 || second > 2250 {
		t.Errorf("step schedule sent %d then %d, want about 1000 then 2000", first, second)
	}
}
