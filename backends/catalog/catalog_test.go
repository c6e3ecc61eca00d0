package catalog

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/accelgate/accelgate/backends"
)

// required lists the profiles the rest of accelgate relies on, with their kinds.
var required = map[string]backends.Kind{
	"h100-sxm-80gb":    backends.KindGPU,
	"a100-sxm-80gb":    backends.KindGPU,
	"l4":               backends.KindGPU,
	"t4":               backends.KindGPU,
	"h100-mig-1g.10gb": backends.KindMIG,
	"h100-mig-2g.20gb": backends.KindMIG,
	"h100-mig-3g.40gb": backends.KindMIG,
	"h100-mig-7g.80gb": backends.KindMIG,
	"a100-mig-1g.10gb": backends.KindMIG,
	"a100-mig-2g.20gb": backends.KindMIG,
	"a100-mig-3g.40gb": backends.KindMIG,
	"a100-mig-7g.80gb": backends.KindMIG,
	"tpu-v5e":          backends.KindTPU,
	"inf2-xlarge":      backends.KindASIC,
	"inf2-llm-4chip":   backends.KindASIC,
	"jetson-agx-orin":  backends.KindEdge,
	"jetson-orin-nx":   backends.KindEdge,
}

func TestDefaultParsesAndHasRequiredProfiles(t *testing.T) {
	c := Default() // panics if the embedded file is invalid
	if c != Default() {
		t.Fatal("Default returned two different catalogs")
	}
	for name, kind := range required {
		p, ok := c.Get(name)
		if !ok {
			t.Errorf("required profile %q missing", name)
			continue
		}
		if p.Name != name {
			t.Errorf("Get(%q) returned profile %q", name, p.Name)
		}
		if p.Kind != kind {
			t.Errorf("profile %q: kind %q, want %q", name, p.Kind, kind)
		}
	}
	if _, ok := c.Get("no-such-profile"); ok {
		t.Error("Get of an unknown name reported ok")
	}
}

func TestNamesAndProfilesInFileOrder(t *testing.T) {
	c := Default()
	names, profiles := c.Names(), c.Profiles()
	if len(names) != len(profiles) || len(names) < len(required) {
		t.Fatalf("%d names, %d profiles, want equal and >= %d", len(names), len(profiles), len(required))
	}
	// File order: the embedded file lists h100-sxm-80gb first and
	// jetson-orin-nx last.
	if names[0] != "h100-sxm-80gb" || names[len(names)-1] != "jetson-orin-nx" {
		t.Errorf("names not in file order: first %q, last %q", names[0], names[len(names)-1])
	}
	for i, p := range profiles {
		if p.Name != names[i] {
			t.Errorf("Profiles()[%d] = %q, Names()[%d] = %q", i, p.Name, i, names[i])
		}
	}
	// The returned slices are the caller's.
	names[0], profiles[0] = "mutated", nil
	if c.Names()[0] != "h100-sxm-80gb" || c.Profiles()[0] == nil {
		t.Error("mutating a returned slice changed the catalog")
	}
}

func TestEveryProfileValidates(t *testing.T) {
	for _, p := range Default().Profiles() {
		if err := p.Validate(); err != nil {
			t.Errorf("%v", err)
		}
		if p.PricePerHour <= 0 {
			t.Errorf("profile %q: price_per_hour_usd %v, want > 0", p.Name, p.PricePerHour)
		}
		if p.PriceSource == "" || p.Description == "" || p.Precision == "" {
			t.Errorf("profile %q: price_source, description and precision must all be set", p.Name)
		}
	}
}

// blocks returns the profile's model blocks by class, with their source and
// estimated flag.
func blocks(p *backends.Profile) map[string]struct {
	source    string
	estimated bool
} {
	out := map[string]struct {
		source    string
		estimated bool
	}{}
	if p.LLM != nil {
		out["llm"] = struct {
			source    string
			estimated bool
		}{p.LLM.Source, p.LLM.Estimated}
	}
	for class, m := range map[string]*backends.BatchModel{"vision": p.Vision, "embedding": p.Embedding} {
		if m != nil {
			out[class] = struct {
				source    string
				estimated bool
			}{m.Source, m.Estimated}
		}
	}
	return out
}

