package gateway

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/maphash"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/accelgate/accelgate/backends"
	"github.com/accelgate/accelgate/backends/fleet"
)

// The response cache (opt-in per model: the fleet file's models[].cache,
// applied with Dispatcher.SetResponseCache) answers repeated deterministic
// requests without running them again. Each model with the cache enabled has
// one LRU cache (github.com/hashicorp/golang-lru/v2, max_entries entries);
// an entry is served for ttl after it was stored.
//
// What is cacheable:
//
//   - embeddings (/v1/embeddings);
//   - KServe v2 tensor infer, over HTTP (JSON or the binary tensor data
//     extension) and gRPC (typed or raw contents);
//   - chat and completions whose body sets "temperature" to 0 explicitly
//     (an absent temperature is OpenAI's default 1, not deterministic), with
//     n 1 (or absent) and no stream. Streams are never cached.
//
// Everything else passes the cache untouched (no header, no lookup, no
// allocation).
//
// The key is a hash of the canonical request, not of the body's bytes, so
// whitespace, field order, string escapes and number spelling (1, 1.0, 1e0)
// do not matter:
//
//   - chat and completions: the model, the operation and the whole JSON body
//     decoded and walked with sorted keys, except model, stream,
//     stream_options, n and temperature (fixed for every cacheable request).
//     The gateway decodes only part of the body (messages, prompt,
//     max_tokens, stop, seed, temperature…) but upstreams receive all of it
//     (top_p, tools, response_format, logprobs, penalties, image parts of
//     messages, user…), so every field takes part;
//   - embeddings: the model, the inputs as decoded (a string equals a
//     one-string list), encoding_format (absent = float) and every other
//     body field (dimensions, user…) walked as above;
//   - tensors: the model, the version as requested ("" is not resolved to
//     the default version: at worst one more miss), every input's name,
//     datatype, shape and raw data in canonical form (so a JSON request, a
//     binary one and a gRPC one with the same tensors share an entry), and
//     the requested outputs' names. Request parameters are not part of it:
//     the ones the gateway reads (slo_ms, priority, timeout) only schedule,
//     binary_data / binary_data_output only shape the encoding (rendered
//     per request), and the others are not forwarded to backends.
//
// Two independent 64-bit hashes (hash/maphash under two random seeds drawn
// when the cache is set up) are computed over the canonical form and the
// cache compares both, so two different requests share an entry only if
// both 64-bit hashes collide (about 2^-128 per pair).
//
// A hit is answered at once, without placing the request: the stored result
// rendered for the new request, with x-accelgate-cache: hit, cost 0
// (x-accelgate-cost-usd and the KServe accelgate_cost_usd parameter), and
// x-accelgate-backend / x-accelgate-hardware naming the backend that
// produced the stored answer. Bodies the gateway renders carry the new
// request's id and creation time (and the KServe request's own id); an
// upstream's relayed JSON body (OpenAI upstreams) is served byte for byte as
// stored, with the upstream's original id inside. Usage in the body is the
// original's. A cacheable request that misses carries x-accelgate-cache:
// miss. gRPC sends the same as the response metadata key x-accelgate-cache
// (ModelInfer) and as the response parameter accelgate_cache (ModelInfer and
// ModelStreamInfer, whose metadata is per stream).
//
// Only successful results are stored, when their request has completed;
// failures are never cached. Identical requests that miss at the same time
// each run (there is no request coalescing) and the last to finish leaves
// its result in the cache. Entries are bounded by count, not by size.

// Response header and gRPC metadata key / response parameter of the cache.
const (
	HeaderCache = "x-accelgate-cache" // response: hit or miss, on cacheable requests only
	ParamCache  = "accelgate_cache"   // gRPC response parameter (string): hit or miss
)

// Values of HeaderCache and ParamCache.
const (
	CacheHit  = "hit"
	CacheMiss = "miss"
)

// cacheKey is a canonical request's two independent 64-bit hashes.
type cacheKey struct{ a, b uint64 }

// cacheEntry is one stored answer: the result (cost and timing cleared), the
// backend that produced it and when it expires.
type cacheEntry struct {
	res     backends.Result
	backend *backends.Descriptor
	expires time.Time
}

// modelCache is one model's cache.
type modelCache struct {
	ttl          time.Duration
	lru          *lru.Cache[cacheKey, *cacheEntry]
	hits, misses atomic.Uint64
}

// responseCache is the dispatcher's caches, by model name (read-only once
// built), and the seeds of the key hashes.
type responseCache struct {
	seeds  [2]maphash.Seed
	models map[string]*modelCache
}

