package router

import (
	"errors"
	"testing"
	"time"

	"github.com/accelgate/accelgate/backends"
)

var t0 = time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)

// Hand-built profiles: "fast" is quick and expensive, "slow" cheap and slow.
func llmProfile(name string, price, decodeBase float64, maxConc int) *backends.Profile {
	return &backends.Profile{
		Name: name, Kind: backends.KindGPU, PricePerHour: price, MemoryGB: 80,
		LLM:    &backends.LLMModel{PrefillBaseMs: 3, PrefillMsPer1kTokens: 20, DecodeBaseMs: decodeBase, DecodePerSeqMs: 0.1, MaxConcurrency: maxConc, Source: "test"},
		Vision: &backends.BatchModel{BaseMs: decodeBase / 4, PerItemMs: 0.1, MaxBatch: 8, Source: "test"},
	}
}

func desc(name string, p *backends.Profile, rtt time.Duration) *backends.Descriptor {
	return &backends.Descriptor{Name: name, Profile: p, Models: []string{"llm", "vis"}, PricePerHour: p.PricePerHour, RTT: rtt}
}

var llmModel = &backends.Model{Name: "llm", Kind: backends.ModelLLM, ExpectedOutputTokens: 100, ContextLength: 8192}
var visModel = &backends.Model{Name: "vis", Kind: backends.ModelTensor}

func chat(prio backends.Priority, tpot time.Duration, stream bool) *backends.Request {
	return &backends.Request{Op: backends.OpChat, Model: "llm", Priority: prio, Stream: stream, N: 1, MaxTokens: 100, EstInputTokens: 500,
		SLO: backends.SLO{TTFT: 2 * time.Second, TPOT: tpot, E2E: 2*time.Second + 100*tpot}}
}

