package loadtest

import (
	"math"
	"math/rand/v2"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/accelgate/accelgate/backends"
)

// wlCollect returns the first n items of the named standard workload.
func wlCollect(t testing.TB, name string, seed int64, n int) []Item {
	t.Helper()
	src, err := Standard(name, 100, seed, Limit{Requests: n})
	if err != nil {
		t.Fatal(err)
	}
	items := make([]Item, 0, n)
	var it Item
	for src.Next(&it) {
		items = append(items, it)
	}
	if len(items) != n {
		t.Fatalf("%s: %d items, want %d", name, len(items), n)
	}
	return items
}

// wlShare is the fraction of items for which f holds.
func wlShare(items []Item, f func(*Item) bool) float64 {
	n := 0
	for i := range items {
		if f(&items[i]) {
			n++
		}
	}
	return float64(n) / float64(len(items))
}

func wlCheckShare(t *testing.T, what string, got, want, tol float64) {
	t.Helper()
	if !wlWithin(got, want, tol) {
		t.Errorf("%s: share %.4f, want %.2f ±%.3f", what, got, want, tol)
	}
}

// wlPieces counts the tokens of generated text: one per word, one per
// punctuation mark (see text.go).
func wlPieces(s string) int {
	if s == "" {
		return 0
	}
	return strings.Count(s, " ") + 1 + strings.Count(s, ".") + strings.Count(s, ",")
}

func TestStandardNames(t *testing.T) {
	if got := Names(); !slices.Equal(got, []string{"llm", "embeddings", "vision", "mixed"}) {
		t.Errorf("Names() = %v", got)
	}
	for _, name := range Names() {
		if _, err := StandardMix(name); err != nil {
			t.Errorf("StandardMix(%q): %v", name, err)
		}
	}
	if _, err := Standard("nope", 1, 1, Limit{}); err == nil || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("unknown workload: err = %v", err)
	}
	if g, ok := StandardArrivals("mixed", 50).(renewal); !ok || g.kind != kindGamma || g.rate != 50 || !wlWithin(g.invK, 4, 1e-12) {
		t.Errorf("StandardArrivals(mixed) = %#v, want Gamma(50, 2)", StandardArrivals("mixed", 50))
	}
	for _, name := range []string{"llm", "embeddings", "vision"} {
		if g, ok := StandardArrivals(name, 50).(renewal); !ok || g.kind != kindExp || g.rate != 50 {
			t.Errorf("StandardArrivals(%s) = %#v, want Poisson(50)", name, StandardArrivals(name, 50))
		}
	}
}

func TestPrioritiesAndSLOs(t *testing.T) {
	for _, name := range Names() {
		t.Run(name, func(t *testing.T) {
			items := wlCollect(t, name, 3, 100_000)
			for p, want := range []float64{0.2, 0.6, 0.2} {
				wlCheckShare(t, backends.Priority(p).String(), wlShare(items, func(it *Item) bool { return it.Priority == backends.Priority(p) }), want, 0.015)
			}
			for i := range items {
				it := &items[i]
				if want := StandardSLO(it.Op, it.Stream, it.Priority, it.OutputTokens); it.SLO != want {
					t.Fatalf("item %d: SLO %+v, want %+v", i, it.SLO, want)
				}
				if it.Seq != int64(i) || (i > 0 && it.At < items[i-1].At) {
					t.Fatalf("item %d: Seq %d At %v after %v", i, it.Seq, it.At, items[max(i-1, 0)].At)
				}
			}
		})
	}
}

