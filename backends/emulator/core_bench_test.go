package emulator

import (
	"testing"
	"time"
)

// BenchmarkCoreLLM pushes b.N streaming requests (one sequence, 500 prompt
// tokens, 100 output tokens, one every 150ms, about 40 sequences active in steady
// state) through the core in virtual time; each iteration is one request with
// its 100 tokens.
func BenchmarkCoreLLM(b *testing.B) {
	p := testProfile(256)
	c := NewCore(p, p.PricePerHour, 2*time.Millisecond, Config{JitterSigma: 0.05}, nil)
	out := make([]Event, 0, 64)
	job := &LLMJob{PromptTokens: 500, OutputTokens: []int{100}, Stream: true}
	now := t0
	tokens := 0
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		now = now.Add(150 * time.Millisecond)
		for {
			next, ok := c.Next()
			if !ok || next.After(now) {
				break
			}
			out = c.Advance(next, out[:0])
			for _, ev := range out {
				tokens += len(ev.Seqs)
			}
		}
		job.ID = uint64(i + 1)
		if err := c.SubmitLLM(now, job); err != nil {
			b.Fatal(err)
		}
	}
	for {
		next, ok := c.Next()
		if !ok {
			break
		}
		out = c.Advance(next, out[:0])
		for _, ev := range out {
			tokens += len(ev.Seqs)
		}
	}
	b.ReportMetric(float64(tokens)/float64(b.N), "tokens/op")
}
