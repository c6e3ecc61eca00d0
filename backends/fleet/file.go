package fleet

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"net/url"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/accelgate/accelgate/backends"
	"github.com/accelgate/accelgate/backends/catalog"
	"github.com/accelgate/accelgate/backends/telemetry"
	"github.com/accelgate/accelgate/batcher"
	"github.com/accelgate/accelgate/router"
)

// Transports a backend entry may name.
const (
	TransportEmulated   = "emulated"    // an in-process emulated accelerator (backends/emulator)
	TransportOpenAI     = "openai"      // an OpenAI-compatible server at url (vLLM, TGI, SGLang, llama.cpp, cmd/emulator)
	TransportKServeHTTP = "kserve-http" // a KServe v2 HTTP server at url (Triton, KServe, MLServer, cmd/emulator)
	TransportKServeGRPC = "kserve-grpc" // a KServe v2 gRPC server at url grpc://host:port (Triton, KServe, cmd/emulator)
)

//go:embed default.yaml
var defaultYAML []byte

// DefaultYAML returns the embedded default fleet file.
func DefaultYAML() []byte { return bytes.Clone(defaultYAML) }

// File is a decoded fleet file.
type File struct {
	Models   []ModelSpec   `yaml:"models"`
	Backends []BackendSpec `yaml:"backends"`
	Router   router.Config `yaml:"router"`
	// HealthCheck is the active health checks of the upstream backends
	// (see HealthCheck); a backend's own health_check overrides it.
	HealthCheck HealthCheck `yaml:"health_check"`
	// Retry is the retry budget (see Retry).
	Retry Retry `yaml:"retry"`
	// Hedging is the hedging of critical requests with tight SLOs (see
	// Hedging). Off by default.
	Hedging Hedging `yaml:"hedging"`
	// Telemetry sets how often the gateway scrapes the metrics_url of the
	// backends that have one: interval (default 5s) and timeout (default 2s,
	// at most the interval). A report older than three intervals is stale
	// and ignored. Validate names bad values by field, e.g.
	// "telemetry.interval: must be positive".
	Telemetry telemetry.Config `yaml:"telemetry"`
}

// ModelSpec is one entry of the models section.
type ModelSpec struct {
	// Name is the public model name clients send.
	Name string `yaml:"name"`
	// Kind is llm (chat, completions), embedding or tensor (KServe v2, vision).
	Kind string `yaml:"kind"`
	// DefaultPriority applies when a request sends no x-accelgate-priority.
	// Default standard.
	DefaultPriority string `yaml:"default_priority"`
	// SLO holds the default latency targets per priority (critical, standard,
	// sheddable). A request's headers override them.
	SLO map[string]SLOSpec `yaml:"slo"`
	// Timeout is the hard timeout (504 when it passes). Default 60s. A client's
	// x-accelgate-timeout-ms can only shorten it.
	Timeout time.Duration `yaml:"timeout"`
	// ContextLength (llm) bounds prompt + max_tokens. Default 8192.
	ContextLength int `yaml:"context_length"`
	// ExpectedOutputTokens (llm) is the output length placement plans for when
	// a request sets no max_tokens. Default 256.
	ExpectedOutputTokens int `yaml:"expected_output_tokens"`
	// Dimension (embedding) is the vector size. Required for embedding models.
	Dimension int `yaml:"dimension"`
	// Classes (tensor) is the number of output logits per item. Default 1000.
	Classes int `yaml:"classes"`
	// Platform (tensor) is the KServe v2 platform, e.g. onnxruntime_onnx.
	Platform string `yaml:"platform"`
	// Versions (tensor) lists the served versions; the first is the default.
	// Default ["1"].
	Versions []string `yaml:"versions"`
	// Inputs and Outputs (tensor) are the model's tensors: name, datatype
	// (BOOL, UINT8…UINT64, INT8…INT64, FP16, FP32, FP64, BF16, BYTES) and shape
	// (-1 for a variable dimension; a leading -1 is the batch dimension).
	// Required for tensor models.
	Inputs  []backends.TensorSpec `yaml:"inputs"`
	Outputs []backends.TensorSpec `yaml:"outputs"`
	// Batching is the model's dynamic-batching settings on every backend that
	// serves it (package batcher; Triton's dynamic batcher's meaning). Absent
	// means the defaults: mode adaptive with the defaults below.
	// Decoded strictly (an unknown key is an error):
	//
	//	batching:
	//	  mode: adaptive             # off | fixed | adaptive (default adaptive)
	//	  max_batch_size: 32         # rows per batch; 0 (default) = the hardware
	//	                             # profile's max_batch, and it is capped by it
	//	  preferred_batch_sizes: [8, 16]  # fixed: dispatch at once at these sizes
	//	  max_queue_delay_us: 2000   # fixed: longest wait for a preferred size;
	//	                             # adaptive: wait budget of a batch without an
	//	                             # SLO target (default 2000 µs, never fails a request)
	//	  max_queue_size: 1024       # requests queued per backend; beyond: 429 (default 16384)
	//	  aging_limit_ms:            # a request waiting this long is served as the
	//	    standard: 500            # class above (defaults standard 500, sheddable
	//	    sheddable: 2000          # 2000; -1 disables aging for the class)
	//
	// Tensor and embedding requests are merged into batches (mode off: each
	// request alone). For an llm model the settings shape the backend's
	// admission queue (mode, max_queue_size and aging_limit_ms apply; mode off
	// disables the admission queue and requests go to the backend at once).
	// Validate applies SetDefaults and reports bad values by field, e.g.
	// "models[2].batching.max_queue_delay_us: must not be negative".
	Batching *batcher.Config `yaml:"batching"`
	// Cache is the model's response cache (see ResponseCache). Absent: no
	// cache.
	Cache *ResponseCache `yaml:"cache"`
}