func TestStandardSLOTable(t *testing.T) {
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	for _, tc := range []struct {
		op     backends.Op
		stream bool
		p      backends.Priority
		out    int
		want   backends.SLO
	}{
		{backends.OpChat, true, backends.Critical, 100, backends.SLO{TTFT: ms(300), TPOT: ms(60)}},
		{backends.OpChat, true, backends.Standard, 100, backends.SLO{TTFT: ms(1000), TPOT: ms(60)}},
		{backends.OpChat, true, backends.Sheddable, 100, backends.SLO{TTFT: ms(3000), TPOT: ms(60)}},
		{backends.OpChat, false, backends.Critical, 100, backends.SLO{E2E: ms(300 + 6000)}},
		{backends.OpChat, false, backends.Standard, 10, backends.SLO{E2E: ms(1000 + 600)}},
		{backends.OpChat, false, backends.Sheddable, 1, backends.SLO{E2E: ms(3000 + 60)}},
		{backends.OpCompletion, true, backends.Standard, 5, backends.SLO{TTFT: ms(1000), TPOT: ms(60)}},
		{backends.OpCompletion, false, backends.Critical, 5, backends.SLO{E2E: ms(300 + 300)}},
		{backends.OpEmbedding, false, backends.Critical, 0, backends.SLO{E2E: ms(50)}},
		{backends.OpEmbedding, false, backends.Standard, 0, backends.SLO{E2E: ms(150)}},
		{backends.OpEmbedding, false, backends.Sheddable, 0, backends.SLO{E2E: ms(500)}},
		{backends.OpTensor, false, backends.Critical, 0, backends.SLO{E2E: ms(15)}},
		{backends.OpTensor, false, backends.Standard, 0, backends.SLO{E2E: ms(50)}},
		{backends.OpTensor, false, backends.Sheddable, 0, backends.SLO{E2E: ms(200)}},
	} {
		if got := StandardSLO(tc.op, tc.stream, tc.p, tc.out); got != tc.want {
			t.Errorf("StandardSLO(%v, stream %v, %v, %d) = %+v, want %+v", tc.op, tc.stream, tc.p, tc.out, got, tc.want)
		}
	}
}

func wlMedian(xs []int) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return float64(s[len(s)/2])
}

func TestLengthMedians(t *testing.T) {
	// The chosen medians (Azure LLM inference trace 2023, Splitwise paper):
	// conversation prompt 1,020 / output 129, code prompt 1,500 / output 13.
	r := rand.New(rand.NewPCG(5, 5))
	for _, tc := range []struct {
		name   string
		d      lengthDist
		median float64
		lo, hi int
	}{
		{"conversation prompt", convPrompt, 1020, 16, 7000},
		{"conversation output", convOutput, 129, 1, 1024},
		{"code prompt", codePrompt, 1500, 16, 7000},
		{"code output", codeOutput, 13, 1, 1024},
	} {
		xs := make([]int, 100_000)
		for i := range xs {
			xs[i] = tc.d.draw(r)
			if xs[i] < tc.lo || xs[i] > tc.hi {
				t.Fatalf("%s: %d outside [%d, %d]", tc.name, xs[i], tc.lo, tc.hi)
			}
		}
		if m := wlMedian(xs); !wlWithin(m, tc.median, 0.1*tc.median) {
			t.Errorf("%s: median %.0f, want %.0f ±10%%", tc.name, m, tc.median)
		}
	}

	// End to end: single-turn llm requests are a 70/30 mixture of the two
	// classes, so the medians lie between the classes'.
	items := wlCollect(t, "llm", 8, 100_000)
	var in, out []int
	for _, it := range items {
		if it.SessionID == "" {
			in = append(in, it.InputTokens)
			out = append(out, it.OutputTokens)
		}
	}
	if m := wlMedian(in); m < 1020 || m > 1500 {
		t.Errorf("single-turn prompt median %.0f, want between 1,020 and 1,500", m)
	}
	if m := wlMedian(out); m < 13 || m > 129 {
		t.Errorf("single-turn output median %.0f, want between 13 and 129", m)
	}
}