func TestEveryModelBlockNamesItsSource(t *testing.T) {
	for _, p := range Default().Profiles() {
		bs := blocks(p)
		if len(bs) == 0 {
			t.Errorf("profile %q models no workload class", p.Name)
		}
		for class, b := range bs {
			if strings.TrimSpace(b.source) == "" {
				t.Errorf("profile %q: %s.source is empty", p.Name, class)
			}
			// A block whose source says it was estimated or derived must carry
			// the flag, so that callers can tell models from measurements.
			if !b.estimated && (strings.Contains(b.source, "ESTIMATED") || strings.Contains(b.source, "DERIVED")) {
				t.Errorf("profile %q: %s.source describes an estimate but estimated is false", p.Name, class)
			}
		}
	}
}

var migName = regexp.MustCompile(`^(h100|a100)-mig-(\d)g\.(\d+)gb$`)

// migParent maps a MIG profile name's card prefix to the whole-card profile.
var migParent = map[string]string{"h100": "h100-sxm-80gb", "a100": "a100-sxm-80gb"}

// migSlice parses a MIG profile name into its parent profile, compute slices
// (of 7) and memory slices (of 8; each is 10 GB of an 80 GB card).
func migSlice(t *testing.T, name string) (parent string, g, mem int) {
	t.Helper()
	m := migName.FindStringSubmatch(name)
	if m == nil {
		t.Fatalf("MIG profile %q does not match <card>-mig-<g>g.<mem>gb", name)
	}
	g, _ = strconv.Atoi(m[2])
	gb, _ := strconv.Atoi(m[3])
	return migParent[m[1]], g, gb / 10
}

func TestMIGPriceIsCardPriceTimesLargerShare(t *testing.T) {
	c := Default()
	seen := 0
	for _, p := range c.Profiles() {
		if p.Kind != backends.KindMIG {
			continue
		}
		seen++
		parentName, g, mem := migSlice(t, p.Name)
		parent, ok := c.Get(parentName)
		if !ok {
			t.Fatalf("profile %q: parent %q missing", p.Name, parentName)
		}
		share := math.Max(float64(g)/7, float64(mem)/8)
		want := parent.PricePerHour * share
		if math.Abs(p.PricePerHour-want) > 1e-4 {
			t.Errorf("profile %q: price %.4f, want %s price %.4f x max(%d/7, %d/8) = %.4f",
				p.Name, p.PricePerHour, parentName, parent.PricePerHour, g, mem, want)
		}
		if p.MemoryGB != float64(mem*10) {
			t.Errorf("profile %q: memory_gb %v, want %d", p.Name, p.MemoryGB, mem*10)
		}
	}
	if seen != 8 {
		t.Errorf("found %d MIG profiles, want 8", seen)
	}
}

// atLeast reports a failure when the slice's time for a workload point is
// below the parent's.
func atLeast(t *testing.T, slice, parent, what string, got, floor float64) {
	t.Helper()
	if got < floor {
		t.Errorf("%s is faster than its parent %s on %s: %.4f ms < %.4f ms", slice, parent, what, got, floor)
	}
}

func ms(d interface{ Seconds() float64 }) float64 { return d.Seconds() * 1000 }

