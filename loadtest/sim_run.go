package loadtest

import (
	"errors"
	"fmt"
	"io"
	"math"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/accelgate/accelgate/backends/catalog"
	"github.com/accelgate/accelgate/backends/fleet"
	"github.com/accelgate/accelgate/router"
)

// DefaultSimRequests is the number of requests a simulation runs by default.
const DefaultSimRequests = 100_000

// DefaultSimLoad is the load (fraction of capacity) a simulation runs at when
// neither loads nor rates are given.
const DefaultSimLoad = 0.5

// FindMaxAttainment is the SLO attainment a rate must reach to count as
// sustainable in FindMax.
const FindMaxAttainment = 0.99

// FindMaxMinDuration is the shortest virtual duration of a FindMax probe: a
// probe simulates Requests requests or rate × FindMaxMinDuration, whichever
// is more. Queues (the batchers', the accelerators') absorb a burst shorter
// than the SLO targets even above the sustainable rate, so a probe must be
// long compared with them (5× the standard workloads' longest batch-class
// target, sheddable vision's 200 ms); without it, batching's queues would
// make 20,000 requests at millions per second look sustainable.
const FindMaxMinDuration = time.Second

// Policies returns the router's placement policies, the simulator's "all".
func Policies() []string { return router.Policies() }

// SimulateConfig is one `loadtest simulate` invocation: a fleet, a workload
// and the runs to make (every policy at every load or rate).
type SimulateConfig struct {
	Fleet     *fleet.File      // validated against Catalog
	FleetName string           // for the report: the config path, or "default"
	Catalog   *catalog.Catalog // hardware profiles
	// Workload is a standard workload (Names) or "trace:FILE".
	Workload string
	// Loads are fractions of the fleet's capacity for the workload
	// (FleetCapacity(...).RPS × load); Rates are absolute requests per
	// second. At most one of them may be set; with neither, a standard
	// workload runs at DefaultSimLoad and a trace at its own timing. A
	// trace accepts neither.
	Loads, Rates []float64
	// Requests is the number of requests of every run (a trace stops there
	// too). 0 means DefaultSimRequests.
	Requests int
	Seed     int64
	// Policies to compare, in order; empty means accelgate.
	Policies []string
	// Batching lists the batching modes to compare (BatchingModes; see
	// batching.go), in order; empty means off.
	Batching []string
	// MaxQueueDelay, when positive, is fixed batching's max_queue_delay_us.
	// When 0, fixed batching is tuned over FixedDelays: every run at a rate
	// is simulated with each delay and the one with the highest SLO
	// attainment is kept (then the lowest cost per 1,000 requests, then the
	// shortest delay); FindMax bisects with each delay and keeps the
	// highest maximum rate (then the shortest delay). The report lists
	// every delay's result (fixed_calibration).
	MaxQueueDelay time.Duration
	// FindMax also bisects, per policy, for the highest rate with at least
	// FindMaxAttainment SLO attainment (each probe a full simulation of
	// Requests requests).
	FindMax bool
	// Scenario is steady (default), drift or edge-failure; ScenarioBackend
	// names the affected backend ("" for the scenario's default).
	Scenario        string
	ScenarioBackend string
	// Parallel is how many simulations run at once (each is
	// single-threaded); 0 means GOMAXPROCS.
	Parallel int
	// Progress receives one line per finished simulation; nil is quiet.
	Progress io.Writer
}