func TestLLMWorkload(t *testing.T) {
	items := wlCollect(t, "llm", 1, 200_000)
	wlCheckShare(t, "stream", wlShare(items, func(it *Item) bool { return it.Stream }), 0.70, 0.015)
	wlCheckShare(t, "session turns", wlShare(items, func(it *Item) bool { return it.SessionID != "" }), 0.30, 0.015)

	type sess struct {
		first, turns int // index of the first turn, turns seen
		last         *Item
	}
	sessions := map[string]*sess{}
	for i := range items {
		it := &items[i]
		if it.Op != backends.OpChat || it.Model != ModelLLM {
			t.Fatalf("item %d: %v %q", i, it.Op, it.Model)
		}
		if it.InputTokens < minPrompt || it.InputTokens > 7000 || it.OutputTokens < 1 || it.OutputTokens > 1024 {
			t.Fatalf("item %d: %d input, %d output tokens", i, it.InputTokens, it.OutputTokens)
		}
		n := len(it.Messages)
		if n%2 != 1 || it.Messages[n-1].Role != "user" {
			t.Fatalf("item %d: %d messages, last %q", i, n, it.Messages[n-1].Role)
		}
		total := 0
		for k, m := range it.Messages {
			if want := [2]string{"user", "assistant"}[k%2]; m.Role != want {
				t.Fatalf("item %d: message %d role %q, want %q", i, k, m.Role, want)
			}
			total += wlPieces(m.Content)
		}
		if total != it.InputTokens {
			t.Fatalf("item %d: InputTokens %d, text has %d tokens", i, it.InputTokens, total)
		}
		if it.SessionID == "" {
			if n != 1 || it.Turn != 0 {
				t.Fatalf("item %d: single request with %d messages, turn %d", i, n, it.Turn)
			}
			continue
		}
		s := sessions[it.SessionID]
		if s == nil {
			s = &sess{first: i}
			sessions[it.SessionID] = s
		}
		s.turns++
		if it.Turn != s.turns || it.Turn > 8 || n != 2*it.Turn-1 {
			t.Fatalf("item %d: session %s turn %d with %d messages, want turn %d (≤ 8)", i, it.SessionID, it.Turn, n, s.turns)
		}
		if p := s.last; p != nil {
			if p.Priority != it.Priority || p.Stream != it.Stream {
				t.Fatalf("item %d: session %s changed priority or stream", i, it.SessionID)
			}
			if !reflect.DeepEqual(it.Messages[:len(p.Messages)], p.Messages) {
				t.Fatalf("item %d: turn %d does not extend turn %d's messages", i, it.Turn, p.Turn)
			}
			if got := wlPieces(it.Messages[n-2].Content); got != p.OutputTokens {
				t.Fatalf("item %d: assistant reply of %d tokens, previous output %d", i, got, p.OutputTokens)
			}
		}
		s.last = it
	}
	// Sessions that started in the first half had plenty of time to finish.
	finished, turns := 0, 0
	for id, s := range sessions {
		if s.first < len(items)/2 {
			if s.turns < 2 || s.turns > 8 {
				t.Errorf("session %s: %d turns", id, s.turns)
			}
			finished++
			turns += s.turns
		}
	}
	if mean := float64(turns) / float64(finished); !wlWithin(mean, 5, 0.25) {
		t.Errorf("mean turns per session %.2f, want 5 (uniform 2–8)", mean)
	}
}

func TestEmbeddingsWorkload(t *testing.T) {
	items := wlCollect(t, "embeddings", 2, 50_000)
	var nInputs, nTokens int
	for i, it := range items {
		if it.Op != backends.OpEmbedding || it.Model != ModelEmbeddings || it.Stream || it.OutputTokens != 0 {
			t.Fatalf("item %d: %+v", i, it)
		}
		if len(it.Inputs) < 1 || len(it.Inputs) > 16 {
			t.Fatalf("item %d: %d inputs", i, len(it.Inputs))
		}
		sum := 0
		for _, in := range it.Inputs {
			n := wlPieces(in)
			if n < 20 || n > 500 {
				t.Fatalf("item %d: input of %d tokens", i, n)
			}
			sum += n
		}
		if sum != it.InputTokens {
			t.Fatalf("item %d: InputTokens %d, inputs hold %d", i, it.InputTokens, sum)
		}
		nInputs += len(it.Inputs)
		nTokens += sum
	}
	if m := float64(nInputs) / float64(len(items)); !wlWithin(m, 8.5, 0.1) {
		t.Errorf("mean inputs %.2f, want 8.5", m)
	}
	if m := float64(nTokens) / float64(nInputs); !wlWithin(m, 260, 5) {
		t.Errorf("mean tokens per input %.1f, want 260", m)
	}
}

func TestVisionWorkload(t *testing.T) {
	items := wlCollect(t, "vision", 4, 100_000)
	var hist [9]int
	for i, it := range items {
		if it.Op != backends.OpTensor || it.Model != ModelVision || it.Images < 1 || it.Images > 8 || it.InputTokens != 0 {
			t.Fatalf("item %d: %+v", i, it)
		}
		hist[it.Images]++
	}
	wlCheckShare(t, "one image", float64(hist[1])/float64(len(items)), 0.90, 0.015)
	for k := 2; k <= 8; k++ { // 10% spread uniformly over 2–8
		wlCheckShare(t, "images", float64(hist[k])/float64(len(items)), 0.1/7, 0.004)
	}
}