// BatchingConfig returns the model's effective batching settings: the
// batching section with its defaults filled, or batcher.DefaultConfig()
// (adaptive) when the section is absent.
func (m *ModelSpec) BatchingConfig() batcher.Config {
	if m.Batching == nil {
		return batcher.DefaultConfig()
	}
	c := *m.Batching
	c.PreferredBatchSizes = slices.Clone(c.PreferredBatchSizes)
	c.SetDefaults()
	return c
}

// SLOSpec is one priority's latency targets in milliseconds; 0 means none.
type SLOSpec struct {
	E2EMs  float64 `yaml:"e2e_ms"`
	TTFTMs float64 `yaml:"ttft_ms"`
	TPOTMs float64 `yaml:"tpot_ms"`
}

// BackendSpec is one entry of the backends section.
type BackendSpec struct {
	// Name is unique in the fleet; it appears in x-accelgate-backend.
	Name string `yaml:"name"`
	// Hardware names a profile in the catalog (backends/catalog).
	Hardware string `yaml:"hardware"`
	// Transport is emulated (default) or openai.
	Transport string `yaml:"transport"`
	// URL is the upstream's base URL (transport openai), e.g. http://10.0.0.5:8000.
	URL string `yaml:"url"`
	// APIKeyEnv (transport openai) names an environment variable holding the
	// upstream's API key, sent as "Authorization: Bearer <key>" on every
	// request. Build fails when the variable is unset or empty ("backends[1].
	// api_key_env: environment variable VLLM_KEY is not set"): a missing
	// secret is a deployment mistake, better found at start than as a 401 on
	// every request. Without api_key_env no Authorization header is sent.
	APIKeyEnv string `yaml:"api_key_env"`
	// Models lists the public model names the backend serves.
	Models []string `yaml:"models"`
	// ModelNames (transport openai) maps a public model name to the name the
	// upstream serves it under (vLLM's --served-model-name), e.g.
	//
	//	model_names:
	//	  llama-3.1-8b-instruct: meta-llama/Llama-3.1-8B-Instruct
	//
	// The top-level "model" of a request's body is rewritten to the upstream
	// name, and the "model" of the response (or of every streamed chunk)
	// back to the public one. Each key must be one of models and each value
	// non-empty; models without an entry are sent under their public name.
	ModelNames map[string]string `yaml:"model_names"`
	// PricePerHour overrides the profile's price (USD per hour), e.g. for
	// reserved or owned hardware.
	PricePerHour *float64 `yaml:"price_per_hour_usd"`
	// Site is where the backend stands (a datacenter or edge site). A
	// request that sends x-accelgate-site (gRPC metadata of the same name)
	// is placed on a backend at that site when one meets its SLO.
	Site string `yaml:"site"`
	// RTTMs is the network round trip from the gateway in milliseconds.
	// Emulated backends add it to every request; the router adds it to
	// every prediction.
	RTTMs float64 `yaml:"rtt_ms"`
	// Seed seeds an emulated backend's jitter and generated text. Default: the
	// entry's index + 1.
	Seed int64 `yaml:"seed"`
	// Jitter is an emulated backend's lognormal sigma on step times. Default 0.05.
	Jitter *float64 `yaml:"jitter"`
	// Replicas (emulated transport only) stands for that many identical
	// backends, named NAME-0 … NAME-(N-1), each with its own seed: a compact
	// way to plan "what if I had eight of these". Default 1 (the entry keeps
	// its name).
	Replicas int `yaml:"replicas"`
	// Discover makes the entry a pool whose members are discovered: one
	// backend per endpoint of a DNS name (A/AAAA or SRV records,
	// re-resolved) or of a Kubernetes Service's EndpointSlices, each a copy
	// of this entry named NAME-ADDRESS whose url (and metrics_url) has its
	// host:port replaced by the endpoint's. Exactly one of:
	//
	//	discover:
	//	  dns: {name: vllm.internal, port: 8000, interval: 30s}
	//	  # or: dns: {name: vllm.internal, srv: true, service: http}
	//	  # or: kubernetes: {namespace: serving, service: vllm, port: http}
	//
	// The keys are those of backends/discovery's DNSConfig and K8sConfig;
	// the gateway checks them when it starts the pool. Upstream transports
	// only. Until the first resolution the pool has no members.
	Discover *DiscoverSpec `yaml:"discover"`
	// HealthCheck overrides the top-level health_check for this backend:
	// the fields it sets replace the top-level ones (e.g. a longer interval
	// for an edge node on a slow link, or enabled: false for an upstream
	// without a health endpoint). After Validate it holds the backend's
	// effective settings. Not for emulated backends.
	HealthCheck *HealthCheck `yaml:"health_check"`
	// DeviceUUID is the NVML UUID of the local GPU ("GPU-...") or MIG device
	// ("MIG-...") the backend runs on, as nvidia-smi -L or
	// "accelgate -discover" print it. The gateway then reports the device's
	// live memory and utilisation next to the backend (GET /admin/backends).
	// Optional; it does not change placement.
	DeviceUUID string `yaml:"device_uuid"`
	// MetricsURL is the upstream's Prometheus endpoint (vLLM, SGLang, TGI,
	// Triton; cmd/emulator serves one), an http(s) URL such as
	// http://10.0.0.5:8000/metrics. The gateway scrapes it every
	// telemetry.interval and the router counts the larger of what it placed
	// on the backend and what the backend reports. Not for emulated
	// backends, whose load the router sees in-process.
	MetricsURL string `yaml:"metrics_url"`
}

