package main

import (
	"io"

	"github.com/accelgate/accelgate/backends/nvmldisc"
)

// runDiscover lists the local NVIDIA GPUs and MIG devices (read-only NVML
// discovery) with the catalog profile each maps to, as an aligned table or,
// with asJSON, as JSON. A machine without NVML (no driver, or a build without
// cgo) is not an error: the table says "NVML unavailable: <reason>" (the JSON
// "available": false) and runDiscover returns nil, so the command exits 0.
// Only a failed write to out is returned.
func runDiscover(out io.Writer, asJSON bool) error {
	inv := nvmldisc.DiscoverLocal()
	if asJSON {
		return inv.WriteJSON(out)
	}
	return inv.WriteTable(out)
}
