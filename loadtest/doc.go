// Package loadtest will hold accelgate's load-test harness (open- and
// closed-loop workloads, trace replay, SLO and cost reports) and its
// virtual-time simulator, which drives the production router and emulator
// cores in a discrete-event loop.
//
// It is not built yet (see the load-test and simulator issues); until then the
// README's performance section uses vegeta and the Go benchmarks.
package loadtest
