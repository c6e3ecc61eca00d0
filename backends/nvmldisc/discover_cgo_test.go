//go:build cgo

package nvmldisc

import (
	"bytes"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxa100"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxh100"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/gpus"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/server"

	"github.com/accelgate/accelgate/backends/catalog"
)

// What go-nvml's mock servers (dgxa100, dgxh100) leave unset, and so these
// tests stub: per GPU GetUtilizationRates, GetPowerUsage and
// GetEnforcedPowerLimit; and all of MIG device enumeration. The mock models
// GPU and compute instances (SetMigMode, CreateGpuInstance,
// CreateComputeInstance, GetGpuInstances, GetComputeInstances) but has no MIG
// device handles, so exposeMIG stubs GetMaxMigDeviceCount and
// GetMigDeviceHandleByIndex on the parent and builds one mock.Device per
// compute instance with GetName, GetUUID, GetMemoryInfo, GetGpuInstanceId and
// GetComputeInstanceId, as the driver would.

// telemetry stubs the GPU readings the mock leaves unset. A GPU in MIG mode
// answers "not supported" for utilisation, as real drivers do.
func telemetry(d *server.Device, i int, migMode bool) {
	d.MemoryInfo.Used = uint64(i+1) << 30
	d.GetUtilizationRatesFunc = func() (nvml.Utilization, nvml.Return) {
		if migMode {
			return nvml.Utilization{}, nvml.ERROR_NOT_SUPPORTED
		}
		return nvml.Utilization{Gpu: uint32(10 * i), Memory: uint32(i)}, nvml.SUCCESS
	}
	d.GetPowerUsageFunc = func() (uint32, nvml.Return) { return uint32(100000 + 1000*i), nvml.SUCCESS }
	d.GetEnforcedPowerLimitFunc = func() (uint32, nvml.Return) { return 400000, nvml.SUCCESS }
}

// carve creates one GPU instance of profile gip on d, with one compute
// instance per profile in cips, through the mock's API.
func carve(t *testing.T, d *server.Device, gip int, cips ...int) {
	t.Helper()
	info, ret := d.GetGpuInstanceProfileInfo(gip)
	if ret != nvml.SUCCESS {
		t.Fatalf("GetGpuInstanceProfileInfo(%d): %v", gip, ret)
	}
	gi, ret := d.CreateGpuInstance(&info)
	if ret != nvml.SUCCESS {
		t.Fatalf("CreateGpuInstance(%d): %v", gip, ret)
	}
	for _, cip := range cips {
		ci, ret := gi.GetComputeInstanceProfileInfo(cip, nvml.COMPUTE_INSTANCE_ENGINE_PROFILE_SHARED)
		if ret != nvml.SUCCESS {
			t.Fatalf("GetComputeInstanceProfileInfo(%d, %d): %v", gip, cip, ret)
		}
		if _, ret := gi.CreateComputeInstance(&ci); ret != nvml.SUCCESS {
			t.Fatalf("CreateComputeInstance(%d, %d): %v", gip, cip, ret)
		}
	}
}

func enableMIG(t *testing.T, d *server.Device) {
	t.Helper()
	if ret, _ := d.SetMigMode(nvml.DEVICE_MIG_ENABLE); ret != nvml.SUCCESS {
		t.Fatalf("SetMigMode: %v", ret)
	}
}

func migUUID(d *server.Device, gi, ci uint32) string {
	return fmt.Sprintf("MIG-%s-%d-%d", strings.TrimPrefix(d.UUID, "GPU-"), gi, ci)
}