// Parse decodes a fleet file strictly: unknown fields and trailing documents
// are errors. It does not validate; call Validate.
func Parse(data []byte) (*File, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var f File
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("fleet file: %w", err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err != io.EOF {
		return nil, fmt.Errorf("fleet file: only one YAML document is allowed (found another after the first)")
	}
	return &f, nil
}

// finite reports whether v is a real number (not NaN or ±Inf).
func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// Load reads, parses and validates the fleet file at path.
func Load(path string, cat *catalog.Catalog) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Decode(path, data, cat)
}

// Decode parses and validates data, the content of the fleet file named
// name (which prefixes its errors). A caller that hashes the content (the
// gateway's reload) decodes the very bytes it hashed.
func Decode(name string, data []byte, cat *catalog.Catalog) (*File, error) {
	f, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if err := f.Validate(cat); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return f, nil
}

// Default returns the embedded default fleet, parsed and validated.
func Default(cat *catalog.Catalog) (*File, error) {
	f, err := Parse(defaultYAML)
	if err != nil {
		return nil, fmt.Errorf("default fleet: %w", err)
	}
	if err := f.Validate(cat); err != nil {
		return nil, fmt.Errorf("default fleet: %w", err)
	}
	return f, nil
}

// Validate fills defaults and checks every field against the catalog. Each
// error names the field, e.g. "backends[2].hardware: unknown profile".
func (f *File) Validate(cat *catalog.Catalog) error {
	var errs []error
	bad := func(field, format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, a...)))
	}
	if len(f.Models) == 0 {
		bad("models", "at least one model is required")
	}
	kinds := map[string]backends.ModelKind{}
	for i := range f.Models {
		m := &f.Models[i]
		at := fmt.Sprintf("models[%d]", i)
		if m.Name == "" {
			bad(at+".name", "missing")
		} else if _, dup := kinds[m.Name]; dup {
			bad(at+".name", "duplicate model %q", m.Name)
		}
		switch backends.ModelKind(m.Kind) {
		case backends.ModelLLM, backends.ModelEmbedding, backends.ModelTensor:
			kinds[m.Name] = backends.ModelKind(m.Kind)
		default:
			bad(at+".kind", "%q is not one of llm, embedding, tensor", m.Kind)
			kinds[m.Name] = ""
		}
		if m.DefaultPriority == "" {
			m.DefaultPriority = "standard"
		}
		if _, err := backends.ParsePriority(m.DefaultPriority); err != nil {
			bad(at+".default_priority", "%v", err)
		}
		for p, s := range m.SLO {
			if _, err := backends.ParsePriority(p); err != nil {
				bad(at+".slo."+p, "%v", err)
			}
			if s.E2EMs < 0 || s.TTFTMs < 0 || s.TPOTMs < 0 || !finite(s.E2EMs) || !finite(s.TTFTMs) || !finite(s.TPOTMs) {
				bad(at+".slo."+p, "targets must not be negative")
			}
		}
		if m.Timeout == 0 {
			m.Timeout = backends.DefaultTimeout
		} else if m.Timeout < 0 {
			bad(at+".timeout", "must be positive")
		}
		if m.Batching != nil {
			m.Batching.SetDefaults()
			if err := m.Batching.Validate(at + ".batching"); err != nil {
				errs = append(errs, err)
			}
		}
		if m.Cache != nil {
			m.Cache.SetDefaults()
			if err := m.Cache.Validate(at + ".cache"); err != nil {
				errs = append(errs, err)
			}
		}
		switch backends.ModelKind(m.Kind) {
		case backends.ModelLLM:
			if m.ContextLength == 0 {
				m.ContextLength = 8192
			}
			if m.ContextLength < 16 {
				bad(at+".context_length", "must be at least 16")
			}
			if m.ExpectedOutputTokens == 0 {
				m.ExpectedOutputTokens = router.DefaultExpectedOutputTokens
			}
			if m.ExpectedOutputTokens < 1 {
				bad(at+".expected_output_tokens", "must be positive")
			}
		case backends.ModelEmbedding:
			if m.Dimension < 1 {
				bad(at+".dimension", "required for embedding models and must be positive")
			}
		case backends.ModelTensor:
			if m.Classes == 0 {
				m.Classes = 1000
			}
			if m.Classes < 1 {
				bad(at+".classes", "must be positive")
			}
			if len(m.Versions) == 0 {
				m.Versions = []string{"1"}
			}
			for j, v := range m.Versions {
				if v == "" || strings.ContainsAny(v, "/ ") {
					bad(fmt.Sprintf("%s.versions[%d]", at, j), "invalid version %q", v)
				}
			}
			for _, sec := range []struct {
				name  string
				specs []backends.TensorSpec
			}{{"inputs", m.Inputs}, {"outputs", m.Outputs}} {
				if len(sec.specs) == 0 {
					bad(at+"."+sec.name, "required for tensor models")
				}
				for j, sp := range sec.specs {
					where := fmt.Sprintf("%s.%s[%d]", at, sec.name, j)
					if sp.Name == "" {
						bad(where+".name", "missing")
					}
					if _, ok := backends.ParseDataType(sp.Datatype); !ok {
						bad(where+".datatype", "%q is not a KServe v2 datatype", sp.Datatype)
					}
					if len(sp.Shape) == 0 {
						bad(where+".shape", "missing")
					}
					for _, d := range sp.Shape {
						if d < -1 || d == 0 {
							bad(where+".shape", "dimensions must be positive or -1 (variable), got %v", sp.Shape)
							break
						}
					}
				}
			}
		}
	}
	if len(f.Backends) == 0 {
		bad("backends", "at least one backend is required")
	}
	names := map[string]bool{}
	for i := range f.Backends {
		b := &f.Backends[i]
		at := fmt.Sprintf("backends[%d]", i)
		if b.Name == "" {
			bad(at+".name", "missing")
		} else if names[b.Name] {
			bad(at+".name", "duplicate backend %q", b.Name)
		}
		names[b.Name] = true
		prof, ok := cat.Get(b.Hardware)
		if !ok {
			bad(at+".hardware", "unknown profile %q (known: %s)", b.Hardware, strings.Join(cat.Names(), ", "))
		}
		if b.Transport == "" {
			b.Transport = TransportEmulated
		}
		switch b.Transport {
		case TransportEmulated:
			if b.URL != "" {
				bad(at+".url", "only an openai transport takes a url")
			}
		case TransportOpenAI, TransportKServeHTTP:
			u, err := url.Parse(b.URL)
			switch {
			case b.URL == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
				bad(at+".url", "a %s transport needs an http(s) URL with a host, got %q", b.Transport, b.URL)
			case u.RawQuery != "" || u.Fragment != "" || u.User != nil:
				bad(at+".url", "must not carry a query, a fragment or credentials (use api_key_env), got %q", b.URL)
			}
		case TransportKServeGRPC:
			u, err := url.Parse(b.URL)
			if b.URL == "" || err != nil || u.Scheme != "grpc" || u.Host == "" || u.Port() == "" {
				bad(at+".url", "a kserve-grpc transport needs a grpc://host:port URL, got %q", b.URL)
			}
		default:
			bad(at+".transport", "%q is not one of emulated, openai, kserve-http, kserve-grpc", b.Transport)
		}
		if len(b.Models) == 0 {
			bad(at+".models", "at least one model is required")
		}
		for j, name := range b.Models {
			kind, ok := kinds[name]
			switch {
			case slices.Contains(b.Models[:j], name):
				bad(fmt.Sprintf("%s.models[%d]", at, j), "model %q is listed twice", name)
			case !ok:
				bad(fmt.Sprintf("%s.models[%d]", at, j), "model %q is not in the models section", name)
			case prof != nil && !profileServes(prof, kind):
				bad(fmt.Sprintf("%s.models[%d]", at, j), "hardware %q has no %s latency model, so it cannot serve %q", b.Hardware, kind, name)
			case !transportServes(b.Transport, kind):
				bad(fmt.Sprintf("%s.models[%d]", at, j), "a %s transport cannot serve the %s model %q", b.Transport, kind, name)
			}
		}
		if b.APIKeyEnv != "" && b.Transport != TransportOpenAI {
			bad(at+".api_key_env", "only an openai transport sends an API key")
		}
		if len(b.ModelNames) > 0 && b.Transport != TransportOpenAI {
			bad(at+".model_names", "only an openai transport takes model_names")
		}
		for _, public := range slices.Sorted(maps.Keys(b.ModelNames)) {
			switch where := fmt.Sprintf("%s.model_names[%s]", at, public); {
			case !slices.Contains(b.Models, public):
				bad(where, "%q is not one of the backend's models (%s)", public, strings.Join(b.Models, ", "))
			case strings.TrimSpace(b.ModelNames[public]) == "":
				bad(where, "the upstream model name must not be empty")
			}
		}
		if b.PricePerHour != nil && (*b.PricePerHour < 0 || !finite(*b.PricePerHour)) {
			bad(at+".price_per_hour_usd", "must be a non-negative number")
		}
		if b.RTTMs < 0 || b.RTTMs > 600_000 || !finite(b.RTTMs) {
			bad(at+".rtt_ms", "must be between 0 and 600000 milliseconds")
		}
		if b.Jitter != nil && (!(*b.Jitter >= 0) || *b.Jitter > 1) {
			bad(at+".jitter", "must be in [0, 1]")
		}
		if b.Seed == 0 {
			b.Seed = int64(i + 1)
		}
		if b.DeviceUUID != "" {
			if err := checkDeviceUUID(b.DeviceUUID); err != nil {
				bad(at+".device_uuid", "%v", err)
			} else if b.Replicas > 1 {
				bad(at+".device_uuid", "a device is one backend: it cannot be combined with replicas")
			}
		}
		if b.MetricsURL != "" {
			u, err := url.Parse(b.MetricsURL)
			switch {
			case b.Transport == TransportEmulated:
				bad(at+".metrics_url", "an emulated backend runs in-process: there is nothing to scrape")
			case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
				bad(at+".metrics_url", "needs an http(s) URL with a host, got %q", b.MetricsURL)
			case u.User != nil || u.Fragment != "":
				bad(at+".metrics_url", "must not carry credentials or a fragment, got %q", b.MetricsURL)
			}
		}
		if d := b.Discover; d != nil {
			switch {
			case b.Transport == TransportEmulated:
				bad(at+".discover", "an emulated backend runs in-process: there is nothing to discover")
			case (d.DNS.Kind == 0) == (d.Kubernetes.Kind == 0):
				bad(at+".discover", "give exactly one of dns or kubernetes")
			case b.Replicas > 1 || b.DeviceUUID != "":
				bad(at+".discover", "a pool's members are discovered: it cannot have replicas or a device_uuid")
			}
		}
		if b.Replicas < 0 || b.Replicas > 1024 {
			bad(at+".replicas", "must be between 1 and 1024")
		} else if b.Replicas > 1 && b.Transport != TransportEmulated {
			bad(at+".replicas", "only emulated backends can be replicated (list each upstream with its own url)")
		}
	}
	f.HealthCheck.SetDefaults()
	topErr := f.HealthCheck.Validate("health_check")
	if topErr != nil {
		errs = append(errs, topErr)
	}
	for i := range f.Backends {
		b := &f.Backends[i]
		if b.HealthCheck == nil {
			continue
		}
		at := fmt.Sprintf("backends[%d].health_check", i)
		if b.Transport == TransportEmulated {
			bad(at, "an emulated backend runs in-process: there is nothing to probe")
			continue
		}
		eff := f.HealthCheck.Merge(b.HealthCheck)
		if topErr == nil {
			if err := eff.Validate(at); err != nil {
				errs = append(errs, err)
			}
		}
		b.HealthCheck = &eff
	}
	f.Retry.SetDefaults()
	if err := f.Retry.Validate(); err != nil {
		errs = append(errs, err)
	}
	f.Hedging.SetDefaults()
	if err := f.Hedging.Validate(); err != nil {
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		f.Backends = expandReplicas(f.Backends, names)
	}
	f.Router.SetDefaults()
	if err := f.Router.Validate(); err != nil {
		errs = append(errs, err)
	}
	f.Telemetry.SetDefaults()
	switch t := f.Telemetry; {
	case t.Interval <= 0:
		bad("telemetry.interval", "must be positive, got %v", t.Interval)
	case t.Timeout <= 0:
		bad("telemetry.timeout", "must be positive, got %v", t.Timeout)
	case t.Timeout > t.Interval:
		bad("telemetry.timeout", "%v is longer than the interval %v (a scrape must end before the next is due)", t.Timeout, t.Interval)
	}
	return errors.Join(errs...)
}

