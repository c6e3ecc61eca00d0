package fleet_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/accelgate/accelgate/backends"
	"github.com/accelgate/accelgate/backends/catalog"
	"github.com/accelgate/accelgate/backends/fleet"
	"github.com/accelgate/accelgate/batcher"
	"github.com/accelgate/accelgate/router"
)

// models is a valid models section: one model of each kind.
const models = `
models:
  - name: llm
    kind: llm
  - name: emb
    kind: embedding
    dimension: 768
  - name: vis
    kind: tensor
    inputs: [{name: input, datatype: FP32, shape: [-1, 3, 224, 224]}]
    outputs: [{name: output, datatype: FP32, shape: [-1, 1000]}]
`

// backend0 is a valid backends section of one whole GPU serving all three.
const backend0 = `
backends:
  - name: gpu-0
    hardware: h100-sxm-80gb
    models: [llm, emb, vis]
`

// parseValidate runs Parse then Validate against the default catalog and
// returns the first error.
func parseValidate(t *testing.T, src string) (*fleet.File, error) {
	t.Helper()
	f, err := fleet.Parse([]byte(src))
	if err != nil {
		return nil, err
	}
	return f, f.Validate(catalog.Default())
}

func mustValidate(t *testing.T, src string) *fleet.File {
	t.Helper()
	f, err := parseValidate(t, src)
	if err != nil {
		t.Fatalf("valid fleet rejected: %v\n%s", err, src)
	}
	return f
}

func TestValidBaseFleet(t *testing.T) {
	// The pieces the rejection table builds on are valid by themselves.
	mustValidate(t, models+backend0)
}