// exposeMIG gives d the MIG device handles a driver would: one per compute
// instance, ordered by GPU then compute instance id, 7 slots in all. names
// maps a GPU instance profile id to the profile the device name ends with
// ("<parent> MIG 1g.5gb", as drivers since R470 name them); nil leaves the
// parent's name, so discovery must rebuild the profile from the instances.
func exposeMIG(d *server.Device, names map[uint32]string) {
	type pair struct {
		gi *server.GpuInstance
		ci *server.ComputeInstance
	}
	var pairs []pair
	d.RLock()
	for gi := range d.GpuInstances {
		gi.RLock()
		for ci := range gi.ComputeInstances {
			pairs = append(pairs, pair{gi, ci})
		}
		gi.RUnlock()
	}
	d.RUnlock()
	sort.Slice(pairs, func(i, j int) bool {
		if pairs[i].gi.Info.Id != pairs[j].gi.Info.Id {
			return pairs[i].gi.Info.Id < pairs[j].gi.Info.Id
		}
		return pairs[i].ci.Info.Id < pairs[j].ci.Info.Id
	})
	handles := make([]nvml.Device, len(pairs))
	for k, p := range pairs {
		giID, ciID := p.gi.Info.Id, p.ci.Info.Id
		name := d.Config.Name
		if n, ok := names[p.gi.Info.ProfileId]; ok {
			name += " MIG " + n
		}
		uuid := migUUID(d, giID, ciID)
		mem := nvml.Memory{Total: d.Config.MIGProfiles.GpuInstanceProfiles[int(p.gi.Info.ProfileId)].MemorySizeMB << 20, Used: uint64(k+1) << 20}
		handles[k] = &mock.Device{
			GetNameFunc:              func() (string, nvml.Return) { return name, nvml.SUCCESS },
			GetUUIDFunc:              func() (string, nvml.Return) { return uuid, nvml.SUCCESS },
			GetMemoryInfoFunc:        func() (nvml.Memory, nvml.Return) { return mem, nvml.SUCCESS },
			GetGpuInstanceIdFunc:     func() (int, nvml.Return) { return int(giID), nvml.SUCCESS },
			GetComputeInstanceIdFunc: func() (int, nvml.Return) { return int(ciID), nvml.SUCCESS },
		}
	}
	const slots = 7
	d.GetMaxMigDeviceCountFunc = func() (int, nvml.Return) { return slots, nvml.SUCCESS }
	d.GetMigDeviceHandleByIndexFunc = func(i int) (nvml.Device, nvml.Return) {
		switch {
		case i < 0 || i >= slots:
			return nil, nvml.ERROR_INVALID_ARGUMENT
		case i >= len(handles):
			return nil, nvml.ERROR_NOT_FOUND
		}
		return handles[i], nvml.SUCCESS
	}
}

// readOnly removes every mocked write method (a Func field whose name holds
// Set, Create, Destroy, Reset or Clear) from the server, its devices and their
// GPU and compute instances: if Discover called one, the nil Func would panic,
// and Discover would report the panic as unavailability.
func readOnly(s *server.Server) {
	strip := func(v reflect.Value) {
		v = v.Elem()
		for i := 0; i < v.NumField(); i++ {
			f := v.Type().Field(i)
			if f.Type.Kind() != reflect.Func || !strings.HasSuffix(f.Name, "Func") {
				continue
			}
			for _, w := range []string{"Set", "Create", "Destroy", "Reset", "Clear"} {
				if strings.Contains(f.Name, w) {
					v.Field(i).Set(reflect.Zero(f.Type))
				}
			}
		}
	}
	strip(reflect.ValueOf(&s.Interface))
	for _, dev := range s.Devices {
		d := dev.(*server.Device)
		strip(reflect.ValueOf(&d.Device))
		for gi := range d.GpuInstances {
			strip(reflect.ValueOf(&gi.GpuInstance))
			for ci := range gi.ComputeInstances {
				strip(reflect.ValueOf(&ci.ComputeInstance))
			}
		}
	}
}

type wantMIG struct {
	gi, ci       uint32
	migProfile   string
	profile      string
	exact        bool
	matchContain string
}