func newRouter(t *testing.T, cfg Config, ds ...*backends.Descriptor) *Router {
	t.Helper()
	r, err := New(cfg, ds, nil)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestPlaceCheapestFeasible(t *testing.T) {
	fast := desc("fast", llmProfile("fast", 10, 5, 100), 0)
	slow := desc("slow", llmProfile("slow", 0.5, 40, 100), 0)
	r := newRouter(t, Config{}, fast, slow)

	// A loose TPOT target: both meet it, the slow one is cheaper per token
	// (0.5 $/h × 40 ms < 10 $/h × 5 ms).
	d, err := r.Place(t0, chat(backends.Standard, 100*time.Millisecond, true), llmModel, -1)
	if err != nil {
		t.Fatal(err)
	}
	if d.Backend != slow || !d.MeetsSLO {
		t.Fatalf("loose SLO: got %s meets=%v, want slow", d.Backend.Name, d.MeetsSLO)
	}
	// A tight TPOT target only the fast backend meets.
	d2, err := r.Place(t0, chat(backends.Standard, 20*time.Millisecond, true), llmModel, -1)
	if err != nil {
		t.Fatal(err)
	}
	if d2.Backend != fast || !d2.MeetsSLO {
		t.Fatalf("tight SLO: got %s, want fast", d2.Backend.Name)
	}
	// Non-streaming requests are judged end to end.
	req := chat(backends.Standard, 20*time.Millisecond, false)
	d3, _ := r.Place(t0, req, llmModel, -1)
	if d3.Backend != fast {
		t.Fatalf("tight e2e: got %s, want fast", d3.Backend.Name)
	}
}

func TestPlaceInfeasibleByPriority(t *testing.T) {
	a := desc("a", llmProfile("a", 1, 30, 100), 0)
	b := desc("b", llmProfile("b", 2, 20, 100), 0)
	r := newRouter(t, Config{}, a, b)
	impossible := 5 * time.Millisecond
	for _, prio := range []backends.Priority{backends.Critical, backends.Standard} {
		d, err := r.Place(t0, chat(prio, impossible, true), llmModel, -1)
		if err != nil {
			t.Fatalf("%v: %v", prio, err)
		}
		if d.Backend != b || d.MeetsSLO {
			t.Fatalf("%v: got %s meets=%v, want the fastest (b) without SLO", prio, d.Backend.Name, d.MeetsSLO)
		}
		r.Done(t0, d, Outcome{})
	}
	_, err := r.Place(t0, chat(backends.Sheddable, impossible, true), llmModel, -1)
	var se *ShedError
	if !errors.As(err, &se) || !errors.Is(err, backends.ErrShed) || se.RetryAfter < time.Second {
		t.Fatalf("sheddable: got %v, want ShedError wrapping ErrShed with RetryAfter >= 1s", err)
	}
	if r.Load(0).InFlight != 0 || r.Load(1).InFlight != 0 {
		t.Fatalf("a refused request must not be charged: %+v %+v", r.Load(0), r.Load(1))
	}
}

func TestQueueMovesTrafficAndDoneReleases(t *testing.T) {
	// Two identical backends with 2 slots each and a TTFT target that leaves
	// no room to queue: the third sequence on one backend would wait, so load
	// spreads; Done releases the books.
	p := llmProfile("x", 1, 10, 2)
	a, b := desc("a", p, 0), desc("b", p, 0)
	r := newRouter(t, Config{}, a, b)
	var decs []Decision
	for i := 0; i < 4; i++ {
		req := chat(backends.Standard, 50*time.Millisecond, true)
		req.SLO.TTFT = 300 * time.Millisecond
		d, err := r.Place(t0, req, llmModel, -1)
		if err != nil {
			t.Fatal(err)
		}
		decs = append(decs, d)
	}
	if r.Load(0).Seqs != 2 || r.Load(1).Seqs != 2 {
		t.Fatalf("want 2 sequences on each backend, got %d and %d", r.Load(0).Seqs, r.Load(1).Seqs)
	}
	// A fifth request must queue somewhere: its prediction carries a wait.
	d5, _ := r.Place(t0, chat(backends.Standard, time.Second, true), llmModel, -1)
	if d5.Prediction.Wait <= 0 {
		t.Fatalf("fifth request: predicted wait %v, want > 0", d5.Prediction.Wait)
	}
	for _, d := range append(decs, d5) {
		r.Done(t0, d, Outcome{})
	}
	if l := r.Load(0); l != (Load{}) {
		t.Fatalf("books not released: %+v", l)
	}
	if l := r.Load(1); l != (Load{}) {
		t.Fatalf("books not released: %+v", l)
	}
}

func TestRTTCountsTowardsSLO(t *testing.T) {
	p := llmProfile("edge", 0.1, 5, 10)
	near := desc("near", llmProfile("dc", 0.2, 5, 10), time.Millisecond)
	far := desc("far", p, 500*time.Millisecond)
	r := newRouter(t, Config{}, near, far)
	req := chat(backends.Standard, 50*time.Millisecond, true)
	req.SLO.TTFT = 300 * time.Millisecond
	d, _ := r.Place(t0, req, llmModel, -1)
	if d.Backend != near {
		t.Fatalf("got %s: a 500 ms round trip cannot meet a 300 ms TTFT", d.Backend.Name)
	}
	if pf := (ProfilePredictor{}).Predict(req, llmModel, far, Load{}); pf.TTFT < 500*time.Millisecond {
		t.Fatalf("far TTFT %v does not include its RTT", pf.TTFT)
	}
}

func TestEjectAfterFailures(t *testing.T) {
	a := desc("a", llmProfile("a", 1, 10, 10), 0)
	b := desc("b", llmProfile("b", 5, 10, 10), 0)
	r := newRouter(t, Config{EjectAfter: 2, EjectFor: time.Minute}, a, b)
	req := chat(backends.Standard, time.Second, true)
	for i := 0; i < 2; i++ {
		d, _ := r.Place(t0, req, llmModel, -1)
		if d.Backend != a {
			t.Fatalf("attempt %d: got %s, want the cheap backend a", i, d.Backend.Name)
		}
		r.Done(t0, d, Outcome{Err: backends.ErrUnavailable})
	}
	if r.Available(0, t0) {
		t.Fatal("a should be ejected after 2 consecutive failures")
	}
	d, _ := r.Place(t0, req, llmModel, -1)
	if d.Backend != b {
		t.Fatalf("got %s while a is ejected", d.Backend.Name)
	}
	r.Done(t0, d, Outcome{})
	if !r.Available(0, t0.Add(time.Minute)) {
		t.Fatal("a should return after EjectFor")
	}
	// Exclusion (retry elsewhere) skips the named backend.
	d, _ = r.Place(t0.Add(time.Minute), req, llmModel, 0)
	if d.Backend != b {
		t.Fatalf("exclude 0: got %s", d.Backend.Name)
	}
	// Every backend down: ErrNoBackend.
	r.SetDown(0, true)
	r.SetDown(1, true)
	if _, err := r.Place(t0, req, llmModel, -1); !errors.Is(err, backends.ErrNoBackend) {
		t.Fatalf("all down: got %v", err)
	}
}

func TestRoundRobinAndFastest(t *testing.T) {
	a := desc("a", llmProfile("a", 1, 30, 10), 0)
	b := desc("b", llmProfile("b", 5, 10, 10), 0)
	c := desc("c", llmProfile("c", 9, 20, 10), 0)
	rr := newRouter(t, Config{Policy: PolicyRoundRobin}, a, b, c)
	var got []string
	for i := 0; i < 6; i++ {
		d, err := rr.Place(t0, chat(backends.Standard, time.Second, true), llmModel, -1)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, d.Backend.Name)
	}
	if want := "a b c a b c"; join(got) != want {
		t.Fatalf("round robin order %q, want %q", join(got), want)
	}
	f := newRouter(t, Config{Policy: PolicyFastest}, a, b, c)
	d, _ := f.Place(t0, chat(backends.Standard, time.Second, true), llmModel, -1)
	if d.Backend != b {
		t.Fatalf("fastest: got %s, want b", d.Backend.Name)
	}
}

