// Package nvmldisc discovers the NVIDIA accelerators of the local machine
// through NVML (github.com/NVIDIA/go-nvml) and names, for each GPU and each MIG
// device, the backends/catalog hardware profile that best describes it.
//
// It owns four things: the inventory types (Inventory, GPU, MIGDevice) and
// their text table and JSON forms; the documented mapping from an NVML product
// name, memory size and MIG profile to a catalog profile (mapping.go: MapGPU,
// MapMIG); the read-only discovery itself (Discover, DiscoverLocal); and small
// consumers of it: an admin HTTP handler (Handler, NewHandler), a per-UUID
// lookup a fleet backend joins its load state with (Inventory.Find,
// DeviceStats) and a Poller that re-discovers at an interval on an injected
// backends.Clock.
//
// # Discovery flow
//
// Discover calls Init on the NVML interface it is given; if that fails the
// result is Inventory{Available: false, Reason: "NVML unavailable: <error>"},
// not an error, so a GPU-less machine reports "no GPUs" rather than failing.
// Otherwise it reads the driver, NVML and CUDA driver versions, then for each
// device index: name, UUID, memory, utilisation, power draw and enforced
// limit, and the current and pending MIG mode. For a GPU whose current MIG
// mode is enabled it walks the MIG device handles (GetMaxMigDeviceCount,
// GetMigDeviceHandleByIndex) and reads each one's UUID, name, memory and GPU
// and compute instance ids. The MIG profile ("1g.10gb") comes from the MIG
// device's name, which drivers since R470 end with "MIG <profile>"; when the
// name does not carry it, it is rebuilt from the GPU and compute instance
// profile info (slice counts and memory size), the way nvidia-smi names them.
// Shutdown always follows a successful Init. A field NVML reports as not
// supported (utilisation and power on MIG devices, MIG mode on a T4) is left
// unknown (-1 or empty); any other failure is recorded in the device's Errors
// and discovery goes on with the next field.
//
// # Read-only promise
//
// Discovery calls only NVML getters: never a Set*, Create*, Destroy* or Reset*
// method, so it is safe to run against production GPUs while they serve. (The
// tests create MIG instances, but only on go-nvml's in-memory mock servers.)
//
// # cgo
//
// go-nvml loads libnvidia-ml.so.1 with dlopen and needs cgo. The files that
// import it are built only with cgo (//go:build cgo); without cgo,
// DiscoverLocal returns Inventory{Available: false, Reason: "NVML unavailable:
// built without cgo"} and Discover does not exist, so CGO_ENABLED=0 builds of
// the gateway keep working. The types, the mapping, the table and JSON output,
// the handler and the poller are plain Go and build either way. With cgo but no
// NVML library (no NVIDIA driver), go-nvml's Init returns
// ERROR_LIBRARY_NOT_FOUND, which DiscoverLocal reports as unavailable; it also
// recovers from any panic inside NVML discovery.
//
// TPUs, Inferentia and Jetson boards are not visible to NVML; their catalog
// profiles are never returned here.
package nvmldisc
