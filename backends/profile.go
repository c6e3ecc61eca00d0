package backends

import (
	"errors"
	"fmt"
	"time"
)

// Kind is a backend's hardware class. How a backend is reached (emulated, an
// OpenAI-compatible upstream, later KServe) is its transport, not its kind.
type Kind string

// The hardware classes.
const (
	KindGPU  Kind = "gpu"  // a whole GPU
	KindMIG  Kind = "mig"  // an NVIDIA MIG slice
	KindTPU  Kind = "tpu"  // a TPU endpoint
	KindASIC Kind = "asic" // an inference ASIC such as AWS Inferentia2
	KindEdge Kind = "edge" // an edge node (Jetson class) on a slow link
)

// Valid reports whether k is one of the known kinds.
func (k Kind) Valid() bool {
	switch k {
	case KindGPU, KindMIG, KindTPU, KindASIC, KindEdge:
		return true
	}
	return false
}

// Profile is a hardware profile: what an accelerator costs and how fast it runs
// each workload class. The catalog (backends/catalog) holds the calibrated
// profiles; each number there names its source. A nil workload model means the
// hardware cannot serve that class.
type Profile struct {
	Name         string  `yaml:"name"`
	Kind         Kind    `yaml:"kind"`
	Description  string  `yaml:"description"`
	PricePerHour float64 `yaml:"price_per_hour_usd"`
	PriceSource  string  `yaml:"price_source"`
	MemoryGB     float64 `yaml:"memory_gb"`
	Precision    string  `yaml:"precision"`

	LLM       *LLMModel   `yaml:"llm,omitempty"`
	Vision    *BatchModel `yaml:"vision,omitempty"`
	Embedding *BatchModel `yaml:"embedding,omitempty"`
}

// LLMModel is the latency model of an 8B-class decoder LLM under continuous
// batching. A prefill step over T prompt tokens takes
// PrefillBaseMs + PrefillMsPer1kTokens·T/1000; a decode step with s active
// sequences takes DecodeBaseMs + DecodePerSeqMs·s and yields one token for each.
type LLMModel struct {
	Precision            string  `yaml:"precision"`
	PrefillBaseMs        float64 `yaml:"prefill_base_ms"`
	PrefillMsPer1kTokens float64 `yaml:"prefill_ms_per_1k_tokens"`
	DecodeBaseMs         float64 `yaml:"decode_base_ms"`
	DecodePerSeqMs       float64 `yaml:"decode_per_seq_ms"`
	MaxConcurrency       int     `yaml:"max_concurrency"`
	Estimated            bool    `yaml:"estimated"`
	Source               string  `yaml:"source"`
}

// PrefillMs is the prefill formula in milliseconds, for fractional (mean)
// token counts as capacity planning uses them.
func (m *LLMModel) PrefillMs(tokens float64) float64 {
	return m.PrefillBaseMs + m.PrefillMsPer1kTokens*tokens/1000
}

// DecodeStepMs is the decode-step formula in milliseconds.
func (m *LLMModel) DecodeStepMs(active float64) float64 {
	return m.DecodeBaseMs + m.DecodePerSeqMs*active
}

// PrefillTime is the duration of one prefill step over tokens prompt tokens.
func (m *LLMModel) PrefillTime(tokens int) time.Duration { return msDur(m.PrefillMs(float64(tokens))) }

// DecodeStep is the duration of one decode step with active sequences.
func (m *LLMModel) DecodeStep(active int) time.Duration {
	return msDur(m.DecodeStepMs(float64(active)))
}

// BatchModel is the latency model of a batch-executed workload (vision,
// embeddings): a batch of b items takes BaseMs + PerItemMs·b, plus, for
// token-sized items (embeddings), PerKTokensMs per 1,000 tokens in the batch.
// Executors batches run at once (data-parallel cores, e.g. Inferentia2's two
// NeuronCores per chip).
type BatchModel struct {
	BaseMs       float64 `yaml:"base_ms"`
	PerItemMs    float64 `yaml:"per_item_ms"`
	PerKTokensMs float64 `yaml:"per_1k_tokens_ms"`
	MaxBatch     int     `yaml:"max_batch"`
	Executors    int     `yaml:"executors"`
	Estimated    bool    `yaml:"estimated"`
	Source       string  `yaml:"source"`
}