func join(s []string) string {
	out := ""
	for i, x := range s {
		if i > 0 {
			out += " "
		}
		out += x
	}
	return out
}

func TestBatchPredictionAndCost(t *testing.T) {
	p := llmProfile("v", 36, 8, 10) // vision: 2 ms + 0.1 ms/item; $36/h = 1 cent per second
	d := desc("v", p, 0)
	req := &backends.Request{Op: backends.OpTensor, Model: "vis", Rows: 10}
	pr := ProfilePredictor{}.Predict(req, visModel, d, Load{})
	// 10 items over max batch 8: batches of 8 and 2 → (2+0.8) + (2+0.2) = 5 ms.
	if pr.E2E != 5*time.Millisecond || pr.Busy != 5*time.Millisecond {
		t.Fatalf("E2E %v Busy %v, want 5ms", pr.E2E, pr.Busy)
	}
	if want := 0.01 * 0.005; abs(pr.CostUSD-want) > 1e-12 {
		t.Fatalf("cost %v, want %v", pr.CostUSD, want)
	}
	queued := ProfilePredictor{}.Predict(req, visModel, d, Load{BatchWork: 10 * time.Millisecond})
	if queued.Wait != 10*time.Millisecond {
		t.Fatalf("wait %v, want the placed work ahead (10ms)", queued.Wait)
	}
	// Hardware without a vision model is never chosen for vision.
	noVis := llmProfile("nv", 0.01, 8, 10)
	noVis.Vision = nil
	r := newRouter(t, Config{}, desc("nv", noVis, 0), d)
	dec, err := r.Place(t0, req, visModel, -1)
	if err != nil || dec.Backend.Name != "v" {
		t.Fatalf("got %v %v, want v", dec.Backend, err)
	}
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}

