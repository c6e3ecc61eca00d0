package router

import (
	"fmt"
	"time"
)

// Policy names.
const (
	PolicyAccelgate  = "accelgate"   // cheapest predicted attributed cost among SLO-feasible backends
	PolicyRoundRobin = "round-robin" // baseline: rotate over the model's backends
	PolicyFastest    = "fastest"     // baseline: lowest predicted latency, ignoring cost
)

// Config is the fleet file's router section.
type Config struct {
	// Policy is the placement policy: accelgate (default), round-robin or fastest.
	Policy string `yaml:"policy"`
	// Margin inflates every latency prediction before it is compared with an
	// SLO (0.1 = 10%), covering jitter and model error. Default 0.1.
	Margin float64 `yaml:"margin"`
	// EjectAfter is the number of consecutive failures (backend unavailable)
	// after which a backend is ejected. Default 3; 0 keeps the default.
	EjectAfter int `yaml:"eject_after"`
	// EjectFor is how long an ejected backend receives no traffic. Default 10s.
	EjectFor time.Duration `yaml:"eject_for"`
}

// SetDefaults fills unset fields with their documented defaults.
func (c *Config) SetDefaults() {
	if c.Policy == "" {
		c.Policy = PolicyAccelgate
	}
	if c.Margin == 0 {
		c.Margin = 0.1
	}
	if c.EjectAfter == 0 {
		c.EjectAfter = 3
	}
	if c.EjectFor == 0 {
		c.EjectFor = 10 * time.Second
	}
}

// Validate reports the first invalid field, by its fleet-file name.
func (c *Config) Validate() error {
	switch c.Policy {
	case PolicyAccelgate, PolicyRoundRobin, PolicyFastest:
	default:
		return fmt.Errorf("router.policy: unknown policy %q (want %s, %s or %s)", c.Policy, PolicyAccelgate, PolicyRoundRobin, PolicyFastest)
	}
	if !(c.Margin >= 0 && c.Margin <= 10) {
		return fmt.Errorf("router.margin: %v is outside [0, 10]", c.Margin)
	}
	if c.EjectAfter < 0 {
		return fmt.Errorf("router.eject_after: must not be negative")
	}
	if c.EjectFor < 0 {
		return fmt.Errorf("router.eject_for: must not be negative")
	}
	return nil
}
