package backends

// Prompt prefixes, for prefix affinity.
//
// A continuous-batching server that caches the KV state of prompt prefixes
// (vLLM's automatic prefix caching, SGLang's radix cache) serves a prompt
// whose beginning it has seen recently with a shorter prefill. To find the
// backend that likely holds a prompt's longest prefix, the gateway describes
// every LLM prompt by the hashes of its prefixes at fixed chunk boundaries:
// Hashes[k] is a 64-bit FNV-1a hash of the model name and the prompt's first
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

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

// prefixHasher feeds bytes and records the running hash at every chunk
// boundary.
type prefixHasher struct {
	p     *Prefix
	h     uint64
	bytes int
}

func (x *prefixHasher) writeString(s string) {
	for i := 0; i < len(s); i++ {
		x.writeByte(s[i])
	}
}

func (x *prefixHasher) writeByte(c byte) {
	x.h = (x.h ^ uint64(c)) * fnvPrime
	x.bytes++
	if x.bytes%PrefixChunkBytes == 0 && x.p.N < MaxPrefixChunks {
		x.p.Hashes[x.p.N] = x.h
		x.p.N++
	}
}

func (x *prefixHasher) start(p *Prefix, model string) {
	*p = Prefix{}
	x.p, x.h, x.bytes = p, fnvOffset, 0
	x.writeString(model)
	x.writeByte(0)
	x.bytes = 0 // the model name is part of every hash but not of the chunks
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
