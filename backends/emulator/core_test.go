package emulator

import (
	"errors"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/accelgate/accelgate/backends"
)

var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// testProfile is a profile with round numbers; price 3.6 USD/h = 0.001 USD/s.
func testProfile(maxConc int) *backends.Profile {
	return &backends.Profile{
		Name: "test", Kind: backends.KindGPU, PricePerHour: 3.6, MemoryGB: 80,
		LLM: &backends.LLMModel{
			PrefillBaseMs: 10, PrefillMsPer1kTokens: 100,
			DecodeBaseMs: 20, DecodePerSeqMs: 1,
			MaxConcurrency: maxConc, Source: "test",
		},
		Vision:    &backends.BatchModel{BaseMs: 5, PerItemMs: 2, MaxBatch: 32, Executors: 2, Source: "test"},
		Embedding: &backends.BatchModel{BaseMs: 3, PerItemMs: 0.5, PerKTokensMs: 4, MaxBatch: 4, Executors: 1, Source: "test"},
	}
}

const testPricePerSec = 3.6 / 3600

type rec struct {
	Kind   EventKind
	At     time.Time
	Job    uint64
	Seqs   []SeqRef
	Timing backends.Timing
	Cost   float64
}

// advanceTo advances c to now, copying the events out.
func advanceTo(c *Core, now time.Time, out []rec) []rec {
	for _, ev := range c.Advance(now, nil) {
		out = append(out, rec{ev.Kind, ev.At, ev.Job, append([]SeqRef(nil), ev.Seqs...), ev.Timing, ev.CostUSD})
	}
	return out
}

// drain runs c until it is idle.
func drain(t testing.TB, c *Core, out []rec) []rec {
	for i := 0; ; i++ {
		next, ok := c.Next()
		if !ok {
			return out
		}
		if i > 1e6 {
			t.Fatal("core does not go idle")
		}
		out = advanceTo(c, next, out)
	}
}

func doneOf(rs []rec, job uint64) rec {
	for _, r := range rs {
		if r.Kind == EventDone && r.Job == job {
			return r
		}
	}
	return rec{}
}

// tokenTimes lists when each token of (job, seq) reached the caller.
func tokenTimes(rs []rec, job uint64, seq int32) []time.Time {
	var ts []time.Time
	for _, r := range rs {
		for _, s := range r.Seqs {
			if s.Job == job && s.Seq == seq {
				if int(s.Token) != len(ts) {
					panic("tokens out of order")
				}
				ts = append(ts, r.At)
			}
		}
	}
	return ts
}

