package backends

import (
	"math/rand/v2"
	"strings"
	"testing"
)

func randomText(r *rand.Rand, n int) string {
	var b strings.Builder
	for b.Len() < n {
		b.WriteByte(byte('a' + r.IntN(26)))
	}
	return b.String()
}

// Prompts that share their first k whole chunks share the first k hashes,
// and only those; the model name seeds every hash.
func TestPrefixHashesShareExactlyTheCommonChunks(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	common := randomText(r, 2*PrefixChunkBytes+100)
	a := common + randomText(r, 2000)
	b := common + randomText(r, 2000)
	var pa, pb, pc Prefix
	pa.SetText("m", a, 1000)
	pb.SetText("m", b, 1000)
	pc.SetText("other", a, 1000)
	if pa.N != len(a)/PrefixChunkBytes || pb.N != len(b)/PrefixChunkBytes {
		t.Fatalf("chunks %d and %d, want %d and %d", pa.N, pb.N, len(a)/PrefixChunkBytes, len(b)/PrefixChunkBytes)
	}
	for k := 0; k < pa.N; k++ {
		if same := pa.Hashes[k] == pb.Hashes[k]; same != (k < 2) {
			t.Errorf("chunk %d: equal %v, want %v", k, same, k < 2)
		}
		if pa.Hashes[k] == pc.Hashes[k] {
			t.Errorf("chunk %d: the same hash for another model", k)
		}
	}
}

// The hash depends on the bytes only, not on how they are fed: a chat
// prompt hashes as the text of its NUL-separated roles and contents, at
// every alignment of the words hashed eight bytes at a time.
func TestPrefixHashIndependentOfSplits(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, role := range []string{"u", "user", "assistant", "sys"} {
		msgs := []Message{{Role: role, Content: randomText(r, 3000+r.IntN(50))}, {Role: "x", Content: randomText(r, 2000)}}
		var chat, text Prefix
		chat.SetMessages("model", msgs, 1000)
		text.SetText("model", msgs[0].Role+"\x00"+msgs[0].Content+"\x00"+msgs[1].Role+"\x00"+msgs[1].Content+"\x00", 1000)
		if chat != text {
			t.Fatalf("role %q: chat and text prefixes differ: %d/%d chunks", role, chat.N, text.N)
		}
	}
}

// A prompt longer than MaxPrefixChunks chunks describes the first ones, and
// its tokens per chunk still come from its whole length.
func TestPrefixLongPrompt(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	long := randomText(r, 50*PrefixChunkBytes)
	var p Prefix
	p.SetText("m", long, 50*256)
	if p.N != MaxPrefixChunks {
		t.Fatalf("%d chunks, want %d", p.N, MaxPrefixChunks)
	}
	if p.TokensPerChunk != 256 {
		t.Fatalf("tokens per chunk %v, want 256", p.TokensPerChunk)
	}
}