// SetResponseCache sets up the response cache of every model whose settings
// in cfgs (the fleet's Cache, by model name) are enabled; unset fields get
// the fleet file's defaults. Models without enabled settings have no cache.
// It replaces any earlier caches (their entries are dropped) and is not safe
// to call while the fronts serve: call it before. It fails on a model the
// dispatcher does not serve or on an invalid setting, naming the field.
func (d *Dispatcher) SetResponseCache(cfgs map[string]fleet.ResponseCache) error {
	rc := &responseCache{seeds: [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()}, models: make(map[string]*modelCache)}
	names := make([]string, 0, len(cfgs))
	for name := range cfgs {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		c := cfgs[name]
		if !c.Enabled {
			continue
		}
		at := "models[" + name + "].cache"
		if d.models[name] == nil {
			return fmt.Errorf("%s: the model %q does not exist", at, name)
		}
		c.SetDefaults()
		if err := c.Validate(at); err != nil {
			return err
		}
		l, err := lru.New[cacheKey, *cacheEntry](c.MaxEntries)
		if err != nil {
			return fmt.Errorf("%s: %w", at, err)
		}
		rc.models[name] = &modelCache{ttl: c.TTL, lru: l}
	}
	if len(rc.models) == 0 {
		rc = nil
	}
	d.rcache = rc
	return nil
}

// CacheStats is one model's response cache activity.
type CacheStats struct {
	Hits    uint64 // cacheable requests answered from the cache
	Misses  uint64 // cacheable requests that ran (expired entries included)
	Entries int    // entries held now, expired ones not yet evicted included
}

// ResponseCacheStats reports the activity of every model's response cache,
// by model name; nil when no model has one.
func (d *Dispatcher) ResponseCacheStats() map[string]CacheStats {
	rc := d.rcache
	if rc == nil {
		return nil
	}
	out := make(map[string]CacheStats, len(rc.models))
	for name, mc := range rc.models {
		out[name] = CacheStats{Hits: mc.hits.Load(), Misses: mc.misses.Load(), Entries: mc.lru.Len()}
	}
	return out
}

// doCached is Do behind the response cache. state is CacheHit (res is the
// stored result with cost 0, desc the backend that produced it; nothing was
// placed), CacheMiss (the request ran; a successful result was stored), or
// "" for a request that is not cacheable (exactly Do).
func (d *Dispatcher) doCached(ctx context.Context, req *backends.Request, m *backends.Model) (res *backends.Result, desc *backends.Descriptor, state string, err error) {
	slot, ok := d.cacheSlotFor(req)
	if !ok {
		res, desc, err = d.Do(ctx, req, m)
		return res, desc, "", err
	}
	if res, desc, ok := slot.get(d.clock.Now()); ok {
		return res, desc, CacheHit, nil
	}
	res, desc, err = d.Do(ctx, req, m)
	if err == nil && res != nil {
		slot.put(d.clock.Now(), res, desc)
	}
	return res, desc, CacheMiss, err
}

// cacheSlot is a cacheable request's place in its model's cache.
type cacheSlot struct {
	mc  *modelCache
	key cacheKey
}

// get returns a copy of the entry stored under the slot's key when it has
// not expired at now.
func (s cacheSlot) get(now time.Time) (*backends.Result, *backends.Descriptor, bool) {
	e, ok := s.mc.lru.Get(s.key)
	if ok && !now.Before(e.expires) {
		// Expired. (Should an identical request store a fresh entry
		// between Get and Remove, it goes too: one more miss.)
		s.mc.lru.Remove(s.key)
		ok = false
	}
	if !ok {
		s.mc.misses.Add(1)
		return nil, nil, false
	}
	s.mc.hits.Add(1)
	res := e.res // the slices are shared and never written
	return &res, e.backend, true
}

// put stores a completed request's result, with its cost and timing
// cleared (a hit costs nothing and took no backend time).
func (s cacheSlot) put(now time.Time, res *backends.Result, desc *backends.Descriptor) {
	e := &cacheEntry{res: *res, backend: desc, expires: now.Add(s.mc.ttl)}
	e.res.CostUSD = 0
	e.res.Timing = backends.Timing{}
	s.mc.lru.Add(s.key, e)
}

// cacheKeyVersion starts every key (a change of the canonical form changes
// it).
const cacheKeyVersion = 1

// Top-level body fields left out of the keys: the model (hashed as
// req.Model), fields fixed for every cacheable request, and (embeddings)
// fields hashed in decoded form.
var (
	cacheSkipLLM       = []string{"model", "stream", "stream_options", "n", "temperature"}
	cacheSkipEmbedding = []string{"model", "input", "encoding_format"}
)

// temperatureKey is the body member a cacheable chat or completion sets
// (a body that spells it with escapes is simply not cached).
var temperatureKey = []byte(`"temperature"`)

