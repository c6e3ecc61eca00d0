package telemetry

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func fixture(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func parseString(t *testing.T, text string, prev *Snapshot) Snapshot {
	t.Helper()
	s, err := Parse(strings.NewReader(text), prev)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return s
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

// public is a snapshot's exported fields (the counters compared apart).
func public(s Snapshot) Snapshot { s.ctr = counters{}; return s }

func TestParseFixtures(t *testing.T) {
	for _, tc := range []struct {
		file string
		want Snapshot
	}{
		// Two data-parallel engines: counts summed, KV fraction averaged.
		{"vllm_v1.prom", Snapshot{Running: 5, Waiting: 1, KVCacheUsage: 0.3, GPUUtil: -1, Source: SourceVLLM}},
		{"vllm_v0.prom", Snapshot{Running: 4, Waiting: 2, KVCacheUsage: 0.42, GPUUtil: -1, Source: SourceVLLM}},
		{"sglang.prom", Snapshot{Running: 7, Waiting: 3, KVCacheUsage: 0.61, GPUUtil: -1, Source: SourceSGLang}},
		{"tgi.prom", Snapshot{Running: 12, Waiting: 5, KVCacheUsage: -1, GPUUtil: -1, Source: SourceTGI}},
		// Pending summed over models and copied to Waiting; GPU utilisation
		// averaged over GPUs.
		{"triton.prom", Snapshot{Waiting: 3, Pending: 3, KVCacheUsage: -1, GPUUtil: 0.6, Source: SourceTriton}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			got := public(parseString(t, fixture(t, tc.file), nil))
			if !near(got.KVCacheUsage, tc.want.KVCacheUsage) || !near(got.GPUUtil, tc.want.GPUUtil) {
				t.Errorf("fractions: kv %v gpu %v, want %v %v", got.KVCacheUsage, got.GPUUtil, tc.want.KVCacheUsage, tc.want.GPUUtil)
			}
			got.KVCacheUsage, got.GPUUtil = tc.want.KVCacheUsage, tc.want.GPUUtil
			if got != tc.want {
				t.Errorf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

// TestParseVLLMKVNames: the V1 name wins when a server exports both; either
// alone is read.
func TestParseVLLMKVNames(t *testing.T) {
	both := "vllm:kv_cache_usage_perc{model_name=\"m\"} 0.5\nvllm:gpu_cache_usage_perc{model_name=\"m\"} 0.9\n"
	if s := parseString(t, both, nil); s.KVCacheUsage != 0.5 {
		t.Errorf("both names: kv %v, want the V1 name's 0.5", s.KVCacheUsage)
	}
	if s := parseString(t, "vllm:gpu_cache_usage_perc 0.9\n", nil); s.KVCacheUsage != 0.9 {
		t.Errorf("V0 name: kv %v", s.KVCacheUsage)
	}
	if s := parseString(t, "vllm:num_requests_running 2\n", nil); s.KVCacheUsage != -1 || s.Running != 2 {
		t.Errorf("no KV gauge: %+v", s)
	}
	// Out-of-range fractions are clamped.
	if s := parseString(t, "vllm:kv_cache_usage_perc 1.7\n", nil); s.KVCacheUsage != 1 {
		t.Errorf("kv 1.7 read as %v, want 1", s.KVCacheUsage)
	}
}

func TestParseTritonCounterDeltas(t *testing.T) {
	first := parseString(t, fixture(t, "triton.prom"), nil)
	if first.QueueTimeMs != 0 || first.ComputeTimeMs != 0 {
		t.Errorf("first scrape: queue %v compute %v, want 0 without a baseline", first.QueueTimeMs, first.ComputeTimeMs)
	}
	later := parseString(t, fixture(t, "triton_later.prom"), &first)
	// 150 requests; queue +450,000 µs, compute +750,000 µs.
	if !near(later.QueueTimeMs, 3) || !near(later.ComputeTimeMs, 5) {
		t.Errorf("queue %v ms compute %v ms, want 3 and 5", later.QueueTimeMs, later.ComputeTimeMs)
	}
	if later.Pending != 1 || later.Waiting != 1 {
		t.Errorf("pending %v waiting %v, want 1", later.Pending, later.Waiting)
	}
	// No request in between: no mean.
	same := parseString(t, fixture(t, "triton_later.prom"), &later)
	if same.QueueTimeMs != 0 || same.ComputeTimeMs != 0 {
		t.Errorf("no new requests: queue %v compute %v, want 0", same.QueueTimeMs, same.ComputeTimeMs)
	}
	// A restart (counters back to smaller totals) gives 0, not a negative mean.
	restarted := parseString(t, fixture(t, "triton.prom"), &later)
	if restarted.QueueTimeMs != 0 || restarted.ComputeTimeMs != 0 {
		t.Errorf("counter reset: queue %v compute %v, want 0", restarted.QueueTimeMs, restarted.ComputeTimeMs)
	}
	// A baseline from another kind of server is not a baseline.
	vllm := parseString(t, fixture(t, "vllm_v1.prom"), nil)
	if s := parseString(t, fixture(t, "triton_later.prom"), &vllm); s.QueueTimeMs != 0 {
		t.Errorf("baseline from vLLM: queue %v", s.QueueTimeMs)
	}
}

// TestParseTritonInferenceCountFallback: without nv_inference_request_success
// the requests are counted by nv_inference_count.
func TestParseTritonInferenceCountFallback(t *testing.T) {
	a := parseString(t, "nv_inference_count{model=\"m\"} 10\nnv_inference_queue_duration_us{model=\"m\"} 1000\n", nil)
	b := parseString(t, "nv_inference_count{model=\"m\"} 20\nnv_inference_queue_duration_us{model=\"m\"} 21000\n", &a)
	if !near(b.QueueTimeMs, 2) || b.ComputeTimeMs != 0 {
		t.Errorf("queue %v compute %v, want 2 and 0", b.QueueTimeMs, b.ComputeTimeMs)
	}
}

func TestParseVLLMHistogramDeltas(t *testing.T) {
	first := parseString(t, fixture(t, "vllm_v1.prom"), nil)
	// Engine 0 completes 20 more requests with 2 s more queueing and 40 s
	// more inference: 100 ms and 2,000 ms per request.
	text := fixture(t, "vllm_v1.prom")
	for _, r := range [][2]string{
		{`vllm:request_queue_time_seconds_sum{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 12.5`, `vllm:request_queue_time_seconds_sum{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 14.5`},
		{`vllm:request_queue_time_seconds_count{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 50.0`, `vllm:request_queue_time_seconds_count{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 70.0`},
		{`vllm:request_queue_time_seconds_bucket{engine="0",le="+Inf",model_name="meta-llama/Llama-3.1-8B-Instruct"} 50.0`, `vllm:request_queue_time_seconds_bucket{engine="0",le="+Inf",model_name="meta-llama/Llama-3.1-8B-Instruct"} 70.0`},
		{`vllm:request_inference_time_seconds_sum{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 100.0`, `vllm:request_inference_time_seconds_sum{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 140.0`},
		{`vllm:request_inference_time_seconds_count{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 50.0`, `vllm:request_inference_time_seconds_count{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 70.0`},
		{`vllm:request_inference_time_seconds_bucket{engine="0",le="+Inf",model_name="meta-llama/Llama-3.1-8B-Instruct"} 50.0`, `vllm:request_inference_time_seconds_bucket{engine="0",le="+Inf",model_name="meta-llama/Llama-3.1-8B-Instruct"} 70.0`},
	} {
		if !strings.Contains(text, r[0]) {
			t.Fatalf("fixture lacks %q", r[0])
		}
		text = strings.Replace(text, r[0], r[1], 1)
	}
	later := parseString(t, text, &first)
	if !near(later.QueueTimeMs, 100) || !near(later.ComputeTimeMs, 2000) {
		t.Errorf("queue %v ms compute %v ms, want 100 and 2000", later.QueueTimeMs, later.ComputeTimeMs)
	}
	// Untyped _sum/_count (no TYPE line) are read as well.
	a := parseString(t, "vllm:request_queue_time_seconds_sum 1\nvllm:request_queue_time_seconds_count 10\n", nil)
	b := parseString(t, "vllm:request_queue_time_seconds_sum 1.5\nvllm:request_queue_time_seconds_count 20\n", &a)
	if !near(b.QueueTimeMs, 50) {
		t.Errorf("untyped histogram parts: queue %v ms, want 50", b.QueueTimeMs)
	}
}

func TestParseUnknownAndEmpty(t *testing.T) {
	for _, text := range []string{"", "# just a comment\n", "process_cpu_seconds_total 12.5\nup 1\n"} {
		s := parseString(t, text, nil)
		if (public(s) != Snapshot{KVCacheUsage: -1, GPUUtil: -1, Source: SourceUnknown}) {
			t.Errorf("%q: %+v", text, s)
		}
	}
}

func TestParseGarbage(t *testing.T) {
	for _, text := range []string{
		"vllm:num_requests_running{model_name=\"m\" 3\n",      // unclosed label set
		"vllm:num_requests_running three\n",                   // not a number
		"# TYPE vllm:num_requests_running gauge\n{}\n",        // no name
		"\x00\x01\x02\xff\xfe",                                // binary
		"# TYPE x counter\n# TYPE x gauge\nx 1\n",             // second TYPE
		"<html><body>502 Bad Gateway</body></html>\n",         // a proxy's error page
		"vllm:num_requests_running{model_name=\"m\"} 1 2 3\n", // junk after the timestamp
	} {
		s, err := Parse(strings.NewReader(text), nil)
		if err == nil {
			t.Errorf("%q: no error (%+v)", text, s)
			continue
		}
		if s.Err == "" || s.Source != SourceUnknown || s.KVCacheUsage != -1 || s.GPUUtil != -1 || s.Running != 0 {
			t.Errorf("%q: snapshot %+v with error %v", text, s, err)
		}
	}
}

func TestParseNonFinite(t *testing.T) {
	s := parseString(t, "vllm:num_requests_running{e=\"0\"} NaN\nvllm:num_requests_running{e=\"1\"} 2\nvllm:num_requests_waiting +Inf\nvllm:kv_cache_usage_perc -Inf\n", nil)
	if s.Running != 2 || s.Waiting != 0 || s.KVCacheUsage != -1 {
		t.Errorf("%+v", s)
	}
	if s := parseString(t, "vllm:num_requests_running -3\n", nil); s.Running != 0 {
		t.Errorf("negative count read as %v", s.Running)
	}
}

func TestFresh(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	ok := &Snapshot{At: now.Add(-time.Second)}
	for _, tc := range []struct {
		name   string
		s      *Snapshot
		maxAge time.Duration
		want   bool
	}{
		{"nil", nil, time.Minute, false},
		{"fresh", ok, 5 * time.Second, true},
		{"exactly maxAge", ok, time.Second, true},
		{"stale", ok, 500 * time.Millisecond, false},
		{"errored", &Snapshot{At: now, Err: "boom"}, time.Minute, false},
		{"never stamped", &Snapshot{}, time.Minute, false},
		{"from the future", &Snapshot{At: now.Add(time.Second)}, time.Second, true},
		{"maxAge 0", ok, 0, false},
	} {
		if got := tc.s.Fresh(now, tc.maxAge); got != tc.want {
			t.Errorf("%s: Fresh %v, want %v", tc.name, got, tc.want)
		}
	}
}