// SimReport is the envelope of a simulation: every run of one invocation.
// Its JSON fields:
//
//   - workload, scenario, fleet (the config path or "default"), seed.
//   - capacity_rps: FleetCapacity's RPS for the workload (null for traces).
//   - lower_bound_cost_usd_per_1k: the cost lower bound
//     (Capacity.LowerBoundCostPer1k) at each distinct rate of the runs, as a
//     list of {"rate_rps", "usd_per_1k"}; usd_per_1k is null above the
//     capacity. Each run also carries its own value.
//   - runs: one per policy, batching mode and load (or rate), loads outer,
//     then batching modes, then policies: "policy", "batching", "load"
//     (fraction of capacity; null with absolute rates or a trace),
//     "rate_rps" (the offered rate: for a trace, its requests ÷ its last
//     timestamp), then the harness's RunReport fields inline (name is
//     "policy@load", or "policy/batching@load" when batching is not off or
//     several modes are compared), then "mean_batch_size" (items per batch
//     submitted to the accelerators; 0 without batch requests), for fixed
//     batching "max_queue_delay_us" (the delay the run used) and
//     "fixed_calibration" (when tuned: each delay's "max_queue_delay_us",
//     "slo_attainment" and "cost_usd_per_1k"),
//     "lower_bound_cost_usd_per_1k" (null above the capacity or for traces),
//     "scenario_plan" (the scenario on this run's timeline) and "by_backend"
//     (per backend: placed, ok, timeouts, cost_usd, busy_s).
//   - max_rates (with -find-max): per batching mode and policy, "policy",
//     "batching", "max_rate_rps" (0 when even the lowest probe missed),
//     "load" (÷ capacity; null for traces) and "probes" (every probe's
//     rate_rps and slo_attainment, in order); for fixed batching
//     "max_queue_delay_us" and, when tuned, "fixed_calibration" (each
//     delay's "max_queue_delay_us" and "max_rate_rps"; probes are the kept
//     delay's).
type SimReport struct {
	Workload    string         `json:"workload"`
	Scenario    string         `json:"scenario"`
	Fleet       string         `json:"fleet"`
	Seed        int64          `json:"seed"`
	CapacityRPS *float64       `json:"capacity_rps"`
	LowerBound  []LowerBoundAt `json:"lower_bound_cost_usd_per_1k"`
	Runs        []SimRun       `json:"runs"`
	MaxRates    []SimMaxRate   `json:"max_rates,omitempty"`
	// Capacity is FleetCapacity's result (nil for traces); not in the JSON.
	Capacity *Capacity `json:"-"`
	// Unservable names the workload's classes no backend can serve within
	// their SLO (JSON "unservable_classes", omitted when none).
	Unservable []string `json:"unservable_classes,omitempty"`
	// Backends are the fleet's backend names in file order; not in the JSON.
	Backends []string `json:"-"`
}

// LowerBoundAt is the cost lower bound at one rate.
type LowerBoundAt struct {
	RateRPS  float64  `json:"rate_rps"`
	USDPer1k *float64 `json:"usd_per_1k"`
}

// SimRun is one simulation: a policy at a rate, with the harness's report
// inline.
type SimRun struct {
	Policy   string   `json:"policy"`
	Batching string   `json:"batching"`
	Load     *float64 `json:"load"`
	RateRPS  float64  `json:"rate_rps"`
	*RunReport
	MeanBatchSize   float64                    `json:"mean_batch_size"`
	MaxQueueDelayUs *int64                     `json:"max_queue_delay_us,omitempty"`
	Calibration     []SimDelayRun              `json:"fixed_calibration,omitempty"`
	LowerBoundPer1k *float64                   `json:"lower_bound_cost_usd_per_1k"`
	ScenarioPlan    *ScenarioPlan              `json:"scenario_plan"`
	ByBackend       map[string]SimBackendStats `json:"by_backend"`
}

// SimMaxRate is FindMax's result for one policy and batching mode.
type SimMaxRate struct {
	Policy          string        `json:"policy"`
	Batching        string        `json:"batching"`
	MaxRateRPS      float64       `json:"max_rate_rps"`
	Load            *float64      `json:"load"`
	MaxQueueDelayUs *int64        `json:"max_queue_delay_us,omitempty"`
	Calibration     []SimDelayMax `json:"fixed_calibration,omitempty"`
	Probes          []SimProbe    `json:"probes"`
}

// SimDelayRun is one max_queue_delay_us tried for a fixed-batching run.
type SimDelayRun struct {
	MaxQueueDelayUs int64   `json:"max_queue_delay_us"`
	SLOAttainment   float64 `json:"slo_attainment"`
	CostUSDPer1K    float64 `json:"cost_usd_per_1k"`
}

// SimDelayMax is one max_queue_delay_us tried for fixed batching's FindMax.
type SimDelayMax struct {
	MaxQueueDelayUs int64   `json:"max_queue_delay_us"`
	MaxRateRPS      float64 `json:"max_rate_rps"`
}

// SimProbe is one probe of the FindMax bisection.
type SimProbe struct {
	RateRPS       float64 `json:"rate_rps"`
	SLOAttainment float64 `json:"slo_attainment"`
}

// Reports returns the runs' RunReports in order, for PrintCompare and
// WriteHTML.
func (r *SimReport) Reports() []*RunReport {
	out := make([]*RunReport, len(r.Runs))
	for i := range r.Runs {
		out[i] = r.Runs[i].RunReport
	}
	return out
}