func TestRejectsBadFleets(t *testing.T) {
	cases := []struct {
		name string
		src  string
		want []string // substrings the error must contain; the first is the field path
	}{
		// Strict decoding.
		{"unknown top-level field", models + backend0 + "\nroutes: {}\n",
			[]string{"field routes not found"}},
		{"unknown model field", `
models:
  - name: llm
    kind: llm
    context_lenght: 4096
` + backend0, []string{"field context_lenght not found", "line 5"}},
		{"unknown backend field", models + `
backends:
  - name: gpu-0
    hardwares: h100-sxm-80gb
    models: [llm]
`, []string{"field hardwares not found"}},
		{"unknown slo field", `
models:
  - name: llm
    kind: llm
    slo:
      critical: {ttft: 300}
` + backend0, []string{"field ttft not found"}},
		{"unknown router field", models + backend0 + "router:\n  polcy: fastest\n",
			[]string{"field polcy not found"}},
		{"wrong type", models + `
backends:
  - name: gpu-0
    hardware: h100-sxm-80gb
    models: [llm]
    rtt_ms: fast
`, []string{"line 17", "fast"}},
		{"string for a list", models + `
backends:
  - name: gpu-0
    hardware: h100-sxm-80gb
    models: llm
`, []string{"line 16", "llm"}},

		// Models.
		{"no models section", backend0, []string{"models: at least one model is required"}},
		{"empty models", "models: []\n" + backend0, []string{"models: at least one model is required"}},
		{"model without name", `
models:
  - kind: llm
` + backend0, []string{"models[0].name", "missing"}},
		{"duplicate model", models + `
  - name: emb
    kind: embedding
    dimension: 8
` + backend0, []string{"models[3].name", `duplicate model "emb"`}},
		{"bad kind", `
models:
  - name: llm
    kind: chat
` + backend0, []string{"models[0].kind", `"chat"`}},
		{"missing kind", `
models:
  - name: llm
` + backend0, []string{"models[0].kind"}},
		{"bad default_priority", `
models:
  - name: llm
    kind: llm
    default_priority: urgent
` + backend0, []string{"models[0].default_priority", `"urgent"`}},
		{"unknown slo priority", `
models:
  - name: llm
    kind: llm
    slo:
      vip: {ttft_ms: 100}
` + backend0, []string{"models[0].slo.vip", "unknown priority"}},
		{"negative slo", `
models:
  - name: llm
    kind: llm
    slo:
      standard: {ttft_ms: 100, tpot_ms: -1}
` + backend0, []string{"models[0].slo.standard", "negative"}},
		{"timeout without a unit", `
models:
  - name: llm
    kind: llm
    timeout: 60
` + backend0, []string{"line 5", "time.Duration"}},
		{"negative timeout", `
models:
  - name: llm
    kind: llm
    timeout: -5s
` + backend0, []string{"models[0].timeout"}},
		{"tiny context", `
models:
  - name: llm
    kind: llm
    context_length: 8
` + backend0, []string{"models[0].context_length"}},
		{"negative expected output", `
models:
  - name: llm
    kind: llm
    expected_output_tokens: -1
` + backend0, []string{"models[0].expected_output_tokens"}},
		{"embedding without dimension", `
models:
  - name: llm
    kind: llm
  - name: emb
    kind: embedding
` + backend0, []string{"models[1].dimension", "required"}},
		{"negative classes", `
models:
  - name: vis
    kind: tensor
    classes: -3
    inputs: [{name: input, datatype: FP32, shape: [-1, 3, 224, 224]}]
    outputs: [{name: output, datatype: FP32, shape: [-1, 1000]}]
`, []string{"models[0].classes"}},
		{"tensor model without tensors", `
models:
  - name: vis
    kind: tensor
`, []string{"models[0].inputs", "models[0].outputs"}},

		// Backends.
		{"no backends", models, []string{"backends: at least one backend is required"}},
		{"backend without name", models + `
backends:
  - hardware: h100-sxm-80gb
    models: [llm]
`, []string{"backends[0].name", "missing"}},
		{"unknown hardware", models + `
backends:
  - name: gpu-0
    hardware: h100-sxm-80gb
    models: [llm]
  - name: gpu-1
    hardware: b200
    models: [llm]
`, []string{"backends[1].hardware", `unknown profile "b200"`, "known: h100-sxm-80gb, "}},
		{"duplicate backend name", models + `
backends:
  - name: gpu-0
    hardware: h100-sxm-80gb
    models: [llm]
  - name: gpu-0
    hardware: l4
    models: [llm]
`, []string{"backends[1].name", `duplicate backend "gpu-0"`}},
		{"unknown transport", models + `
backends:
  - name: gpu-0
    hardware: h100-sxm-80gb
    transport: grpc
    models: [llm]
`, []string{"backends[0].transport", `"grpc"`}},
		{"openai without url", models + `
backends:
  - name: gpu-0
    hardware: h100-sxm-80gb
    transport: openai
    models: [llm]
`, []string{"backends[0].url", "http(s) URL"}},
		{"openai with ftp url", models + `
backends:
  - name: gpu-0
    hardware: h100-sxm-80gb
    transport: openai
    url: ftp://files.example.com/
    models: [llm]
`, []string{"backends[0].url", "ftp://files.example.com/"}},
		{"openai url without host", models + `
backends:
  - name: gpu-0
    hardware: h100-sxm-80gb
    transport: openai
    url: "http:///v1"
    models: [llm]
`, []string{"backends[0].url"}},
		{"openai url without scheme", models + `
backends:
  - name: gpu-0
    hardware: h100-sxm-80gb
    transport: openai
    url: 10.0.0.5:8000
    models: [llm]
`, []string{"backends[0].url"}},
		{"openai unparsable url", models + `
backends:
  - name: gpu-0
    hardware: h100-sxm-80gb
    transport: openai
    url: "http://[::1"
    models: [llm]
`, []string{"backends[0].url"}},
		{"emulated with url", models + `
backends:
  - name: gpu-0
    hardware: h100-sxm-80gb
    transport: emulated
    url: http://10.0.0.5:8000
    models: [llm]
`, []string{"backends[0].url", "only an openai transport"}},
		{"default transport with url", models + `
backends:
  - name: gpu-0
    hardware: h100-sxm-80gb
    url: http://10.0.0.5:8000
    models: [llm]
`, []string{"backends[0].url"}},
		{"backend without models", models + `
backends:
  - name: gpu-0
    hardware: h100-sxm-80gb
`, []string{"backends[0].models", "at least one model"}},
		{"unknown model", models + `
backends:
  - name: gpu-0
    hardware: h100-sxm-80gb
    models: [llm, gpt-9]
`, []string{"backends[0].models[1]", `"gpt-9" is not in the models section`}},
		{"mig slice serving an llm", models + `
backends:
  - name: gpu-0
    hardware: h100-sxm-80gb
    models: [llm]
  - name: mig-0
    hardware: a100-mig-1g.10gb
    models: [vis, llm]
`, []string{"backends[1].models[1]", `"a100-mig-1g.10gb" has no llm latency model`}},
		{"negative price", models + `
backends:
  - name: gpu-0
    hardware: h100-sxm-80gb
    models: [llm]
    price_per_hour_usd: -0.01
`, []string{"backends[0].price_per_hour_usd", "negative"}},
		{"negative rtt", models + `
backends:
  - name: gpu-0
    hardware: h100-sxm-80gb
    models: [llm]
    rtt_ms: -1
`, []string{"backends[0].rtt_ms", "between 0 and"}},
		{"NaN rtt", models + `
backends:
  - name: gpu-0
    hardware: h100-sxm-80gb
    models: [llm]
    rtt_ms: .nan
`, []string{"backends[0].rtt_ms"}},
		{"infinite price", models + `
backends:
  - name: gpu-0
    hardware: h100-sxm-80gb
    models: [llm]
    price_per_hour_usd: .inf
`, []string{"backends[0].price_per_hour_usd"}},
		{"duplicate model on a backend", models + `
backends:
  - name: gpu-0
    hardware: h100-sxm-80gb
    models: [llm, llm]
`, []string{"backends[0].models[1]", "twice"}},
		{"url with query", models + `
backends:
  - name: gpu-0
    hardware: h100-sxm-80gb
    transport: openai
    url: http://h:1/v1?x=1
    models: [llm]
`, []string{"backends[0].url", "query"}},
		{"NaN margin", models + backend0 + "router:\n  margin: .nan\n",
			[]string{"router.margin"}},
		{"second YAML document", models + backend0 + "---\nbogus: 1\n",
			[]string{"one YAML document"}},
		{"jitter above 1", models + `
backends:
  - name: gpu-0
    hardware: h100-sxm-80gb
    models: [llm]
    jitter: 1.5
`, []string{"backends[0].jitter", "[0, 1]"}},
		{"negative jitter", models + `
backends:
  - name: gpu-0
    hardware: h100-sxm-80gb
    models: [llm]
    jitter: -0.1
`, []string{"backends[0].jitter"}},

		// Router.
		{"unknown policy", models + backend0 + "router:\n  policy: priciest\n",
			[]string{"router.policy", `"priciest"`}},
		{"margin above range", models + backend0 + "router:\n  margin: 11\n",
			[]string{"router.margin", "outside [0, 10]"}},
		{"negative margin", models + backend0 + "router:\n  margin: -0.5\n",
			[]string{"router.margin"}},
		{"negative eject_after", models + backend0 + "router:\n  eject_after: -1\n",
			[]string{"router.eject_after"}},
		{"negative eject_for", models + backend0 + "router:\n  eject_for: -1s\n",
			[]string{"router.eject_for"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := parseValidate(t, c.src)
			if err == nil {
				t.Fatalf("accepted:\n%s", c.src)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestUnknownHardwareListsEveryProfile(t *testing.T) {
	_, err := parseValidate(t, models+`
backends:
  - name: gpu-0
    hardware: nope
    models: [llm]
`)
	if err == nil {
		t.Fatal("unknown hardware accepted")
	}
	for _, name := range catalog.Default().Names() {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("error does not list known profile %q: %v", name, err)
		}
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	_, err := parseValidate(t, `
models:
  - name: llm
    kind: llm
    default_priority: urgent
backends:
  - name: gpu-0
    hardware: nope
    transport: carrier-pigeon
    models: [llm, missing]
    rtt_ms: -3
router:
  policy: lottery
`)
	if err == nil {
		t.Fatal("accepted")
	}
	for _, w := range []string{"models[0].default_priority", "backends[0].hardware", "backends[0].transport", "backends[0].models[1]", "backends[0].rtt_ms", "router.policy"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error does not report %s: %v", w, err)
		}
	}
}

func TestParseEmptyAndNonMapping(t *testing.T) {
	for _, src := range []string{"", "[1, 2]\n", "models: 3\n", "\t- bad: [indent\n"} {
		if f, err := parseValidate(t, src); err == nil {
			t.Errorf("%q accepted: %+v", src, f)
		}
	}
}

func TestDefaultFleet(t *testing.T) {
	cat := catalog.Default()
	f, err := fleet.Default(cat)
	if err != nil {
		t.Fatal(err)
	}
	// Default parses the same bytes DefaultYAML hands out, and they validate.
	if _, err := parseValidate(t, string(fleet.DefaultYAML())); err != nil {
		t.Fatalf("DefaultYAML: %v", err)
	}
	y := fleet.DefaultYAML()
	y[0] = '!'
	if fleet.DefaultYAML()[0] == '!' {
		t.Fatal("DefaultYAML returns the embedded bytes, not a copy")
	}

	byKind := map[backends.Kind]int{}
	hw := map[string]int{}
	inf2 := 0
	for i, b := range f.Backends {
		p, ok := cat.Get(b.Hardware)
		if !ok {
			t.Fatalf("backends[%d]: unknown hardware %q", i, b.Hardware)
		}
		byKind[p.Kind]++
		hw[b.Hardware]++
		if strings.HasPrefix(b.Hardware, "inf2") {
			inf2++
		}
		if b.Transport != fleet.TransportEmulated {
			t.Errorf("backends[%d]: transport %q, want emulated", i, b.Transport)
		}
	}
	if hw["h100-sxm-80gb"] < 1 {
		t.Error("no whole h100 gpu")
	}
	if byKind[backends.KindMIG] < 3 {
		t.Errorf("%d MIG slices, want several", byKind[backends.KindMIG])
	}
	if hw["l4"] < 1 || hw["tpu-v5e"] < 1 || inf2 < 1 {
		t.Errorf("missing l4, tpu-v5e or inf2: %v", hw)
	}
	if byKind[backends.KindEdge] != 2 {
		t.Errorf("%d edge nodes, want 2", byKind[backends.KindEdge])
	}

	want := map[string]backends.ModelKind{
		"llama-3.1-8b-instruct": backends.ModelLLM,
		"bge-base-en-v1.5":      backends.ModelEmbedding,
		"resnet-50":             backends.ModelTensor,
	}
	served := map[string]bool{}
	for _, b := range f.Backends {
		for _, m := range b.Models {
			served[m] = true
		}
	}
	for _, m := range f.Models {
		if k, ok := want[m.Name]; ok && backends.ModelKind(m.Kind) != k {
			t.Errorf("%s: kind %q, want %q", m.Name, m.Kind, k)
		}
		if m.Name == "bge-base-en-v1.5" && m.Dimension != 768 {
			t.Errorf("bge dimension %d, want 768", m.Dimension)
		}
	}
	for name := range want {
		if !served[name] {
			t.Errorf("no backend serves %s", name)
		}
	}
	if f.Router.Policy != router.PolicyAccelgate {
		t.Errorf("router policy %q", f.Router.Policy)
	}

	// It builds (every emulated backend), and the router accepts it.
	fl, err := f.Build(cat, fleet.BuildOptions{Getenv: func(string) string { return "" }})
	if err != nil {
		t.Fatal(err)
	}
	defer fl.Close()
	if len(fl.Backends) != len(f.Backends) || len(fl.Models) != 3 || len(fl.ModelOrder) != 3 {
		t.Fatalf("built %d backends, %d models", len(fl.Backends), len(fl.Models))
	}
	if got := strings.Join(fl.ModelNames(), ","); got != "bge-base-en-v1.5,llama-3.1-8b-instruct,resnet-50" {
		t.Errorf("model names %s", got)
	}
	if _, err := router.New(fl.Router, fl.Descriptors(), nil); err != nil {
		t.Fatalf("router rejects the default fleet: %v", err)
	}
	llama := fl.Models["llama-3.1-8b-instruct"]
	if llama.SLO[backends.Critical].TTFT != 300*time.Millisecond || llama.SLO[backends.Standard].TPOT != 60*time.Millisecond || llama.DefaultPriority != backends.Standard {
		t.Errorf("llama settings: %+v", llama)
	}
}

func TestDefaultsFilled(t *testing.T) {
	f := mustValidate(t, models+backend0)
	llm, emb, vis := f.Models[0], f.Models[1], f.Models[2]
	if llm.Timeout != 60*time.Second || emb.Timeout != backends.DefaultTimeout || vis.Timeout != 60*time.Second {
		t.Errorf("timeouts %v %v %v, want 60s", llm.Timeout, emb.Timeout, vis.Timeout)
	}
	if llm.ContextLength != 8192 || llm.ExpectedOutputTokens != 256 {
		t.Errorf("llm context %d, expected output %d", llm.ContextLength, llm.ExpectedOutputTokens)
	}
	if vis.Classes != 1000 {
		t.Errorf("classes %d", vis.Classes)
	}
	for i, m := range f.Models {
		if m.DefaultPriority != "standard" {
			t.Errorf("models[%d].default_priority %q", i, m.DefaultPriority)
		}
	}
	// LLM defaults are not applied to other kinds, and vice versa.
	if emb.ContextLength != 0 || emb.Classes != 0 || llm.Classes != 0 || vis.ContextLength != 0 {
		t.Errorf("defaults leaked across kinds: %+v %+v %+v", llm, emb, vis)
	}
	b := f.Backends[0]
	if b.Transport != fleet.TransportEmulated || b.Seed != 1 {
		t.Errorf("backend defaults: transport %q seed %d", b.Transport, b.Seed)
	}
	r := f.Router
	if r.Policy != router.PolicyAccelgate || r.Margin != 0.1 || r.EjectAfter != 3 || r.EjectFor != 10*time.Second {
		t.Errorf("router defaults: %+v", r)
	}
	m := llm.Model()
	if m.Kind != backends.ModelLLM || m.DefaultPriority != backends.Standard || m.Timeout != time.Minute || m.ContextLength != 8192 {
		t.Errorf("Model(): %+v", m)
	}
	// Validate is idempotent: a second pass changes nothing and still passes.
	before := *f
	if err := f.Validate(catalog.Default()); err != nil {
		t.Fatal(err)
	}
	if before.Models[0].Timeout != f.Models[0].Timeout || before.Router != f.Router {
		t.Error("a second Validate changed the file")
	}
}

func TestLoad(t *testing.T) {
	cat := catalog.Default()
	f, err := fleet.Load(filepath.Join("testdata", "small.yaml"), cat)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Models) != 3 || len(f.Backends) != 3 {
		t.Fatalf("loaded %d models, %d backends", len(f.Models), len(f.Backends))
	}
	emb := f.Models[1].Model()
	if emb.Timeout != 2500*time.Millisecond || emb.DefaultPriority != backends.Sheddable || emb.Dimension != 384 {
		t.Errorf("embed: %+v", emb)
	}
	chat := f.Models[0].Model()
	if chat.SLO[backends.Critical] != (backends.SLO{TTFT: 250 * time.Millisecond, TPOT: 40 * time.Millisecond}) ||
		chat.SLO[backends.Sheddable].E2E != 1500500*time.Microsecond || chat.SLO[backends.Standard] != (backends.SLO{}) {
		t.Errorf("chat SLOs: %+v", chat.SLO)
	}
	if f.Backends[1].Seed != 99 || f.Backends[2].Seed != 3 || f.Backends[1].Jitter == nil || *f.Backends[1].Jitter != 0 {
		t.Errorf("seeds %d %d, jitter %v", f.Backends[1].Seed, f.Backends[2].Seed, f.Backends[1].Jitter)
	}

	for _, c := range []struct {
		file string
		want []string
	}{
		{"invalid.yaml", []string{"backends[0].hardware", `"h200-imaginary"`}},
		{"unknown-field.yaml", []string{"field hardwares not found"}},
	} {
		path := filepath.Join("testdata", c.file)
		_, err := fleet.Load(path, cat)
		if err == nil {
			t.Fatalf("%s accepted", path)
		}
		if !strings.HasPrefix(err.Error(), path+": ") {
			t.Errorf("%s: error does not start with the path: %v", path, err)
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not contain %q", path, err, w)
			}
		}
	}

	missing := filepath.Join("testdata", "no-such-fleet.yaml")
	_, err = fleet.Load(missing, cat)
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), missing) {
		t.Errorf("missing file: %v", err)
	}
}

