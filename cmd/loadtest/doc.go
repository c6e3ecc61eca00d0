// Command loadtest drives an accelgate gateway (or any OpenAI / KServe v2
// server) with a standard or recorded workload and reports latency, SLO
// attainment, goodput and cost.
//
//	loadtest [flags]
//
// Open loop (default): requests are sent at the workload's intended times —
// -rate requests per second, or a -schedule — whether or not earlier ones have
// answered, and every latency is measured from the intended send time (no
// coordinated omission). Closed loop (-users N): N users each send, wait for
// the answer, think for -think, and repeat.
//
// Schedules (-schedule; the run lasts the schedule's length unless -duration
// or -requests is given):
//
//	step:DUR@RATE[,DUR@RATE…]   e.g. step:10s@100,10s@200 — 100 req/s for 10 s, then 200 req/s
//	ramp:FROM-TO@DUR            e.g. ramp:100-500@60s    — 100 → 500 req/s linearly over 60 s
//
// Examples:
//
//	loadtest -workload mixed -rate 50 -duration 30s
//	loadtest -workload llm -schedule ramp:10-200@60s -json run.json -html run.html
//	loadtest -workload vision -rate 200 -grpc 127.0.0.1:8081
//	loadtest -workload llm -users 32 -think 500ms -requests 2000
//	loadtest -workload mixed -rate 50 -compare http://gw-a:8080,http://gw-b:8080
//	loadtest -workload trace:requests.csv
//
// Simulation (loadtest simulate; see simulate.go and `loadtest simulate -h`)
// runs the same workloads through the production router and emulator cores
// in virtual time, for each policy at each load, with scenarios:
//
//	loadtest simulate -workload mixed -requests 1000000 -policies accelgate -load 0.5
//	loadtest simulate -workload mixed -policies all -load 0.3,0.6,0.9 -scenario drift -html sim.html
//	loadtest simulate -workload vision -find-max -json max.json
//
// All logic lives in package loadtest; this file only wires flags to it.
package main
