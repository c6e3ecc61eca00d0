package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/accelgate/accelgate/backends/catalog"
	"github.com/accelgate/accelgate/backends/fleet"
	"github.com/accelgate/accelgate/loadtest"
)

func init() { subcommands["simulate"] = runSimulate }

const simulateUsage = `usage: loadtest simulate [flags]

Runs the production placement and timing code — the router core and one
emulator core per fleet backend — under a virtual clock: a discrete-event
simulation of the workload against the fleet, for each policy at each load.
It prints the fleet's capacity for the workload, the lower bound on cost per
1,000 requests at each rate, and the runs side by side (ratios against the
first). Scenarios: steady (nothing changes), drift (one backend, by default
the first GPU, becomes 3x slower from halfway through the run), edge-failure
(one edge node stops answering for one minute from 25% of the run; a run
under two minutes gets a window of half its length).

Batching (-batching, a list to compare; default adaptive, as in the
gateway): off runs every embeddings and vision request alone at batch size 1
(a request with several rows runs them one after another); fixed is Triton's dynamic batcher (preferred size the
hardware's max batch, max_queue_delay_us tuned: each run is simulated with
100, 500, 1000, 2000 and 5000 us and the best SLO attainment kept, then the
lowest cost; -find-max keeps the delay with the highest rate; the choice
and every delay's result are printed); adaptive is the deadline-aware
batcher. The router places first, then each backend's batcher forms the
batches. LLM requests are never merged.

Examples:

  loadtest simulate -workload mixed -requests 1000000 -policies accelgate -load 0.5
  loadtest simulate -workload mixed -policies all -load 0.3,0.6,0.9 -html sim.html
  loadtest simulate -workload vision -find-max -requests 20000
  loadtest simulate -workload vision -batching off,fixed,adaptive -find-max -requests 30000
  loadtest simulate -scenario edge-failure -workload vision -load 0.5 -json sim.json
  loadtest simulate -config fleet.yaml -workload trace:requests.csv

Flags:
`

// runSimulate is `loadtest simulate`.
func runSimulate(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("loadtest simulate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, simulateUsage)
		fs.PrintDefaults()
	}
	var (
		c        loadtest.SimulateConfig
		config   = fs.String("config", "", "fleet `FILE` (default: the embedded default fleet)")
		loads    = fs.String("load", "", "comma-separated `fractions` of the fleet's capacity for the workload, e.g. 0.5,0.9 (default 0.5)")
		rates    = fs.String("rate", "", "comma-separated absolute `rates` in requests per second, instead of -load")
		policies = fs.String("policies", "accelgate", "comma-separated placement `policies` ("+strings.Join(loadtest.Policies(), ", ")+") or all")
		jsonOut  = fs.String("json", "", "write the simulation report as JSON to `FILE`")
		htmlOut  = fs.String("html", "", "write a self-contained HTML report of the runs to `FILE`")
		quiet    = fs.Bool("quiet", false, "no progress lines on stderr")
	)
	fs.StringVar(&c.Workload, "workload", loadtest.WorkloadMixed, "standard workload ("+strings.Join(loadtest.Names(), ", ")+") or trace:`FILE`")
	fs.IntVar(&c.Requests, "requests", loadtest.DefaultSimRequests, "requests per run (`N`)")
	fs.Int64Var(&c.Seed, "seed", 1, "workload and jitter `seed`")
	batching := fs.String("batching", loadtest.BatchingAdaptive, "comma-separated request batching `modes` to compare ("+strings.Join(loadtest.BatchingModes(), ", ")+") or all")
	delayUs := fs.Int64("max-queue-delay-us", 0, "fixed batching's max_queue_delay_us (`N`; default: tuned per run over 100, 500, 1000, 2000, 5000)")
	fs.BoolVar(&c.FindMax, "find-max", false, "also find, per policy, the highest rate with at least 99% SLO attainment (bisection; each probe a full run)")
	fs.StringVar(&c.Scenario, "scenario", loadtest.ScenarioSteady, "scenario: "+strings.Join(loadtest.ScenarioNames(), ", "))
	fs.StringVar(&c.ScenarioBackend, "scenario-backend", "", "the backend the scenario affects (`NAME`; default: the first GPU for drift, the first edge node for edge-failure)")
	fs.IntVar(&c.Parallel, "parallel", 0, "simulations to run at once (`N`; default the number of CPUs)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "loadtest simulate: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "loadtest simulate: "+format+"\n", a...)
		return 2
	}
	var err error
	if c.Loads, err = parseFloats("-load", *loads); err != nil {
		return fail("%v", err)
	}
	if c.Rates, err = parseFloats("-rate", *rates); err != nil {
		return fail("%v", err)
	}
	if *policies == "all" {
		c.Policies = loadtest.Policies()
	} else if c.Policies = splitList(*policies); len(c.Policies) == 0 {
		return fail("-policies: name at least one policy (%s) or all", strings.Join(loadtest.Policies(), ", "))
	}
	if c.Parallel < 0 {
		return fail("-parallel must not be negative")
	}
	if c.Batching, err = loadtest.ParseBatching(*batching); err != nil {
		return fail("%v", err)
	}
	if *delayUs < 0 {
		return fail("-max-queue-delay-us must not be negative")
	}
	c.MaxQueueDelay = time.Duration(*delayUs) * time.Microsecond
	c.Catalog = catalog.Default()
	if *config != "" {
		c.Fleet, err = fleet.Load(*config, c.Catalog)
		c.FleetName = *config
	} else {
		c.Fleet, err = fleet.Default(c.Catalog)
		c.FleetName = "default"
	}
	if err != nil {
		fmt.Fprintln(stderr, "loadtest simulate:", err)
		return 1
	}
	if err := c.Validate(); err != nil {
		return fail("%v", err)
	}
	if !*quiet {
		c.Progress = stderr
	}
	rep, err := loadtest.Simulate(c)
	if err != nil {
		fmt.Fprintln(stderr, "loadtest simulate:", err)
		return 1
	}
	printSimReport(stdout, rep)
	if *jsonOut != "" {
		if err := writeFile(*jsonOut, func(w io.Writer) error { return loadtest.WriteJSON(w, rep) }); err != nil {
			fmt.Fprintln(stderr, "loadtest simulate:", err)
			return 1
		}
	}
	if *htmlOut != "" {
		title := fmt.Sprintf("accelgate simulation: %s, %s, fleet %s", rep.Workload, rep.Scenario, rep.Fleet)
		if err := writeFile(*htmlOut, func(w io.Writer) error { return loadtest.WriteHTML(w, title, rep.Reports()) }); err != nil {
			fmt.Fprintln(stderr, "loadtest simulate:", err)
			return 1
		}
	}
	return 0
}