func TestBuildCarriesOverrides(t *testing.T) {
	cat := catalog.Default()
	f, err := fleet.Load(filepath.Join("testdata", "small.yaml"), cat)
	if err != nil {
		t.Fatal(err)
	}
	fl, err := f.Build(cat, fleet.BuildOptions{Getenv: func(k string) string {
		t.Errorf("Getenv(%q) called for a fleet without api_key_env", k)
		return ""
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer fl.Close()
	ds := fl.Descriptors()
	if len(ds) != 3 {
		t.Fatalf("%d descriptors", len(ds))
	}
	l4, _ := cat.Get("l4")
	h100, _ := cat.Get("h100-sxm-80gb")
	big, owned := ds[0], ds[1]
	if big.Name != "big" || big.Profile != h100 || big.PricePerHour != h100.PricePerHour || big.RTT != 0 || big.Transport != fleet.TransportEmulated {
		t.Errorf("big: %+v", big)
	}
	if owned.Name != "owned-l4" || owned.Profile != l4 || owned.PricePerHour != 0.25 || owned.RTT != 12500*time.Microsecond || owned.Site != "closet" {
		t.Errorf("owned-l4: %+v", owned)
	}
	if owned.PricePerHour == l4.PricePerHour {
		t.Error("the override equals the catalog price; the test proves nothing")
	}
	if !owned.ServesModel("chat") || owned.ServesModel("embed") || strings.Join(owned.Models, ",") != "chat,vision" {
		t.Errorf("owned-l4 models %v", owned.Models)
	}
	// The descriptor's model list is the fleet's own copy.
	f.Backends[1].Models[0] = "changed"
	if owned.Models[0] != "chat" {
		t.Error("descriptor aliases the file's model list")
	}
	for i, b := range fl.Backends {
		if b.Descriptor() != ds[i] {
			t.Errorf("Descriptors()[%d] is not backend %d's", i, i)
		}
	}
}

func TestBuildOpenAIUpstream(t *testing.T) {
	cat := catalog.Default()
	f, err := fleet.Load(filepath.Join("testdata", "upstream.yaml"), cat)
	if err != nil {
		t.Fatal(err)
	}
	var asked []string
	fl, err := f.Build(cat, fleet.BuildOptions{Getenv: func(k string) string { asked = append(asked, k); return "sk-test" }})
	if err != nil {
		t.Fatal(err)
	}
	defer fl.Close()
	up, emu := fl.Backends[0].Descriptor(), fl.Backends[1].Descriptor()
	if up.Transport != fleet.TransportOpenAI || emu.Transport != fleet.TransportEmulated {
		t.Fatalf("transports %q, %q", up.Transport, emu.Transport)
	}
	if up.PricePerHour != 0 {
		t.Errorf("a zero price override is kept: got %v", up.PricePerHour)
	}
	if strings.Join(asked, ",") != "VLLM_KEY" {
		t.Errorf("Getenv asked for %v, want [VLLM_KEY]", asked)
	}
	if fl.Router.Policy != router.PolicyRoundRobin {
		t.Errorf("router policy %q", fl.Router.Policy)
	}
}

// TestBuildAPIKeyReachesUpstream checks the key named by api_key_env, read
// through BuildOptions.Getenv, is what the upstream is called with.
func TestBuildAPIKeyReachesUpstream(t *testing.T) {
	var mu sync.Mutex
	var auth, path string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		auth, path = r.Header.Get("Authorization"), r.URL.Path
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"id":"x","object":"chat.completion","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}`))
	}))
	defer srv.Close()
	src := `
models:
  - name: chat
    kind: llm
backends:
  - name: up-0
    hardware: h100-sxm-80gb
    transport: openai
    url: ` + srv.URL + `/v1/
    api_key_env: ACCELGATE_TEST_KEY
    models: [chat]
    rtt_ms: 3
    price_per_hour_usd: 7.2
`
	cat := catalog.Default()
	f := mustValidate(t, src)
	env := map[string]string{"ACCELGATE_TEST_KEY": "sk-from-fake-env"}
	fl, err := f.Build(cat, fleet.BuildOptions{Getenv: func(k string) string { return env[k] }})
	if err != nil {
		t.Fatal(err)
	}
	defer fl.Close()
	d := fl.Backends[0].Descriptor()
	if d.Transport != "openai" || d.RTT != 3*time.Millisecond || d.PricePerHour != 7.2 || d.PricePerSecond() != 0.002 {
		t.Fatalf("descriptor: %+v", d)
	}
	req := &backends.Request{ID: "r1", Op: backends.OpChat, Model: "chat", N: 1, Rows: 1,
		Messages: []backends.Message{{Role: "user", Content: "hi"}},
		Body:     []byte(`{"model":"chat","messages":[{"role":"user","content":"hi"}]}`)}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := fl.Backends[0].Do(ctx, req, fl.Models["chat"], nil)
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if auth != "Bearer sk-from-fake-env" {
		t.Errorf("Authorization %q, want the key from Getenv", auth)
	}
	if path != "/v1/chat/completions" {
		t.Errorf("path %q", path)
	}
	if res.Usage.TotalTokens != 5 {
		t.Errorf("usage %+v", res.Usage)
	}
}