// checkDeviceUUID checks an NVML device UUID loosely: "GPU-" or "MIG-" and
// then letters, digits and dashes (NVML's are GPU-<uuid>, MIG-<uuid> and, on
// older drivers, MIG-GPU-<uuid>/<gi>/<ci>, which the slashes allow).
func checkDeviceUUID(s string) error {
	rest, ok := strings.CutPrefix(s, "GPU-")
	if !ok {
		rest, ok = strings.CutPrefix(s, "MIG-")
	}
	if !ok {
		return fmt.Errorf("%q is not an NVML device UUID: it must start with GPU- or MIG- (see nvidia-smi -L or accelgate -discover)", s)
	}
	if rest == "" {
		return fmt.Errorf("%q has nothing after its prefix", s)
	}
	for _, c := range rest {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '-' || c == '/') {
			return fmt.Errorf("%q is not an NVML device UUID: unexpected %q", s, c)
		}
	}
	return nil
}

func profileServes(p *backends.Profile, k backends.ModelKind) bool {
	switch k {
	case backends.ModelLLM:
		return p.LLM != nil
	case backends.ModelEmbedding:
		return p.Embedding != nil
	case backends.ModelTensor:
		return p.Vision != nil
	}
	return true // an invalid kind is reported on the model itself
}

// DiscoverSpec is a pool's discovery source (see BackendSpec.Discover). The
// sections are kept as YAML and decoded by the gateway (cmd/gateway), so
// that this package, which the simulator and the emulator also use, does not
// depend on the Kubernetes client.
type DiscoverSpec struct {
	DNS        yaml.Node `yaml:"dns"`        // Kind 0 when absent
	Kubernetes yaml.Node `yaml:"kubernetes"` // Kind 0 when absent
}