// checkServer discovers s and checks the versions, all 8 GPUs (name, UUID,
// memory, readings, MIG mode, catalog profile) and their MIG devices.
func checkServer(t *testing.T, s *server.Server, gpuProfile string, gpuExact bool, gpuMatch string, mig map[int][]wantMIG) Inventory {
	t.Helper()
	inv := Discover(s)
	if !inv.Available || inv.Reason != "" {
		t.Fatalf("Discover: unavailable: %q", inv.Reason)
	}
	if inv.DriverVersion != "550.54.15" || inv.NVMLVersion != "12.550.54.15" || inv.CUDADriverVersion != 12040 || len(inv.Errors) != 0 {
		t.Errorf("versions: %q %q %d, errors %v", inv.DriverVersion, inv.NVMLVersion, inv.CUDADriverVersion, inv.Errors)
	}
	if len(inv.GPUs) != 8 {
		t.Fatalf("%d GPUs, want 8", len(inv.GPUs))
	}
	cat := catalog.Default()
	for i, g := range inv.GPUs {
		d := s.Devices[i].(*server.Device)
		_, migMode := mig[i]
		if g.Index != i || g.Name != d.Config.Name || g.UUID != d.UUID || !strings.HasPrefix(g.UUID, "GPU-") {
			t.Errorf("GPU %d: index %d name %q uuid %q; want %q %q", i, g.Index, g.Name, g.UUID, d.Config.Name, d.UUID)
		}
		if g.MemoryTotalBytes != d.Config.MemoryMB<<20 || g.MemoryUsedBytes != uint64(i+1)<<30 {
			t.Errorf("GPU %d memory %d/%d, want %d/%d", i, g.MemoryUsedBytes, g.MemoryTotalBytes, uint64(i+1)<<30, d.Config.MemoryMB<<20)
		}
		if g.PowerDrawW != float64(100+i) || g.PowerLimitW != 400 {
			t.Errorf("GPU %d power %v/%v W", i, g.PowerDrawW, g.PowerLimitW)
		}
		wantUtil, wantMode := 10*i, MIGDisabled
		if migMode {
			wantUtil, wantMode = -1, MIGEnabled
		}
		if g.UtilGPUPct != wantUtil || g.MIGMode != wantMode || g.MIGModePending != wantMode {
			t.Errorf("GPU %d util %d MIG %s/%s, want %d %s", i, g.UtilGPUPct, g.MIGMode, g.MIGModePending, wantUtil, wantMode)
		}
		if len(g.Errors) != 0 {
			t.Errorf("GPU %d errors: %v", i, g.Errors)
		}
		if g.Profile != gpuProfile {
			t.Errorf("GPU %d profile %q, want %q", i, g.Profile, gpuProfile)
		}
		checkMatch(t, fmt.Sprintf("GPU %d", i), g.Match, gpuProfile, gpuExact, gpuMatch)
		want := mig[i]
		if len(g.MIG) != len(want) {
			t.Errorf("GPU %d: %d MIG devices, want %d: %+v", i, len(g.MIG), len(want), g.MIG)
			continue
		}
		for k, m := range g.MIG {
			w := want[k]
			what := fmt.Sprintf("GPU %d MIG %d", i, k)
			if m.Index != k || m.ParentUUID != d.UUID || m.UUID != migUUID(d, w.gi, w.ci) ||
				m.GPUInstanceID != int(w.gi) || m.ComputeInstanceID != int(w.ci) {
				t.Errorf("%s: index %d parent %q uuid %q gi %d ci %d; want gi %d ci %d", what, m.Index, m.ParentUUID, m.UUID, m.GPUInstanceID, m.ComputeInstanceID, w.gi, w.ci)
			}
			if m.MemoryTotalBytes == 0 || m.MemoryUsedBytes != uint64(k+1)<<20 || len(m.Errors) != 0 {
				t.Errorf("%s: memory %d/%d, errors %v", what, m.MemoryUsedBytes, m.MemoryTotalBytes, m.Errors)
			}
			if m.MIGProfile != w.migProfile || m.Profile != w.profile {
				t.Errorf("%s: MIG profile %q -> %q, want %q -> %q (match %q)", what, m.MIGProfile, m.Profile, w.migProfile, w.profile, m.Match)
			}
			checkMatch(t, what, m.Match, w.profile, w.exact, w.matchContain)
			if _, ok := cat.Get(m.Profile); !ok {
				t.Errorf("%s: profile %q not in the catalog", what, m.Profile)
			}
			if st, ok := inv.Find(m.UUID); !ok || !st.MIG || st.ParentUUID != d.UUID || st.Profile != w.profile {
				t.Errorf("%s: Find = %+v, %v", what, st, ok)
			}
		}
	}
	var buf bytes.Buffer
	if err := inv.WriteTable(&buf); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(buf.String(), "\n"); n != 2+8+countMIG(mig) {
		t.Errorf("table has %d lines, want %d:\n%s", n, 2+8+countMIG(mig), buf.String())
	}
	t.Logf("\n%s", buf.String())
	return inv
}