func TestWriteTable(t *testing.T) {
	cat := catalog.Default()
	f, err := fleet.Load(filepath.Join("testdata", "small.yaml"), cat)
	if err != nil {
		t.Fatal(err)
	}
	fl, err := f.Build(cat, fleet.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer fl.Close()
	var buf bytes.Buffer
	fleet.WriteTable(&buf, fl)
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != 1+len(fl.Backends) {
		t.Fatalf("%d lines for %d backends:\n%s", len(lines), len(fl.Backends), buf.String())
	}
	if h := strings.Fields(lines[0]); len(h) < 3 || h[0] != "BACKEND" || h[1] != "HARDWARE" {
		t.Errorf("header %q", lines[0])
	}
	h100, _ := cat.Get("h100-sxm-80gb")
	a100, _ := cat.Get("a100-mig-1g.10gb")
	for i, want := range [][]string{
		{"big", "h100-sxm-80gb", "gpu", "emulated", fmtPrice(h100.PricePerHour), "chat,embed,vision"},
		{"owned-l4", "l4", "closet", "12.5ms", "0.2500", "chat,vision"},
		{"slice", "a100-mig-1g.10gb", "mig", fmtPrice(a100.PricePerHour), "vision,embed"},
	} {
		line := lines[i+1]
		if fields := strings.Fields(line); fields[0] != want[0] || fields[1] != want[1] {
			t.Errorf("line %d %q: want backend %s on %s first", i+1, line, want[0], want[1])
		}
		for _, w := range want[2:] {
			if !strings.Contains(line, w) {
				t.Errorf("line %d %q does not contain %q", i+1, line, w)
			}
		}
	}
	// Columns line up: every row's hardware starts where the header's does.
	col := strings.Index(lines[0], "HARDWARE")
	for _, l := range lines[1:] {
		if len(l) <= col || l[col-1] != ' ' || l[col] == ' ' {
			t.Errorf("hardware column misaligned in %q", l)
		}
	}
}

func fmtPrice(p float64) string { return fmt.Sprintf("%.4f", p) }

func TestBuildKServeTransports(t *testing.T) {
	const tmpl = `
models:
  - name: vis
    kind: tensor
    inputs: [{name: input, datatype: FP32, shape: [-1, 3, 224, 224]}]
    outputs: [{name: output, datatype: FP32, shape: [-1, 1000]}]
backends:
  - name: triton-0
    hardware: l4
    transport: %s
    url: %s
    models: [vis]
`
	for _, c := range []struct{ transport, url string }{
		{fleet.TransportKServeGRPC, "grpc://127.0.0.1:8001"},
		{fleet.TransportKServeHTTP, "http://127.0.0.1:8000"},
	} {
		cat := catalog.Default()
		fl, err := mustValidate(t, fmt.Sprintf(tmpl, c.transport, c.url)).Build(cat, fleet.BuildOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer fl.Close()
		if d := fl.Backends[0].Descriptor(); d.Transport != c.transport || d.Name != "triton-0" {
			t.Fatalf("%s: descriptor %+v", c.transport, d)
		}
		if _, ok := fl.Backends[0].(backends.MetadataSource); !ok {
			t.Fatalf("a %s backend must report model metadata", c.transport)
		}
	}
	// A gRPC URL without a port is refused.
	if _, err := parseValidate(t, fmt.Sprintf(tmpl, fleet.TransportKServeGRPC, "grpc://127.0.0.1")); err == nil || !strings.Contains(err.Error(), "backends[0].url") {
		t.Fatalf("grpc URL without a port: %v", err)
	}
}

func TestReplicasExpand(t *testing.T) {
	src := `
models: [{name: llm, kind: llm}]
backends:
  - name: gpu
    hardware: h100-sxm-80gb
    replicas: 3
    seed: 7
    models: [llm]
  - name: gpu-1
    hardware: l4
    models: [llm]
`
	f := mustValidate(t, src)
	var names []string
	seeds := map[int64]bool{}
	for _, b := range f.Backends {
		names = append(names, b.Name)
		seeds[b.Seed] = true
	}
	if got := strings.Join(names, ","); got != "gpu-0,gpu-1-r,gpu-2,gpu-1" {
		t.Fatalf("expanded names %s", got)
	}
	if len(seeds) != 4 {
		t.Fatalf("replicas must get distinct seeds: %v", seeds)
	}
	// Validate is idempotent on an expanded file, and replicas of an upstream are refused.
	if err := f.Validate(catalog.Default()); err != nil || len(f.Backends) != 4 {
		t.Fatalf("second Validate: %v, %d backends", err, len(f.Backends))
	}
	_, err := parseValidate(t, "models: [{name: llm, kind: llm}]\nbackends:\n  - {name: v, hardware: l4, transport: openai, url: 'http://h:1', replicas: 2, models: [llm]}\n")
	if err == nil || !strings.Contains(err.Error(), "backends[0].replicas") {
		t.Fatalf("replicated upstream: %v", err)
	}
}

// TestBatchingSection: a model's batching section is decoded strictly into
// batcher.Config, defaulted, and carried into Fleet.Batching; a model without
// one gets batcher.DefaultConfig().
func TestBatchingSection(t *testing.T) {
	src := `
models:
  - name: llm
    kind: llm
    batching: {mode: "off"}
  - name: emb
    kind: embedding
    dimension: 768
  - name: vis
    kind: tensor
    inputs: [{name: input, datatype: FP32, shape: [-1, 3, 224, 224]}]
    outputs: [{name: output, datatype: FP32, shape: [-1, 1000]}]
    batching:
      mode: fixed
      max_batch_size: 16
      preferred_batch_sizes: [8, 4]
      max_queue_delay_us: 1500
      max_queue_size: 64
      aging_limit_ms: {standard: 100, sheddable: -1}
` + backend0
	f := mustValidate(t, src)
	fl, err := f.Build(catalog.Default(), fleet.BuildOptions{Getenv: func(string) string { return "" }})
	if err != nil {
		t.Fatal(err)
	}
	defer fl.Close()
	vis := fl.Batching["vis"]
	if vis.Mode != batcher.ModeFixed || vis.MaxBatchSize != 16 || !slices.Equal(vis.PreferredBatchSizes, []int{4, 8}) ||
		vis.MaxQueueDelay != 1500*time.Microsecond || vis.MaxQueueSize != 64 ||
		vis.AgingLimit[backends.Standard] != 100*time.Millisecond || vis.AgingLimit[backends.Sheddable] != -time.Millisecond {
		t.Errorf("vis batching %+v", vis)
	}
	if llm := fl.Batching["llm"]; llm.Mode != batcher.ModeOff || llm.MaxQueueSize != batcher.DefaultMaxQueueSize {
		t.Errorf("llm batching %+v", llm)
	}
	if emb := fl.Batching["emb"]; !reflect.DeepEqual(emb, batcher.DefaultConfig()) {
		t.Errorf("emb batching %+v, want the defaults %+v", emb, batcher.DefaultConfig())
	}
	// The default fleet has no batching sections: every model batches
	// adaptively.
	def, err := fleet.Default(catalog.Default())
	if err != nil {
		t.Fatal(err)
	}
	for i := range def.Models {
		if c := def.Models[i].BatchingConfig(); c.Mode != batcher.ModeAdaptive {
			t.Errorf("default fleet %s: mode %v", def.Models[i].Name, c.Mode)
		}
	}
}

// TestBatchingBadValuesNameTheField: a bad batching value is reported with
// its field path; unknown keys and modes are parse errors.
func TestBatchingBadValuesNameTheField(t *testing.T) {
	badModelSection(t, "batching", []sectionCase{
		{"{max_queue_delay_us: -5}", "models[2].batching.max_queue_delay_us: must not be negative"},
		{"{max_batch_size: -1}", "models[2].batching.max_batch_size"},
		{"{max_batch_size: 8, preferred_batch_sizes: [4, 16]}", "models[2].batching.preferred_batch_sizes[1]: 16 is larger than max_batch_size 8"},
		{"{preferred_batch_sizes: [0]}", "models[2].batching.preferred_batch_sizes[0]: must be at least 1"},
		{"{max_queue_size: -3}", "models[2].batching.max_queue_size"},
	}, []sectionCase{
		{"{mode: sometimes}", "mode"},
		{"{max_delay_us: 5}", "max_delay_us"},
		{"{aging_limit_ms: {urgent: 5}}", "urgent"},
		{"{max_queue_size: lots}", "lots"},
	})
}

// sectionCase is a value of a models[] section and what its error must say.
type sectionCase struct{ value, want string }

// badModelSection puts each value under key in the tensor model's entry:
// those in invalid must parse and fail validation with an error containing
// want (the field path), those in unparsable must fail to parse with an
// error naming want.
func badModelSection(t *testing.T, key string, invalid, unparsable []sectionCase) {
	t.Helper()
	with := func(v string) string {
		return strings.Replace(models, "    outputs: [{name: output, datatype: FP32, shape: [-1, 1000]}]\n",
			"    outputs: [{name: output, datatype: FP32, shape: [-1, 1000]}]\n    "+key+": "+v+"\n", 1) + backend0
	}
	for _, tc := range invalid {
		_, err := parseValidate(t, with(tc.value))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s %s: error %v, want %q", key, tc.value, err, tc.want)
		}
	}
	for _, tc := range unparsable {
		_, err := fleet.Parse([]byte(with(tc.value)))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s %s: parse error %v, want one naming %q", key, tc.value, err, tc.want)
		}
	}
}