// Pools returns the indices of the pool entries (those with discover).
func (f *File) Pools() []int {
	var out []int
	for i := range f.Backends {
		if f.Backends[i].Discover != nil {
			out = append(out, i)
		}
	}
	return out
}

// Endpoint is one discovered member of a pool: its host:port.
type Endpoint = string

// ExpandPools returns a copy of the validated file in which every pool entry
// is replaced by one backend per endpoint in eps[pool name] (none when the
// pool has not been resolved yet): named NAME-HOST:PORT, url and
// metrics_url pointing at the endpoint, discover removed. The other entries
// are kept as they are.
func (f *File) ExpandPools(eps map[string][]Endpoint) *File {
	c := *f
	c.Backends = make([]BackendSpec, 0, len(f.Backends))
	for _, b := range f.Backends {
		if b.Discover == nil {
			c.Backends = append(c.Backends, b)
			continue
		}
		for _, ep := range eps[b.Name] {
			m := b
			m.Discover = nil
			m.Name = b.Name + "-" + ep
			m.URL = withHost(b.URL, ep)
			if b.MetricsURL != "" {
				m.MetricsURL = withHost(b.MetricsURL, ep)
			}
			m.Models = append([]string(nil), b.Models...)
			c.Backends = append(c.Backends, m)
		}
	}
	return &c
}

