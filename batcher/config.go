package batcher

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/accelgate/accelgate/backends"
	"go.yaml.in/yaml/v3"
)

// Mode selects how a model's queue forms batches.
type Mode uint8

// The batching modes. The zero value is ModeAdaptive, the default.
const (
	// ModeAdaptive dispatches a batch as late as its earliest SLO target
	// allows while more requests are expected in time (see the package doc).
	ModeAdaptive Mode = iota
	// ModeFixed is Triton's dynamic batcher: dispatch at a preferred size or
	// MaxBatchSize, or when the oldest request has waited MaxQueueDelay.
	ModeFixed
	// ModeOff executes every request alone (a batch of its own rows).
	ModeOff
)

// String returns the mode's name as the fleet file spells it.
func (m Mode) String() string {
	switch m {
	case ModeAdaptive:
		return "adaptive"
	case ModeFixed:
		return "fixed"
	case ModeOff:
		return "off"
	}
	return fmt.Sprintf("mode(%d)", uint8(m))
}

// ParseMode parses off, fixed or adaptive ("" is adaptive).
func ParseMode(s string) (Mode, error) {
	switch s {
	case "adaptive", "":
		return ModeAdaptive, nil
	case "fixed":
		return ModeFixed, nil
	case "off":
		return ModeOff, nil
	}
	return 0, fmt.Errorf("%q is not one of off, fixed, adaptive", s)
}

// The defaults SetDefaults fills in.
const (
	// DefaultMaxQueueDelay is MaxQueueDelay when unset: how long Fixed waits
	// for a preferred size, and the wait budget of an Adaptive batch whose
	// members have no SLO target.
	DefaultMaxQueueDelay = 2 * time.Millisecond
	// DefaultMaxQueueSize is MaxQueueSize when unset (requests per model per
	// backend). The adaptive batcher keeps a busy backend's queue in the
	// gateway rather than at the backend (see lane.go), so the bound must
	// hold what a fast backend drains in a loose SLO: an H100 runs about
	// 50,000 resnet-50 requests a second, 16,384 is a third of a second of
	// them. Requests are dropped at their hard deadline in any case.
	DefaultMaxQueueSize = 16384
	// DefaultAgingStandard and DefaultAgingSheddable are the aging limits when
	// unset: a standard request that has waited 500 ms is served as critical,
	// a sheddable one that has waited 2 s as standard (and 500 ms later as
	// critical). Critical requests have no class above them.
	DefaultAgingStandard  = 500 * time.Millisecond
	DefaultAgingSheddable = 2 * time.Second
)

// Config is one model's batching settings (the fleet file's
// models[i].batching), with the meaning of Triton's dynamic batcher.
type Config struct {
	// MaxBatchSize caps a batch's rows. 0 means the profile's MaxBatch; a
	// larger value is capped by it. A request with more rows than this runs
	// alone (the backend splits it).
	MaxBatchSize int `yaml:"max_batch_size"`
	// PreferredBatchSizes are the sizes Fixed dispatches at once (the largest
	// one not above what is queued). Empty means MaxBatchSize only. Sorted
	// by SetDefaults. Adaptive and Off ignore them.
	PreferredBatchSizes []int `yaml:"preferred_batch_sizes"`
	// MaxQueueDelay (max_queue_delay_us, integer microseconds) is how long
	// Fixed holds a batch that has not reached a preferred size, and how long
	// Adaptive holds a batch whose members have no SLO target. It never fails
	// a request: the only timeout is the request's hard deadline.
	MaxQueueDelay time.Duration `yaml:"-"`
	// MaxQueueSize is the most requests the model's queue holds on one
	// backend; a request that finds it full is refused at once with an error
	// wrapping backends.ErrShed.
	MaxQueueSize int `yaml:"max_queue_size"`
	// Mode is off, fixed or adaptive (the default).
	Mode Mode `yaml:"-"`
	// AgingLimit (aging_limit_ms, per class name) is, per class, how long a
	// request waits before it is served as the class above; a negative
	// limit disables aging for the class. Critical's entry is unused.
	AgingLimit [backends.NumPriorities]time.Duration `yaml:"-"`
}

// DefaultConfig returns the settings a model without a batching section gets.
func DefaultConfig() Config {
	var c Config
	c.SetDefaults()
	return c
}

// SetDefaults fills every unset field with its default and sorts
// PreferredBatchSizes.
func (c *Config) SetDefaults() {
	if c.MaxQueueDelay == 0 {
		c.MaxQueueDelay = DefaultMaxQueueDelay
	}
	if c.MaxQueueSize == 0 {
		c.MaxQueueSize = DefaultMaxQueueSize
	}
	if c.AgingLimit[backends.Standard] == 0 {
		c.AgingLimit[backends.Standard] = DefaultAgingStandard
	}
	if c.AgingLimit[backends.Sheddable] == 0 {
		c.AgingLimit[backends.Sheddable] = DefaultAgingSheddable
	}
	slices.Sort(c.PreferredBatchSizes)
}