// upstreamFleet is a fleet of one openai backend at url serving chat and
// emb, with the given extra backend fields (indented for the entry).
func upstreamFleet(url, extra string) string {
	return `
models:
  - name: chat
    kind: llm
  - name: emb
    kind: embedding
    dimension: 8
backends:
  - name: up-0
    hardware: h100-sxm-80gb
    transport: openai
    url: ` + url + `
    models: [chat, emb]
` + extra
}

// TestModelNamesValidated: model_names keys must be the backend's models,
// values non-empty, and only an openai backend takes them.
func TestModelNamesValidated(t *testing.T) {
	f := mustValidate(t, upstreamFleet("http://127.0.0.1:9", "    model_names: {chat: meta-llama/Llama-3.1-8B-Instruct, emb: BAAI/bge}\n"))
	if got := f.Backends[0].ModelNames["chat"]; got != "meta-llama/Llama-3.1-8B-Instruct" {
		t.Errorf("model_names[chat] = %q", got)
	}
	for _, tc := range []struct{ src, want string }{
		{upstreamFleet("http://127.0.0.1:9", "    model_names: {llama: x}\n"),
			`backends[0].model_names[llama]: "llama" is not one of the backend's models (chat, emb)`},
		{upstreamFleet("http://127.0.0.1:9", "    model_names: {chat: \"\"}\n"),
			"backends[0].model_names[chat]: the upstream model name must not be empty"},
		{upstreamFleet("http://127.0.0.1:9", "    model_names: {emb: \" \", chat: x}\n"),
			"backends[0].model_names[emb]: the upstream model name must not be empty"},
		{models + backend0 + "    model_names: {llm: x}\n",
			"backends[0].model_names: only an openai transport takes model_names"},
	} {
		_, err := parseValidate(t, tc.src)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("error %v, want %q", err, tc.want)
		}
	}
}

