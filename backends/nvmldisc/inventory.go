package nvmldisc

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// UnavailablePrefix starts Inventory.Reason whenever NVML could not be used.
const UnavailablePrefix = "NVML unavailable: "

// MIG modes, as GPU.MIGMode and GPU.MIGModePending report them.
const (
	// MIGEnabled: the GPU is (or, pending, will be after a reset) in MIG mode.
	MIGEnabled = "enabled"
	// MIGDisabled: the GPU is not in MIG mode.
	MIGDisabled = "disabled"
	// MIGUnsupported: the GPU cannot do MIG (NVML says not supported).
	MIGUnsupported = "unsupported"
)

// Inventory is what one discovery found on the local machine.
type Inventory struct {
	// Available is false when NVML could not be loaded or initialised (no
	// NVIDIA driver, built without cgo); GPUs is then empty.
	Available bool `json:"available"`
	// Reason says why NVML is unavailable ("NVML unavailable: <error>");
	// empty when Available.
	Reason string `json:"reason,omitempty"`
	// DriverVersion is the NVIDIA driver version ("550.54.15").
	DriverVersion string `json:"driver_version,omitempty"`
	// NVMLVersion is the NVML library version ("12.550.54.15").
	NVMLVersion string `json:"nvml_version,omitempty"`
	// CUDADriverVersion is the CUDA version the driver supports, as NVML
	// encodes it: 1000*major + 10*minor (12040 is CUDA 12.4); 0 if unknown.
	CUDADriverVersion int `json:"cuda_driver_version,omitempty"`
	// GPUs are the physical GPUs in NVML index order.
	GPUs []GPU `json:"gpus"`
	// Errors are failures outside any one GPU (a version query, a device
	// handle that could not be had); discovery went on without them.
	Errors []string `json:"errors,omitempty"`
}

// GPU is one physical GPU. Numeric readings NVML does not support on this
// GPU, or could not read, are -1 (utilisation, power); the reason for a
// failed read other than "not supported" is in Errors.
type GPU struct {
	// Index is the NVML device index (the order nvidia-smi lists).
	Index int `json:"index"`
	// Name is the NVML product name ("NVIDIA H100 80GB HBM3").
	Name string `json:"name"`
	// UUID is the GPU's UUID ("GPU-...").
	UUID string `json:"uuid"`
	// MemoryTotalBytes and MemoryUsedBytes are the framebuffer memory.
	MemoryTotalBytes uint64 `json:"memory_total_bytes"`
	MemoryUsedBytes  uint64 `json:"memory_used_bytes"`
	// UtilGPUPct is the percent of the last sample period a kernel ran;
	// UtilMemoryPct the percent memory was read or written. -1 if unknown
	// (NVML does not report either for a GPU in MIG mode).
	UtilGPUPct    int `json:"util_gpu_pct"`
	UtilMemoryPct int `json:"util_memory_pct"`
	// PowerDrawW is the current board power draw and PowerLimitW the
	// enforced power limit, in watts; -1 if unknown.
	PowerDrawW  float64 `json:"power_draw_w"`
	PowerLimitW float64 `json:"power_limit_w"`
	// MIGMode and MIGModePending are MIGEnabled, MIGDisabled,
	// MIGUnsupported, or "" if NVML failed to say. They differ when a mode
	// change waits for a GPU reset.
	MIGMode        string `json:"mig_mode"`
	MIGModePending string `json:"mig_mode_pending"`
	// MIG are the GPU's MIG devices when MIGMode is MIGEnabled, in NVML
	// MIG device index order.
	MIG []MIGDevice `json:"mig,omitempty"`
	// Profile is the backends/catalog profile that describes the whole GPU
	// ("" if none) and Match how well (MatchExact, "nearest: <why>",
	// MatchNone); see MapGPU. For a GPU in MIG mode the slices' profiles
	// are the ones that serve.
	Profile string `json:"profile"`
	Match   string `json:"match"`
	// Errors are reads that failed for a reason other than "not supported".
	Errors []string `json:"errors,omitempty"`
}