func countMIG(m map[int][]wantMIG) int {
	n := 0
	for _, v := range m {
		n += len(v)
	}
	return n
}

// TestMockDGXA100: 8 A100-SXM4-40GB. GPU 0 carries named MIG devices (name
// ends "MIG <profile>"); GPUs 1-3 carry unnamed ones whose profiles discovery
// rebuilds from the GPU and compute instance profiles; GPUs 4-7 are not in
// MIG mode. A100 40GB slices map to the a100-mig profile with the same
// compute, as nearest matches.
func TestMockDGXA100(t *testing.T) {
	s := dgxa100.New()
	dev := func(i int) *server.Device { return s.Devices[i].(*server.Device) }
	for i := range s.Devices {
		telemetry(dev(i), i, i < 4)
	}
	for i := 0; i < 4; i++ {
		enableMIG(t, dev(i))
	}
	carve(t, dev(0), nvml.GPU_INSTANCE_PROFILE_1_SLICE, nvml.COMPUTE_INSTANCE_PROFILE_1_SLICE)
	carve(t, dev(0), nvml.GPU_INSTANCE_PROFILE_1_SLICE, nvml.COMPUTE_INSTANCE_PROFILE_1_SLICE)
	carve(t, dev(0), nvml.GPU_INSTANCE_PROFILE_2_SLICE, nvml.COMPUTE_INSTANCE_PROFILE_2_SLICE)
	carve(t, dev(0), nvml.GPU_INSTANCE_PROFILE_3_SLICE, nvml.COMPUTE_INSTANCE_PROFILE_3_SLICE)
	exposeMIG(dev(0), map[uint32]string{
		nvml.GPU_INSTANCE_PROFILE_1_SLICE: "1g.5gb",
		nvml.GPU_INSTANCE_PROFILE_2_SLICE: "2g.10gb",
		nvml.GPU_INSTANCE_PROFILE_3_SLICE: "3g.20gb",
	})
	carve(t, dev(1), nvml.GPU_INSTANCE_PROFILE_4_SLICE, nvml.COMPUTE_INSTANCE_PROFILE_4_SLICE)
	carve(t, dev(1), nvml.GPU_INSTANCE_PROFILE_3_SLICE, nvml.COMPUTE_INSTANCE_PROFILE_1_SLICE, nvml.COMPUTE_INSTANCE_PROFILE_2_SLICE)
	exposeMIG(dev(1), nil)
	carve(t, dev(2), nvml.GPU_INSTANCE_PROFILE_7_SLICE, nvml.COMPUTE_INSTANCE_PROFILE_7_SLICE)
	exposeMIG(dev(2), nil)
	carve(t, dev(3), nvml.GPU_INSTANCE_PROFILE_1_SLICE_REV2, nvml.COMPUTE_INSTANCE_PROFILE_1_SLICE)
	carve(t, dev(3), nvml.GPU_INSTANCE_PROFILE_1_SLICE_REV1, nvml.COMPUTE_INSTANCE_PROFILE_1_SLICE)
	exposeMIG(dev(3), nil)
	readOnly(s)
	if d := dev(0); d.SetMigModeFunc != nil || d.CreateGpuInstanceFunc != nil || d.GetMigModeFunc == nil {
		t.Fatal("readOnly did not strip the write methods (or stripped a getter)")
	}

	const lessMem = "same SMs and clocks, less memory"
	inv := checkServer(t, s, "a100-sxm-80gb", false, lessMem, map[int][]wantMIG{
		0: {
			{0, 0, "1g.5gb", "a100-mig-1g.10gb", false, "same compute (1 of 7 slices), 5 vs 10 GB, on an A100 40GB"},
			{1, 0, "1g.5gb", "a100-mig-1g.10gb", false, "5 vs 10 GB"},
			{2, 0, "2g.10gb", "a100-mig-2g.20gb", false, "10 vs 20 GB"},
			{3, 0, "3g.20gb", "a100-mig-3g.40gb", false, "20 vs 40 GB"},
		},
		1: {
			{0, 0, "4g.20gb", "a100-mig-3g.40gb", false, "3 of its 4 compute slices"},
			{1, 0, "1c.3g.20gb", "a100-mig-1g.10gb", false, "compute instance of a 3g GPU instance"},
			{1, 1, "2c.3g.20gb", "a100-mig-2g.20gb", false, "compute instance of a 3g GPU instance"},
		},
		2: {{0, 0, "7g.40gb", "a100-mig-7g.80gb", false, "40 vs 80 GB"}},
		3: {
			{0, 0, "1g.10gb", "a100-mig-1g.10gb", false, "on an A100 40GB"},
			{1, 0, "1g.5gb+me", "a100-mig-1g.10gb", false, "5 vs 10 GB"},
		},
	})
	if g := inv.GPUs[0].MIG[0]; g.Name != "Mock NVIDIA A100-SXM4-40GB MIG 1g.5gb" || g.MemoryTotalBytes != 4864<<20 {
		t.Errorf("GPU 0 MIG 0: %q, %d bytes", g.Name, g.MemoryTotalBytes)
	}
	if st, ok := inv.Find(inv.GPUs[5].UUID); !ok || st.MIG || st.UtilGPUPct != 50 || st.MemoryUsedBytes != 6<<30 || st.Profile != "a100-sxm-80gb" {
		t.Errorf("Find(GPU 5) = %+v, %v", st, ok)
	}
}