// Validate checks the configuration and fills its defaults.
func (c *SimulateConfig) Validate() error {
	if c.Fleet == nil || c.Catalog == nil {
		return errors.New("no fleet or catalog")
	}
	if len(c.Batching) == 0 {
		c.Batching = []string{BatchingAdaptive}
	}
	for i, b := range c.Batching {
		if err := checkBatching(b); err != nil {
			return err
		}
		if slices.Contains(c.Batching[:i], b) {
			return fmt.Errorf("-batching: %q is listed twice", b)
		}
	}
	if c.MaxQueueDelay < 0 {
		return errors.New("-max-queue-delay-us must not be negative")
	}
	if c.Requests < 0 {
		return errors.New("-requests must not be negative")
	}
	if c.Requests == 0 {
		c.Requests = DefaultSimRequests
	}
	if len(c.Loads) > 0 && len(c.Rates) > 0 {
		return errors.New("-load and -rate cannot be combined: give fractions of capacity or absolute rates")
	}
	for _, l := range c.Loads {
		if !(l > 0) || math.IsInf(l, 0) {
			return fmt.Errorf("-load %v: a load must be a positive fraction of capacity", l)
		}
	}
	for _, r := range c.Rates {
		if !(r > 0) || math.IsInf(r, 0) {
			return fmt.Errorf("-rate %v: a rate must be a positive number of requests per second", r)
		}
	}
	if _, ok := strings.CutPrefix(c.Workload, "trace:"); ok {
		if len(c.Loads) > 0 || len(c.Rates) > 0 {
			return errors.New("a trace replays at its own timestamps: drop -load and -rate")
		}
		if c.FindMax {
			return errors.New("-find-max varies the rate, which a trace fixes: use a standard workload")
		}
	} else if _, err := StandardMix(c.Workload); err != nil {
		return err
	}
	if len(c.Policies) == 0 {
		c.Policies = []string{router.PolicyAccelgate}
	}
	seen := map[string]bool{}
	for _, p := range c.Policies {
		cfg := router.Config{Policy: p}
		cfg.SetDefaults()
		if err := cfg.Validate(); err != nil {
			return fmt.Errorf("-policies: unknown policy %q (want %s or all)", p, strings.Join(Policies(), ", "))
		}
		if seen[p] {
			return fmt.Errorf("-policies: %q is listed twice", p)
		}
		seen[p] = true
	}
	if c.Scenario == "" {
		c.Scenario = ScenarioSteady
	}
	// Check the scenario and its backend once, on a nominal timeline.
	if _, _, err := PlanScenario(c.Scenario, c.Fleet, c.Catalog, c.ScenarioBackend, time.Hour); err != nil {
		return err
	}
	return nil
}

// simPoint is one rate to simulate.
type simPoint struct {
	load *float64
	rate float64 // 0: a trace at its own timing
}

