// Package loadtest is accelgate's load-test harness and the home of the
// workloads and run report that the virtual-time simulator reuses.
//
// Its parts, each in its own files:
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
//   - The capacity model (capacity.go): FleetCapacity is a fleet's SLO
//     capacity for a standard workload and, by a linear program, the lower
//     bound on cost per 1,000 requests at a rate.
//   - The virtual-time simulator (sim.go, sim_scenario.go, sim_run.go):
//     NewSim builds one emulator.Core per fleet backend and the router core
//     (router.New) — the very code the live gateway wraps with goroutines,
//     timers and a mutex — and Sim.Run drives them from a discrete-event
//     loop: a min-heap of backends keyed by Core.Next, a min-heap of hard
//     timeouts and the workload's next arrival, in time order (ties:
//     scenario changes, then core events by backend, then timeouts, then
//     arrivals). Each Item becomes a backends.Request (SimRequest), is
//     placed (router.Place), submitted (an LLMJob, or — with -batching off —
//     one batch per request; with fixed or adaptive batching the request
//     joins the backend's batcher.Core, whose batches are submitted whole
//     and whose admission queue lets LLM requests in as their sequences
//     fit; a request that finishes past its target has the core hand back
//     the queued requests that can no longer make theirs, which are placed
//     again) and finished by router.Done at its done event or its hard
//     timeout; its Outcome goes to the same Recorder as a live run's.
//     Scenarios (PlanScenario) slow one backend down from halfway (drift,
//     emulator.Core.SetSlowdown) or partition an edge node for a minute
//     (edge-failure: its requests time out). Simulate runs policies × loads
//     (fractions of FleetCapacity's RPS) or rates, optionally bisects for
//     each policy's highest rate with 99% SLO attainment (FindMax), and
//     returns one SimReport envelope; cmd/loadtest's simulate subcommand
//     prints it (capacity, cost bound, PrintCompare table) and writes it as
//     JSON and HTML. A million mixed requests take about 13 s.
//
// A request's path: Source.Next fills an Item → the runner waits until its
// intended time and sends it → the response (or error) becomes an Outcome →
// Recorder.Record folds it into the report. The simulator replaces the
// runner with a discrete-event loop over the production cores and feeds the
// same Recorder, in virtual time: no goroutines, no sleeping, deterministic
// for a seed.
package loadtest
