package router

import (
	"fmt"
	"strings"
	"time"

	"github.com/accelgate/accelgate/backends"
)

// Policy names.
const (
	// PolicyAccelgate (the default): among the backends whose predicted quantile
	// latency meets the request's SLO, the lowest predicted attributed cost.
	PolicyAccelgate = "accelgate"
	// PolicyRoundRobin rotates over the model's backends.
	PolicyRoundRobin = "round-robin"
	// PolicyRandom picks a backend uniformly at random.
	PolicyRandom = "random"
	// PolicyLeastOutstanding picks the backend with the fewest requests in
	// flight.
	PolicyLeastOutstanding = "least-outstanding"
	// PolicyP2C (power of two choices) samples two backends at random and
	// takes the one with fewer requests in flight.
	PolicyP2C = "power-of-two-choices"
	// PolicyFastest picks the lowest predicted latency, ignoring cost.
	PolicyFastest = "fastest"
	// PolicyCheapest picks the lowest price per hour, ignoring SLOs (ties:
	// fewer requests in flight).
	PolicyCheapest = "cheapest"
	// PolicyLatencyEWMA picks the lowest recently observed latency (an
	// EWMA per backend and model; untried backends first), as LiteLLM's
	// latency-based routing does.
	PolicyLatencyEWMA = "latency-ewma"
)

// Policies returns every policy name, accelgate first, then the baselines.
func Policies() []string {
	return []string{PolicyAccelgate, PolicyRoundRobin, PolicyRandom, PolicyLeastOutstanding, PolicyP2C,
		PolicyFastest, PolicyCheapest, PolicyLatencyEWMA}
}

// Config is the fleet file's router section.
type Config struct {
	// Policy is the placement policy: accelgate (default) or one of the
	// baselines round-robin, random, least-outstanding,
	// power-of-two-choices, fastest, cheapest, latency-ewma.
	Policy string `yaml:"policy"`
	// Margin inflates a latency prediction before it is compared with an
	// SLO while the online model has fewer than MinSamples samples for the
	// backend and model (0.1 = 10%). After that the model's own error quantile
	// is the margin. Default 0.1.
	Margin float64 `yaml:"margin"`
	// Quantiles are the quantiles of the online model's error that make a
	// prediction's margin, per priority class: the latency compared with
	// a critical request's SLO is the prediction scaled by the 99th
	// percentile of recent observed/predicted ratios, a standard one's by
	// the 94th, a sheddable one's by the 85th (the defaults). Higher
	// quantiles meet more SLOs and pack less densely (cost more). These are
	// where the quantiles start: Attainment steers them.
	Quantiles Quantiles `yaml:"quantiles"`
	// Attainment is the SLO attainment the router steers each priority
	// class to: the class's margin quantile starts at Quantiles and moves up
	// after every request that missed its SLO and down, by a step
	// Attainment/(1 − Attainment) times smaller, after every one that met
	// it, so it settles where the class meets Attainment of its SLOs (see
	// attain.go). Defaults: critical 0.995, standard 0.995, sheddable 0.99.
	Attainment Quantiles `yaml:"attainment"`
	// FixedQuantiles keeps the margin quantiles at Quantiles (no steering).
	FixedQuantiles bool `yaml:"fixed_quantiles"`
	// CostTolerance is the relative difference of predicted cost under
	// which two SLO-feasible backends count as equally cheap and the one
	// with the lower predicted latency wins (then the one with fewer
	// requests in flight). A predicted attributed cost is itself uncertain
	// by tens of percent (the learned mean, the expected batch share, the
	// sequences a continuous batch will hold), so smaller differences are
	// noise, and taking the faster backend among them protects SLOs; near
	// capacity every backend's cost converges and this spreads load instead
	// of packing onto the marginally cheaper one. Default 0.3 (30%): on the
	// simulator's mixed workload it met more SLOs at both 50% and 80% load
	// than 0.1 and cost less (see the README).
	CostTolerance float64 `yaml:"cost_tolerance"`
	// AffinityEntries bounds the prefix-affinity table (prompt-prefix chunk
	// hashes → the backends that served them recently; see affinity.go).
	// Default 65536; -1 turns prefix affinity off.
	AffinityEntries int `yaml:"affinity_entries"`
	// MinSamples is how many completed requests a (backend, model) needs
	// before its learned correction replaces Margin. Default 8.
	MinSamples int `yaml:"min_samples"`
	// LearnRate is the weight of the newest sample in the learned mean
	// correction (EWMA). Default 0.1.
	LearnRate float64 `yaml:"learn_rate"`
	// Forget is the time constant with which a correction fades towards 1
	// when no new samples arrive (a backend that lost its traffic is probed
	// again). Default 30s.
	Forget time.Duration `yaml:"forget"`
	// FailurePenalty is the observed/predicted ratio a failed request
	// (backend unavailable) counts as in the learned model. Default 4.
	FailurePenalty float64 `yaml:"failure_penalty"`
	// EjectAfter is the number of consecutive failures (backend unavailable)
	// after which a backend is ejected. Default 3; 0 keeps the default.
	EjectAfter int `yaml:"eject_after"`
	// EjectFor is how long an ejected backend receives no traffic; over the
	// same time after it, it is re-admitted gradually (10% of its placements
	// growing to 100%). Default 10s.
	EjectFor time.Duration `yaml:"eject_for"`
	// EjectErrorRate ejects a backend whose recent failure rate (backend
	// unavailable or hard timeout; an EWMA over about 20 requests) exceeds
	// it. Default 0.5; 1 disables it.
	EjectErrorRate float64 `yaml:"eject_error_rate"`
	// Seed seeds the random and power-of-two-choices baselines. Default 1.
	Seed uint64 `yaml:"seed"`
}