// TestMockDGXH100: 8 H100 80GB HBM3; H100 slices map exactly, except 4g.40gb
// and 1g.20gb (nearest).
func TestMockDGXH100(t *testing.T) {
	s := dgxh100.New()
	dev := func(i int) *server.Device { return s.Devices[i].(*server.Device) }
	for i := range s.Devices {
		telemetry(dev(i), i, i < 3)
	}
	for i := 0; i < 3; i++ {
		enableMIG(t, dev(i))
	}
	carve(t, dev(0), nvml.GPU_INSTANCE_PROFILE_1_SLICE, nvml.COMPUTE_INSTANCE_PROFILE_1_SLICE)
	carve(t, dev(0), nvml.GPU_INSTANCE_PROFILE_1_SLICE_REV1, nvml.COMPUTE_INSTANCE_PROFILE_1_SLICE)
	carve(t, dev(0), nvml.GPU_INSTANCE_PROFILE_2_SLICE, nvml.COMPUTE_INSTANCE_PROFILE_2_SLICE)
	carve(t, dev(0), nvml.GPU_INSTANCE_PROFILE_3_SLICE, nvml.COMPUTE_INSTANCE_PROFILE_3_SLICE)
	exposeMIG(dev(0), nil)
	carve(t, dev(1), nvml.GPU_INSTANCE_PROFILE_7_SLICE, nvml.COMPUTE_INSTANCE_PROFILE_7_SLICE)
	exposeMIG(dev(1), map[uint32]string{nvml.GPU_INSTANCE_PROFILE_7_SLICE: "7g.80gb"})
	carve(t, dev(2), nvml.GPU_INSTANCE_PROFILE_4_SLICE, nvml.COMPUTE_INSTANCE_PROFILE_4_SLICE)
	carve(t, dev(2), nvml.GPU_INSTANCE_PROFILE_1_SLICE_REV2, nvml.COMPUTE_INSTANCE_PROFILE_1_SLICE)
	exposeMIG(dev(2), nil)
	readOnly(s)

	inv := checkServer(t, s, "h100-sxm-80gb", true, "", map[int][]wantMIG{
		0: {
			{0, 0, "1g.10gb", "h100-mig-1g.10gb", true, ""},
			{1, 0, "1g.10gb+me", "h100-mig-1g.10gb", true, ""},
			{2, 0, "2g.20gb", "h100-mig-2g.20gb", true, ""},
			{3, 0, "3g.40gb", "h100-mig-3g.40gb", true, ""},
		},
		1: {{0, 0, "7g.80gb", "h100-mig-7g.80gb", true, ""}},
		2: {
			{0, 0, "4g.40gb", "h100-mig-3g.40gb", false, "3g.40gb has 3 of its 4 compute slices"},
			{1, 0, "1g.20gb", "h100-mig-1g.10gb", false, "same compute (1 of 7 slices), 20 vs 10 GB"},
		},
	})
	if g := inv.GPUs[1].MIG[0]; g.Name != "NVIDIA H100 80GB HBM3 MIG 7g.80gb" || g.MemoryTotalBytes != 81920<<20 {
		t.Errorf("GPU 1 MIG 0: %q, %d bytes", g.Name, g.MemoryTotalBytes)
	}
}

