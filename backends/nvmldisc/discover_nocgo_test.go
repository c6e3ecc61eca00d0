//go:build !cgo

package nvmldisc

import (
	"bytes"
	"testing"
)

// TestDiscoverLocalNoCgo: without cgo there is no NVML, and DiscoverLocal
// says so.
func TestDiscoverLocalNoCgo(t *testing.T) {
	inv := DiscoverLocal()
	if inv.Available || inv.Reason != "NVML unavailable: built without cgo" {
		t.Errorf("DiscoverLocal = %+v", inv)
	}
	var buf bytes.Buffer
	if err := inv.WriteTable(&buf); err != nil || buf.String() != "NVML unavailable: built without cgo\n" {
		t.Errorf("table = %q, %v", buf.String(), err)
	}
}
