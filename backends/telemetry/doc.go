// Package telemetry reads live load from the upstream inference servers'
// Prometheus endpoints, so that the router sees load the gateway did not
// place itself (other clients sharing an upstream, requests the gateway lost
// track of).
//
// It owns three things:
//
//   - Parse (snapshot.go) turns one Prometheus text exposition (format 0.0.4)
//     into a Snapshot: running and waiting requests, KV cache usage, mean
//     queue and compute time per request, GPU utilisation, Triton's pending
//     count. It parses with github.com/prometheus/common/expfmt's TextParser,
//     never by hand, and returns an error, never a panic, on malformed input.
//   - Scraper (scraper.go) scrapes a fixed set of targets (name → URL of
//     /metrics) every Config.Interval on an injected backends.Clock (tests use
//     backends/fakeclock), with net/http and a wall-clock Config.Timeout per
//     scrape, and publishes each target's latest Snapshot through an atomic
//     pointer.
//   - Merge (merge.go) is the merge rule below, a pure, allocation-free
//     function.
//
// # From a scrape to the router
//
// Each target has one timer on the clock. When it fires, the scrape GETs the
// URL, parses the body with the target's previous good snapshot as the
// counter baseline, stamps the result with the clock's time (Snapshot.At) and
// stores it in the target's atomic pointer; then it re-arms the timer for
// Interval after the scrape started. A failed scrape (transport error,
// timeout, a status other than 200, a body over MaxExpositionBytes, a parse
// error) publishes a copy of the last good snapshot with Err set, keeping its
// numbers and its At. The router's hot path reads the pointer with
// Scraper.Latest(i) or LatestByName (no lock, no allocation) and places
// requests by Merge's result, not by the raw snapshot. Published snapshots
// are immutable.
//
// # The merge rule
//
// Merge(placed, s, now, maxAge) takes what the gateway itself placed on a
// backend (Placed: running sequences, waiting requests) and the backend's
// latest snapshot. A snapshot is used only when it is fresh: not nil, its
// last scrape succeeded (Err empty), and it is at most maxAge old
// (Snapshot.Fresh; Config.MaxAge suggests three intervals). Then the
// effective queue a new request would join is the larger of the two views,
// count by count, since other clients may share the upstream and since the
// gateway's own placements may not have reached the upstream's last scrape:
//
//	Effective.Running      = max(placed.Running, s.Running)
//	Effective.Waiting      = max(placed.Waiting, s.Waiting)
//	Effective.KVCacheUsage = s.KVCacheUsage (-1 when the upstream does not say)
//
// The maximum, not the sum: the upstream's counts already include the
// gateway's requests that reached it, so adding would count them twice. A
// nil, stale or errored snapshot is ignored: Effective is placed alone, with
// KVCacheUsage -1 and Upstream false.
//
// # Metric names
//
// The server kind (Snapshot.Source) is told by the metric names' prefixes:
// "vllm:" is vLLM, "sglang:" SGLang, "tgi_" TGI, "nv_inference_" or
// "nv_gpu_" Triton (checked in that order); anything else is "unknown" and
// contributes nothing (Merge then keeps the gateway's counts, as the maximum
// with zero). Counts (requests) are summed over a family's label sets (models,
// data-parallel engines, ranks); fractions (KV cache, GPU utilisation) are
// averaged over them, which is the whole server's fraction when the caches or
// GPUs are the same size. Non-finite samples are ignored, negative counts read
// as 0 and fractions are clamped to 0..1.
//
// vLLM, from the Production Metrics page of the vLLM docs
// (docs.vllm.ai/en/stable/usage/metrics/) and vLLM's docs/design/metrics.md:
//
//   - vllm:num_requests_running (gauge) → Running.
//   - vllm:num_requests_waiting (gauge) → Waiting.
//   - vllm:kv_cache_usage_perc (gauge, V1 engine) or, when absent,
//     vllm:gpu_cache_usage_perc (gauge, older releases; same meaning) →
//     KVCacheUsage. Both are fractions ("1 means 100 percent usage"), not
//     percentages, despite the name.
//   - vllm:request_queue_time_seconds and vllm:request_inference_time_seconds
//     (histograms: time in the WAITING and RUNNING phases) → QueueTimeMs and
//     ComputeTimeMs, as Δsum/Δcount between two scrapes. The _sum and _count
//     series are read as untyped families too when the TYPE line is missing.
//
// SGLang, from SGLang's Production Metrics reference
// (docs.sglang.io/references/production_metrics; the server needs
// --enable-metrics):
//
//   - sglang:num_running_reqs (gauge) → Running.
//   - sglang:num_queue_reqs (gauge) → Waiting.
//   - sglang:token_usage (gauge, 0..1: the share of the KV token pool in use)
//     → KVCacheUsage.
//
// TGI, from Hugging Face's text-generation-inference Metrics reference
// (huggingface.co/docs/text-generation-inference/reference/metrics):
//
//   - tgi_batch_current_size (gauge) → Running.
//   - tgi_queue_size (gauge) → Waiting.
//   - TGI exports no KV cache fraction: KVCacheUsage stays -1.
//
// Triton Inference Server, from its Metrics user guide
// (docs/user_guide/metrics.md in triton-inference-server/server):
//
//   - nv_inference_pending_request_count (gauge, per model: requests awaiting
//     execution by a backend) → Pending, summed over models; Waiting is the
//     same number, so that the merge rule sees Triton's queue. Triton has no
//     running-request gauge: Running stays 0.
//   - nv_inference_queue_duration_us and nv_inference_compute_infer_duration_us
//     (cumulative counters, microseconds, per model) divided by
//     nv_inference_request_success (cumulative requests, a batch counted once;
//     the guide notes the queue counter's total matches it) or, when that is
//     absent, nv_inference_count → QueueTimeMs and ComputeTimeMs: the totals
//     are summed over models and the means are Δtime/Δrequests between two
//     scrapes. Compute time excludes response-cache hits, so with the cache
//     on the compute mean is low.
//   - nv_gpu_utilization (gauge, 0..1, per GPU) → GPUUtil, averaged over GPUs.
//
// A mean is 0 on the first scrape (no baseline), when no request completed
// between the scrapes, when a total went backwards (a restart, an unloaded
// model) and when the previous snapshot came from another kind of server.
//
// The accelerator emulator (backends/emulator, Backend.WriteMetrics) exposes
// the vLLM names, so the whole path is tested end to end against it.
package telemetry