// TestMockL4T4: GPUs without MIG (NVML says not supported) map to l4 and t4;
// a failing reading is recorded and the rest still read.
func TestMockL4T4(t *testing.T) {
	s, err := server.New(server.WithGPUs(
		gpus.Config{Name: "NVIDIA L4", MemoryMB: 23034},
		gpus.Config{Name: "Tesla T4", MemoryMB: 15360},
	), server.WithDriverVersion("550.54.15"))
	if err != nil {
		t.Fatal(err)
	}
	for i, dv := range s.Devices {
		d := dv.(*server.Device)
		telemetry(d, i, false)
		d.GetMigModeFunc = func() (int, int, nvml.Return) { return 0, 0, nvml.ERROR_NOT_SUPPORTED }
	}
	s.Devices[1].(*server.Device).GetPowerUsageFunc = func() (uint32, nvml.Return) { return 0, nvml.ERROR_UNKNOWN }
	readOnly(s)
	inv := Discover(s)
	if !inv.Available || len(inv.GPUs) != 2 {
		t.Fatalf("%+v", inv)
	}
	l4, t4 := inv.GPUs[0], inv.GPUs[1]
	if l4.Profile != "l4" || l4.Match != MatchExact || l4.MIGMode != MIGUnsupported || l4.UtilGPUPct != 0 || len(l4.Errors) != 0 {
		t.Errorf("L4: %+v", l4)
	}
	if t4.Profile != "t4" || t4.Match != MatchExact || t4.PowerDrawW != -1 || t4.PowerLimitW != 400 || t4.UtilGPUPct != 10 {
		t.Errorf("T4: %+v", t4)
	}
	if len(t4.Errors) != 1 || !strings.HasPrefix(t4.Errors[0], "power usage: ") {
		t.Errorf("T4 errors: %v", t4.Errors)
	}
}

// TestDiscoverInitFailure: Init failing is unavailability, not an error, and
// Shutdown is not called (the mock's ShutdownFunc is nil and would panic).
func TestDiscoverInitFailure(t *testing.T) {
	lib := &mock.Interface{InitFunc: func() nvml.Return { return nvml.ERROR_LIBRARY_NOT_FOUND }}
	inv := Discover(lib)
	want := Inventory{Reason: "NVML unavailable: ERROR_LIBRARY_NOT_FOUND"}
	if !reflect.DeepEqual(inv, want) {
		t.Errorf("Discover = %+v, want %+v", inv, want)
	}
	var buf bytes.Buffer
	if err := inv.WriteTable(&buf); err != nil || buf.String() != "NVML unavailable: ERROR_LIBRARY_NOT_FOUND\n" {
		t.Errorf("table = %q, %v", buf.String(), err)
	}
	if got := Discover(nil); got.Available || !strings.HasPrefix(got.Reason, UnavailablePrefix) {
		t.Errorf("Discover(nil) = %+v", got)
	}
}