func mustSubmit(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestSingleRequestTiming(t *testing.T) {
	p := testProfile(8)
	rtt := 20 * time.Millisecond
	c := NewCore(p, p.PricePerHour, rtt, Config{}, nil)
	mustSubmit(t, c.SubmitLLM(t0, &LLMJob{ID: 1, PromptTokens: 500, OutputTokens: []int{5}, Stream: true}))
	if next, _ := c.Next(); !next.Equal(t0.Add(rtt / 2)) {
		t.Fatalf("arrival at %v, want rtt/2", next.Sub(t0))
	}
	rs := drain(t, c, nil)

	prefill := p.LLM.PrefillTime(500)
	dec := p.LLM.DecodeStep(1)
	ts := tokenTimes(rs, 1, 0)
	if len(ts) != 5 {
		t.Fatalf("%d tokens, want 5", len(ts))
	}
	if got, want := ts[0].Sub(t0), rtt/2+prefill+rtt/2; got != want {
		t.Errorf("first token after %v, want %v", got, want)
	}
	for i := 1; i < 5; i++ {
		if gap := ts[i].Sub(ts[i-1]); gap != dec {
			t.Errorf("gap %d = %v, want %v", i, gap, dec)
		}
	}
	d := doneOf(rs, 1)
	want := backends.Timing{
		QueueWait: 0,
		TTFT:      rtt + prefill,
		Total:     rtt + prefill + 4*dec,
		Busy:      prefill + 4*dec,
	}
	if d.Timing != want {
		t.Errorf("timing %+v, want %+v", d.Timing, want)
	}
	if math.Abs(d.Cost-want.Busy.Seconds()*testPricePerSec) > 1e-12 {
		t.Errorf("cost %v, want %v", d.Cost, want.Busy.Seconds()*testPricePerSec)
	}
	// The first-token event comes with the first token; done comes last.
	var kinds []EventKind
	for _, r := range rs {
		kinds = append(kinds, r.Kind)
	}
	if kinds[0] != EventTokens || kinds[1] != EventFirstToken || kinds[len(kinds)-1] != EventDone {
		t.Errorf("event order %v", kinds)
	}
	if s := c.Stats(); s != (Stats{BusyTime: prefill + 4*dec}) {
		t.Errorf("stats after the job: %+v", s)
	}
}

// probe measures a probe job's TTFT and inter-token gap while k long
// sequences decode.
func probe(t *testing.T, k int) (ttft, gap time.Duration) {
	p := testProfile(64)
	c := NewCore(p, p.PricePerHour, 0, Config{}, nil)
	long := make([]int, k)
	for i := range long {
		long[i] = 1000
	}
	mustSubmit(t, c.SubmitLLM(t0, &LLMJob{ID: 1, PromptTokens: 100, OutputTokens: long}))
	at := t0.Add(500 * time.Millisecond)
	rs := advanceTo(c, at, nil)
	mustSubmit(t, c.SubmitLLM(at, &LLMJob{ID: 2, PromptTokens: 100, OutputTokens: []int{10}, Stream: true}))
	rs = drain(t, c, rs)
	ts := tokenTimes(rs, 2, 0)
	return doneOf(rs, 2).Timing.TTFT, ts[len(ts)-1].Sub(ts[len(ts)-2])
}

func TestTTFTAndGapGrowWithActive(t *testing.T) {
	p := testProfile(64)
	var lastTTFT, lastGap time.Duration
	for _, k := range []int{1, 16, 48} {
		ttft, gap := probe(t, k)
		if want := p.LLM.DecodeStep(k + 1); gap != want {
			t.Errorf("k=%d: gap %v, want DecodeStep(%d) = %v", k, gap, k+1, want)
		}
		if ttft <= lastTTFT || gap <= lastGap {
			t.Errorf("k=%d: TTFT %v, gap %v do not grow (before: %v, %v)", k, ttft, gap, lastTTFT, lastGap)
		}
		// TTFT: wait for the running decode step, then the prefill.
		if ttft < p.LLM.PrefillTime(100) || ttft > p.LLM.PrefillTime(100)+p.LLM.DecodeStep(k) {
			t.Errorf("k=%d: TTFT %v outside [prefill, prefill+step]", k, ttft)
		}
		lastTTFT, lastGap = ttft, gap
	}
}

func TestPrefillDelaysDecode(t *testing.T) {
	p := testProfile(8)
	c := NewCore(p, p.PricePerHour, 0, Config{}, nil)
	mustSubmit(t, c.SubmitLLM(t0, &LLMJob{ID: 1, PromptTokens: 100, OutputTokens: []int{20}, Stream: true}))
	// Submit B in the middle of A's third decode step.
	pre := p.LLM.PrefillTime(100)
	dec1 := p.LLM.DecodeStep(1)
	at := t0.Add(pre + 2*dec1 + dec1/2)
	rs := advanceTo(c, at, nil)
	mustSubmit(t, c.SubmitLLM(at, &LLMJob{ID: 2, PromptTokens: 2000, OutputTokens: []int{3}, Stream: true}))
	rs = drain(t, c, rs)
	ta := tokenTimes(rs, 1, 0)
	tb := tokenTimes(rs, 2, 0)
	// A's tokens: 0 at pre, 1..3 each dec1 later; then B's prefill, then
	// decode steps with two sequences.
	if got := ta[3].Sub(t0); got != pre+3*dec1 {
		t.Fatalf("A token 3 at %v, want %v", got, pre+3*dec1)
	}
	preB := p.LLM.PrefillTime(2000)
	if got := tb[0].Sub(ta[3]); got != preB {
		t.Errorf("B first token %v after A's token 3, want prefill %v", got, preB)
	}
	if got, want := ta[4].Sub(ta[3]), preB+p.LLM.DecodeStep(2); got != want {
		t.Errorf("A's gap across B's prefill = %v, want prefill+DecodeStep(2) = %v", got, want)
	}
	if got, want := doneOf(rs, 2).Timing.QueueWait, pre+3*dec1-(at.Sub(t0)); got != want {
		t.Errorf("B queue wait %v, want %v", got, want)
	}
}

func TestWaitsWhenSlotsFull(t *testing.T) {
	p := testProfile(2)
	c := NewCore(p, p.PricePerHour, 0, Config{}, nil)
	for id := uint64(1); id <= 3; id++ {
		mustSubmit(t, c.SubmitLLM(t0, &LLMJob{ID: id, PromptTokens: 100 * int(id), OutputTokens: []int{10}}))
	}
	rs := advanceTo(c, t0, nil)
	if s := c.Stats(); s.ActiveSeqs != 2 || s.WaitingSeqs != 1 {
		t.Fatalf("stats %+v, want 2 active 1 waiting", s)
	}
	rs = drain(t, c, rs)
	pre12 := p.LLM.PrefillTime(300)
	dec2 := p.LLM.DecodeStep(2)
	for _, id := range []uint64{1, 2} {
		d := doneOf(rs, id)
		if d.Timing.TTFT != pre12 || d.Timing.Total != pre12+9*dec2 || d.Timing.QueueWait != 0 {
			t.Errorf("job %d timing %+v", id, d.Timing)
		}
	}
	d3 := doneOf(rs, 3)
	wait := pre12 + 9*dec2
	pre3 := p.LLM.PrefillTime(300)
	want := backends.Timing{QueueWait: wait, TTFT: wait + pre3, Total: wait + pre3 + 9*p.LLM.DecodeStep(1), Busy: pre3 + 9*p.LLM.DecodeStep(1)}
	if d3.Timing != want {
		t.Errorf("job 3 timing %+v, want %+v", d3.Timing, want)
	}
	// Prefill cost split by prompt share (100 vs 200 tokens), decode equally.
	b1, b2 := doneOf(rs, 1).Timing.Busy, doneOf(rs, 2).Timing.Busy
	if want := pre12/3 + 9*dec2/2; absDur(b1-want) > 2 {
		t.Errorf("job 1 busy %v, want %v", b1, want)
	}
	if want := 2*pre12/3 + 9*dec2/2; absDur(b2-want) > 2 {
		t.Errorf("job 2 busy %v, want %v", b2, want)
	}
}

func absDur(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

func TestBatchTimingAndParallelExecutors(t *testing.T) {
	p := testProfile(8)
	rtt := 10 * time.Millisecond
	c := NewCore(p, p.PricePerHour, rtt, Config{}, nil)
	mustSubmit(t, c.SubmitBatch(t0, &BatchJob{ID: 100, Class: ClassVision, Members: []Member{{JobID: 1, Items: 3}, {JobID: 2, Items: 1}}}))
	mustSubmit(t, c.SubmitBatch(t0, &BatchJob{ID: 101, Class: ClassVision, Members: []Member{{JobID: 3, Items: 8}}}))
	mustSubmit(t, c.SubmitBatch(t0, &BatchJob{ID: 102, Class: ClassVision, Members: []Member{{JobID: 4, Items: 2}}}))
	rs := advanceTo(c, t0.Add(rtt/2), nil)
	if s := c.Stats(); s.RunningBatches != 2 || s.QueuedBatches != 1 {
		t.Fatalf("stats %+v: want 2 running (2 executors), 1 queued", s)
	}
	rs = drain(t, c, rs)
	vm := p.Vision
	b4, b8, b2 := vm.BatchTime(4, 0), vm.BatchTime(8, 0), vm.BatchTime(2, 0)
	if b4 != 13*time.Millisecond {
		t.Fatalf("BatchTime(4) = %v, want a + b·items = 13ms", b4)
	}
	for id, want := range map[uint64]backends.Timing{
		1: {TTFT: rtt + b4, Total: rtt + b4, Busy: b4 * 3 / 4},
		2: {TTFT: rtt + b4, Total: rtt + b4, Busy: b4 / 4},
		3: {TTFT: rtt + b8, Total: rtt + b8, Busy: b8},
		4: {QueueWait: b4, TTFT: rtt + b4 + b2, Total: rtt + b4 + b2, Busy: b2},
	} {
		if got := doneOf(rs, id).Timing; got != want {
			t.Errorf("job %d: %+v, want %+v", id, got, want)
		}
	}
	// Embeddings: one executor, token term.
	mustSubmit(t, c.SubmitBatch(t0.Add(time.Second), &BatchJob{Class: ClassEmbedding, Members: []Member{{JobID: 5, Items: 2, Tokens: 1000}}}))
	rs = drain(t, c, nil)
	if got, want := doneOf(rs, 5).Timing.Total, rtt+p.Embedding.BatchTime(2, 1000); got != want || want != 8*time.Millisecond+rtt {
		t.Errorf("embedding total %v, want %v", got, want)
	}
}

func TestCostSumsToBusyTime(t *testing.T) {
	p := testProfile(4)
	c := NewCore(p, p.PricePerHour, 30*time.Millisecond, Config{JitterSigma: 0.2}, rand.New(rand.NewPCG(7, 7)))
	r := rand.New(rand.NewPCG(1, 1))
	now := t0
	var rs []rec
	var jobs int
	for i := range 200 {
		now = now.Add(time.Duration(r.IntN(40)) * time.Millisecond)
		rs = advanceTo(c, now, rs)
		id := uint64(i + 1)
		switch i % 3 {
		case 0, 1:
			outs := make([]int, 1+r.IntN(3))
			for k := range outs {
				outs[k] = 1 + r.IntN(50)
			}
			mustSubmit(t, c.SubmitLLM(now, &LLMJob{ID: id, PromptTokens: r.IntN(2000), OutputTokens: outs, Stream: i%2 == 0}))
		case 2:
			cl := ClassVision
			if i%2 == 0 {
				cl = ClassEmbedding
			}
			mustSubmit(t, c.SubmitBatch(now, &BatchJob{Class: cl, Members: []Member{{JobID: id, Items: 1 + r.IntN(5), Tokens: r.IntN(500)}, {JobID: id + 1000, Items: 2}}}))
			jobs++
		}
		jobs++
	}
	rs = drain(t, c, rs)
	var cost float64
	var busy time.Duration
	var done int
	for _, r := range rs {
		if r.Kind == EventDone {
			cost += r.Cost
			busy += r.Timing.Busy
			done++
		}
	}
	if done != jobs {
		t.Fatalf("%d done, want %d", done, jobs)
	}
	total := c.Stats().BusyTime
	if want := total.Seconds() * testPricePerSec; math.Abs(cost-want) > 1e-9*want {
		t.Errorf("costs sum to %v, want price × busy = %v", cost, want)
	}
	if absDur(busy-total) > time.Duration(done) {
		t.Errorf("busy sums to %v, accelerator busy %v", busy, total)
	}
	if s := c.Stats(); s.Jobs != 0 || s.ActiveSeqs != 0 || s.WaitingSeqs != 0 {
		t.Errorf("stats after drain: %+v", s)
	}
}

func TestCancelFreesSlots(t *testing.T) {
	p := testProfile(1)
	rtt := 10 * time.Millisecond
	c := NewCore(p, p.PricePerHour, rtt, Config{}, nil)
	mustSubmit(t, c.SubmitLLM(t0, &LLMJob{ID: 1, PromptTokens: 100, OutputTokens: []int{1000}, Stream: true}))
	mustSubmit(t, c.SubmitLLM(t0, &LLMJob{ID: 2, PromptTokens: 100, OutputTokens: []int{3}, Stream: true}))
	at := t0.Add(100 * time.Millisecond)
	rs := advanceTo(c, at, nil)
	if s := c.Stats(); s.ActiveSeqs != 1 || s.WaitingSeqs != 1 {
		t.Fatalf("stats %+v", s)
	}
	if !c.Cancel(at, 1) || c.Cancel(at, 1) {
		t.Fatal("Cancel should report a live job once")
	}
	if s := c.Stats(); s.ActiveSeqs != 0 || s.WaitingSeqs != 1 {
		t.Fatalf("after cancel: %+v", s)
	}
	rs = drain(t, c, rs)
	for _, r := range rs {
		if r.At.After(at) && r.Job == 1 {
			t.Fatalf("event for the cancelled job: %+v", r)
		}
		for _, s := range r.Seqs {
			if r.At.After(at) && s.Job == 1 {
				t.Fatalf("token for the cancelled job: %+v", r)
			}
		}
	}
	// B starts when A's running step ends: the slot freed at once.
	d := doneOf(rs, 2)
	if start := d.Timing.QueueWait + rtt/2; start < at.Sub(t0) || start > at.Sub(t0)+p.LLM.DecodeStep(1) {
		t.Errorf("B queue wait %v", d.Timing.QueueWait)
	}

	// Cancel in every state: in flight, waiting, in a batch queue, running
	// batch, and done but not yet delivered; the core ends empty.
	c = NewCore(p, p.PricePerHour, rtt, Config{}, nil)
	mustSubmit(t, c.SubmitLLM(t0, &LLMJob{ID: 1, PromptTokens: 10, OutputTokens: []int{5}}))
	c.Cancel(t0, 1)
	mustSubmit(t, c.SubmitBatch(t0, &BatchJob{Class: ClassEmbedding, Members: []Member{{JobID: 2, Items: 1}}}))
	mustSubmit(t, c.SubmitBatch(t0, &BatchJob{Class: ClassEmbedding, Members: []Member{{JobID: 3, Items: 1}, {JobID: 4, Items: 1}}}))
	mustSubmit(t, c.SubmitLLM(t0, &LLMJob{ID: 5, PromptTokens: 10, OutputTokens: []int{1}}))
	rs = advanceTo(c, t0.Add(rtt/2), nil)
	c.Cancel(t0.Add(rtt/2), 2) // running batch
	c.Cancel(t0.Add(rtt/2), 3) // queued batch, one member left
	// Job 5 finishes at rtt/2 + prefill and is delivered rtt/2 later.
	produced := t0.Add(rtt/2 + p.LLM.PrefillTime(10))
	rs = advanceTo(c, produced, rs)
	c.Cancel(produced, 5)
	rs = drain(t, c, rs)
	for _, r := range rs {
		if r.Kind == EventDone && r.Job != 4 {
			t.Errorf("done for cancelled job %d", r.Job)
		}
	}
	if doneOf(rs, 4).Kind != EventDone {
		t.Error("job 4 did not finish")
	}
	if s := c.Stats(); (s != Stats{BusyTime: s.BusyTime}) {
		t.Errorf("core not empty: %+v", s)
	}
}

func runDeterminism(seed uint64, sigma float64) []rec {
	p := testProfile(4)
	c := NewCore(p, p.PricePerHour, 10*time.Millisecond, Config{JitterSigma: sigma}, rand.New(rand.NewPCG(seed, 0)))
	for i := range 10 {
		c.SubmitLLM(t0.Add(time.Duration(i)*7*time.Millisecond), &LLMJob{ID: uint64(i + 1), PromptTokens: 100 * i, OutputTokens: []int{10 + i, 5}, Stream: true})
	}
	c.SubmitBatch(t0, &BatchJob{Class: ClassVision, Members: []Member{{JobID: 99, Items: 4}}})
	return drain(nil, c, nil)
}

func TestDeterminismAndJitter(t *testing.T) {
	a, b := runDeterminism(1, 0.1), runDeterminism(1, 0.1)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("same seed gave different events")
	}
	if c := runDeterminism(2, 0.1); reflect.DeepEqual(a, c) {
		t.Fatal("different seeds gave the same events")
	}
	if c := runDeterminism(2, 0); !reflect.DeepEqual(c, runDeterminism(3, 0)) {
		t.Fatal("without jitter the seed must not matter")
	}

	// Lognormal: log(step / nominal) ~ N(0, sigma).
	const sigma = 0.1
	p := testProfile(1)
	c := NewCore(p, p.PricePerHour, 0, Config{JitterSigma: sigma}, rand.New(rand.NewPCG(5, 5)))
	const n = 4000
	c.SubmitLLM(t0, &LLMJob{ID: 1, PromptTokens: 10, OutputTokens: []int{n + 1}, Stream: true})
	ts := tokenTimes(drain(t, c, nil), 1, 0)
	nominal := float64(p.LLM.DecodeStep(1))
	var sum, sum2 float64
	for i := 1; i < len(ts); i++ {
		l := math.Log(float64(ts[i].Sub(ts[i-1])) / nominal)
		sum += l
		sum2 += l * l
	}
	mean := sum / n
	sd := math.Sqrt(sum2/n - mean*mean)
	if math.Abs(mean) > 0.01 || math.Abs(sd-sigma) > 0.01 {
		t.Errorf("log jitter mean %.4f sd %.4f, want 0 and %v", mean, sd, sigma)
	}
}

func TestSubmitErrors(t *testing.T) {
	p := testProfile(2)
	c := NewCore(&backends.Profile{Name: "vision-only", Vision: p.Vision}, 1, 0, Config{}, nil)
	if err := c.SubmitLLM(t0, &LLMJob{ID: 1, OutputTokens: []int{1}}); !errors.Is(err, backends.ErrUnavailable) {
		t.Errorf("LLM on a vision profile: %v", err)
	}
	if err := c.SubmitBatch(t0, &BatchJob{Class: ClassEmbedding, Members: []Member{{JobID: 1}}}); !errors.Is(err, backends.ErrUnavailable) {
		t.Errorf("embedding on a vision profile: %v", err)
	}
	mustSubmit(t, c.SubmitBatch(t0, &BatchJob{Class: ClassVision, Members: []Member{{JobID: 1}}}))
	if err := c.SubmitBatch(t0, &BatchJob{Class: ClassVision, Members: []Member{{JobID: 1}}}); err == nil {
		t.Error("duplicate job ID accepted")
	}
}

func TestSetSlowdown(t *testing.T) {
	p := testProfile(8)
	c := NewCore(p, p.PricePerHour, 0, Config{}, nil)
	mustSubmit(t, c.SubmitLLM(t0, &LLMJob{ID: 1, PromptTokens: 100, OutputTokens: []int{10}, Stream: true}))
	pre, dec := p.LLM.PrefillTime(100), p.LLM.DecodeStep(1)
	// Slow down 3× in the middle of the second decode step (not advanced to
	// yet): the steps that started before keep their length, the third and
	// later last 3× as long.
	at := t0.Add(pre + dec + dec/2)
	if err := c.SetSlowdown(at, 3); err != nil {
		t.Fatal(err)
	}
	if f := c.Slowdown(at.Add(-1)); f != 1 {
		t.Errorf("slowdown before the change %v, want 1", f)
	}
	rs := drain(t, c, nil)
	ts := tokenTimes(rs, 1, 0)
	if got := ts[1].Sub(ts[0]); got != dec {
		t.Errorf("gap 1 (started before the slowdown) %v, want %v", got, dec)
	}
	if got := ts[2].Sub(ts[1]); got != dec {
		t.Errorf("gap 2 (running at the slowdown) %v, want %v", got, dec)
	}
	for i := 3; i < len(ts); i++ {
		if got := ts[i].Sub(ts[i-1]); got != 3*dec {
			t.Errorf("gap %d (after the slowdown) %v, want %v", i, got, 3*dec)
		}
	}
	if got, want := doneOf(rs, 1).Timing.Busy, pre+2*dec+7*3*dec; got != want {
		t.Errorf("busy %v, want %v (cost follows the slower steps)", got, want)
	}

	// Batches: one started before the change keeps its time; one after is
	// scaled; factor 1 restores the profile's speed.
	bm := p.Vision
	c = NewCore(p, p.PricePerHour, 0, Config{}, nil)
	mustSubmit(t, c.SubmitBatch(t0, &BatchJob{ID: 1, Class: ClassVision, Members: []Member{{JobID: 1, Items: 1}}}))
	rs = advanceTo(c, t0, nil)
	if err := c.SetSlowdown(t0.Add(time.Millisecond), 2); err != nil {
		t.Fatal(err)
	}
	mustSubmit(t, c.SubmitBatch(t0.Add(time.Millisecond), &BatchJob{ID: 2, Class: ClassVision, Members: []Member{{JobID: 2, Items: 1}}}))
	rs = drain(t, c, rs)
	base := bm.BatchTime(1, 0)
	if got := doneOf(rs, 1).Timing.Total; got != base {
		t.Errorf("batch before the slowdown took %v, want %v", got, base)
	}
	if got := doneOf(rs, 2).Timing.Total; got != 2*base {
		t.Errorf("batch after the slowdown took %v, want %v", got, 2*base)
	}
	end := t0.Add(time.Second)
	if err := c.SetSlowdown(end, 1); err != nil {
		t.Fatal(err)
	}
	mustSubmit(t, c.SubmitBatch(end, &BatchJob{ID: 3, Class: ClassVision, Members: []Member{{JobID: 3, Items: 1}}}))
	rs = drain(t, c, rs)
	if got := doneOf(rs, 3).Timing.Total; got != base {
		t.Errorf("batch after restoring took %v, want %v", got, base)
	}

	for _, f := range []float64{0, -1, math.NaN(), math.Inf(1)} {
		if err := c.SetSlowdown(end, f); err == nil {
			t.Errorf("factor %v accepted", f)
		}
	}
	if err := c.SetSlowdown(t0, 2); err == nil {
		t.Error("a slowdown before the previous one was accepted")
	}
	if f := c.Slowdown(end); f != 1 {
		t.Errorf("a rejected call changed the factor to %v", f)
	}
}
