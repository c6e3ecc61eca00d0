package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/accelgate/accelgate/backends/nvmldisc"
)

// TestRunDiscover runs the discovery command on this machine. The CI machines
// have no NVIDIA driver: with cgo, go-nvml's Init fails (no libnvidia-ml.so);
// without cgo there is no NVML at all. Either way the command prints
// "NVML unavailable" and succeeds. On a machine with NVML it lists the GPUs.
func TestRunDiscover(t *testing.T) {
	local := nvmldisc.DiscoverLocal()

	var table bytes.Buffer
	if err := runDiscover(&table, false); err != nil {
		t.Fatalf("runDiscover: %v", err)
	}
	if local.Available {
		for _, g := range local.GPUs {
			if !strings.Contains(table.String(), g.UUID) {
				t.Errorf("table lacks GPU %s:\n%s", g.UUID, table.String())
			}
		}
	} else if !strings.HasPrefix(table.String(), "NVML unavailable: ") || strings.Count(table.String(), "\n") != 1 {
		t.Errorf("table = %q, want one line \"NVML unavailable: <reason>\"", table.String())
	}

	var js bytes.Buffer
	if err := runDiscover(&js, true); err != nil {
		t.Fatalf("runDiscover JSON: %v", err)
	}
	var inv nvmldisc.Inventory
	if err := json.Unmarshal(js.Bytes(), &inv); err != nil {
		t.Fatalf("JSON: %v\n%s", err, js.String())
	}
	if inv.Available != local.Available || (!inv.Available && !strings.HasPrefix(inv.Reason, "NVML unavailable: ")) {
		t.Errorf("JSON inventory = %+v", inv)
	}
	t.Logf("%s", table.String())
}
