package router

import (
	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/accelgate/accelgate/backends"
)

// Prefix affinity.
//
// A continuous-batching server with a prefix cache prefills only the part of
// a prompt it has not seen recently. The router remembers, in a bounded LRU
// (github.com/hashicorp/golang-lru/v2, Config.AffinityEntries entries), which
// backends recently completed a request whose prompt had each prefix chunk
// (backends.Prefix: cumulative hashes at 1 KiB boundaries), up to
// affinityWays backends per chunk, the most recent first. Place looks up the
// request's chunks from the longest down, once per request, and notes for
// each backend the longest prefix it likely holds; the predictor then counts
// only the rest of the prompt as prefill (Load.CachedTokens), which lowers
// that backend's predicted TTFT and attributed cost, so the router prefers
// it exactly where cost and SLO allow. The lookup uses Peek (no allocation,
// no recency change); the table is updated when a request completes.

// affinityWays is how many backends are remembered per prefix chunk.
const affinityWays = 4

type affEntry struct {
	b [affinityWays]int32
	n uint8
}

// affinity is the prefix → backends table.
type affinity struct {
	c *lru.Cache[uint64, affEntry]
	// hits is the scratch of one Place: (backend, cached tokens) pairs.
	hits [affinityWays * 2]struct {
		b   int32
		tok int32
	}
	nhits int
}

func newAffinity(entries int) *affinity {
	c, err := lru.New[uint64, affEntry](entries)
	if err != nil {
		return nil
	}
	return &affinity{c: c}
}

// lookup fills the scratch with the longest cached prefix per backend.
func (a *affinity) lookup(p *backends.Prefix) {
	a.nhits = 0
	for k := p.N - 1; k >= 0 && a.nhits < len(a.hits); k-- {
		e, ok := a.c.Peek(p.Hashes[k])
		if !ok {
			continue
		}
	next:
		for i := 0; i < int(e.n); i++ {
			for j := 0; j < a.nhits; j++ {
				if a.hits[j].b == e.b[i] {
					continue next // a longer prefix was found already
				}
			}
			if a.nhits < len(a.hits) {
				a.hits[a.nhits].b, a.hits[a.nhits].tok = e.b[i], int32(p.Tokens(k))
				a.nhits++
			}
		}
	}
}

// cached returns the tokens backend b likely holds of the looked-up prompt.
func (a *affinity) cached(b int) int {
	for j := 0; j < a.nhits; j++ {
		if int(a.hits[j].b) == b {
			return int(a.hits[j].tok)
		}
	}
	return 0
}

// record notes that backend b now holds every chunk of p.
func (a *affinity) record(p *backends.Prefix, b int) {
	for k := 0; k < p.N; k++ {
		e, _ := a.c.Peek(p.Hashes[k])
		// Move b to the front, keeping the others in recency order.
		pos := int(e.n)
		for i := 0; i < int(e.n); i++ {
			if int(e.b[i]) == b {
				pos = i
				break
			}
		}
		if pos == int(e.n) {
			if e.n < affinityWays {
				e.n++
			} else {
				pos = affinityWays - 1
			}
		}
		copy(e.b[1:pos+1], e.b[:pos])
		e.b[0] = int32(b)
		a.c.Add(p.Hashes[k], e)
	}
}