// Quantiles holds one quantile (0.5–1) per priority class.
type Quantiles struct {
	Critical  float64 `yaml:"critical"`
	Standard  float64 `yaml:"standard"`
	Sheddable float64 `yaml:"sheddable"`
}

func (q Quantiles) byPriority() [backends.NumPriorities]float64 {
	var out [backends.NumPriorities]float64
	out[backends.Critical], out[backends.Standard], out[backends.Sheddable] = q.Critical, q.Standard, q.Sheddable
	return out
}

// orDefaults sets each unset (zero) class to def's.
func (q *Quantiles) orDefaults(def Quantiles) {
	for _, f := range []struct {
		v *float64
		d float64
	}{{&q.Critical, def.Critical}, {&q.Standard, def.Standard}, {&q.Sheddable, def.Sheddable}} {
		if *f.v == 0 {
			*f.v = f.d
		}
	}
}

// check reports the first class outside [lo, hi], as field.class.
func (q Quantiles) check(field string, lo, hi float64) error {
	for _, f := range []struct {
		name string
		v    float64
	}{{"critical", q.Critical}, {"standard", q.Standard}, {"sheddable", q.Sheddable}} {
		if !(f.v >= lo && f.v <= hi) {
			return fmt.Errorf("%s.%s: %v is outside [%v, %v]", field, f.name, f.v, lo, hi)
		}
	}
	return nil
}

// SetDefaults fills unset fields with their documented defaults.
func (c *Config) SetDefaults() {
	c.Quantiles.orDefaults(Quantiles{Critical: 0.99, Standard: 0.94, Sheddable: 0.85})
	c.Attainment.orDefaults(Quantiles{Critical: 0.995, Standard: 0.995, Sheddable: 0.99})
	if c.AffinityEntries == 0 {
		c.AffinityEntries = 65536
	}
	if c.CostTolerance == 0 {
		c.CostTolerance = 0.3
	}
	if c.Policy == "" {
		c.Policy = PolicyAccelgate
	}
	if c.Margin == 0 {
		c.Margin = 0.1
	}
	if c.MinSamples == 0 {
		c.MinSamples = 8
	}
	if c.LearnRate == 0 {
		c.LearnRate = 0.1
	}
	if c.Forget == 0 {
		c.Forget = 30 * time.Second
	}
	if c.FailurePenalty == 0 {
		c.FailurePenalty = 4
	}
	if c.EjectAfter == 0 {
		c.EjectAfter = 3
	}
	if c.EjectFor == 0 {
		c.EjectFor = 10 * time.Second
	}
	if c.Seed == 0 {
		c.Seed = 1
	}
	if c.EjectErrorRate == 0 {
		c.EjectErrorRate = 0.5
	}
}

// Validate reports the first invalid field, by its fleet-file name.
func (c *Config) Validate() error {
	known := false
	for _, p := range Policies() {
		known = known || p == c.Policy
	}
	if !known {
		return fmt.Errorf("router.policy: unknown policy %q (want one of %s)", c.Policy, strings.Join(Policies(), ", "))
	}
	if !(c.Margin >= 0 && c.Margin <= 10) {
		return fmt.Errorf("router.margin: %v is outside [0, 10]", c.Margin)
	}
	if err := c.Quantiles.check("router.quantiles", 0.5, 1); err != nil {
		return err
	}
	if err := c.Attainment.check("router.attainment", 0.5, 0.9999); err != nil {
		return err
	}
	if !(c.CostTolerance >= 0 && c.CostTolerance <= 1) {
		return fmt.Errorf("router.cost_tolerance: %v is outside [0, 1]", c.CostTolerance)
	}
	if c.AffinityEntries < -1 || c.AffinityEntries > 1<<24 {
		return fmt.Errorf("router.affinity_entries: %d is outside [-1, %d]", c.AffinityEntries, 1<<24)
	}
	if c.MinSamples < 1 || c.MinSamples > 1000 {
		return fmt.Errorf("router.min_samples: %d is outside [1, 1000]", c.MinSamples)
	}
	if !(c.LearnRate > 0 && c.LearnRate <= 1) {
		return fmt.Errorf("router.learn_rate: %v is outside (0, 1]", c.LearnRate)
	}
	if c.Forget < 0 {
		return fmt.Errorf("router.forget: must not be negative")
	}
	if !(c.FailurePenalty >= 1 && c.FailurePenalty <= 1000) {
		return fmt.Errorf("router.failure_penalty: %v is outside [1, 1000]", c.FailurePenalty)
	}
	if c.EjectAfter < 0 {
		return fmt.Errorf("router.eject_after: must not be negative")
	}
	if !(c.EjectErrorRate > 0 && c.EjectErrorRate <= 1) {
		return fmt.Errorf("router.eject_error_rate: %v is outside (0, 1]", c.EjectErrorRate)
	}
	if c.EjectFor < 0 {
		return fmt.Errorf("router.eject_for: must not be negative")
	}
	return nil
}