// Simulate runs every policy at every load or rate (and, with FindMax, the
// bisections) and returns the envelope. Simulations run in parallel, each
// deterministic, so the result does not depend on Parallel.
func Simulate(c SimulateConfig) (*SimReport, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	rep := &SimReport{Workload: c.Workload, Scenario: c.Scenario, Fleet: c.FleetName, Seed: c.Seed, LowerBound: []LowerBoundAt{}}
	if rep.Fleet == "" {
		rep.Fleet = "default"
	}
	for i := range c.Fleet.Backends {
		rep.Backends = append(rep.Backends, c.Fleet.Backends[i].Name)
	}
	trace := strings.HasPrefix(c.Workload, "trace:")
	if !trace {
		capy, err := FleetCapacity(c.Fleet, c.Catalog, c.Workload)
		if err != nil {
			return nil, err
		}
		rep.Capacity = capy
		rps := capy.RPS
		rep.CapacityRPS = &rps
		rep.Unservable = capy.Unservable
	}
	var points []simPoint
	switch {
	case trace:
		points = []simPoint{{}}
	case len(c.Rates) > 0:
		for _, r := range c.Rates {
			points = append(points, simPoint{rate: r})
		}
	default:
		loads := c.Loads
		if len(loads) == 0 {
			loads = []float64{DefaultSimLoad}
		}
		if rep.Capacity.RPS <= 0 {
			return nil, fmt.Errorf("-load: the fleet's capacity for %s is 0 (no backend meets the SLO of %s); give -rate instead",
				c.Workload, strings.Join(rep.Capacity.Unservable, ", "))
		}
		for _, l := range loads {
			l := l
			points = append(points, simPoint{load: &l, rate: rep.Capacity.RPS * l})
		}
	}

	// The runs: loads outer, then batching modes, then policies; fixed
	// batching without a pinned delay runs once per delay (tuned below).
	type job struct {
		pt       simPoint
		batching string
		policy   string
		delay    time.Duration
		run      int // index in rep.Runs
	}
	var jobs []job
	for _, pt := range points {
		for _, b := range c.Batching {
			for _, p := range c.Policies {
				run := len(rep.Runs)
				rep.Runs = append(rep.Runs, SimRun{})
				for _, d := range c.delays(b) {
					jobs = append(jobs, job{pt, b, p, d, run})
				}
			}
		}
	}
	results := make([]*SimRun, len(jobs))
	errs := make([]error, len(jobs))
	par := c.Parallel
	if par <= 0 {
		par = runtime.GOMAXPROCS(0)
	}
	var progressMu sync.Mutex
	progress := func(format string, a ...any) {
		if c.Progress == nil {
			return
		}
		progressMu.Lock()
		defer progressMu.Unlock()
		fmt.Fprintf(c.Progress, format, a...)
	}
	forEach(len(jobs), par, func(i int) {
		j := jobs[i]
		start := time.Now()
		run, err := c.runOne(j.policy, j.batching, j.delay, j.pt)
		if err != nil {
			errs[i] = err
			return
		}
		results[i] = run
		progress("simulated %s%s: %d requests, %.1f s of virtual time in %.2f s\n",
			run.Name, delayNote(j.batching, j.delay), run.Requests, run.DurationS, time.Since(start).Seconds())
	})
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	// Fixed batching ran once per delay: keep the best, note every one.
	eachGroup(len(jobs), func(i int) int { return jobs[i].run }, func(i, k int) {
		best := results[i]
		var cal []SimDelayRun
		for _, r := range results[i:k] {
			if k-i > 1 {
				cal = append(cal, SimDelayRun{MaxQueueDelayUs: *r.MaxQueueDelayUs, SLOAttainment: r.SLOAttainment, CostUSDPer1K: r.CostUSDPer1K})
			}
			if betterRun(r, best) {
				best = r
			}
		}
		best.Calibration = cal
		rep.Runs[jobs[i].run] = *best
	})
	// The cost lower bound at every distinct rate.
	for i := range rep.Runs {
		run := &rep.Runs[i]
		if rep.Capacity == nil {
			continue
		}
		if v, err := rep.Capacity.LowerBoundCostPer1k(run.RateRPS); err == nil {
			run.LowerBoundPer1k = &v
		}
		if n := len(rep.LowerBound); n == 0 || rep.LowerBound[n-1].RateRPS != run.RateRPS {
			rep.LowerBound = append(rep.LowerBound, LowerBoundAt{RateRPS: run.RateRPS, USDPer1k: run.LowerBoundPer1k})
		}
	}

	if c.FindMax {
		start := rep.Capacity.RPS
		if start <= 0 {
			for _, pt := range points {
				start = max(start, pt.rate)
			}
		}
		type mjob struct {
			batching, policy string
			delay            time.Duration
			out              int // index in rep.MaxRates
		}
		var mjobs []mjob
		for _, b := range c.Batching {
			for _, p := range c.Policies {
				out := len(rep.MaxRates)
				rep.MaxRates = append(rep.MaxRates, SimMaxRate{})
				for _, d := range c.delays(b) {
					mjobs = append(mjobs, mjob{b, p, d, out})
				}
			}
		}
		results := make([]*SimMaxRate, len(mjobs))
		errs := make([]error, len(mjobs))
		forEach(len(mjobs), par, func(i int) {
			j := mjobs[i]
			name := label(j.policy, c.batchingLabel(j.batching), simPoint{}) + delayNote(j.batching, j.delay)
			mr, err := c.findMax(j.policy, j.batching, j.delay, start, func(r SimProbe) {
				progress("find-max %s: %.2f req/s → SLO attainment %.2f%%\n", name, r.RateRPS, r.SLOAttainment*100)
			})
			if err != nil {
				errs[i] = err
				return
			}
			if rep.Capacity.RPS > 0 {
				l := mr.MaxRateRPS / rep.Capacity.RPS
				mr.Load = &l
			}
			results[i] = mr
		})
		if err := errors.Join(errs...); err != nil {
			return nil, err
		}
		eachGroup(len(mjobs), func(i int) int { return mjobs[i].out }, func(i, k int) {
			best := results[i]
			var cal []SimDelayMax
			for _, r := range results[i:k] {
				if k-i > 1 {
					cal = append(cal, SimDelayMax{MaxQueueDelayUs: *r.MaxQueueDelayUs, MaxRateRPS: r.MaxRateRPS})
				}
				if r.MaxRateRPS > best.MaxRateRPS {
					best = r
				}
			}
			best.Calibration = cal
			rep.MaxRates[mjobs[i].out] = *best
		})
	}
	return rep, nil
}