// MIGDevice is one MIG device: a compute instance inside a GPU instance of a
// GPU in MIG mode, which CUDA sees as a device of its own.
type MIGDevice struct {
	// Index is the MIG device index within its parent (the argument of
	// NVML's GetMigDeviceHandleByIndex).
	Index int `json:"index"`
	// Name is the NVML name ("NVIDIA A100-SXM4-40GB MIG 1g.5gb").
	Name string `json:"name"`
	// MIGProfile is the MIG profile ("1g.5gb", "1c.3g.20gb"), from the name
	// or, when the name lacks it, from the GPU and compute instance profile
	// info; "" if neither could be read.
	MIGProfile string `json:"mig_profile"`
	// UUID is the MIG device's UUID ("MIG-...").
	UUID string `json:"uuid"`
	// ParentUUID is the UUID of the GPU it is carved from.
	ParentUUID string `json:"parent_uuid"`
	// GPUInstanceID and ComputeInstanceID identify it within the parent;
	// -1 if unknown.
	GPUInstanceID     int `json:"gpu_instance_id"`
	ComputeInstanceID int `json:"compute_instance_id"`
	// MemoryTotalBytes and MemoryUsedBytes are the GPU instance's memory.
	MemoryTotalBytes uint64 `json:"memory_total_bytes"`
	MemoryUsedBytes  uint64 `json:"memory_used_bytes"`
	// Profile is the backends/catalog profile that describes the slice
	// ("" if none) and Match how well; see MapMIG.
	Profile string `json:"profile"`
	Match   string `json:"match"`
	// Errors are reads that failed for a reason other than "not supported".
	Errors []string `json:"errors,omitempty"`
}

// DeviceStats is the live state of one device (a GPU or a MIG device) that a
// fleet backend naming the device's UUID joins to its own load state.
type DeviceStats struct {
	// UUID is the device's UUID; ParentUUID the parent GPU's for a MIG
	// device, "" for a GPU.
	UUID       string `json:"uuid"`
	ParentUUID string `json:"parent_uuid,omitempty"`
	// MIG is true for a MIG device.
	MIG bool `json:"mig"`
	// Name is the NVML name; Profile and Match the catalog mapping.
	Name    string `json:"name"`
	Profile string `json:"profile"`
	Match   string `json:"match"`
	// MemoryUsedBytes and MemoryTotalBytes are the device's memory.
	MemoryUsedBytes  uint64 `json:"memory_used_bytes"`
	MemoryTotalBytes uint64 `json:"memory_total_bytes"`
	// UtilGPUPct and UtilMemoryPct are -1 when unknown, as always for MIG
	// devices (NVML does not report utilisation per MIG device).
	UtilGPUPct    int `json:"util_gpu_pct"`
	UtilMemoryPct int `json:"util_memory_pct"`
	// PowerDrawW is the GPU's board power in watts, -1 if unknown or for a
	// MIG device.
	PowerDrawW float64 `json:"power_draw_w"`
}

// Find returns the live state of the GPU or MIG device with this UUID. The
// comparison ignores case and surrounding space.
func (inv Inventory) Find(uuid string) (DeviceStats, bool) {
	uuid = strings.TrimSpace(uuid)
	if uuid == "" {
		return DeviceStats{}, false
	}
	for _, g := range inv.GPUs {
		if strings.EqualFold(g.UUID, uuid) {
			return DeviceStats{
				UUID: g.UUID, Name: g.Name, Profile: g.Profile, Match: g.Match,
				MemoryUsedBytes: g.MemoryUsedBytes, MemoryTotalBytes: g.MemoryTotalBytes,
				UtilGPUPct: g.UtilGPUPct, UtilMemoryPct: g.UtilMemoryPct, PowerDrawW: g.PowerDrawW,
			}, true
		}
		for _, m := range g.MIG {
			if strings.EqualFold(m.UUID, uuid) {
				return DeviceStats{
					UUID: m.UUID, ParentUUID: m.ParentUUID, MIG: true, Name: m.Name,
					Profile: m.Profile, Match: m.Match,
					MemoryUsedBytes: m.MemoryUsedBytes, MemoryTotalBytes: m.MemoryTotalBytes,
					UtilGPUPct: -1, UtilMemoryPct: -1, PowerDrawW: -1,
				}, true
			}
		}
	}
	return DeviceStats{}, false
}

