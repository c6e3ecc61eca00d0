package emulator

import (
	"bytes"
	"context"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/accelgate/accelgate/backends"
	"github.com/accelgate/accelgate/backends/fakeclock"
	"github.com/accelgate/accelgate/backends/telemetry"
)

func scrapeEmulator(t *testing.T, b *Backend) (telemetry.Snapshot, string) {
	t.Helper()
	var buf bytes.Buffer
	if err := b.WriteMetrics(&buf); err != nil {
		t.Fatal(err)
	}
	snap, err := telemetry.Parse(bytes.NewReader(buf.Bytes()), nil)
	if err != nil {
		t.Fatalf("the exposition does not parse: %v\n%s", err, buf.String())
	}
	return snap, buf.String()
}

// waitJobs yields until the core holds n live jobs (the Do goroutines have
// submitted); it never sleeps.
func waitJobs(t *testing.T, b *Backend, n int) {
	t.Helper()
	for i := 0; b.Stats().Jobs < n; i++ {
		if i > 1e7 {
			t.Fatalf("only %d of %d jobs submitted", b.Stats().Jobs, n)
		}
		runtime.Gosched()
	}
}

func TestWriteMetrics(t *testing.T) {
	const slots, n = 4, 6
	b, clk := newTestBackend(testProfile(slots), 0)
	b.desc.Models = []string{`llama "8b"`}

	idle, text := scrapeEmulator(t, b)
	if idle.Source != telemetry.SourceVLLM || idle.Running != 0 || idle.Waiting != 0 || idle.KVCacheUsage != 0 {
		t.Fatalf("idle: %+v\n%s", idle, text)
	}
	if !strings.Contains(text, `model_name="llama \"8b\""`) {
		t.Errorf("model_name label not escaped:\n%s", text)
	}

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := chatReq()
			req.Seed = int64(i)
			b.Do(ctx, req, llmModel, nil)
		}()
	}
	waitJobs(t, b, n)
	// The jobs arrive (RTT 0) and the first prefill admits as many as fit.
	clk.Advance(0)
	busy, text := scrapeEmulator(t, b)
	if busy.Running != slots || busy.Waiting != n-slots {
		t.Errorf("running %v waiting %v, want %d and %d\n%s", busy.Running, busy.Waiting, slots, n-slots, text)
	}
	st := b.Stats()
	if float64(st.ActiveSeqs) != busy.Running || float64(st.WaitingSeqs) != busy.Waiting {
		t.Errorf("exposition %+v disagrees with Stats %+v", busy, st)
	}
	// The slotted sequences hold their prompts: more than nothing, far less
	// than the 4 × 2048-token cache.
	prompt := chatPromptTokens(t)
	want := float64(slots*prompt) / float64(slots*KVTokensPerSlot)
	if busy.KVCacheUsage != want {
		t.Errorf("kv usage %v, want %v (%d-token prompts)", busy.KVCacheUsage, want, prompt)
	}
	// Both KV names carry the value.
	for _, name := range []string{"vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"} {
		line := name + `{model_name="llama \"8b\""} ` + strconv.FormatFloat(want, 'g', -1, 64) + "\n"
		if !strings.Contains(text, line) {
			t.Errorf("no line %q in\n%s", line, text)
		}
	}

	// After the prefill, the first tokens count too.
	d, _ := clk.NextDeadline()
	clk.Set(d)
	later, _ := scrapeEmulator(t, b)
	if later.KVCacheUsage <= busy.KVCacheUsage {
		t.Errorf("kv usage %v after the prefill, was %v", later.KVCacheUsage, busy.KVCacheUsage)
	}

	cancel()
	wg.Wait()
	done, _ := scrapeEmulator(t, b)
	if done.Running != 0 || done.Waiting != 0 || done.KVCacheUsage != 0 {
		t.Errorf("after cancelling: %+v", done)
	}
}

func chatPromptTokens(t *testing.T) int {
	t.Helper()
	_, n := chatPrompt(chatReq().Messages)
	if n <= 0 {
		t.Fatal("empty prompt")
	}
	return n
}

// TestWriteMetricsNoLLM: a profile without an LLM model reports an idle,
// empty cache rather than dividing by zero.
func TestWriteMetricsNoLLM(t *testing.T) {
	p := testProfile(4)
	p.LLM = nil
	clk := fakeclock.New(t0)
	b := New(&backends.Descriptor{Name: "vision-0", Profile: p}, Options{Clock: clk})
	snap, text := scrapeEmulator(t, b)
	if snap.Running != 0 || snap.Waiting != 0 || snap.KVCacheUsage != 0 || !strings.Contains(text, `model_name="vision-0"`) {
		t.Errorf("%+v\n%s", snap, text)
	}
}