// TestDiscoverShutdownAndPanic: Shutdown follows every successful Init, also
// when a mock method without a Func panics; the panic becomes the Reason.
func TestDiscoverShutdownAndPanic(t *testing.T) {
	s := dgxh100.New()
	var inits, shutdowns int
	s.InitFunc = func() nvml.Return { inits++; return nvml.SUCCESS }
	s.ShutdownFunc = func() nvml.Return { shutdowns++; return nvml.SUCCESS }
	inv := Discover(s) // GetUtilizationRates is not stubbed: the mock panics
	if inv.Available || !strings.Contains(inv.Reason, "GetUtilizationRates") || !strings.HasPrefix(inv.Reason, UnavailablePrefix) {
		t.Errorf("Discover with an unstubbed method = %+v", inv)
	}
	for i := range s.Devices {
		telemetry(s.Devices[i].(*server.Device), i, false)
	}
	if inv := Discover(s); !inv.Available {
		t.Errorf("Discover: %q", inv.Reason)
	}
	if inits != 2 || shutdowns != 2 {
		t.Errorf("%d Init, %d Shutdown; want 2 each", inits, shutdowns)
	}
}

// TestDiscoverLocalNVML runs the real go-nvml on this machine. Without
// libnvidia-ml.so (the CI machines) Init fails and DiscoverLocal reports
// unavailability without crashing; concurrent calls are serialised.
func TestDiscoverLocalNVML(t *testing.T) {
	var wg sync.WaitGroup
	invs := make([]Inventory, 4)
	for i := range invs {
		wg.Add(1)
		go func() { defer wg.Done(); invs[i] = DiscoverLocal() }()
	}
	wg.Wait()
	for _, inv := range invs {
		if inv.Available {
			t.Logf("NVML present: %d GPUs, driver %s", len(inv.GPUs), inv.DriverVersion)
			checkRealInventory(t, inv)
			continue
		}
		if !strings.HasPrefix(inv.Reason, UnavailablePrefix) || len(inv.GPUs) != 0 {
			t.Errorf("DiscoverLocal = %+v", inv)
		}
		t.Logf("DiscoverLocal: %s", inv.Reason)
	}
}

