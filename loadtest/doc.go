// Package loadtest is accelgate's load-test harness and the home of the
// workloads and run report that the virtual-time simulator reuses.
//
// Its parts, each in its own files:
//
//   - Workloads (workload*.go, arrivals.go, trace.go): a Source yields timed
//     Items — what to send and when it was meant to be sent. Arrival
//     processes (Poisson, constant, gamma-bursty, step and ramp schedules)
//     are separate from request mixes (the standard llm, embeddings, vision
//     and mixed workloads, multi-turn sessions, trace replay), and everything
//     is deterministic for a seed.
//   - The runner (runner.go, client*.go): sends Items to a live target over
//     OpenAI HTTP, KServe v2 HTTP or KServe v2 gRPC, open or closed loop,
//     and measures every request from its intended send time, so a slow
//     server cannot hide queueing (no coordinated omission).
//   - The report (report.go, html.go): a Recorder turns Outcomes into
//     HDR histograms, SLO attainment, goodput, cost and a per-second time
//     series, and renders the run report (JSON), the terminal summary and a
//     self-contained HTML page.
//
// A request's path: Source.Next fills an Item → the runner waits until its
// intended time and sends it → the response (or error) becomes an Outcome →
// Recorder.Record folds it into the report. The simulator replaces the
// runner with a discrete-event loop over the production cores and feeds the
// same Recorder.
package loadtest
