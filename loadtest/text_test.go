package loadtest

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/accelgate/accelgate/backends/emulator"
)

// The generated text's token accounting matches the emulator's cl100k_base
// tokenizer exactly: one token per word or punctuation mark.
func TestTextTokenCounts(t *testing.T) {
	c := corpus()
	if len(c.off) != corpusPieces+1 {
		t.Fatalf("%d offsets", len(c.off))
	}
	r := rand.New(rand.NewPCG(3, 4))
	words, total := 0, 0
	for _, n := range []int{1, 2, 3, 16, 20, 129, 500, 1020, 7000} {
		for range 5 {
			s := c.text(r, n)
			if got := emulator.CountTokens(s); got != n {
				t.Errorf("text(%d) has %d cl100k tokens: %.80q…", n, got, s)
			}
			if got := wlPieces(s); got != n {
				t.Errorf("text(%d) has %d pieces", n, got)
			}
			if strings.HasPrefix(s, " ") || strings.HasPrefix(s, ".") || strings.HasPrefix(s, ",") {
				t.Errorf("text(%d) starts with %q", n, s[:1])
			}
			words += len(strings.Fields(s))
			total += n
		}
	}
	// Documented in text.go: about 1.1 tokens per word.
	if ratio := float64(total) / float64(words); ratio < 1.05 || ratio > 1.15 {
		t.Errorf("%.3f tokens per word", ratio)
	}
	var out [3]string
	c.texts(r, []int{20, 0, 300}, out[:])
	if wlPieces(out[0]) != 20 || out[1] != "" || wlPieces(out[2]) != 300 {
		t.Errorf("texts: %d, %q, %d tokens", wlPieces(out[0]), out[1], wlPieces(out[2]))
	}
	if c.text(r, 0) != "" {
		t.Errorf("text(0) is not empty")
	}
	// The corpus is the same in every run.
	const want = "grass work early he, it as are. network his for"
	if got := c.textAt(0, 12); got != want {
		t.Errorf("corpus starts %q, want %q", got, want)
	}
}