func TestMIGSliceNeverFasterThanParent(t *testing.T) {
	c := Default()
	for _, s := range c.Profiles() {
		if s.Kind != backends.KindMIG {
			continue
		}
		parentName, _, _ := migSlice(t, s.Name)
		p, _ := c.Get(parentName)

		if s.LLM != nil {
			if p.LLM == nil {
				t.Errorf("%s serves llm but its parent %s does not", s.Name, parentName)
			} else {
				for _, tokens := range []int{1, 128, 1000, 8000} {
					atLeast(t, s.Name, parentName, fmt.Sprintf("llm prefill of %d tokens", tokens),
						ms(s.LLM.PrefillTime(tokens)), ms(p.LLM.PrefillTime(tokens)))
				}
				for _, active := range []int{1, 8, s.LLM.MaxConcurrency} {
					atLeast(t, s.Name, parentName, fmt.Sprintf("llm decode step with %d sequences", active),
						ms(s.LLM.DecodeStep(active)), ms(p.LLM.DecodeStep(active)))
				}
				if s.LLM.MaxConcurrency > p.LLM.MaxConcurrency {
					t.Errorf("%s: llm.max_concurrency %d exceeds parent's %d", s.Name, s.LLM.MaxConcurrency, p.LLM.MaxConcurrency)
				}
			}
		}
		for _, class := range []struct {
			name   string
			sm, pm *backends.BatchModel
			tokens int // tokens per item
		}{
			{"vision", s.Vision, p.Vision, 0},
			{"embedding", s.Embedding, p.Embedding, 256},
		} {
			if class.sm == nil {
				continue
			}
			if class.pm == nil {
				t.Errorf("%s serves %s but its parent %s does not", s.Name, class.name, parentName)
				continue
			}
			for _, items := range []int{1, 8, class.sm.MaxBatch} {
				atLeast(t, s.Name, parentName, fmt.Sprintf("%s batch of %d", class.name, items),
					ms(class.sm.BatchTime(items, items*class.tokens)), ms(class.pm.BatchTime(items, items*class.tokens)))
			}
		}
	}
}

func TestTenGigabyteSlicesServeNoLLM(t *testing.T) {
	for _, name := range []string{"h100-mig-1g.10gb", "a100-mig-1g.10gb"} {
		p, _ := Default().Get(name)
		if p.LLM != nil {
			t.Errorf("%s: an 8B model cannot fit in 10 GB, but the profile has an llm block", name)
		}
		if !strings.Contains(p.Description, "No LLM") {
			t.Errorf("%s: description should say why there is no llm block", name)
		}
		if p.Vision == nil || p.Embedding == nil {
			t.Errorf("%s: should still serve vision and embeddings", name)
		}
	}
}

func TestLLMDecodeOrdering(t *testing.T) {
	c := Default()
	order := []string{"h100-sxm-80gb", "a100-sxm-80gb", "l4"} // fastest first
	for _, active := range []int{1, 8, 32} {
		for i := 0; i+1 < len(order); i++ {
			fast, _ := c.Get(order[i])
			slow, _ := c.Get(order[i+1])
			if f, s := fast.LLM.DecodeStep(active), slow.LLM.DecodeStep(active); f >= s {
				t.Errorf("decode step with %d sequences: %s %v is not faster than %s %v", active, order[i], f, order[i+1], s)
			}
		}
	}
	for i := 0; i+1 < len(order); i++ {
		fast, _ := c.Get(order[i])
		slow, _ := c.Get(order[i+1])
		if f, s := fast.LLM.PrefillTime(1000), slow.LLM.PrefillTime(1000); f >= s {
			t.Errorf("1k-token prefill: %s %v is not faster than %s %v", order[i], f, order[i+1], s)
		}
	}
	// The whole H100 is the fastest LLM decoder in the catalog.
	h100, _ := c.Get("h100-sxm-80gb")
	for _, p := range c.Profiles() {
		if p.LLM != nil && p.Name != h100.Name && p.LLM.DecodeStep(1) <= h100.LLM.DecodeStep(1) {
			t.Errorf("%s decodes as fast as or faster than the H100", p.Name)
		}
	}
}

// valid is a minimal valid catalog; the Parse tests break it one way at a time.
const valid = `
profiles:
  - name: card-a
    kind: gpu
    description: a card
    price_per_hour_usd: 1.5
    price_source: list price, 2026-11-27
    memory_gb: 24
    precision: fp8
    llm:
      precision: fp8
      prefill_base_ms: 3
      prefill_ms_per_1k_tokens: 100
      decode_base_ms: 20
      decode_per_seq_ms: 0.2
      max_concurrency: 16
      estimated: true
      source: a roofline
    vision:
      base_ms: 0.3
      per_item_ms: 0.05
      max_batch: 64
      source: MLPerf
  - name: card-b
    kind: edge
    description: another
    price_per_hour_usd: 0.1
    price_source: amortized, 2026-11-27
    memory_gb: 16
    precision: int8
    embedding:
      base_ms: 1
      per_1k_tokens_ms: 3
      max_batch: 8
      executors: 2
      source: MLPerf BERT
`

