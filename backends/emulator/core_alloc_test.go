//go:build !race

package emulator

import (
	"testing"
	"time"
)

// TestAdvanceDecodeStepAllocs checks that a decode step (with its token event
// for 64 streaming sequences) allocates nothing once the buffers have grown.
func TestAdvanceDecodeStepAllocs(t *testing.T) {
	p := testProfile(64)
	c := NewCore(p, p.PricePerHour, 30*time.Millisecond, Config{JitterSigma: 0.05}, nil)
	outs := make([]int, 64)
	for i := range outs {
		outs[i] = 1 << 20
	}
	if err := c.SubmitLLM(t0, &LLMJob{ID: 1, PromptTokens: 100, OutputTokens: outs, Stream: true}); err != nil {
		t.Fatal(err)
	}
	out := make([]Event, 0, 16)
	step := func() {
		next, _ := c.Next()
		out = c.Advance(next, out[:0])
	}
	for range 100 {
		step()
	}
	if n := testing.AllocsPerRun(1000, step); n != 0 {
		t.Errorf("Advance allocates %v times per decode step, want 0", n)
	}
}