// eachGroup calls f(i, k) for every maximal run [i, k) of consecutive
// indices in 0..n-1 with the same key (the jobs of one output, one per
// fixed-batching delay, are consecutive).
func eachGroup(n int, key func(i int) int, f func(i, k int)) {
	for i := 0; i < n; {
		k := i + 1
		for k < n && key(k) == key(i) {
			k++
		}
		f(i, k)
		i = k
	}
}

// forEach calls f(0..n-1) on at most par goroutines.
func forEach(n, par int, f func(i int)) {
	if par <= 1 || n <= 1 {
		for i := range n {
			f(i)
		}
		return
	}
	var wg sync.WaitGroup
	next := make(chan int)
	for range min(par, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				f(i)
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
}

// source returns a fresh source of the workload at rate (ignored for
// traces), limited to c.Requests.
func (c *SimulateConfig) source(rate float64) (Source, error) {
	if path, ok := strings.CutPrefix(c.Workload, "trace:"); ok {
		src, err := OpenTrace(path)
		if err != nil {
			return nil, err
		}
		return &limitSource{src: src, left: c.Requests}, nil
	}
	return Standard(c.Workload, rate, c.Seed, Limit{Requests: c.Requests})
}

// limitSource ends a Source after a number of items.
type limitSource struct {
	src  Source
	left int
}

func (l *limitSource) Next(it *Item) bool {
	if l.left <= 0 {
		return false
	}
	l.left--
	return l.src.Next(it)
}

// planned returns a run's planned virtual duration and offered rate:
// requests ÷ rate for a standard workload; for a trace, the timestamp of its
// last replayed request and the rate that makes.
func (c *SimulateConfig) planned(rate float64) (time.Duration, float64, error) {
	if !strings.HasPrefix(c.Workload, "trace:") {
		return time.Duration(float64(c.Requests) / rate * float64(time.Second)), rate, nil
	}
	src, err := c.source(0)
	if err != nil {
		return 0, 0, err
	}
	var it Item
	var n int
	var last time.Duration
	for src.Next(&it) {
		n++
		last = it.At
	}
	if n == 0 {
		return 0, 0, errors.New("the trace has no requests")
	}
	r := 0.0
	if last > 0 {
		r = float64(n) / last.Seconds()
	}
	return last, r, nil
}

// label names a run in tables: policy@load, or policy@RATErps; policy is
// policy/batching when batching is named (batchingLabel).
func label(policy, batching string, pt simPoint) string {
	if batching != "" {
		policy += "/" + batching
	}
	switch {
	case pt.load != nil:
		return policy + "@" + strconv.FormatFloat(*pt.load, 'g', 4, 64)
	case pt.rate > 0:
		return policy + "@" + strconv.FormatFloat(pt.rate, 'g', 6, 64) + "rps"
	}
	return policy
}

// batchingLabel is the batching mode as run names show it: "" (not shown)
// when only the default, adaptive, is simulated.
func (c *SimulateConfig) batchingLabel(batching string) string {
	if batching == BatchingAdaptive && len(c.Batching) <= 1 {
		return ""
	}
	return batching
}

// delays returns the max_queue_delay values to simulate batching with: for
// fixed, the pinned MaxQueueDelay or every FixedDelays value; else one 0.
func (c *SimulateConfig) delays(batching string) []time.Duration {
	switch {
	case batching != BatchingFixed:
		return []time.Duration{0}
	case c.MaxQueueDelay > 0:
		return []time.Duration{c.MaxQueueDelay}
	}
	return FixedDelays
}

// delayNote names a fixed run's delay in progress lines.
func delayNote(batching string, d time.Duration) string {
	if batching != BatchingFixed || d == 0 {
		return ""
	}
	return fmt.Sprintf(" (max_queue_delay_us %d)", d.Microseconds())
}

// betterRun reports whether fixed-batching run a beats b in the tuning:
// higher SLO attainment, then lower cost per 1,000 requests, then the
// shorter delay.
func betterRun(a, b *SimRun) bool {
	const eps = 1e-12
	if a.SLOAttainment > b.SLOAttainment+eps || a.SLOAttainment < b.SLOAttainment-eps {
		return a.SLOAttainment > b.SLOAttainment
	}
	if a.CostUSDPer1K != b.CostUSDPer1K {
		return a.CostUSDPer1K < b.CostUSDPer1K
	}
	return a.MaxQueueDelayUs != nil && b.MaxQueueDelayUs != nil && *a.MaxQueueDelayUs < *b.MaxQueueDelayUs
}

// runOne simulates one policy with one batching mode (and, for fixed, one
// max queue delay; 0 keeps the fleet file's) at one point.
func (c *SimulateConfig) runOne(policy, batching string, delay time.Duration, pt simPoint) (*SimRun, error) {
	planned, rate, err := c.planned(pt.rate)
	if err != nil {
		return nil, err
	}
	plan, events, err := PlanScenario(c.Scenario, c.Fleet, c.Catalog, c.ScenarioBackend, planned)
	if err != nil {
		return nil, err
	}
	sim, err := NewSim(c.Fleet, c.Catalog, SimOptions{Policy: policy, Seed: c.Seed, Events: events, Batching: batching, RowsAlone: batching == BatchingOff, MaxQueueDelay: delay})
	if err != nil {
		return nil, err
	}
	src, err := c.source(pt.rate)
	if err != nil {
		return nil, err
	}
	rec := NewRecorder(RecorderOptions{Name: label(policy, c.batchingLabel(batching), pt)})
	res, err := sim.Run(src, rec)
	if err != nil {
		return nil, err
	}
	run := &SimRun{
		Policy: policy, Batching: batching, Load: pt.load, RateRPS: rate,
		RunReport:     rec.Report(res.Duration),
		MeanBatchSize: res.MeanBatchSize(),
		ScenarioPlan:  plan,
		ByBackend:     make(map[string]SimBackendStats, len(res.Backends)),
	}
	for i, b := range res.Backends {
		run.ByBackend[sim.descs[i].Name] = b
	}
	if batching == BatchingFixed {
		us := sim.maxQueueDelay.Microseconds()
		run.MaxQueueDelayUs = &us
	}
	return run, nil
}

// findMax bisects on the rate for policy and batching (and delay, as
// runOne): the highest rate whose simulation
// reaches FindMaxAttainment. It starts at start, doubles while that passes
// (at most 8 times), then halves the bracket [last pass, first miss] until
// it is within 1% of its upper end or 20 probes have run.
func (c *SimulateConfig) findMax(policy, batching string, delay time.Duration, start float64, onProbe func(SimProbe)) (*SimMaxRate, error) {
	if !(start > 0) {
		return nil, errors.New("-find-max: no starting rate (the fleet's capacity is 0; give -rate)")
	}
	out := &SimMaxRate{Policy: policy, Batching: batching}
	probe := func(rate float64) (bool, error) {
		cc := *c
		cc.Requests = max(c.Requests, int(math.Ceil(rate*FindMaxMinDuration.Seconds())))
		run, err := cc.runOne(policy, batching, delay, simPoint{rate: rate})
		if err != nil {
			return false, err
		}
		out.MaxQueueDelayUs = run.MaxQueueDelayUs
		p := SimProbe{RateRPS: rate, SLOAttainment: run.SLOAttainment}
		out.Probes = append(out.Probes, p)
		if onProbe != nil {
			onProbe(p)
		}
		return run.SLOAttainment >= FindMaxAttainment, nil
	}
	const (
		maxDoublings = 8
		maxProbes    = 20
		relTol       = 0.01
	)
	lo, hi := 0.0, start
	for range maxDoublings {
		ok, err := probe(hi)
		if err != nil {
			return nil, err
		}
		if !ok {
			break
		}
		lo, hi = hi, hi*2
	}
	if lo == hi/2 && len(out.Probes) == maxDoublings && out.Probes[len(out.Probes)-1].SLOAttainment >= FindMaxAttainment {
		out.MaxRateRPS = lo // every doubling passed: report the highest rate tried
		return out, nil
	}
	for len(out.Probes) < maxProbes && hi-lo > relTol*hi {
		mid := (lo + hi) / 2
		ok, err := probe(mid)
		if err != nil {
			return nil, err
		}
		if ok {
			lo = mid
		} else {
			hi = mid
		}
	}
	out.MaxRateRPS = lo
	return out, nil
}