// withHost returns raw with its host:port replaced by hostport.
func withHost(raw, hostport string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	u.Host = hostport
	return u.String()
}

// expandReplicas replaces every entry with replicas > 1 by that many
// entries named NAME-i, with distinct seeds. taken holds the names already in
// use; an expanded name that collides gets a further "-r" suffix.
func expandReplicas(in []BackendSpec, taken map[string]bool) []BackendSpec {
	out := make([]BackendSpec, 0, len(in))
	for _, b := range in {
		if b.Replicas <= 1 {
			b.Replicas = 0
			out = append(out, b)
			continue
		}
		for r := 0; r < b.Replicas; r++ {
			c := b
			c.Replicas = 0
			c.Name = fmt.Sprintf("%s-%d", b.Name, r)
			for taken[c.Name] {
				c.Name += "-r"
			}
			taken[c.Name] = true
			c.Seed = b.Seed*1000 + int64(r)
			c.Models = append([]string(nil), b.Models...)
			out = append(out, c)
		}
	}
	return out
}

// transportServes reports whether a transport speaks a protocol for the kind:
// OpenAI upstreams serve LLMs and embeddings, KServe upstreams tensors.
func transportServes(t string, k backends.ModelKind) bool {
	switch t {
	case TransportOpenAI:
		return k != backends.ModelTensor
	case TransportKServeHTTP, TransportKServeGRPC:
		return k == backends.ModelTensor || k == ""
	}
	return true
}

// Model converts a validated spec into the runtime model settings.
func (m *ModelSpec) Model() *backends.Model {
	out := &backends.Model{
		Name:                 m.Name,
		Kind:                 backends.ModelKind(m.Kind),
		Timeout:              m.Timeout,
		ContextLength:        m.ContextLength,
		ExpectedOutputTokens: m.ExpectedOutputTokens,
		Dimension:            m.Dimension,
		Classes:              m.Classes,
		Platform:             m.Platform,
		Versions:             append([]string(nil), m.Versions...),
		Inputs:               append([]backends.TensorSpec(nil), m.Inputs...),
		Outputs:              append([]backends.TensorSpec(nil), m.Outputs...),
	}
	out.DefaultPriority, _ = backends.ParsePriority(m.DefaultPriority)
	for p, s := range m.SLO {
		pr, err := backends.ParsePriority(p)
		if err != nil {
			continue
		}
		out.SLO[pr] = backends.SLO{E2E: ms(s.E2EMs), TTFT: ms(s.TTFTMs), TPOT: ms(s.TPOTMs)}
	}
	return out
}

func ms(v float64) time.Duration { return time.Duration(v * float64(time.Millisecond)) }

