package emulator

import (
	"strings"
	"testing"
	"time"

	"github.com/accelgate/accelgate/backends"
)

// TestPrefixCacheSkipsCachedPrefill: a prompt whose prefix the server
// prefilled recently prefills only the rest, so its TTFT drops by the
// cached tokens' prefill time: all but the last token of a repeated
// prompt, the shared half of a prompt that shares two of its four chunks.
// With NoPrefixCache nothing is skipped.
func TestPrefixCacheSkipsCachedPrefill(t *testing.T) {
	const prompt = 1000 // tokens, over 4 chunks of PrefixChunkBytes: 250 per chunk
	half := strings.Repeat("abcdefgh", 2*backends.PrefixChunkBytes/8)
	var same, shared backends.Prefix
	same.SetText("m", half+half, prompt)
	shared.SetText("m", half+strings.Repeat("ABCDEFGH", 2*backends.PrefixChunkBytes/8), prompt)
	if same.N != 4 || shared.N != 4 {
		t.Fatalf("%d and %d chunks, want 4", same.N, shared.N)
	}
	prof := testProfile(8)
	// ttft runs the prompt of first, then after it that of next, alone.
	ttft := func(cfg Config, next *backends.Prefix) (first, second time.Duration) {
		c := NewCore(prof, prof.PricePerHour, 0, cfg, nil)
		mustSubmit(t, c.SubmitLLM(t0, &LLMJob{ID: 1, PromptTokens: prompt, OutputTokens: []int{2}, Prefix: &same}))
		rs := drain(t, c, nil)
		mustSubmit(t, c.SubmitLLM(rs[len(rs)-1].At, &LLMJob{ID: 2, PromptTokens: prompt, OutputTokens: []int{2}, Prefix: next}))
		rs = drain(t, c, rs)
		return doneOf(rs, 1).Timing.TTFT, doneOf(rs, 2).Timing.TTFT
	}
	first, second := ttft(Config{}, &same)
	if want := prof.LLM.PrefillTime(prompt); first != want {
		t.Errorf("first TTFT %v, want the whole prefill %v", first, want)
	}
	if want := prof.LLM.PrefillTime(1); second != want {
		t.Errorf("repeated prompt: TTFT %v, want the prefill of its last token %v", second, want)
	}
	if _, second := ttft(Config{}, &shared); second != prof.LLM.PrefillTime(prompt-500) {
		t.Errorf("half shared: TTFT %v, want the prefill of the other 500 tokens %v", second, prof.LLM.PrefillTime(prompt-500))
	}
	if first, second := ttft(Config{NoPrefixCache: true}, &same); second != first {
		t.Errorf("without the prefix cache: TTFTs %v and %v, want equal", first, second)
	}
}
