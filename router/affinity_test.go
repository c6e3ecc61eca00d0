package router

import (
	"strings"
	"testing"
	"time"

	"github.com/accelgate/accelgate/backends"
)

// TestPrefixAffinity: after backend b completed a request, a request with
// the same long prompt prefix goes to b, whose predicted prefill counts only
// the uncached rest; its twin a would win the tie otherwise (the same
// request with another prompt, and the same prompt with affinity off, go to
// a). A failed request teaches nothing.
func TestPrefixAffinity(t *testing.T) {
	p := llmProfile("x", 1, 8, 64)
	a, b := desc("a", p, 0), desc("b", p, 0)
	req := func(text string) *backends.Request {
		r := chat(backends.Standard, time.Second, true)
		r.EstInputTokens = 2000
		r.Prefix.SetText("llm", text, r.EstInputTokens)
		return r
	}
	prompt := strings.Repeat("the same long system prompt ", 300) // 8 chunks
	other := strings.Repeat("a different long system prompt ", 270)
	for _, tc := range []struct {
		name      string
		cfg       Config
		first     error // the outcome of the first request, placed on b
		text      string
		want      string
		cachedMin int
	}{
		{"same prompt", Config{}, nil, prompt, "b", 1500},
		{"other prompt", Config{}, nil, other, "a", 0},
		{"affinity off", Config{AffinityEntries: -1}, nil, prompt, "a", 0},
		{"first failed", Config{}, backends.ErrUnavailable, prompt, "a", 0},
	} {
		r := newRouter(t, tc.cfg, a, b)
		d, err := r.Place(t0, req(prompt), llmModel, 0) // excluding a
		if err != nil || d.Backend != b {
			t.Fatalf("%s: first request on %v (%v), want b", tc.name, d.Backend, err)
		}
		r.Done(t0, d, Outcome{Err: tc.first})
		next := req(tc.text)
		d, err = r.Place(t0, next, llmModel, -1)
		if err != nil || d.Backend.Name != tc.want {
			t.Fatalf("%s: second request on %v (%v), want %s", tc.name, d.Backend, err, tc.want)
		}
		// The prediction counts the cached tokens: on b, idle again, the
		// predicted TTFT is the prefill of the uncached rest.
		if tc.cachedMin > 0 && d.raw.TTFT > p.LLM.PrefillTime(next.EstInputTokens-tc.cachedMin) {
			t.Errorf("%s: predicted TTFT %v, want at most the prefill of %d uncached tokens", tc.name, d.raw.TTFT, next.EstInputTokens-tc.cachedMin)
		}
		r.Done(t0, d, Outcome{})
	}
}
