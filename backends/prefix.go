package backends

// Prompt prefixes, for prefix affinity.
//
// A continuous-batching server that caches the KV state of prompt prefixes
// (vLLM's automatic prefix caching, SGLang's radix cache) serves a prompt
// whose beginning it has seen recently with a shorter prefill. To find the
// backend that likely holds a prompt's longest prefix, the gateway describes
// every LLM prompt by the hashes of its prefixes at fixed chunk boundaries:
// Hashes[k] is a 64-bit hash of the model name and the prompt's first
// (k+1)·PrefixChunkBytes bytes (chat: each message's role and content, NUL
// separated). Two prompts share chunk k exactly when they share the first
// (k+1) chunks' bytes (up to hash collisions, which only cost a missed or
// wrongly expected cache hit, never a wrong answer). Only whole chunks count.

// PrefixChunkBytes is the prompt bytes per prefix chunk (about 256 tokens
// of English text).
const PrefixChunkBytes = 1024

// MaxPrefixChunks bounds the chunks described (32 KiB of prompt); a longer
// prompt's later chunks are not described.
const MaxPrefixChunks = 32

// Prefix describes a prompt's prefixes. The zero value describes none.
type Prefix struct {
	Hashes [MaxPrefixChunks]uint64
	N      int // chunks described
	// TokensPerChunk is the prompt's estimated tokens per chunk (its
	// estimated tokens over its bytes, times PrefixChunkBytes).
	TokensPerChunk float64
}

// Tokens returns the estimated prompt tokens covered by chunks 0..k.
func (p *Prefix) Tokens(k int) int { return int(float64(k+1) * p.TokensPerChunk) }

// fnvOffset seeds the hash (FNV's offset basis: any odd constant would do).
const fnvOffset = 14695981039346656037

// prefixHasher feeds bytes and records the running hash at every chunk
// boundary. It hashes eight bytes at a time (a multiply-xorshift step per
// little-endian word): prompts run to tens of kilobytes, and a byte-wise
// hash was most of the simulator's time on multi-turn workloads.
type prefixHasher struct {
	p     *Prefix
	h     uint64
	w     uint64 // the word being filled, little-endian
	bytes int    // bytes fed; the word holds bytes%8 of them
}

// mixPrime is the multiplier of the hash's per-word step (2^64 / φ, odd).
const mixPrime = 0x9E3779B97F4A7C15

func mix(h, w uint64) uint64 {
	h = (h ^ w) * mixPrime
	return h ^ h>>32
}

func (x *prefixHasher) writeString(s string) {
	for len(s) > 0 {
		if x.p.N >= MaxPrefixChunks {
			x.bytes += len(s) // counted (TokensPerChunk), no longer hashed
			return
		}
		if x.bytes%8 != 0 || len(s) < 8 {
			x.writeByte(s[0])
			s = s[1:]
			continue
		}
		// Whole words, up to the next chunk boundary (a multiple of 8).
		n := min(len(s), PrefixChunkBytes-x.bytes%PrefixChunkBytes) &^ 7
		h := x.h
		for i := 0; i < n; i += 8 {
			h = mix(h, uint64(s[i])|uint64(s[i+1])<<8|uint64(s[i+2])<<16|uint64(s[i+3])<<24|
				uint64(s[i+4])<<32|uint64(s[i+5])<<40|uint64(s[i+6])<<48|uint64(s[i+7])<<56)
		}
		x.h = h
		x.bytes += n
		s = s[n:]
		x.boundary()
	}
}

func (x *prefixHasher) writeByte(c byte) {
	if x.p.N >= MaxPrefixChunks {
		x.bytes++
		return
	}
	x.w |= uint64(c) << (8 * (x.bytes % 8))
	x.bytes++
	if x.bytes%8 == 0 {
		x.h, x.w = mix(x.h, x.w), 0
		x.boundary()
	}
}

// boundary records the running hash when a chunk is complete.
func (x *prefixHasher) boundary() {
	if x.bytes%PrefixChunkBytes == 0 && x.p.N < MaxPrefixChunks {
		x.p.Hashes[x.p.N] = x.h
		x.p.N++
	}
}

func (x *prefixHasher) start(p *Prefix, model string) {
	*p = Prefix{}
	x.p, x.h, x.w, x.bytes = p, fnvOffset, 0, 0
	x.writeString(model)
	x.writeByte(0)
	// The model name seeds every hash but is not part of the chunks: its
	// last partial word is mixed in with its length.
	if x.bytes%8 != 0 {
		x.h = mix(x.h, x.w^uint64(x.bytes%8)<<60)
	}
	x.w, x.bytes = 0, 0
	x.p.N = 0
}

func (x *prefixHasher) finish(promptTokens int) {
	if x.bytes > 0 && promptTokens > 0 {
		x.p.TokensPerChunk = float64(promptTokens) * PrefixChunkBytes / float64(x.bytes)
	}
}

// SetMessages describes the prefixes of a chat prompt for model, whose
// estimated size is promptTokens. It allocates nothing.
func (p *Prefix) SetMessages(model string, msgs []Message, promptTokens int) {
	var x prefixHasher
	x.start(p, model)
	for i := range msgs {
		x.writeString(msgs[i].Role)
		x.writeByte(0)
		x.writeString(msgs[i].Content)
		x.writeByte(0)
	}
	x.finish(promptTokens)
}

// SetText describes the prefixes of a completion prompt for model.
func (p *Prefix) SetText(model, text string, promptTokens int) {
	var x prefixHasher
	x.start(p, model)
	x.writeString(text)
	x.finish(promptTokens)
}