func TestMixedWorkload(t *testing.T) {
	items := wlCollect(t, "mixed", 5, 200_000)
	for op, want := range map[backends.Op]float64{backends.OpChat: 0.6, backends.OpEmbedding: 0.2, backends.OpTensor: 0.2} {
		wlCheckShare(t, op.String(), wlShare(items, func(it *Item) bool { return it.Op == op }), want, 0.015)
	}
	// Bursty arrivals: gamma, CV 2, at the asked rate (100/s in collect).
	var sum, sumSq float64
	for i := 1; i < len(items); i++ {
		g := (items[i].At - items[i-1].At).Seconds()
		sum += g
		sumSq += g * g
	}
	n := float64(len(items) - 1)
	mean := sum / n
	if cv := math.Sqrt(sumSq/n-mean*mean) / mean; !wlWithin(cv, 2, 0.1) {
		t.Errorf("inter-arrival CV %.3f, want 2 ±5%%", cv)
	}
	if rate := 1 / mean; !wlWithin(rate, 100, 3) {
		t.Errorf("rate %.2f/s, want 100 ±3%%", rate)
	}
}

func TestDeterminism(t *testing.T) {
	for _, name := range Names() {
		a, b, c := wlCollect(t, name, 77, 3000), wlCollect(t, name, 77, 3000), wlCollect(t, name, 78, 3000)
		if !reflect.DeepEqual(a, b) {
			t.Errorf("%s: same seed, different items", name)
		}
		if reflect.DeepEqual(a, c) {
			t.Errorf("%s: different seeds, same items", name)
		}
	}
	// The request sequence does not depend on the arrival process.
	mix1, _ := StandardMix("llm")
	mix2, _ := StandardMix("llm")
	s1 := NewSource(Poisson(10), mix1, 9, Limit{Requests: 500})
	s2 := NewSource(Gamma(1000, 3), mix2, 9, Limit{Requests: 500})
	var i1, i2 Item
	for s1.Next(&i1) && s2.Next(&i2) {
		i1.At, i2.At = 0, 0
		if !reflect.DeepEqual(i1, i2) {
			t.Fatalf("item %d differs across arrival processes", i1.Seq)
		}
	}
}

func TestLimit(t *testing.T) {
	src, _ := Standard("vision", 1000, 1, Limit{Requests: 10, Duration: time.Hour})
	var it Item
	n := 0
	for src.Next(&it) {
		n++
	}
	if n != 10 || src.Next(&it) {
		t.Errorf("Requests limit: %d items", n)
	}
	src, _ = Standard("vision", 1000, 1, Limit{Duration: 2 * time.Second})
	n = 0
	var last time.Duration
	for src.Next(&it) {
		n++
		last = it.At
	}
	if last >= 2*time.Second || n < 1800 || n > 2200 || src.Next(&it) {
		t.Errorf("Duration limit: %d items, last at %v", n, last)
	}
	// A schedule that pauses for good ends the source.
	mix, _ := StandardMix("vision")
	src = NewSource(Steps(Poisson(1), []Step{{For: time.Second, Rate: 100}, {For: time.Second, Rate: 0}}), mix, 1, Limit{})
	n = 0
	for src.Next(&it) {
		n++
	}
	if n < 60 || n > 140 {
		t.Errorf("paused schedule: %d items", n)
	}
}

// BenchmarkStandardMixed measures producing Items of the mixed workload: one
// op is one Item.
func BenchmarkStandardMixed(b *testing.B) { wlBench(b, "mixed") }

// BenchmarkStandard measures each standard workload.
func BenchmarkStandard(b *testing.B) {
	for _, name := range Names() {
		b.Run(name, func(b *testing.B) { wlBench(b, name) })
	}
}

func wlBench(b *testing.B, name string) {
	src, err := Standard(name, 1000, 1, Limit{})
	if err != nil {
		b.Fatal(err)
	}
	var it Item
	for range 1000 { // build the corpus, open sessions
		src.Next(&it)
	}
	b.ReportAllocs()
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	start := time.Now()
	n := 0
	for b.Loop() {
		src.Next(&it)
		n++
	}
	elapsed := time.Since(start)
	runtime.ReadMemStats(&ms1)
	b.ReportMetric(float64(elapsed.Nanoseconds())/float64(n), "ns/item")
	b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs)/float64(n), "allocs/item")
}
