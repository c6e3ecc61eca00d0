package batcher

import (
	"strings"
	"testing"
	"time"

	"github.com/accelgate/accelgate/backends"
	"go.yaml.in/yaml/v3"
)

func TestConfigDefaultsAndValidate(t *testing.T) {
	c := DefaultConfig()
	if c.Mode != ModeAdaptive || c.MaxQueueDelay != DefaultMaxQueueDelay || c.MaxQueueSize != DefaultMaxQueueSize ||
		c.AgingLimit[backends.Standard] != 500*time.Millisecond || c.AgingLimit[backends.Sheddable] != 2*time.Second {
		t.Fatalf("defaults %+v", c)
	}
	if err := c.Validate("models[0].batching"); err != nil {
		t.Fatal(err)
	}
	bad := Config{MaxBatchSize: 4, PreferredBatchSizes: []int{0, 2, 2, 8}, MaxQueueDelay: -1, MaxQueueSize: -1, Mode: 9}
	err := bad.Validate("models[3].batching")
	for _, want := range []string{
		"models[3].batching.preferred_batch_sizes[0]", "models[3].batching.preferred_batch_sizes[2]: 2 is listed twice",
		"models[3].batching.preferred_batch_sizes[3]: 8 is larger", "models[3].batching.max_queue_delay_us: must not be negative",
		"models[3].batching.max_queue_size", "models[3].batching.mode",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v lacks %q", err, want)
		}
	}
}

func TestConfigYAML(t *testing.T) {
	var c Config
	src := "max_batch_size: 16\npreferred_batch_sizes: [8, 4]\nmax_queue_delay_us: 1500\nmax_queue_size: 64\nmode: fixed\naging_limit_ms: {standard: 100, sheddable: -1}\n"
	if err := yaml.Unmarshal([]byte(src), &c); err != nil {
		t.Fatal(err)
	}
	c.SetDefaults()
	if c.MaxBatchSize != 16 || c.PreferredBatchSizes[0] != 4 || c.MaxQueueDelay != 1500*time.Microsecond || c.MaxQueueSize != 64 ||
		c.Mode != ModeFixed || c.AgingLimit[backends.Standard] != 100*time.Millisecond || c.AgingLimit[backends.Sheddable] != -time.Millisecond {
		t.Fatalf("parsed %+v", c)
	}
	out, err := yaml.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	var back Config
	if err := yaml.Unmarshal(out, &back); err != nil || back.MaxQueueDelay != c.MaxQueueDelay || back.Mode != c.Mode {
		t.Fatalf("round trip %s → %+v, %v", out, back, err)
	}
	for _, bad := range []string{"max_queue_delay: 5\n", "mode: eager\n", "aging_limit_ms: {vip: 1}\n"} {
		if err := yaml.Unmarshal([]byte(bad), &c); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}