// checkRealInventory checks what must hold of any inventory read from a real
// driver (it runs only where NVML is present, as on a GPU machine): every
// device is identified, its memory is plausible, its catalog mapping is the
// one the mapping table gives for what NVML reported, and Find returns it.
func checkRealInventory(t *testing.T, inv Inventory) {
	t.Helper()
	if inv.DriverVersion == "" || inv.NVMLVersion == "" {
		t.Errorf("versions missing: driver %q NVML %q (errors %v)", inv.DriverVersion, inv.NVMLVersion, inv.Errors)
	}
	for _, g := range inv.GPUs {
		t.Logf("GPU %d: %s %s, %d/%d MiB, util %d%%, power %.0f/%.0f W, MIG %s (pending %s) -> %q (%s), errors %v",
			g.Index, g.Name, g.UUID, g.MemoryUsedBytes>>20, g.MemoryTotalBytes>>20, g.UtilGPUPct,
			g.PowerDrawW, g.PowerLimitW, g.MIGMode, g.MIGModePending, g.Profile, g.Match, g.Errors)
		if !strings.HasPrefix(g.UUID, "GPU-") || g.Name == "" {
			t.Errorf("GPU %d: name %q UUID %q", g.Index, g.Name, g.UUID)
		}
		if g.MemoryTotalBytes == 0 || g.MemoryUsedBytes > g.MemoryTotalBytes {
			t.Errorf("GPU %d: memory %d of %d bytes", g.Index, g.MemoryUsedBytes, g.MemoryTotalBytes)
		}
		switch g.MIGMode {
		case MIGEnabled, MIGDisabled, MIGUnsupported:
		default:
			t.Errorf("GPU %d: MIG mode %q", g.Index, g.MIGMode)
		}
		if p, m := MapGPU(g.Name, g.MemoryTotalBytes); p != g.Profile || m != g.Match {
			t.Errorf("GPU %d: mapped to %q (%s), MapGPU says %q (%s)", g.Index, g.Profile, g.Match, p, m)
		}
		if d, ok := inv.Find(g.UUID); !ok || d.MIG || d.MemoryTotalBytes != g.MemoryTotalBytes {
			t.Errorf("Find(%s) = %+v, %v", g.UUID, d, ok)
		}
		if g.MIGMode != MIGEnabled && len(g.MIG) != 0 {
			t.Errorf("GPU %d: %d MIG devices in MIG mode %q", g.Index, len(g.MIG), g.MIGMode)
		}
		for _, m := range g.MIG {
			t.Logf("  MIG %d: %s %s %s, GI %d CI %d, %d MiB -> %q (%s)", m.Index, m.Name, m.MIGProfile,
				m.UUID, m.GPUInstanceID, m.ComputeInstanceID, m.MemoryTotalBytes>>20, m.Profile, m.Match)
			if !strings.HasPrefix(m.UUID, "MIG-") || m.ParentUUID != g.UUID {
				t.Errorf("MIG %d of GPU %d: UUID %q parent %q", m.Index, g.Index, m.UUID, m.ParentUUID)
			}
			if _, ok := ParseMIGProfile(m.MIGProfile); !ok {
				t.Errorf("MIG %d of GPU %d: profile %q does not parse", m.Index, g.Index, m.MIGProfile)
			}
			if m.MemoryTotalBytes == 0 || m.MemoryTotalBytes > g.MemoryTotalBytes {
				t.Errorf("MIG %d of GPU %d: memory %d of the parent's %d", m.Index, g.Index, m.MemoryTotalBytes, g.MemoryTotalBytes)
			}
			if d, ok := inv.Find(m.UUID); !ok || !d.MIG || d.ParentUUID != g.UUID {
				t.Errorf("Find(%s) = %+v, %v", m.UUID, d, ok)
			}
		}
	}
}

// TestMemoryInfoV2 checks that memory comes from GetMemoryInfo_v2, whose Used
// leaves out the driver's reservation (as nvidia-smi reports it), and from
// v1 when v2 fails (an older driver) or is missing (a mock without it).
func TestMemoryInfoV2(t *testing.T) {
	const total, reserved, used = 80 << 30, 600 << 20, 2 << 30
	v1 := func() (nvml.Memory, nvml.Return) {
		return nvml.Memory{Total: total, Used: used + reserved, Free: total - used - reserved}, nvml.SUCCESS
	}
	name := func() (string, nvml.Return) { return "NVIDIA H100 80GB HBM3", nvml.SUCCESS }
	uuid := func() (string, nvml.Return) { return "GPU-1", nvml.SUCCESS }
	for _, tc := range []struct {
		what     string
		v2       func() (nvml.Memory_v2, nvml.Return)
		wantUsed uint64
	}{
		{"v2", func() (nvml.Memory_v2, nvml.Return) {
			return nvml.Memory_v2{Total: total, Reserved: reserved, Used: used, Free: total - used - reserved}, nvml.SUCCESS
		}, used},
		{"v2 not in this driver", func() (nvml.Memory_v2, nvml.Return) {
			return nvml.Memory_v2{}, nvml.ERROR_FUNCTION_NOT_FOUND
		}, used + reserved},
		{"mock without v2", nil, used + reserved},
	} {
		dev := &mock.Device{GetNameFunc: name, GetUUIDFunc: uuid, GetMemoryInfoFunc: v1, GetMemoryInfo_v2Func: tc.v2}
		_, _, gotTotal, gotUsed, errs := readIdentity(dev, nil)
		if gotTotal != total || gotUsed != tc.wantUsed || len(errs) != 0 {
			t.Errorf("%s: total %d used %d errs %v, want %d %d none", tc.what, gotTotal, gotUsed, errs, uint64(total), tc.wantUsed)
		}
	}
}
