//go:build !race

package backends

import (
	"math/rand/v2"
	"testing"
)

// TestPrefixAllocs guards the prefix description of every LLM request: it
// allocates nothing.
func TestPrefixAllocs(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	text := randomText(r, 40*PrefixChunkBytes)
	msgs := []Message{{Role: "user", Content: text}}
	var p Prefix
	if n := testing.AllocsPerRun(100, func() {
		p.SetText("m", text, 10000)
		p.SetMessages("m", msgs, 10000)
	}); n != 0 {
		t.Fatalf("%v allocations per call", n)
	}
}