func TestLLMCostSharesDecodeSteps(t *testing.T) {
	p := llmProfile("x", 3600, 10, 100) // $1 per second
	d := desc("x", p, 0)
	req := chat(backends.Standard, time.Second, true)
	idle := ProfilePredictor{}.Predict(req, llmModel, d, Load{})
	busy := ProfilePredictor{}.Predict(req, llmModel, d, Load{Seqs: 49})
	// idle: prefill 3+20·0.5 = 13 ms + 100 × 10.1 ms; busy: 13 ms + 100 × 15 ms / 50.
	wantIdle := 0.013 + 100*0.0101
	wantBusy := 0.013 + 100*0.015/50
	if abs(idle.CostUSD-wantIdle) > 1e-9 || abs(busy.CostUSD-wantBusy) > 1e-9 {
		t.Fatalf("cost idle %v busy %v, want %v %v", idle.CostUSD, busy.CostUSD, wantIdle, wantBusy)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{Policy: "lottery"}, "router.policy"},
		{Config{Margin: -1}, "router.margin"},
		{Config{EjectAfter: -2}, "router.eject_after"},
	} {
		c.cfg.SetDefaults()
		err := c.cfg.Validate()
		if err == nil || !contains(err.Error(), c.want) {
			t.Errorf("%+v: got %v, want an error naming %s", c.cfg, err, c.want)
		}
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

func TestPrefillBacklogAndStall(t *testing.T) {
	p := llmProfile("x", 1, 10, 100) // prefill 3 ms + 20 ms per 1k tokens
	d := desc("x", p, 0)
	r := newRouter(t, Config{}, d)
	req := chat(backends.Standard, time.Second, true)
	req.EstInputTokens = 1000 // 23 ms of prefill
	first, _ := r.Place(t0, req, llmModel, -1)
	if first.Prediction.Wait != 0 {
		t.Fatalf("first prompt waits %v, want 0", first.Prediction.Wait)
	}
	// Placed at the same instant, the second prompt queues behind the first's
	// prefill (23 ms) and one decode step (10.1 ms), and its decode is
	// stalled by the first prompt's prefill spread over its 100 tokens.
	second, _ := r.Place(t0, req, llmModel, -1)
	if want := 23*time.Millisecond + 10100*time.Microsecond; second.Prediction.Wait != want {
		t.Fatalf("second prompt waits %v, want %v", second.Prediction.Wait, want)
	}
	if want := p.LLM.DecodeStep(2) + 23*time.Millisecond/100; second.Prediction.TPOT != want {
		t.Fatalf("TPOT %v, want %v (decode step + stall)", second.Prediction.TPOT, want)
	}
	// Later, the backlog has drained.
	third, _ := r.Place(t0.Add(time.Second), req, llmModel, -1)
	if third.Prediction.Wait != 0 {
		t.Fatalf("after a second the backlog should be gone, wait %v", third.Prediction.Wait)
	}
	for _, dd := range []Decision{first, second, third} {
		r.Done(t0.Add(2*time.Second), dd, Outcome{})
	}
	if l := r.Load(0); l.Seqs != 0 || l.PromptTokens != 0 {
		t.Fatalf("books not released: %+v", l)
	}
}

// A sheddable request is refused only when even its expected latency misses
// its SLO. A short stream on a backend full of long ones is bounded by every
// other sequence's replacement prefill (TPOT, the margin's basis), but
// expects only the share of them that falls within its own few tokens
// (TPOTExpected): it is served, on the fastest backend, not refused.
func TestShedOnlyWhenExpectedToMiss(t *testing.T) {
	a := desc("a", llmProfile("a", 1, 5, 100), 0)
	r := newRouter(t, Config{}, a)
	for range 20 {
		long := &backends.Request{Op: backends.OpChat, Model: "llm", Priority: backends.Standard, Stream: true, N: 1,
			MaxTokens: 1000, EstInputTokens: 2000}
		if _, err := r.Place(t0, long, llmModel, -1); err != nil {
			t.Fatal(err)
		}
	}
	short := func(tpot time.Duration) *backends.Request {
		return &backends.Request{Op: backends.OpChat, Model: "llm", Priority: backends.Sheddable, Stream: true, N: 1,
			MaxTokens: 2, EstInputTokens: 500, SLO: backends.SLO{TTFT: 5 * time.Second, TPOT: tpot}}
	}
	d, err := r.Place(t0, short(100*time.Millisecond), llmModel, -1)
	if err != nil {
		t.Fatalf("a short stream expected to meet its TPOT was refused: %v", err)
	}
	if d.MeetsSLO || d.Prediction.TPOT95 <= 100*time.Millisecond || d.Prediction.TPOTExpected > 100*time.Millisecond {
		t.Fatalf("want a bound over the 100 ms target and an expectation under it: meets=%v bound %v expected %v",
			d.MeetsSLO, d.Prediction.TPOT95, d.Prediction.TPOTExpected)
	}
	r.Done(t0, d, Outcome{})
	if _, err := r.Place(t0, short(time.Millisecond), llmModel, -1); !errors.Is(err, backends.ErrShed) {
		t.Fatalf("a 1 ms TPOT target even the expectation misses: got %v, want a refusal", err)
	}
	// A request at least as long as the others expects every stall.
	long := short(100 * time.Millisecond)
	long.MaxTokens = 1000
	p := ProfilePredictor{}.Predict(long, llmModel, a, r.Load(0))
	if p.TPOTExpected != p.TPOT {
		t.Fatalf("a long request: expected %v, bound %v, want equal", p.TPOTExpected, p.TPOT)
	}
	// One twice as long as the others sees each of them replaced twice: its
	// time per token carries the same stall per token, not half of it.
	longer := short(100 * time.Millisecond)
	longer.MaxTokens = 2000
	q := ProfilePredictor{}.Predict(longer, llmModel, a, r.Load(0))
	if q.TPOT != p.TPOT || q.TPOTExpected != p.TPOTExpected {
		t.Fatalf("2000 tokens: bound %v expected %v, want the 1000-token request's %v and %v", q.TPOT, q.TPOTExpected, p.TPOT, p.TPOTExpected)
	}
}

// TestElapsedCountsAgainstTheSLO: a request is judged from its arrival. One
// that already spent most of its budget (a batcher handed it back) no
// longer meets its target where a fresh one would: a sheddable one is
// refused, a standard one goes to the fastest backend without its SLO.
func TestElapsedCountsAgainstTheSLO(t *testing.T) {
	a := desc("a", llmProfile("a", 1, 30, 100), 0)
	b := desc("b", llmProfile("b", 2, 20, 100), 0)
	r := newRouter(t, Config{}, a, b)
	loose := 100 * time.Millisecond // TPOT: both meet it fresh
	for _, prio := range []backends.Priority{backends.Standard, backends.Sheddable} {
		fresh := chat(prio, loose, true)
		fresh.Arrival = t0
		d, err := r.Place(t0, fresh, llmModel, -1)
		if err != nil || d.Backend != a || !d.MeetsSLO {
			t.Fatalf("%v, fresh: %v meets=%v (%v), want the cheap a within its SLO", prio, d.Backend, d.MeetsSLO, err)
		}
		r.Done(t0, d, Outcome{})
		// The same request 1,995 ms after its arrival: its 2 s TTFT target
		// is out of reach (the prefill alone takes 13 ms).
		late := chat(prio, loose, true)
		late.Arrival = t0.Add(-1995 * time.Millisecond)
		d, err = r.Place(t0, late, llmModel, -1)
		switch prio {
		case backends.Sheddable:
			if !errors.Is(err, backends.ErrShed) {
				t.Fatalf("sheddable, late: %v %v, want refused", d.Backend, err)
			}
		default:
			if err != nil || d.Backend != b || d.MeetsSLO {
				t.Fatalf("%v, late: %v meets=%v (%v), want the fastest (b) without its SLO", prio, d.Backend, d.MeetsSLO, err)
			}
			r.Done(t0, d, Outcome{})
		}
	}
}
