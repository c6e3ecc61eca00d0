// Command gateway runs accelgate: the OpenAI-compatible HTTP front and the
// KServe v2 gRPC front in front of a fleet of accelerators. With no -config it
// serves the embedded default fleet of emulated accelerators.
//
//	go run ./cmd/gateway [-config fleet.yaml] [-http-addr 127.0.0.1:8080] [-grpc-addr 127.0.0.1:8081] [-admin-addr 127.0.0.1:9090]
//	go run ./cmd/gateway -discover [-json]
//
// The first line it prints names what it bound:
// "accelgate listening on http=HOST:PORT grpc=HOST:PORT admin=HOST:PORT"
// (without admin= when the admin API is disabled).
//
// # Discovery
//
// -discover lists the local NVIDIA GPUs and MIG devices (read-only NVML
// discovery, backends/nvmldisc) with the catalog profile each maps to, as a
// table or, with -json, as JSON, and exits without serving. A machine without
// NVML (no driver, or a build without cgo) prints "NVML unavailable: <reason>"
// ("available": false in JSON) and still exits 0.
//
// # Admin API
//
// The admin API listens on its own address, -admin-addr (env
// ACCELGATE_ADMIN_ADDR; default 127.0.0.1:9090; -admin-addr "" disables it),
// never on the public fronts' (an equal address is refused). It answers GET
// and HEAD (other methods: 405 with an Allow header and a JSON error):
//
//   - GET /admin/inventory: the local GPU and MIG inventory, discovered for
//     each request (the JSON of -discover -json).
//   - GET /admin/backends: a JSON list, one entry per fleet backend in router
//     order: name, hardware, site, transport, models; available (the router
//     may place on it now), ejected (out after failures), unhealthy (failing
//     its active health checks), metadata_mismatch;
//     load (the router's own books: seqs, prompt_tokens, batch_work_ms,
//     in_flight); device_uuid and, when NVML lists that device, device (its
//     live memory_used_bytes / memory_total_bytes, util_gpu_pct,
//     util_memory_pct, power_draw_w; re-read every 10 s) or device_error;
//     and, for a backend with a metrics_url, telemetry (the latest scrape:
//     scraped, source, running, waiting, pending, kv_cache_usage, age_ms,
//     fresh, max_age_ms, error, and reported: the seqs and pending the
//     router merges now).
//
// A backend's device_uuid (fleet file) names the local GPU ("GPU-...") or MIG
// device ("MIG-...") it runs on. When NVML is unavailable the gateway says so
// once on stderr at start ("accelgate: NVML unavailable (<reason>):
// device_uuid of backends X, Y is not monitored") and carries on.
//
// # Live telemetry
//
// A backend with a metrics_url (its upstream's Prometheus endpoint: vLLM,
// SGLang, TGI, Triton, cmd/emulator) is scraped every telemetry.interval
// (fleet file; default 5s, timeout 2s). The router then counts, for that
// backend, the larger of what it placed there and what the upstream reports
// (running + waiting), never the sum; a report that failed or is older than
// three intervals is ignored. See gateway/telemetry.go.
package main
