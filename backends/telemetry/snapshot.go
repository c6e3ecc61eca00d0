package telemetry

import (
	"fmt"
	"io"
	"math"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// The values of Snapshot.Source: which server a scrape came from, told by the
// prefix of the metric names it exposes.
const (
	SourceVLLM    = "vllm"
	SourceSGLang  = "sglang"
	SourceTGI     = "tgi"
	SourceTriton  = "triton"
	SourceUnknown = "unknown"
)

// The metric names Parse reads (see the package doc for where each comes from
// and how label sets are combined).
const (
	VLLMRunning       = "vllm:num_requests_running"
	VLLMWaiting       = "vllm:num_requests_waiting"
	VLLMKVCacheUsage  = "vllm:kv_cache_usage_perc"  // vLLM V1 engine
	VLLMGPUCacheUsage = "vllm:gpu_cache_usage_perc" // older vLLM, same meaning
	VLLMQueueTime     = "vllm:request_queue_time_seconds"
	VLLMInferenceTime = "vllm:request_inference_time_seconds"

	SGLangRunning    = "sglang:num_running_reqs"
	SGLangQueue      = "sglang:num_queue_reqs"
	SGLangTokenUsage = "sglang:token_usage"

	TGIQueueSize        = "tgi_queue_size"
	TGIBatchCurrentSize = "tgi_batch_current_size"

	TritonPending        = "nv_inference_pending_request_count"
	TritonQueueUs        = "nv_inference_queue_duration_us"
	TritonComputeInferUs = "nv_inference_compute_infer_duration_us"
	TritonRequestSuccess = "nv_inference_request_success"
	TritonInferenceCount = "nv_inference_count"
	TritonGPUUtilization = "nv_gpu_utilization"
)

// Snapshot is what one scrape of an upstream's Prometheus endpoint says about
// its load. A published snapshot is immutable: readers share it and must not
// modify it. Unknown fractions are -1 (Parse never leaves them at the zero
// value); unknown counts are 0.
type Snapshot struct {
	// At is when the scrape that produced the numbers ended (the Scraper's
	// clock). Parse leaves it zero. A failed scrape keeps the last good
	// snapshot's At, so that age measures the data, not the attempt.
	At time.Time
	// Running and Waiting are requests the upstream is running and has
	// queued, summed over its label sets (models, engines). For Triton,
	// Waiting is Pending.
	Running, Waiting float64
	// KVCacheUsage is the fraction of the KV cache in use, 0..1; -1 when the
	// upstream does not say (TGI, Triton).
	KVCacheUsage float64
	// QueueTimeMs and ComputeTimeMs are the mean queueing and compute time per
	// request completed between the previous scrape and this one, derived
	// from cumulative counters (Triton) or histogram sums and counts (vLLM);
	// 0 when not derivable (first scrape, no request completed in between, a
	// counter reset, or the upstream does not export them).
	QueueTimeMs, ComputeTimeMs float64
	// GPUUtil is the mean GPU utilisation over the upstream's GPUs, 0..1; -1
	// when unknown. Only Triton exports it.
	GPUUtil float64
	// Pending is Triton's pending request count summed over its models.
	Pending float64
	// Source is the kind of server: SourceVLLM, SourceSGLang, SourceTGI,
	// SourceTriton or SourceUnknown.
	Source string
	// Err is the last scrape's error; empty when the numbers are from the
	// last scrape. A snapshot with Err set carries the last good numbers.
	Err string

	// ctr keeps the cumulative totals this snapshot's deltas were taken
	// from, as the baseline for the next scrape's.
	ctr counters
}

// counters are cumulative totals (sums in milliseconds, counts in requests)
// summed over label sets.
type counters struct {
	queueMs, queueN     float64
	computeMs, computeN float64
	hasQueue, hasComp   bool
}

// unknownSnapshot is a snapshot that knows nothing.
func unknownSnapshot() Snapshot {
	return Snapshot{KVCacheUsage: -1, GPUUtil: -1, Source: SourceUnknown}
}

// Fresh reports whether s can be trusted at now: it is not nil, its last
// scrape succeeded (Err is empty), it has been stamped, and it is at most
// maxAge old (a snapshot stamped after now, from clock skew, counts as
// fresh). A maxAge <= 0 means no snapshot is fresh.
func (s *Snapshot) Fresh(now time.Time, maxAge time.Duration) bool {
	if s == nil || s.Err != "" || s.At.IsZero() || maxAge <= 0 {
		return false
	}
	return now.Sub(s.At) <= maxAge
}

// Parse reads a Prometheus text exposition (format 0.0.4) from r with
// expfmt's text parser and extracts the load of the server that wrote it (see
// the package doc for the metric names and how label sets combine). prev is
// the previous snapshot of the same target, or nil: its counter totals are
// the baselines of QueueTimeMs and ComputeTimeMs. The result's At is zero.
//
// Malformed input returns an error and a snapshot that knows nothing (Source
// unknown, fractions -1, Err set); Parse never panics. Non-finite sample
// values (NaN, ±Inf) are ignored; counts below zero become zero and fractions
// are clamped to 0..1.
func Parse(r io.Reader, prev *Snapshot) (snap Snapshot, err error) {
	defer func() {
		// expfmt is not supposed to panic on any input; if it ever does, a
		// bad upstream must not take the gateway down with it.
		if p := recover(); p != nil {
			snap = unknownSnapshot()
			err = fmt.Errorf("telemetry: parsing the exposition: panic: %v", p)
			snap.Err = err.Error()
		}
	}()
	snap = unknownSnapshot()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, perr := parser.TextToMetricFamilies(r)
	if perr != nil {
		err = fmt.Errorf("telemetry: parsing the exposition: %w", perr)
		snap.Err = err.Error()
		return snap, err
	}
	snap.Source = detectSource(fams)
	switch snap.Source {
	case SourceVLLM:
		snap.Running = count(fams, VLLMRunning)
		snap.Waiting = count(fams, VLLMWaiting)
		if u, ok := mean(fams, VLLMKVCacheUsage); ok {
			snap.KVCacheUsage = fraction(u)
		} else if u, ok := mean(fams, VLLMGPUCacheUsage); ok {
			snap.KVCacheUsage = fraction(u)
		}
		if s, n, ok := histogram(fams, VLLMQueueTime); ok {
			snap.ctr.queueMs, snap.ctr.queueN, snap.ctr.hasQueue = s*1e3, n, true
		}
		if s, n, ok := histogram(fams, VLLMInferenceTime); ok {
			snap.ctr.computeMs, snap.ctr.computeN, snap.ctr.hasComp = s*1e3, n, true
		}
	case SourceSGLang:
		snap.Running = count(fams, SGLangRunning)
		snap.Waiting = count(fams, SGLangQueue)
		if u, ok := mean(fams, SGLangTokenUsage); ok {
			snap.KVCacheUsage = fraction(u)
		}
	case SourceTGI:
		snap.Running = count(fams, TGIBatchCurrentSize)
		snap.Waiting = count(fams, TGIQueueSize)
	case SourceTriton:
		snap.Pending = count(fams, TritonPending)
		snap.Waiting = snap.Pending
		if u, ok := mean(fams, TritonGPUUtilization); ok {
			snap.GPUUtil = fraction(u)
		}
		reqs, hasReqs := sum(fams, TritonRequestSuccess)
		if !hasReqs {
			reqs, hasReqs = sum(fams, TritonInferenceCount)
		}
		if hasReqs {
			if q, ok := sum(fams, TritonQueueUs); ok {
				snap.ctr.queueMs, snap.ctr.queueN, snap.ctr.hasQueue = q/1e3, reqs, true
			}
			if c, ok := sum(fams, TritonComputeInferUs); ok {
				snap.ctr.computeMs, snap.ctr.computeN, snap.ctr.hasComp = c/1e3, reqs, true
			}
		}
	}
	if prev != nil && prev.Source == snap.Source {
		p, c := &prev.ctr, &snap.ctr
		if p.hasQueue && c.hasQueue {
			snap.QueueTimeMs = perRequest(p.queueMs, p.queueN, c.queueMs, c.queueN)
		}
		if p.hasComp && c.hasComp {
			snap.ComputeTimeMs = perRequest(p.computeMs, p.computeN, c.computeMs, c.computeN)
		}
	}
	return snap, nil
}

// detectSource names the server by its metric names' prefixes.
func detectSource(fams map[string]*dto.MetricFamily) string {
	var vllm, sglang, tgi, triton bool
	for name := range fams {
		switch {
		case strings.HasPrefix(name, "vllm:"):
			vllm = true
		case strings.HasPrefix(name, "sglang:"):
			sglang = true
		case strings.HasPrefix(name, "tgi_"):
			tgi = true
		case strings.HasPrefix(name, "nv_inference_"), strings.HasPrefix(name, "nv_gpu_"):
			triton = true
		}
	}
	switch {
	case vllm:
		return SourceVLLM
	case sglang:
		return SourceSGLang
	case tgi:
		return SourceTGI
	case triton:
		return SourceTriton
	}
	return SourceUnknown
}

// perRequest is the mean per request between two cumulative (sum, count)
// pairs; 0 when no request completed in between or a total went backwards
// (the upstream restarted, or a model was unloaded).
func perRequest(prevSum, prevN, sum, n float64) float64 {
	dn, ds := n-prevN, sum-prevSum
	if !(dn > 0) || !(ds >= 0) {
		return 0
	}
	v := ds / dn
	if !finite(v) {
		return 0
	}
	return v
}

// sampleValue is a gauge's, counter's or untyped sample's value.
func sampleValue(m *dto.Metric) (float64, bool) {
	switch {
	case m.GetGauge() != nil:
		return m.GetGauge().GetValue(), true
	case m.GetCounter() != nil:
		return m.GetCounter().GetValue(), true
	case m.GetUntyped() != nil:
		return m.GetUntyped().GetValue(), true
	}
	return 0, false
}

// sum adds a family's finite sample values over its label sets; ok is false
// when it has none.
func sum(fams map[string]*dto.MetricFamily, name string) (total float64, ok bool) {
	for _, m := range fams[name].GetMetric() {
		if v, has := sampleValue(m); has && finite(v) {
			total += v
			ok = true
		}
	}
	if !finite(total) {
		return 0, false
	}
	return total, ok
}

// count is sum for a number of requests: never negative, 0 when absent.
func count(fams map[string]*dto.MetricFamily, name string) float64 {
	v, _ := sum(fams, name)
	return max(v, 0)
}

// mean averages a family's finite sample values over its label sets.
func mean(fams map[string]*dto.MetricFamily, name string) (float64, bool) {
	var total float64
	n := 0
	for _, m := range fams[name].GetMetric() {
		if v, has := sampleValue(m); has && finite(v) {
			total += v
			n++
		}
	}
	if n == 0 || !finite(total) {
		return 0, false
	}
	return total / float64(n), true
}

// histogram is a histogram's (or summary's) sample sum and count, summed over
// label sets. Without a TYPE line the parser sees NAME_sum and NAME_count as
// separate untyped families; those are read too.
func histogram(fams map[string]*dto.MetricFamily, name string) (s, n float64, ok bool) {
	if fam := fams[name]; fam != nil {
		for _, m := range fam.GetMetric() {
			var ms, mn float64
			switch {
			case m.GetHistogram() != nil:
				h := m.GetHistogram()
				ms, mn = h.GetSampleSum(), float64(h.GetSampleCount())
				if h.SampleCountFloat != nil {
					mn = h.GetSampleCountFloat()
				}
			case m.GetSummary() != nil:
				ms, mn = m.GetSummary().GetSampleSum(), float64(m.GetSummary().GetSampleCount())
			default:
				continue
			}
			if finite(ms) && finite(mn) {
				s, n, ok = s+ms, n+mn, true
			}
		}
		if ok && finite(s) && finite(n) {
			return s, n, true
		}
		return 0, 0, false
	}
	s, okS := sum(fams, name+"_sum")
	n, okN := sum(fams, name+"_count")
	if okS && okN {
		return s, n, true
	}
	return 0, 0, false
}

// fraction clamps a finite value to 0..1.
func fraction(v float64) float64 { return min(max(v, 0), 1) }

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