// Validate checks the settings; at prefixes each error's field name, e.g.
// "models[2].batching" gives "models[2].batching.max_queue_delay_us: must
// not be negative".
func (c *Config) Validate(at string) error {
	var errs []error
	bad := func(field, format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s.%s: %s", at, field, fmt.Sprintf(format, a...)))
	}
	if c.MaxBatchSize < 0 {
		bad("max_batch_size", "must not be negative")
	}
	for i, p := range c.PreferredBatchSizes {
		switch {
		case p < 1:
			bad(fmt.Sprintf("preferred_batch_sizes[%d]", i), "must be at least 1")
		case c.MaxBatchSize > 0 && p > c.MaxBatchSize:
			bad(fmt.Sprintf("preferred_batch_sizes[%d]", i), "%d is larger than max_batch_size %d", p, c.MaxBatchSize)
		case i > 0 && c.PreferredBatchSizes[i-1] == p:
			bad(fmt.Sprintf("preferred_batch_sizes[%d]", i), "%d is listed twice", p)
		}
	}
	if c.MaxQueueDelay < 0 {
		bad("max_queue_delay_us", "must not be negative")
	}
	if c.MaxQueueSize < 0 {
		bad("max_queue_size", "must not be negative")
	}
	if c.Mode > ModeOff {
		bad("mode", "%v is not one of off, fixed, adaptive", c.Mode)
	}
	return errors.Join(errs...)
}

// configYAML is Config as the fleet file spells it.
type configYAML struct {
	MaxBatchSize        int              `yaml:"max_batch_size"`
	PreferredBatchSizes []int            `yaml:"preferred_batch_sizes"`
	MaxQueueDelayUs     int64            `yaml:"max_queue_delay_us"`
	MaxQueueSize        int              `yaml:"max_queue_size"`
	Mode                string           `yaml:"mode"`
	AgingLimitMs        map[string]int64 `yaml:"aging_limit_ms"`
}

var configKeys = []string{"max_batch_size", "preferred_batch_sizes", "max_queue_delay_us", "max_queue_size", "mode", "aging_limit_ms"}

// UnmarshalYAML decodes a batching section strictly (an unknown key is an
// error, as everywhere in the fleet file): max_queue_delay_us in integer
// microseconds, mode as off, fixed or adaptive, and aging_limit_ms as a map
// from class name to integer milliseconds (-1 disables aging).
func (c *Config) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			if k := n.Content[i].Value; !slices.Contains(configKeys, k) {
				return fmt.Errorf("line %d: field %s not found in batching settings (want one of %v)", n.Content[i].Line, k, configKeys)
			}
		}
	}
	var raw configYAML
	if err := n.Decode(&raw); err != nil {
		return err
	}
	mode, err := ParseMode(raw.Mode)
	if err != nil {
		return fmt.Errorf("line %d: mode: %w", n.Line, err)
	}
	*c = Config{
		MaxBatchSize:        raw.MaxBatchSize,
		PreferredBatchSizes: raw.PreferredBatchSizes,
		MaxQueueDelay:       time.Duration(raw.MaxQueueDelayUs) * time.Microsecond,
		MaxQueueSize:        raw.MaxQueueSize,
		Mode:                mode,
	}
	for name, ms := range raw.AgingLimitMs {
		p, err := backends.ParsePriority(name)
		if err != nil {
			return fmt.Errorf("line %d: aging_limit_ms: %w", n.Line, err)
		}
		c.AgingLimit[p] = time.Duration(ms) * time.Millisecond
	}
	return nil
}

// MarshalYAML encodes the settings as UnmarshalYAML reads them.
func (c Config) MarshalYAML() (any, error) {
	raw := configYAML{
		MaxBatchSize:        c.MaxBatchSize,
		PreferredBatchSizes: c.PreferredBatchSizes,
		MaxQueueDelayUs:     c.MaxQueueDelay.Microseconds(),
		MaxQueueSize:        c.MaxQueueSize,
		Mode:                c.Mode.String(),
	}
	for p := backends.Standard; p < backends.NumPriorities; p++ {
		if c.AgingLimit[p] != 0 {
			if raw.AgingLimitMs == nil {
				raw.AgingLimitMs = map[string]int64{}
			}
			raw.AgingLimitMs[p.String()] = c.AgingLimit[p].Milliseconds()
		}
	}
	return raw, nil
}