// parseFloats parses a comma-separated list of numbers ("" is none).
func parseFloats(flagName, s string) ([]float64, error) {
	var out []float64
	for _, p := range splitList(s) {
		v, err := strconv.ParseFloat(p, 64)
		if err != nil || !(v > 0) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("%s: %q is not a positive number (want a comma-separated list such as 0.5,0.9)", flagName, p)
		}
		out = append(out, v)
	}
	return out, nil
}

// printSimReport writes the capacity, the cost bound, the scenario and the
// runs side by side, then the maximum rates.
func printSimReport(w io.Writer, rep *loadtest.SimReport) {
	fmt.Fprintf(w, "simulation: workload %s, fleet %s, scenario %s, seed %d\n", rep.Workload, rep.Fleet, rep.Scenario, rep.Seed)
	if rep.CapacityRPS != nil {
		fmt.Fprintf(w, "capacity: %.2f req/s (the fleet's SLO capacity for %s; an upper bound)\n", *rep.CapacityRPS, rep.Workload)
		if len(rep.Unservable) > 0 {
			fmt.Fprintf(w, "  no backend meets the SLO of: %s\n", strings.Join(rep.Unservable, ", "))
		}
	} else {
		fmt.Fprintln(w, "capacity: - (computed for the standard workloads only)")
	}
	for _, lb := range rep.LowerBound {
		if lb.USDPer1k != nil {
			fmt.Fprintf(w, "lower bound on cost per 1k requests at %.2f req/s: $%.6f\n", lb.RateRPS, *lb.USDPer1k)
		} else {
			fmt.Fprintf(w, "lower bound on cost per 1k requests at %.2f req/s: - (above the capacity)\n", lb.RateRPS)
		}
	}
	seen := map[string]bool{}
	for _, r := range rep.Runs {
		p := r.ScenarioPlan
		if p == nil || p.Backend == "" {
			continue
		}
		var line string
		switch p.Name {
		case loadtest.ScenarioDrift:
			line = fmt.Sprintf("scenario drift: %s becomes %gx slower at %.1f s", p.Backend, p.Factor, p.StartS)
		case loadtest.ScenarioEdgeFailure:
			line = fmt.Sprintf("scenario edge-failure: %s stops answering from %.1f s to %.1f s", p.Backend, p.StartS, p.EndS)
		}
		if line != "" && !seen[line] {
			seen[line] = true
			fmt.Fprintf(w, "%s (%s)\n", line, r.Name)
			if p.Note != "" {
				fmt.Fprintf(w, "  note: %s\n", p.Note)
			}
		}
	}
	fmt.Fprintln(w)
	loadtest.PrintCompare(w, rep.Reports())
	for _, r := range rep.Runs {
		if r.MaxQueueDelayUs == nil {
			continue
		}
		fmt.Fprintf(w, "%s: max_queue_delay_us %d", r.Name, *r.MaxQueueDelayUs)
		if len(r.Calibration) > 0 {
			fmt.Fprint(w, " (tuned; SLO attainment, cost per 1k:")
			for _, d := range r.Calibration {
				fmt.Fprintf(w, " %d us %.2f%% $%.6f;", d.MaxQueueDelayUs, d.SLOAttainment*100, d.CostUSDPer1K)
			}
			fmt.Fprint(w, ")")
		}
		fmt.Fprintln(w)
	}
	if len(rep.MaxRates) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintf(w, "highest rate with >= %.0f%% SLO attainment:\n", loadtest.FindMaxAttainment*100)
		for _, m := range rep.MaxRates {
			load := ""
			if m.Load != nil {
				load = fmt.Sprintf(" (%.3f of capacity)", *m.Load)
			}
			fmt.Fprintf(w, "  %-12s %-9s %10.2f req/s%s, %d probes", m.Policy, m.Batching, m.MaxRateRPS, load, len(m.Probes))
			if m.MaxQueueDelayUs != nil {
				fmt.Fprintf(w, ", max_queue_delay_us %d", *m.MaxQueueDelayUs)
			}
			if len(m.Calibration) > 0 {
				fmt.Fprint(w, " (tuned:")
				for _, d := range m.Calibration {
					fmt.Fprintf(w, " %d us %.2f req/s;", d.MaxQueueDelayUs, d.MaxRateRPS)
				}
				fmt.Fprint(w, ")")
			}
			fmt.Fprintln(w)
		}
	}
}
