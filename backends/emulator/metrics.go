package emulator

import (
	"bufio"
	"io"
	"strconv"
	"strings"
)

// KVTokensPerSlot is the KV cache, in tokens, that one of the LLM model's
// MaxConcurrency slots stands for. The catalog sizes max_concurrency from KV
// memory at 0.25 GiB per 2k-token sequence ([LLM-KV] in
// backends/catalog/profiles.yaml), so the emulated cache holds
// MaxConcurrency × 2048 tokens.
const KVTokensPerSlot = 2048

// kvTokens is the number of tokens the sequences holding a slot keep in the
// KV cache: each one's prompt (allocated when the prefill admits it) plus the
// tokens it has generated so far.
func (c *Core) kvTokens() int {
	n := 0
	for _, s := range c.active {
		n += s.prompt + s.got
	}
	return n
}

// kvCapacity is the emulated KV cache size in tokens (0 without an LLM model).
func (c *Core) kvCapacity() int { return c.maxConc * KVTokensPerSlot }

// labelEscaper escapes a label value for the text exposition format.
var labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)

// WriteMetrics writes the emulated accelerator's load in the Prometheus text
// exposition format (0.0.4) under vLLM's metric names, so that the gateway's
// telemetry (backends/telemetry) can scrape an emulator as it would a vLLM
// server:
//
//   - vllm:num_requests_running: sequences holding a slot (prefilling or
//     decoding; vLLM counts requests, the emulator sequences, which are the
//     same for n = 1);
//   - vllm:num_requests_waiting: sequences that arrived and wait for a slot
//     (jobs still on the emulated network, RTT/2, are not counted: a real
//     server has not seen them either);
//   - vllm:kv_cache_usage_perc and vllm:gpu_cache_usage_perc (the newer and
//     the older name, same value): the tokens the slotted sequences hold over
//     the emulated cache of MaxConcurrency × KVTokensPerSlot tokens, a
//     fraction clamped to 1 (the emulator bounds slots, not tokens).
//
// Each series has one label, model_name: the first model the backend serves
// (its descriptor's Models), or the backend's name when it lists none; like a
// vLLM engine, the emulator has one scheduler whatever the names it answers
// to. The state is read under the backend's lock; w is written after it is
// released.
func (b *Backend) WriteMetrics(w io.Writer) error {
	b.mu.Lock()
	st := b.core.Stats()
	held, capacity := b.core.kvTokens(), b.core.kvCapacity()
	b.mu.Unlock()

	usage := 0.0
	if capacity > 0 {
		usage = min(float64(held)/float64(capacity), 1)
	}
	model := b.desc.Name
	if len(b.desc.Models) > 0 {
		model = b.desc.Models[0]
	}
	labels := `{model_name="` + labelEscaper.Replace(model) + `"}`

	bw := bufio.NewWriter(w)
	series := func(name, typ, help string, v float64) {
		bw.WriteString("# HELP ")
		bw.WriteString(name)
		bw.WriteByte(' ')
		bw.WriteString(help)
		bw.WriteString("\n# TYPE ")
		bw.WriteString(name)
		bw.WriteByte(' ')
		bw.WriteString(typ)
		bw.WriteByte('\n')
		bw.WriteString(name)
		bw.WriteString(labels)
		bw.WriteByte(' ')
		bw.WriteString(strconv.FormatFloat(v, 'g', -1, 64))
		bw.WriteByte('\n')
	}
	series("vllm:num_requests_running", "gauge", "Number of requests in model execution batches (emulated: sequences holding a slot).", float64(st.ActiveSeqs))
	series("vllm:num_requests_waiting", "gauge", "Number of requests waiting to be processed (emulated: sequences waiting for a slot).", float64(st.WaitingSeqs))
	series("vllm:kv_cache_usage_perc", "gauge", "KV-cache usage. 1 means 100 percent usage.", usage)
	series("vllm:gpu_cache_usage_perc", "gauge", "GPU KV-cache usage. 1 means 100 percent usage (older name of vllm:kv_cache_usage_perc).", usage)
	return bw.Flush()
}