// BatchMs is the batch formula in milliseconds, for fractional (expected)
// batch sizes as the simulator's predictor and capacity planning use them.
func (m *BatchModel) BatchMs(items, tokens float64) float64 {
	return m.BaseMs + m.PerItemMs*items + m.PerKTokensMs*tokens/1000
}

// BatchTime is the duration of one batch of items holding tokens tokens in all
// (tokens is ignored when PerKTokensMs is zero).
func (m *BatchModel) BatchTime(items, tokens int) time.Duration {
	return msDur(m.BatchMs(float64(items), float64(tokens)))
}

// SplitTime is the duration of rows rows holding tokens tokens in all run
// as batches of at most MaxBatch rows one after another (the tokens spread
// evenly over the rows): how a request with more rows than MaxBatch runs,
// and one batch's time otherwise.
func (m *BatchModel) SplitTime(rows, tokens int) time.Duration {
	rows = max(rows, 1)
	per := max(m.MaxBatch, 1)
	var t time.Duration
	for rest := rows; rest > 0; rest -= per {
		b := min(rest, per)
		t += m.BatchTime(b, tokens*b/rows)
	}
	return t
}

// Parallelism is the number of batches that run at once (at least 1).
func (m *BatchModel) Parallelism() int {
	if m.Executors < 1 {
		return 1
	}
	return m.Executors
}

// PricePerSecond is the profile's price in USD per second.
func (p *Profile) PricePerSecond() float64 { return p.PricePerHour / 3600 }

// Validate checks that the profile is complete and its numbers are sane; the
// error names the offending field.
func (p *Profile) Validate() error {
	var errs []error
	bad := func(field, format string, a ...any) {
		errs = append(errs, fmt.Errorf("profile %q: %s: %s", p.Name, field, fmt.Sprintf(format, a...)))
	}
	if p.Name == "" {
		bad("name", "missing")
	}
	if !p.Kind.Valid() {
		bad("kind", "%q is not one of gpu, mig, tpu, asic, edge", p.Kind)
	}
	if p.PricePerHour < 0 {
		bad("price_per_hour_usd", "negative")
	}
	if p.MemoryGB <= 0 {
		bad("memory_gb", "must be positive")
	}
	if p.LLM == nil && p.Vision == nil && p.Embedding == nil {
		bad("llm/vision/embedding", "the profile models no workload class")
	}
	if m := p.LLM; m != nil {
		if m.PrefillBaseMs < 0 || m.PrefillMsPer1kTokens <= 0 {
			bad("llm.prefill", "base must be >= 0 and per-1k-tokens > 0")
		}
		if m.DecodeBaseMs <= 0 || m.DecodePerSeqMs < 0 {
			bad("llm.decode", "base must be > 0 and per-seq >= 0")
		}
		if m.MaxConcurrency < 1 {
			bad("llm.max_concurrency", "must be at least 1")
		}
		if m.Source == "" {
			bad("llm.source", "missing")
		}
	}
	for _, b := range []struct {
		name string
		m    *BatchModel
	}{{"vision", p.Vision}, {"embedding", p.Embedding}} {
		if b.m == nil {
			continue
		}
		if b.m.BaseMs < 0 || b.m.PerItemMs < 0 || b.m.PerKTokensMs < 0 || b.m.PerItemMs+b.m.PerKTokensMs == 0 {
			bad(b.name, "latency coefficients must be >= 0 and not all zero")
		}
		if b.m.MaxBatch < 1 {
			bad(b.name+".max_batch", "must be at least 1")
		}
		if b.m.Executors < 0 {
			bad(b.name+".executors", "must not be negative")
		}
		if b.m.Source == "" {
			bad(b.name+".source", "missing")
		}
	}
	return errors.Join(errs...)
}

func msDur(ms float64) time.Duration { return time.Duration(ms * float64(time.Millisecond)) }