// WriteJSON writes the inventory as indented JSON (snake_case fields)
// followed by a newline.
func (inv Inventory) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(inv)
}

// WriteTable writes the inventory as an aligned text table: a summary line,
// then one row per GPU with its MIG devices indented under it, then any
// errors. When NVML is unavailable it writes the one line
// "NVML unavailable: <reason>".
func (inv Inventory) WriteTable(w io.Writer) error {
	if !inv.Available {
		reason := inv.Reason
		if reason == "" {
			reason = "unknown reason"
		}
		if !strings.HasPrefix(reason, UnavailablePrefix) {
			reason = UnavailablePrefix + reason
		}
		_, err := fmt.Fprintln(w, reason)
		return err
	}
	ew := &errWriter{w: w}
	fmt.Fprintf(ew, "NVML %s, driver %s, CUDA %s: %d GPU(s)\n",
		orDash(inv.NVMLVersion), orDash(inv.DriverVersion), cudaVersion(inv.CUDADriverVersion), len(inv.GPUs))
	tw := tabwriter.NewWriter(ew, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "IDX\tNAME / MIG PROFILE\tUUID\tMEMORY USED/TOTAL\tUTIL GPU/MEM\tPOWER DRAW/LIMIT\tMIG CUR/PEND\tPROFILE\tMATCH")
	for _, g := range inv.GPUs {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s/%s\t%s\t%s\n",
			g.Index, orDash(g.Name), orDash(g.UUID), memory(g.MemoryUsedBytes, g.MemoryTotalBytes),
			util(g.UtilGPUPct, g.UtilMemoryPct), power(g.PowerDrawW, g.PowerLimitW),
			orDash(g.MIGMode), orDash(g.MIGModePending), orDash(g.Profile), g.Match)
		for _, m := range g.MIG {
			fmt.Fprintf(tw, "  %d:%d\t  MIG %s (gi %s, ci %s)\t%s\t%s\t-\t-\t-\t%s\t%s\n",
				g.Index, m.Index, orDash(m.MIGProfile), id(m.GPUInstanceID), id(m.ComputeInstanceID),
				orDash(m.UUID), memory(m.MemoryUsedBytes, m.MemoryTotalBytes), orDash(m.Profile), m.Match)
		}
	}
	tw.Flush()
	for _, e := range inv.Errors {
		fmt.Fprintf(ew, "error: %s\n", e)
	}
	for _, g := range inv.GPUs {
		for _, e := range g.Errors {
			fmt.Fprintf(ew, "error: GPU %d: %s\n", g.Index, e)
		}
		for _, m := range g.MIG {
			for _, e := range m.Errors {
				fmt.Fprintf(ew, "error: GPU %d MIG %d: %s\n", g.Index, m.Index, e)
			}
		}
	}
	return ew.err
}

// errWriter keeps the first write error and drops later writes.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(p)
	e.err = err
	return n, err
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func id(v int) string {
	if v < 0 {
		return "?"
	}
	return fmt.Sprint(v)
}

func cudaVersion(v int) string {
	if v <= 0 {
		return "-"
	}
	return fmt.Sprintf("%d.%d", v/1000, v%1000/10)
}

func memory(used, total uint64) string {
	if total == 0 && used == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f/%.1f GiB", float64(used)/gib, float64(total)/gib)
}

func util(gpu, mem int) string {
	if gpu < 0 && mem < 0 {
		return "-"
	}
	return pct(gpu) + "/" + pct(mem)
}

func pct(v int) string {
	if v < 0 {
		return "-"
	}
	return fmt.Sprintf("%d%%", v)
}

func power(draw, limit float64) string {
	if draw < 0 && limit < 0 {
		return "-"
	}
	return watts(draw) + "/" + watts(limit) + " W"
}

func watts(v float64) string {
	if v < 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f", v)
}