// modelNames returns the model names in sorted order (for messages).
func modelNames(models map[string]*backends.Model) []string {
	out := make([]string, 0, len(models))
	for n := range models {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Defaults of the health_check, retry and hedging sections.
const (
	DefaultHealthInterval     = 5 * time.Second
	DefaultHealthTimeout      = time.Second
	DefaultHealthyThreshold   = 2
	DefaultUnhealthyThreshold = 3
	DefaultRetryBudgetPercent = 20.0
	DefaultRetryMinPerSecond  = 3.0
	DefaultRetryMaxAttempts   = 3
	DefaultHedgingMaxSLOMs    = 200.0
)

// Limits of the health_check, retry and hedging sections.
const (
	minHealthInterval    = 100 * time.Millisecond
	maxHealthThreshold   = 100
	maxRetryAttempts     = 10
	maxRetryMinPerSecond = 1e6
	maxHedgingSLOMs      = 600_000.0
)

// HealthCheck is the health_check section: active health checks of the
// upstream backends (transports openai: GET <url>/health, kserve-http: GET
// <url>/v2/health/ready, kserve-grpc: the ServerReady RPC; emulated backends
// are not probed). The top-level section applies to every backend; a
// backend's own health_check overrides the fields it sets. A backend is taken
// out of rotation after unhealthy_threshold consecutive failed probes and put
// back after healthy_threshold consecutive successful ones; the round trip of
// successful probes (an EWMA) replaces the backend's rtt_ms in the router's
// predictions.
//
//	health_check:
//	  enabled: true          # default true
//	  interval: 5s           # between probes (default 5s, at least 100ms)
//	  timeout: 1s            # a probe slower than this fails (default 1s, at most the interval)
//	  healthy_threshold: 2   # consecutive successes to come back (default 2)
//	  unhealthy_threshold: 3 # consecutive failures to go out (default 3)
type HealthCheck struct {
	// Enabled turns the probes on or off. Default true.
	Enabled *bool `yaml:"enabled"`
	// Interval is the time between two probes of a backend. Default 5s.
	Interval time.Duration `yaml:"interval"`
	// Timeout bounds one probe. Default 1s; at most Interval.
	Timeout time.Duration `yaml:"timeout"`
	// HealthyThreshold is how many consecutive successful probes bring a
	// backend that was out of rotation back. Default 2.
	HealthyThreshold int `yaml:"healthy_threshold"`
	// UnhealthyThreshold is how many consecutive failed probes take a
	// backend out of rotation. Default 3.
	UnhealthyThreshold int `yaml:"unhealthy_threshold"`
}

// SetDefaults fills the unset fields with their documented defaults.
func (h *HealthCheck) SetDefaults() {
	if h.Enabled == nil {
		on := true
		h.Enabled = &on
	}
	if h.Interval == 0 {
		h.Interval = DefaultHealthInterval
	}
	if h.Timeout == 0 {
		h.Timeout = min(DefaultHealthTimeout, h.Interval)
	}
	if h.HealthyThreshold == 0 {
		h.HealthyThreshold = DefaultHealthyThreshold
	}
	if h.UnhealthyThreshold == 0 {
		h.UnhealthyThreshold = DefaultUnhealthyThreshold
	}
}

// On reports whether the checks are enabled (the default).
func (h *HealthCheck) On() bool { return h.Enabled == nil || *h.Enabled }

// Validate reports the invalid fields, each named under at (e.g.
// "health_check" or "backends[2].health_check"). Call SetDefaults first.
func (h *HealthCheck) Validate(at string) error {
	var errs []error
	switch {
	case h.Interval < minHealthInterval:
		errs = append(errs, fmt.Errorf("%s.interval: must be at least %v, got %v", at, minHealthInterval, h.Interval))
	case h.Timeout <= 0:
		errs = append(errs, fmt.Errorf("%s.timeout: must be positive, got %v", at, h.Timeout))
	case h.Timeout > h.Interval:
		errs = append(errs, fmt.Errorf("%s.timeout: %v is longer than the interval %v (a probe must end before the next is due)", at, h.Timeout, h.Interval))
	}
	if h.HealthyThreshold < 1 || h.HealthyThreshold > maxHealthThreshold {
		errs = append(errs, fmt.Errorf("%s.healthy_threshold: must be between 1 and %d, got %d", at, maxHealthThreshold, h.HealthyThreshold))
	}
	if h.UnhealthyThreshold < 1 || h.UnhealthyThreshold > maxHealthThreshold {
		errs = append(errs, fmt.Errorf("%s.unhealthy_threshold: must be between 1 and %d, got %d", at, maxHealthThreshold, h.UnhealthyThreshold))
	}
	return errors.Join(errs...)
}

// Merge returns h with the fields that override sets replaced by its values
// (a backend's own health_check over the top-level one). When override
// shortens the interval below the inherited timeout and sets no timeout of
// its own, the timeout becomes the default (1s) or the interval if shorter.
func (h HealthCheck) Merge(override *HealthCheck) HealthCheck {
	if override == nil {
		return h
	}
	if override.Enabled != nil {
		h.Enabled = override.Enabled
	}
	if override.Interval != 0 {
		h.Interval = override.Interval
		if override.Timeout == 0 && h.Timeout > h.Interval {
			h.Timeout = min(DefaultHealthTimeout, h.Interval)
		}
	}
	if override.Timeout != 0 {
		h.Timeout = override.Timeout
	}
	if override.HealthyThreshold != 0 {
		h.HealthyThreshold = override.HealthyThreshold
	}
	if override.UnhealthyThreshold != 0 {
		h.UnhealthyThreshold = override.UnhealthyThreshold
	}
	return h
}

// Retry is the retry section: the retry budget of requests that failed on a
// backend (backend unavailable) before any byte reached the client, and were
// retried on another one. Retries may not exceed budget_percent of the
// first attempts of the last 10 seconds plus min_per_second × 10; past that
// a failed request returns its error instead of retrying, so a fleet-wide
// outage does not multiply the load. Hedged copies (hedging) draw from the
// same budget.
//
//	retry:
//	  budget_percent: 20   # retries as a share of recent requests (default 20; 0–100)
//	  min_per_second: 3    # retries always allowed at low load (default 3)
//	  max_attempts: 3      # backends one request may try (default 3; 1 = no retries)
type Retry struct {
	// BudgetPercent is the retries allowed as a percentage of the requests
	// of the last 10 seconds. Default 20.
	BudgetPercent *float64 `yaml:"budget_percent"`
	// MinPerSecond is the retries per second allowed whatever the traffic
	// (averaged over 10 seconds), so one failing backend at low load is
	// fully absorbed. Default 3.
	MinPerSecond *float64 `yaml:"min_per_second"`
	// MaxAttempts bounds the backends one request tries, the first
	// included. Default 3.
	MaxAttempts int `yaml:"max_attempts"`
}

// SetDefaults fills the unset fields with their documented defaults.
func (r *Retry) SetDefaults() {
	if r.BudgetPercent == nil {
		v := DefaultRetryBudgetPercent
		r.BudgetPercent = &v
	}
	if r.MinPerSecond == nil {
		v := DefaultRetryMinPerSecond
		r.MinPerSecond = &v
	}
	if r.MaxAttempts == 0 {
		r.MaxAttempts = DefaultRetryMaxAttempts
	}
}

// Validate reports the invalid fields by name ("retry.budget_percent").
// Call SetDefaults first.
func (r *Retry) Validate() error {
	var errs []error
	if p := r.BudgetPercent; p != nil && !(*p >= 0 && *p <= 100) {
		errs = append(errs, fmt.Errorf("retry.budget_percent: must be between 0 and 100, got %v", *p))
	}
	if m := r.MinPerSecond; m != nil && !(*m >= 0 && *m <= maxRetryMinPerSecond) {
		errs = append(errs, fmt.Errorf("retry.min_per_second: must be between 0 and %g, got %v", maxRetryMinPerSecond, *m))
	}
	if r.MaxAttempts < 1 || r.MaxAttempts > maxRetryAttempts {
		errs = append(errs, fmt.Errorf("retry.max_attempts: must be between 1 and %d, got %d", maxRetryAttempts, r.MaxAttempts))
	}
	return errors.Join(errs...)
}

// Hedging is the hedging section. When enabled, a critical non-streaming
// request whose end-to-end SLO is at most max_slo_ms gets a second copy on
// another backend once its first backend's predicted p95 latency has passed
// without an answer; the first answer wins and the other copy is canceled.
// Each hedge draws from the retry budget. Off by default.
//
//	hedging:
//	  enabled: false    # default false
//	  max_slo_ms: 200   # only requests with an SLO this tight (default 200)
type Hedging struct {
	// Enabled turns hedging on. Default false.
	Enabled bool `yaml:"enabled"`
	// MaxSLOMs is the loosest end-to-end SLO (milliseconds) a request may
	// have to be hedged. Default 200.
	MaxSLOMs float64 `yaml:"max_slo_ms"`
}

// SetDefaults fills the unset fields with their documented defaults.
func (h *Hedging) SetDefaults() {
	if h.MaxSLOMs == 0 {
		h.MaxSLOMs = DefaultHedgingMaxSLOMs
	}
}

// Validate reports the invalid fields by name ("hedging.max_slo_ms"). Call
// SetDefaults first.
func (h *Hedging) Validate() error {
	if !(h.MaxSLOMs > 0 && h.MaxSLOMs <= maxHedgingSLOMs) {
		return fmt.Errorf("hedging.max_slo_ms: must be between 0 and %g milliseconds, got %v", maxHedgingSLOMs, h.MaxSLOMs)
	}
	return nil
}

// MaxSLO is MaxSLOMs as a duration.
func (h *Hedging) MaxSLO() time.Duration { return ms(h.MaxSLOMs) }

// Defaults and limits of a model's cache section.
const (
	DefaultCacheMaxEntries = 1024
	DefaultCacheTTL        = 5 * time.Minute
	maxCacheEntries        = 1 << 20
)

// ResponseCache is a model's cache section: an LRU cache of the gateway's
// responses to deterministic requests (embeddings, KServe v2 tensor infer,
// and chat and completions with an explicit temperature 0, n 1 and no
// stream), keyed on a hash of the canonical request. A hit is answered at
// once without placing the request, at cost 0. Off by default. See the
// gateway package (cache.go) for what is cacheable and how keys are formed.
//
//	cache:
//	  enabled: false     # default false
//	  max_entries: 1024  # responses kept, least recently used evicted first (default 1024)
//	  ttl: 5m            # an entry expires this long after it was stored (default 5m)
type ResponseCache struct {
	// Enabled turns the cache on. Default false.
	Enabled bool `yaml:"enabled"`
	// MaxEntries bounds the responses kept for the model (an entry's size
	// is not counted: large embeddings batches take as much memory as
	// their vectors). Default 1024, at most 1048576.
	MaxEntries int `yaml:"max_entries"`
	// TTL is how long an entry is served after it was stored. Default 5m.
	TTL time.Duration `yaml:"ttl"`
}

// SetDefaults fills the unset fields with their documented defaults.
func (c *ResponseCache) SetDefaults() {
	if c.MaxEntries == 0 {
		c.MaxEntries = DefaultCacheMaxEntries
	}
	if c.TTL == 0 {
		c.TTL = DefaultCacheTTL
	}
}

// Validate reports the invalid fields, each named under at (e.g.
// "models[2].cache"). Call SetDefaults first.
func (c *ResponseCache) Validate(at string) error {
	var errs []error
	if c.MaxEntries < 1 || c.MaxEntries > maxCacheEntries {
		errs = append(errs, fmt.Errorf("%s.max_entries: must be between 1 and %d, got %d", at, maxCacheEntries, c.MaxEntries))
	}
	if c.TTL <= 0 {
		errs = append(errs, fmt.Errorf("%s.ttl: must be positive, got %v", at, c.TTL))
	}
	return errors.Join(errs...)
}