func TestParseValid(t *testing.T) {
	c, err := Parse([]byte(valid))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if got := strings.Join(c.Names(), ","); got != "card-a,card-b" {
		t.Fatalf("names %q", got)
	}
	b, _ := c.Get("card-b")
	if b.Embedding == nil || b.Embedding.Parallelism() != 2 || b.LLM != nil || b.Vision != nil {
		t.Fatalf("card-b decoded wrongly: %+v", b)
	}
	if got := b.Embedding.BatchTime(4, 2000); got.Milliseconds() != 7 {
		t.Errorf("card-b embedding BatchTime(4, 2000) = %v, want 7ms", got)
	}
}

func TestParseRejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(string) string
		want []string // substrings the error must contain
	}{
		{
			name: "unknown profile field",
			edit: func(s string) string {
				return strings.Replace(s, "    memory_gb: 24\n", "    memory_gb: 24\n    memory_gib: 24\n", 1)
			},
			want: []string{`profile "card-a"`, "memory_gib"},
		},
		{
			name: "unknown field in a model block",
			edit: func(s string) string {
				return strings.Replace(s, "      base_ms: 1\n", "      base_ms: 1\n      latency_ms: 2\n", 1)
			},
			want: []string{`profile "card-b"`, "latency_ms"},
		},
		{
			name: "unknown top-level field",
			edit: func(s string) string { return "version: 2\n" + s },
			want: []string{"version"},
		},
		{
			name: "bad kind",
			edit: func(s string) string { return strings.Replace(s, "kind: edge", "kind: fpga", 1) },
			want: []string{`profile "card-b"`, "kind", "fpga"},
		},
		{
			name: "duplicate name",
			edit: func(s string) string { return strings.Replace(s, "name: card-b", "name: card-a", 1) },
			want: []string{`profile "card-a"`, "name", "duplicate"},
		},
		{
			name: "missing llm source",
			edit: func(s string) string { return strings.Replace(s, "      source: a roofline\n", "", 1) },
			want: []string{`profile "card-a"`, "llm.source", "missing"},
		},
		{
			name: "missing embedding source",
			edit: func(s string) string { return strings.Replace(s, "      source: MLPerf BERT\n", "", 1) },
			want: []string{`profile "card-b"`, "embedding.source", "missing"},
		},
		{
			name: "missing price source",
			edit: func(s string) string { return strings.Replace(s, "    price_source: list price, 2026-11-27\n", "", 1) },
			want: []string{`profile "card-a"`, "price_source", "missing"},
		},
		{
			name: "wrong type",
			edit: func(s string) string { return strings.Replace(s, "max_batch: 8", "max_batch: eight", 1) },
			want: []string{`profile "card-b"`, "eight"},
		},
		{
			name: "empty file",
			edit: func(string) string { return "" },
			want: []string{"empty"},
		},
		{
			name: "no profiles",
			edit: func(string) string { return "profiles: []\n" },
			want: []string{"profiles", "no profiles"},
		},
		{
			name: "two documents",
			edit: func(s string) string { return s + "---\nprofiles: []\n" },
			want: []string{"more than one YAML document"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := tc.edit(valid)
			if data == valid && tc.name != "empty file" {
				t.Fatal("the edit did not change the input")
			}
			c, err := Parse([]byte(data))
			if err == nil {
				t.Fatalf("Parse accepted it: %v", c.Names())
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestParseReportsEveryBadProfile(t *testing.T) {
	data := strings.Replace(valid, "kind: edge", "kind: fpga", 1)
	data = strings.Replace(data, "      source: a roofline\n", "", 1)
	_, err := Parse([]byte(data))
	if err == nil {
		t.Fatal("Parse accepted two bad profiles")
	}
	for _, w := range []string{`profile "card-a": llm.source`, `profile "card-b": kind`} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not contain %q", err, w)
		}
	}
}
