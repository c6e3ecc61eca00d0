//go:build cgo

package nvmldisc

import (
	"fmt"
	"sync"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

// localMu serialises DiscoverLocal: go-nvml rewrites package-level state
// (versioned symbols, its error-string function) while loading and unloading
// the library, so two discoveries must not overlap.
var localMu sync.Mutex

// DiscoverLocal discovers the local GPUs through the system's NVML library
// (libnvidia-ml.so.1). It never fails and never panics: with no library or
// no driver it returns Available false with a Reason. Concurrent calls run
// one at a time.
func DiscoverLocal() (inv Inventory) {
	localMu.Lock()
	defer localMu.Unlock()
	defer func() {
		if r := recover(); r != nil {
			inv = Inventory{Reason: fmt.Sprintf("%spanic while loading NVML: %v", UnavailablePrefix, r)}
		}
	}()
	return Discover(nvml.New())
}

// Discover initialises lib, reads every GPU and MIG device, and shuts lib
// down again. It calls only read methods of lib. If Init fails it returns
// Inventory{Available: false, Reason: "NVML unavailable: <error string>"};
// other failures are recorded in the Errors fields and discovery goes on. A
// panic inside lib (a go-nvml mock method left without a Func, say) is
// recovered into Available false with the panic as the Reason.
func Discover(lib nvml.Interface) (inv Inventory) {
	if lib == nil {
		return Inventory{Reason: UnavailablePrefix + "no NVML interface"}
	}
	defer func() {
		if r := recover(); r != nil {
			inv = Inventory{Reason: fmt.Sprintf("%spanic during discovery: %v", UnavailablePrefix, r)}
		}
	}()
	if ret := lib.Init(); ret != nvml.SUCCESS {
		return Inventory{Reason: UnavailablePrefix + errString(ret)}
	}
	defer lib.Shutdown()

	inv.Available = true
	inv.GPUs = []GPU{}
	var ret nvml.Return
	if inv.DriverVersion, ret = lib.SystemGetDriverVersion(); !ok(ret) {
		inv.Errors = appendErr(inv.Errors, "driver version", ret)
	}
	if inv.NVMLVersion, ret = lib.SystemGetNVMLVersion(); !ok(ret) {
		inv.Errors = appendErr(inv.Errors, "NVML version", ret)
	}
	if inv.CUDADriverVersion, ret = lib.SystemGetCudaDriverVersion(); !ok(ret) {
		inv.Errors = appendErr(inv.Errors, "CUDA driver version", ret)
	}
	n, ret := lib.DeviceGetCount()
	if ret != nvml.SUCCESS {
		return Inventory{Reason: UnavailablePrefix + "device count: " + errString(ret)}
	}
	for i := 0; i < n; i++ {
		dev, ret := lib.DeviceGetHandleByIndex(i)
		if ret != nvml.SUCCESS {
			inv.Errors = appendErr(inv.Errors, fmt.Sprintf("device %d handle", i), ret)
			continue
		}
		inv.GPUs = append(inv.GPUs, readGPU(i, dev))
	}
	return inv
}

// readGPU reads one physical GPU and, in MIG mode, its MIG devices.
// readIdentity reads what GPUs and MIG devices both report: name, UUID and
// memory, appending to errs what could not be read.
func readIdentity(dev nvml.Device, errs []string) (name, uuid string, total, used uint64, _ []string) {
	var ret nvml.Return
	if name, ret = dev.GetName(); !ok(ret) {
		errs = appendErr(errs, "name", ret)
	}
	if uuid, ret = dev.GetUUID(); !ok(ret) {
		errs = appendErr(errs, "uuid", ret)
	}
	if mem, ret := memoryInfoV2(dev); ret == nvml.SUCCESS {
		total, used = mem.Total, mem.Used
	} else if mem, ret := dev.GetMemoryInfo(); ret == nvml.SUCCESS {
		total, used = mem.Total, mem.Used
	} else if !ok(ret) {
		errs = appendErr(errs, "memory", ret)
	}
	return name, uuid, total, used, errs
}

// memoryInfoV2 reads nvmlDeviceGetMemoryInfo_v2 (drivers from R510 on), whose
// Used leaves out the memory the driver reserves for itself, as nvidia-smi's
// "memory.used" does: on an idle H200 (driver 580) v1 reports 615 MiB used
// where v2 and nvidia-smi report 0. A driver without v2 answers an error, and
// a go-nvml mock without it panics; either way the caller falls back to v1.
func memoryInfoV2(dev nvml.Device) (mem nvml.Memory_v2, ret nvml.Return) {
	defer func() {
		if recover() != nil {
			mem, ret = nvml.Memory_v2{}, nvml.ERROR_FUNCTION_NOT_FOUND
		}
	}()
	return dev.GetMemoryInfo_v2()
}

func readGPU(index int, dev nvml.Device) GPU {
	g := GPU{Index: index, UtilGPUPct: -1, UtilMemoryPct: -1, PowerDrawW: -1, PowerLimitW: -1}
	g.Name, g.UUID, g.MemoryTotalBytes, g.MemoryUsedBytes, g.Errors = readIdentity(dev, g.Errors)
	if u, ret := dev.GetUtilizationRates(); ret == nvml.SUCCESS {
		g.UtilGPUPct, g.UtilMemoryPct = int(u.Gpu), int(u.Memory)
	} else if !ok(ret) {
		g.Errors = appendErr(g.Errors, "utilization", ret)
	}
	if mw, ret := dev.GetPowerUsage(); ret == nvml.SUCCESS {
		g.PowerDrawW = float64(mw) / 1000
	} else if !ok(ret) {
		g.Errors = appendErr(g.Errors, "power usage", ret)
	}
	if mw, ret := dev.GetEnforcedPowerLimit(); ret == nvml.SUCCESS {
		g.PowerLimitW = float64(mw) / 1000
	} else if !ok(ret) {
		g.Errors = appendErr(g.Errors, "power limit", ret)
	}
	cur, pend, ret := dev.GetMigMode()
	switch {
	case ret == nvml.SUCCESS:
		g.MIGMode, g.MIGModePending = migMode(cur), migMode(pend)
	case ret == nvml.ERROR_NOT_SUPPORTED:
		g.MIGMode, g.MIGModePending = MIGUnsupported, MIGUnsupported
	default:
		g.Errors = appendErr(g.Errors, "MIG mode", ret)
	}
	g.Profile, g.Match = MapGPU(g.Name, g.MemoryTotalBytes)
	if g.MIGMode == MIGEnabled {
		g.MIG, g.Errors = readMIG(dev, g, g.Errors)
	}
	return g
}

// readMIG reads the MIG devices of a GPU in MIG mode.
func readMIG(dev nvml.Device, parent GPU, errs []string) ([]MIGDevice, []string) {
	maxCount, ret := dev.GetMaxMigDeviceCount()
	if ret != nvml.SUCCESS {
		return nil, appendErr(errs, "MIG device count", ret)
	}
	var (
		out       []MIGDevice
		instances map[int]giEntry // built on first need
	)
	for j := 0; j < maxCount; j++ {
		md, ret := dev.GetMigDeviceHandleByIndex(j)
		if ret == nvml.ERROR_NOT_FOUND || ret == nvml.ERROR_INVALID_ARGUMENT {
			continue // an empty MIG device slot
		}
		if ret != nvml.SUCCESS {
			errs = appendErr(errs, fmt.Sprintf("MIG device %d handle", j), ret)
			continue
		}
		m := MIGDevice{Index: j, ParentUUID: parent.UUID, GPUInstanceID: -1, ComputeInstanceID: -1}
		m.Name, m.UUID, m.MemoryTotalBytes, m.MemoryUsedBytes, m.Errors = readIdentity(md, m.Errors)
		if v, ret := md.GetGpuInstanceId(); ret == nvml.SUCCESS {
			m.GPUInstanceID = v
		} else {
			m.Errors = appendErr(m.Errors, "GPU instance id", ret)
		}
		if v, ret := md.GetComputeInstanceId(); ret == nvml.SUCCESS {
			m.ComputeInstanceID = v
		} else {
			m.Errors = appendErr(m.Errors, "compute instance id", ret)
		}
		m.MIGProfile = migProfileFromName(m.Name)
		if m.MIGProfile == "" && m.GPUInstanceID >= 0 && m.ComputeInstanceID >= 0 {
			if instances == nil {
				instances = gpuInstances(dev)
			}
			m.MIGProfile = instances[m.GPUInstanceID].profileName(m.ComputeInstanceID, parent.MemoryTotalBytes)
		}
		if m.MIGProfile == "" {
			m.Profile, m.Match = "", MatchNone+": MIG profile unknown"
		} else {
			m.Profile, m.Match = MapMIG(parent.Name, parent.MemoryTotalBytes, m.MIGProfile)
		}
		out = append(out, m)
	}
	return out, errs
}

// giEntry is one GPU instance's profile and its compute instances' slice
// counts, by compute instance id.
type giEntry struct {
	profileID uint32
	info      nvml.GpuInstanceProfileInfo
	ciSlices  map[int]uint32
}

// profileName names the MIG profile of compute instance ci of this GPU
// instance, or "" when the GPU instance is unknown.
func (e giEntry) profileName(ci int, parentTotalBytes uint64) string {
	if e.info.SliceCount == 0 {
		return ""
	}
	c := e.ciSlices[ci] // 0 (unknown) names the whole GPU instance
	return formatMIGProfile(int(c), int(e.info.SliceCount), migMemoryGB(e.info.MemorySizeMB, parentTotalBytes), giAttributes(e.profileID))
}

// gpuInstances walks dev's GPU instances and their compute instances through
// the profile-info getters (read-only). On real drivers this may need
// privileges; errors leave the map short and the profile unknown.
func gpuInstances(dev nvml.Device) map[int]giEntry {
	out := map[int]giEntry{}
	for p := 0; p < nvml.GPU_INSTANCE_PROFILE_COUNT; p++ {
		info, ret := dev.GetGpuInstanceProfileInfo(p)
		if ret != nvml.SUCCESS {
			continue
		}
		gis, ret := dev.GetGpuInstances(&info)
		if ret != nvml.SUCCESS {
			continue
		}
		for _, gi := range gis {
			gii, ret := gi.GetInfo()
			if ret != nvml.SUCCESS {
				continue
			}
			e := giEntry{profileID: uint32(p), info: info, ciSlices: map[int]uint32{}}
			for cp := 0; cp < nvml.COMPUTE_INSTANCE_PROFILE_COUNT; cp++ {
				cinfo, ret := gi.GetComputeInstanceProfileInfo(cp, nvml.COMPUTE_INSTANCE_ENGINE_PROFILE_SHARED)
				if ret != nvml.SUCCESS {
					continue
				}
				cis, ret := gi.GetComputeInstances(&cinfo)
				if ret != nvml.SUCCESS {
					continue
				}
				for _, ci := range cis {
					if cii, ret := ci.GetInfo(); ret == nvml.SUCCESS {
						e.ciSlices[int(cii.Id)] = cinfo.SliceCount
					}
				}
			}
			out[int(gii.Id)] = e
		}
	}
	return out
}

// giAttributes is the profile name suffix of a GPU instance profile id, as
// nvidia-smi writes it ("+me" for the media-extension 1-slice profile).
func giAttributes(id uint32) string {
	switch id {
	case nvml.GPU_INSTANCE_PROFILE_1_SLICE_REV1, nvml.GPU_INSTANCE_PROFILE_2_SLICE_REV1:
		return "+me"
	case nvml.GPU_INSTANCE_PROFILE_1_SLICE_ALL_ME, nvml.GPU_INSTANCE_PROFILE_2_SLICE_ALL_ME:
		return "+me.all"
	case nvml.GPU_INSTANCE_PROFILE_1_SLICE_NO_ME, nvml.GPU_INSTANCE_PROFILE_2_SLICE_NO_ME:
		return "-me"
	case nvml.GPU_INSTANCE_PROFILE_1_SLICE_GFX, nvml.GPU_INSTANCE_PROFILE_2_SLICE_GFX,
		nvml.GPU_INSTANCE_PROFILE_3_SLICE_GFX, nvml.GPU_INSTANCE_PROFILE_4_SLICE_GFX:
		return "+gfx"
	}
	return ""
}

func migMode(v int) string {
	switch v {
	case nvml.DEVICE_MIG_ENABLE:
		return MIGEnabled
	case nvml.DEVICE_MIG_DISABLE:
		return MIGDisabled
	}
	return fmt.Sprintf("mode %d", v)
}

// ok reports whether ret is success or "not supported" (which leaves the
// field unknown without an error).
func ok(ret nvml.Return) bool {
	return ret == nvml.SUCCESS || ret == nvml.ERROR_NOT_SUPPORTED
}

func appendErr(errs []string, what string, ret nvml.Return) []string {
	return append(errs, what+": "+errString(ret))
}

// errString is NVML's text for ret. It uses the package-level Return.Error
// rather than Interface.ErrorString, which go-nvml's mocks leave unset.
func errString(ret nvml.Return) string {
	return ret.Error()
}