// cacheSlotFor reports whether req is cacheable (its model has a cache and
// the request is deterministic; see the top of this file) and its slot.
// Without a cache for the model it returns at once, allocating nothing.
func (d *Dispatcher) cacheSlotFor(req *backends.Request) (cacheSlot, bool) {
	rc := d.rcache
	if rc == nil {
		return cacheSlot{}, false
	}
	mc := rc.models[req.Model]
	if mc == nil {
		return cacheSlot{}, false
	}
	switch req.Op {
	case backends.OpChat, backends.OpCompletion:
		if req.Stream || req.N != 1 || req.Temperature != 0 || !bytes.Contains(req.Body, temperatureKey) {
			return cacheSlot{}, false // the common absent temperature: no decoding, no allocation
		}
	case backends.OpEmbedding, backends.OpTensor:
	default:
		return cacheSlot{}, false
	}
	k := new(keyHash)
	k.a.SetSeed(rc.seeds[0])
	k.b.SetSeed(rc.seeds[1])
	k.u64(cacheKeyVersion)
	k.tag(byte(req.Op))
	k.str(req.Model)
	switch req.Op {
	case backends.OpChat, backends.OpCompletion:
		body, ok := decodeBodyGeneric(req.Body)
		if !ok || !isZeroNumber(body["temperature"]) {
			return cacheSlot{}, false // absent (or null) temperature: OpenAI's default 1
		}
		k.object(body, cacheSkipLLM)
	case backends.OpEmbedding:
		body, ok := decodeBodyGeneric(req.Body)
		if !ok {
			return cacheSlot{}, false
		}
		k.u64(uint64(len(req.Inputs)))
		for _, s := range req.Inputs {
			k.str(s)
		}
		format := "float"
		if f, _ := body["encoding_format"].(string); f != "" {
			format = f
		}
		k.str(format)
		k.object(body, cacheSkipEmbedding)
	case backends.OpTensor:
		k.str(req.ModelVersion)
		k.u64(uint64(len(req.Tensors)))
		for i := range req.Tensors {
			t := &req.Tensors[i]
			k.str(t.Name)
			k.tag(byte(t.Datatype))
			k.u64(uint64(len(t.Shape)))
			for _, dim := range t.Shape {
				k.u64(uint64(dim))
			}
			k.blob(t.Data)
		}
		k.u64(uint64(len(req.Outputs)))
		for _, o := range req.Outputs {
			k.str(o.Name) // o.Binary only shapes the HTTP encoding
		}
	}
	return cacheSlot{mc: mc, key: cacheKey{k.a.Sum64(), k.b.Sum64()}}, true
}

// decodeBodyGeneric decodes a JSON object with numbers kept as written.
func decodeBodyGeneric(body []byte) (map[string]any, bool) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v map[string]any
	if err := dec.Decode(&v); err != nil || v == nil {
		return nil, false
	}
	return v, true
}

// isZeroNumber reports whether v is a JSON number equal to 0.
func isZeroNumber(v any) bool {
	n, ok := v.(json.Number)
	if !ok {
		return false
	}
	f, err := strconv.ParseFloat(string(n), 64)
	return err == nil && f == 0
}

// keyHash feeds a canonical form to two independently seeded hashes. Every
// variable-length item is length-prefixed and every JSON value tagged with
// its type, so distinct canonical forms are distinct byte streams.
type keyHash struct{ a, b maphash.Hash }

func (k *keyHash) write(p []byte) {
	k.a.Write(p)
	k.b.Write(p)
}

func (k *keyHash) tag(c byte) {
	k.a.WriteByte(c)
	k.b.WriteByte(c)
}

func (k *keyHash) u64(v uint64) {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], v)
	k.write(b[:])
}

func (k *keyHash) str(s string) {
	k.u64(uint64(len(s)))
	k.a.WriteString(s)
	k.b.WriteString(s)
}

func (k *keyHash) blob(p []byte) {
	k.u64(uint64(len(p)))
	k.write(p)
}

// object hashes a JSON object's members in key order, leaving out the keys
// in skip.
func (k *keyHash) object(m map[string]any, skip []string) {
	keys := make([]string, 0, len(m))
	for key := range m {
		if !slices.Contains(skip, key) {
			keys = append(keys, key)
		}
	}
	slices.Sort(keys)
	k.tag('o')
	k.u64(uint64(len(keys)))
	for _, key := range keys {
		k.str(key)
		k.value(m[key])
	}
}

// value hashes one decoded JSON value (json.Decoder with UseNumber).
func (k *keyHash) value(v any) {
	switch x := v.(type) {
	case nil:
		k.tag('n')
	case bool:
		if x {
			k.tag('t')
		} else {
			k.tag('f')
		}
	case string:
		k.tag('s')
		k.str(x)
	case json.Number:
		k.number(string(x))
	case []any:
		k.tag('a')
		k.u64(uint64(len(x)))
		for _, e := range x {
			k.value(e)
		}
	case map[string]any:
		k.object(x, nil)
	default: // not produced by the decoder
		k.tag('?')
		k.str(fmt.Sprint(x))
	}
}

// number hashes a JSON number by value: integral values as integers (1,
// 1.0 and 1e0 are one key), other values as float64 bits; an integer
// literal beyond int64 by its digits (a float64 would merge neighbours).
func (k *keyHash) number(s string) {
	if i, err := strconv.ParseInt(s, 10, 64); err == nil {
		k.tag('i')
		k.u64(uint64(i))
		return
	}
	f, err := strconv.ParseFloat(s, 64)
	switch {
	case err == nil && !strings.ContainsAny(s, ".eE"):
		k.tag('I')
		k.str(s)
	case err != nil: // out of float64's range
		k.tag('N')
		k.str(s)
	case f == math.Trunc(f) && f >= -(1<<63) && f < 1<<63:
		k.tag('i')
		k.u64(uint64(int64(f)))
	default:
		k.tag('d')
		k.u64(math.Float64bits(f))
	}
}
