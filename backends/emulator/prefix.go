package emulator

import "github.com/accelgate/accelgate/backends"

// The prefix cache.
//
// The emulated server keeps the KV state of recently prefilled prompt
// prefixes, as vLLM's automatic prefix caching and SGLang's radix cache do:
// a sequence whose prompt begins with a cached prefix prefills only the rest
// (at least one token). Prefixes are the chunks of backends.Prefix; the
// cache holds chunk hashes in least-recently-used order, each weighing its
// chunk's tokens, within a budget of PrefixCacheTokensPerSlot tokens per
// concurrent-sequence slot (the KV memory the profile sizes for 2,048 tokens
// per sequence, shared with the running sequences in a real server; the
// emulator does not model that contention). A lookup finds the longest
// cached chunk of the prompt; after the prefill every chunk of the prompt
// is inserted or refreshed. Hashes are cumulative (chunk k covers chunks
// 0..k), so the longest cached chunk is the cached prefix.

// PrefixCacheTokensPerSlot is the prefix cache's budget per concurrent
// sequence slot, in tokens.
const PrefixCacheTokensPerSlot = 2048

type pnode struct {
	h          uint64
	tokens     float64
	prev, next *pnode
}

// prefixCache is an LRU of chunk hashes weighted by tokens.
type prefixCache struct {
	budget float64
	used   float64
	m      map[uint64]*pnode
	head   pnode // sentinel: head.next is the most recent
	free   *pnode
}

func newPrefixCache(budget float64) *prefixCache {
	c := &prefixCache{budget: budget, m: make(map[uint64]*pnode)}
	c.head.next, c.head.prev = &c.head, &c.head
	return c
}

func (c *prefixCache) unlink(n *pnode) {
	n.prev.next, n.next.prev = n.next, n.prev
	n.prev, n.next = nil, nil
}

func (c *prefixCache) pushFront(n *pnode) {
	n.prev, n.next = &c.head, c.head.next
	c.head.next.prev = n
	c.head.next = n
}

// cached returns the tokens of p's longest cached prefix, at most
// prompt-1 (the last token is always prefilled).
func (c *prefixCache) cached(p *backends.Prefix, prompt int) int {
	for k := p.N - 1; k >= 0; k-- {
		if _, ok := c.m[p.Hashes[k]]; ok {
			return min(p.Tokens(k), prompt-1)
		}
	}
	return 0
}

// insert adds or refreshes every chunk of p and evicts the least recently
// used chunks beyond the budget.
func (c *prefixCache) insert(p *backends.Prefix) {
	for k := 0; k < p.N; k++ {
		h := p.Hashes[k]
		if n, ok := c.m[h]; ok {
			c.unlink(n)
			c.pushFront(n)
			continue
		}
		n := c.free
		if n != nil {
			c.free = n.next
		} else {
			n = &pnode{}
		}
		*n = pnode{h: h, tokens: p.TokensPerChunk}
		c.m[h] = n
		c.used += n.tokens
		c.pushFront(n)
	}
	for c.used > c.budget && c.head.prev != &c.head {
		n := c.head.prev
		c.unlink(n)
		delete(c.m, n.h)
		c.used -= n.tokens
		n.next, c.free = c.free, n
	}
}