// TestBuildModelNamesReachUpstream: a mapped model goes out under its
// upstream name and comes back under its public one; an unmapped one is
// sent untouched.
func TestBuildModelNamesReachUpstream(t *testing.T) {
	got := make(chan string, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw := new(bytes.Buffer)
		_, _ = raw.ReadFrom(r.Body)
		// The body's first member is "model" (kept in place, or rewritten in
		// place): {"model":"NAME",...
		name, _, _ := strings.Cut(strings.TrimPrefix(raw.String(), `{"model":"`), `"`)
		got <- name
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"object":"list","model":"%s","data":[],"usage":{"prompt_tokens":1,"total_tokens":1}}`, name)
	}))
	defer srv.Close()
	cat := catalog.Default()
	f := mustValidate(t, upstreamFleet(srv.URL, "    model_names: {chat: meta-llama/Llama-3.1-8B-Instruct}\n"))
	fl, err := f.Build(cat, fleet.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer fl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, tc := range []struct {
		op              backends.Op
		model, upstream string
	}{
		{backends.OpChat, "chat", "meta-llama/Llama-3.1-8B-Instruct"},
		{backends.OpEmbedding, "emb", "emb"},
	} {
		req := &backends.Request{ID: "r", Op: tc.op, Model: tc.model,
			Body: []byte(`{"model":"` + tc.model + `","messages":[{"role":"user","content":"hi"}],"input":"x"}`)}
		res, err := fl.Backends[0].Do(ctx, req, fl.Models[tc.model], nil)
		if err != nil {
			t.Fatal(err)
		}
		if m := <-got; m != tc.upstream {
			t.Errorf("%s: the upstream was asked for %q, want %q", tc.model, m, tc.upstream)
		}
		if want := `"model":"` + tc.model + `"`; !strings.Contains(string(res.Raw), want) {
			t.Errorf("%s: the client sees %s, want %s", tc.model, res.Raw, want)
		}
	}
}

// TestBuildAPIKeyEnvUnset: an api_key_env whose variable is unset or empty
// fails the build, naming the field and the variable; without api_key_env
// nothing is read.
func TestBuildAPIKeyEnvUnset(t *testing.T) {
	cat := catalog.Default()
	f := mustValidate(t, upstreamFleet("http://127.0.0.1:9", "    api_key_env: ACCELGATE_TEST_MISSING_KEY\n"))
	_, err := f.Build(cat, fleet.BuildOptions{Getenv: func(string) string { return "" }})
	want := "backends[0].api_key_env: environment variable ACCELGATE_TEST_MISSING_KEY is not set"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("error %v, want %q", err, want)
	}
	fl, err := f.Build(cat, fleet.BuildOptions{Getenv: func(k string) string { return "sk-" + k }})
	if err != nil {
		t.Fatal(err)
	}
	fl.Close()
}

// upstream1 is a backends entry for an OpenAI-compatible upstream, to
// append after backend0.
const upstream1 = `  - name: up-0
    hardware: h100-sxm-80gb
    transport: openai
    url: http://127.0.0.1:9/v1
    models: [llm]
`

// TestHealthRetryHedgingDefaults: the health_check, retry and hedging
// sections' defaults, in the file and in the built fleet.
func TestHealthRetryHedgingDefaults(t *testing.T) {
	f := mustValidate(t, models+backend0+upstream1)
	hc := f.HealthCheck
	if !hc.On() || hc.Interval != 5*time.Second || hc.Timeout != time.Second || hc.HealthyThreshold != 2 || hc.UnhealthyThreshold != 3 {
		t.Errorf("health_check defaults: %+v", hc)
	}
	if r := f.Retry; *r.BudgetPercent != 20 || *r.MinPerSecond != 3 || r.MaxAttempts != 3 {
		t.Errorf("retry defaults: %v %v %d", *r.BudgetPercent, *r.MinPerSecond, r.MaxAttempts)
	}
	if h := f.Hedging; h.Enabled || h.MaxSLOMs != 200 || h.MaxSLO() != 200*time.Millisecond {
		t.Errorf("hedging defaults: %+v", h)
	}
	fl, err := f.Build(catalog.Default(), fleet.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer fl.Close()
	if len(fl.HealthChecks) != 2 || fl.HealthChecks[1].Interval != 5*time.Second || !fl.HealthChecks[1].On() {
		t.Errorf("built health checks: %+v", fl.HealthChecks)
	}
	if fl.Retry.MaxAttempts != 3 || fl.Hedging.MaxSLOMs != 200 {
		t.Errorf("built retry %+v, hedging %+v", fl.Retry, fl.Hedging)
	}
}

// TestHealthRetryHedgingSections: set values, and a backend's health_check
// overriding the top-level one field by field.
func TestHealthRetryHedgingSections(t *testing.T) {
	src := models + backend0 + upstream1 + `    health_check: {interval: 30s, unhealthy_threshold: 5}
  - name: up-1
    hardware: h100-sxm-80gb
    transport: openai
    url: http://127.0.0.1:9
    models: [llm]
    health_check: {enabled: false}
health_check:
  interval: 10s
  timeout: 2s
  healthy_threshold: 1
retry:
  budget_percent: 0
  min_per_second: 1.5
  max_attempts: 2
hedging:
  enabled: true
  max_slo_ms: 150
`
	f := mustValidate(t, src)
	if hc := f.HealthCheck; hc.Interval != 10*time.Second || hc.Timeout != 2*time.Second || hc.HealthyThreshold != 1 || hc.UnhealthyThreshold != 3 {
		t.Errorf("health_check: %+v", hc)
	}
	if r := f.Retry; *r.BudgetPercent != 0 || *r.MinPerSecond != 1.5 || r.MaxAttempts != 2 {
		t.Errorf("retry: %v %v %d", *r.BudgetPercent, *r.MinPerSecond, r.MaxAttempts)
	}
	if h := f.Hedging; !h.Enabled || h.MaxSLO() != 150*time.Millisecond {
		t.Errorf("hedging: %+v", h)
	}
	fl, err := f.Build(catalog.Default(), fleet.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer fl.Close()
	want := []fleet.HealthCheck{
		{Interval: 10 * time.Second, Timeout: 2 * time.Second, HealthyThreshold: 1, UnhealthyThreshold: 3},
		{Interval: 30 * time.Second, Timeout: 2 * time.Second, HealthyThreshold: 1, UnhealthyThreshold: 5},
		{Interval: 10 * time.Second, Timeout: 2 * time.Second, HealthyThreshold: 1, UnhealthyThreshold: 3},
	}
	wantOn := []bool{true, true, false}
	for i, got := range fl.HealthChecks {
		on := got.On()
		got.Enabled = nil
		if got != want[i] || on != wantOn[i] {
			t.Errorf("backend %d: health check %+v (on %v), want %+v (on %v)", i, got, on, want[i], wantOn[i])
		}
	}
	// A backend's shorter interval pulls the inherited timeout down with it.
	short := models + backend0 + upstream1 + "    health_check: {interval: 500ms}\n"
	if hc := mustValidate(t, short).Backends[1].HealthCheck; hc.Timeout != 500*time.Millisecond {
		t.Errorf("override interval 500ms: timeout %v, want 500ms", hc.Timeout)
	}
}

// TestHealthRetryHedgingBadValuesNameTheField: every invalid value is
// reported under its field path; unknown keys are parse errors.
func TestHealthRetryHedgingBadValuesNameTheField(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{"health_check: {interval: 10ms}", "health_check.interval: must be at least 100ms"},
		{"health_check: {interval: -1s}", "health_check.interval"},
		{"health_check: {timeout: 6s}", "health_check.timeout: 6s is longer than the interval 5s"},
		{"health_check: {timeout: -1s}", "health_check.timeout"},
		{"health_check: {healthy_threshold: -1}", "health_check.healthy_threshold"},
		{"health_check: {unhealthy_threshold: 1000}", "health_check.unhealthy_threshold"},
		{"retry: {budget_percent: 150}", "retry.budget_percent"},
		{"retry: {budget_percent: -1}", "retry.budget_percent"},
		{"retry: {min_per_second: -2}", "retry.min_per_second"},
		{"retry: {max_attempts: 11}", "retry.max_attempts"},
		{"retry: {max_attempts: -1}", "retry.max_attempts"},
		{"hedging: {max_slo_ms: -5}", "hedging.max_slo_ms"},
	} {
		_, err := parseValidate(t, models+backend0+tc.src+"\n")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.src, err, tc.want)
		}
	}
	for _, tc := range []struct{ src, want string }{
		{backend0 + "    health_check: {interval: 10s}\n", "backends[0].health_check: an emulated backend"},
		{backend0 + upstream1 + "    health_check: {timeout: 9s}\n", "backends[1].health_check.timeout: 9s is longer than the interval 5s"},
		{backend0 + upstream1 + "    health_check: {healthy_threshold: 0, unhealthy_threshold: -3}\n", "backends[1].health_check.unhealthy_threshold"},
	} {
		_, err := parseValidate(t, models+tc.src)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.src, err, tc.want)
		}
	}
	for _, src := range []string{"retry: {budget: 5}", "hedging: {on: true}", "health_check: {path: /ready}"} {
		if _, err := fleet.Parse([]byte(models + backend0 + src + "\n")); err == nil {
			t.Errorf("%s: parsed", src)
		}
	}
}

// TestDeviceUUIDAndMetricsURL: device_uuid must look like an NVML UUID
// (GPU- or MIG-), metrics_url must be an http(s) URL on a non-emulated
// backend; the errors name the field.
func TestDeviceUUIDAndMetricsURL(t *testing.T) {
	const upstream = `  - name: up-0
    hardware: h100-sxm-80gb
    transport: openai
    url: http://127.0.0.1:9/v1
    models: [llm]
`
	f := mustValidate(t, models+backend0+upstream+`    device_uuid: MIG-4f1b3c2e-9d8a-4b7c-8e6f-1a2b3c4d5e6f
    metrics_url: https://10.0.0.5:8000/metrics
`)
	if b := f.Backends[1]; b.DeviceUUID != "MIG-4f1b3c2e-9d8a-4b7c-8e6f-1a2b3c4d5e6f" || b.MetricsURL != "https://10.0.0.5:8000/metrics" {
		t.Errorf("backend %+v", b)
	}
	mustValidate(t, models+`
backends:
  - name: gpu-0
    hardware: h100-sxm-80gb
    models: [llm, emb, vis]
    device_uuid: GPU-8e2d1f0a-0b1c-4d5e-8f90-123456789abc
  - name: old-mig
    hardware: h100-mig-1g.10gb
    models: [emb]
    device_uuid: MIG-GPU-8e2d1f0a-0b1c-4d5e-8f90-123456789abc/7/0
`)
	for _, tc := range []struct{ entry, want string }{
		{"    device_uuid: 8e2d1f0a-0b1c-4d5e-8f90-123456789abc\n", "backends[1].device_uuid: \"8e2d1f0a-0b1c-4d5e-8f90-123456789abc\" is not an NVML device UUID: it must start with GPU- or MIG-"},
		{"    device_uuid: gpu-8e2d1f0a\n", "backends[1].device_uuid: "},
		{"    device_uuid: GPU-\n", "backends[1].device_uuid: \"GPU-\" has nothing after its prefix"},
		{"    device_uuid: GPU-8e2d 1f0a\n", "backends[1].device_uuid: \"GPU-8e2d 1f0a\" is not an NVML device UUID: unexpected ' '"},
		{"    metrics_url: 10.0.0.5:8000/metrics\n", "backends[1].metrics_url: needs an http(s) URL with a host"},
		{"    metrics_url: grpc://10.0.0.5:8001\n", "backends[1].metrics_url: needs an http(s) URL with a host"},
		{"    metrics_url: http:///metrics\n", "backends[1].metrics_url: needs an http(s) URL with a host"},
		{"    metrics_url: http://user:pw@10.0.0.5/metrics\n", "backends[1].metrics_url: must not carry credentials"},
	} {
		_, err := parseValidate(t, models+backend0+upstream+tc.entry)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", strings.TrimSpace(tc.entry), err, tc.want)
		}
	}
	// Emulated backends: nothing to scrape; a device is one backend.
	for _, tc := range []struct{ entry, want string }{
		{"    metrics_url: http://127.0.0.1:9/metrics\n", "backends[0].metrics_url: an emulated backend runs in-process"},
		{"    replicas: 2\n    device_uuid: GPU-8e2d1f0a\n", "backends[0].device_uuid: a device is one backend"},
	} {
		_, err := parseValidate(t, models+backend0+tc.entry)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", strings.TrimSpace(tc.entry), err, tc.want)
		}
	}
}

// TestTelemetrySection: the telemetry section's defaults (5s, 2s; the
// timeout at most the interval) and its field-named errors.
func TestTelemetrySection(t *testing.T) {
	f := mustValidate(t, models+backend0)
	if f.Telemetry.Interval != 5*time.Second || f.Telemetry.Timeout != 2*time.Second {
		t.Errorf("defaults %+v, want 5s / 2s", f.Telemetry)
	}
	f = mustValidate(t, models+backend0+"telemetry: {interval: 1s}\n")
	if f.Telemetry.Interval != time.Second || f.Telemetry.Timeout != time.Second || f.Telemetry.MaxAge() != 3*time.Second {
		t.Errorf("interval 1s: %+v", f.Telemetry)
	}
	f = mustValidate(t, models+backend0+"telemetry: {interval: 10s, timeout: 500ms}\n")
	if f.Telemetry.Interval != 10*time.Second || f.Telemetry.Timeout != 500*time.Millisecond {
		t.Errorf("10s / 500ms: %+v", f.Telemetry)
	}
	for _, tc := range []struct{ section, want string }{
		{"telemetry: {interval: -1s}\n", "telemetry.interval: must be positive, got -1s"},
		{"telemetry: {timeout: -2s}\n", "telemetry.timeout: must be positive, got -2s"},
		{"telemetry: {interval: 1s, timeout: 3s}\n", "telemetry.timeout: 3s is longer than the interval 1s"},
	} {
		_, err := parseValidate(t, models+backend0+tc.section)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", strings.TrimSpace(tc.section), err, tc.want)
		}
	}
	for _, src := range []string{"telemetry: {interval: often}", "telemetry: {period: 5s}"} {
		if _, err := fleet.Parse([]byte(models + backend0 + src + "\n")); err == nil {
			t.Errorf("%s: parsed", src)
		}
	}
}

// TestResponseCacheSection: a model's cache section, its defaults, what
// Build carries (only enabled caches) and the default fleet (none).
func TestResponseCacheSection(t *testing.T) {
	src := strings.Replace(models, "    dimension: 768\n", "    dimension: 768\n    cache: {enabled: true}\n", 1)
	src = strings.Replace(src, "    kind: llm\n", "    kind: llm\n    cache: {enabled: false, max_entries: 10}\n", 1)
	src = strings.Replace(src, "    outputs: [{name: output, datatype: FP32, shape: [-1, 1000]}]\n",
		"    outputs: [{name: output, datatype: FP32, shape: [-1, 1000]}]\n    cache:\n      enabled: true\n      max_entries: 64\n      ttl: 30s\n", 1)
	f := mustValidate(t, src+backend0)
	if c := f.Models[1].Cache; c == nil || !c.Enabled || c.MaxEntries != fleet.DefaultCacheMaxEntries || c.TTL != fleet.DefaultCacheTTL {
		t.Errorf("emb cache %+v, want the defaults 1024 and 5m", c)
	}
	fl, err := f.Build(catalog.Default(), fleet.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer fl.Close()
	want := map[string]fleet.ResponseCache{
		"emb": {Enabled: true, MaxEntries: 1024, TTL: 5 * time.Minute},
		"vis": {Enabled: true, MaxEntries: 64, TTL: 30 * time.Second},
	}
	if !reflect.DeepEqual(fl.Cache, want) {
		t.Errorf("built caches %+v, want %+v", fl.Cache, want)
	}
	def, err := fleet.Default(catalog.Default())
	if err != nil {
		t.Fatal(err)
	}
	dfl, err := def.Build(catalog.Default(), fleet.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer dfl.Close()
	if len(dfl.Cache) != 0 {
		t.Errorf("the default fleet caches %v", dfl.Cache)
	}
}

// TestResponseCacheBadValuesNameTheField: bad cache values are reported
// under their field path; unknown keys and malformed durations are parse
// errors.
func TestResponseCacheBadValuesNameTheField(t *testing.T) {
	badModelSection(t, "cache", []sectionCase{
		{"{enabled: true, max_entries: -1}", "models[2].cache.max_entries: must be between 1 and 1048576, got -1"},
		{"{max_entries: 2000000}", "models[2].cache.max_entries"},
		{"{enabled: true, ttl: -1s}", "models[2].cache.ttl: must be positive, got -1s"},
	}, []sectionCase{
		{"{size: 5}", "size"},
		{"{ttl: soon}", "soon"},
		{"{enabled: sometimes}", "sometimes"},
	})
}

// TestPoolsExpand: a discover entry is validated and expanded to one backend
// per endpoint, with its url's host:port replaced.
func TestPoolsExpand(t *testing.T) {
	src := `models:
  - name: llm
    kind: llm
backends:
  - name: fixed
    hardware: h100-sxm-80gb
    models: [llm]
  - name: pool
    hardware: l4
    transport: openai
    url: https://vllm.svc:8000/v1
    metrics_url: http://vllm.svc:8000/metrics
    models: [llm]
    discover:
      dns: {name: vllm.svc, port: 8000}
`
	f, err := fleet.Parse([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Validate(catalog.Default()); err != nil {
		t.Fatal(err)
	}
	if p := f.Pools(); len(p) != 1 || p[0] != 1 {
		t.Fatalf("pools %v", p)
	}
	if e := f.ExpandPools(nil); len(e.Backends) != 1 || e.Backends[0].Name != "fixed" {
		t.Fatalf("unresolved pool: %+v", e.Backends)
	}
	e := f.ExpandPools(map[string][]fleet.Endpoint{"pool": {"10.0.0.5:8000", "10.0.0.6:9000"}})
	if len(e.Backends) != 3 || len(f.Backends) != 2 {
		t.Fatalf("expanded %d backends (file still %d)", len(e.Backends), len(f.Backends))
	}
	m := e.Backends[2]
	if m.Name != "pool-10.0.0.6:9000" || m.URL != "https://10.0.0.6:9000/v1" || m.MetricsURL != "http://10.0.0.6:9000/metrics" || m.Discover != nil || m.Hardware != "l4" {
		t.Fatalf("member %+v", m)
	}
	for _, bad := range []struct{ disc, want string }{
		{"    discover: {}\n", "give exactly one of dns or kubernetes"},
		{"    discover: {dns: {name: a}, kubernetes: {service: b}}\n", "give exactly one of dns or kubernetes"},
	} {
		g, err := fleet.Parse([]byte(strings.Replace(src, "    discover:\n      dns: {name: vllm.svc, port: 8000}\n", bad.disc, 1)))
		if err != nil {
			t.Fatal(err)
		}
		if err := g.Validate(catalog.Default()); err == nil || !strings.Contains(err.Error(), "backends[1].discover: "+bad.want) {
			t.Errorf("%q: %v", bad.disc, err)
		}
	}
}

// TestAPIKeyEnvOnlyOpenAI: an API key variable on a transport that sends no
// key is an error rather than silently ignored.
func TestAPIKeyEnvOnlyOpenAI(t *testing.T) {
	src := `models:
  - name: llm
    kind: llm
backends:
  - name: e
    hardware: h100-sxm-80gb
    api_key_env: SOME_KEY
    models: [llm]
`
	f, err := fleet.Parse([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Validate(catalog.Default()); err == nil || !strings.Contains(err.Error(), "backends[0].api_key_env: only an openai transport") {
		t.Fatalf("api_key_env on an emulated backend: %v", err)
	}
}
