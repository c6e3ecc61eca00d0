package nvmldisc

import (
	"strings"
	"testing"

	"github.com/accelgate/accelgate/backends/catalog"
)

func TestMapGPU(t *testing.T) {
	const g = 1 << 30
	for _, tc := range []struct {
		name     string
		mem      uint64
		profile  string
		exact    bool
		contains string
	}{
		{"NVIDIA H100 80GB HBM3", 81559 << 20, "h100-sxm-80gb", true, ""},
		{"NVIDIA H100 80GB HBM3", 0, "h100-sxm-80gb", true, ""}, // memory from the name
		{"NVIDIA H100 PCIe", 81559 << 20, "h100-sxm-80gb", false, "PCIe"},
		{"NVIDIA H100 NVL", 95830 << 20, "h100-sxm-80gb", false, "NVL"},
		{"NVIDIA H100", 64 * g, "h100-sxm-80gb", false, "other than 80 GB"},
		{"NVIDIA H200", 143771 << 20, "h100-sxm-80gb", false, "141 GB"},
		{"NVIDIA GH200 480GB", 97871 << 20, "h100-sxm-80gb", false, "Grace Hopper"},
		{"NVIDIA H800", 80 * g, "h100-sxm-80gb", false, "H800"},
		{"NVIDIA A100-SXM4-80GB", 81920 << 20, "a100-sxm-80gb", true, ""},
		{"NVIDIA A100-SXM4-40GB", 40536 << 20, "a100-sxm-80gb", false, "same SMs and clocks, less memory"},
		{"Mock NVIDIA A100-SXM4-40GB", 40960 << 20, "a100-sxm-80gb", false, "same SMs and clocks, less memory"},
		{"NVIDIA A100-SXM4-40GB", 0, "a100-sxm-80gb", false, "less memory"},
		{"NVIDIA A100-PCIE-40GB", 40 * g, "a100-sxm-80gb", false, "less memory"},
		{"NVIDIA A100 80GB PCIe", 80 * g, "a100-sxm-80gb", false, "PCIe"},
		{"NVIDIA L4", 23034 << 20, "l4", true, ""},
		{"Tesla T4", 15360 << 20, "t4", true, ""},
		{"NVIDIA L40S", 48 * g, "", false, MatchNone},
		{"NVIDIA A30", 24 * g, "", false, MatchNone},
		{"NVIDIA B200", 180 * g, "", false, MatchNone},
		{"", 0, "", false, MatchNone},
	} {
		p, m := MapGPU(tc.name, tc.mem)
		if p != tc.profile {
			t.Errorf("MapGPU(%q, %d) profile = %q, want %q (match %q)", tc.name, tc.mem, p, tc.profile, m)
		}
		checkMatch(t, "MapGPU("+tc.name+")", m, tc.profile, tc.exact, tc.contains)
	}
}

func TestMapMIG(t *testing.T) {
	const (
		h100  = "NVIDIA H100 80GB HBM3"
		a100  = "NVIDIA A100-SXM4-80GB"
		a1040 = "NVIDIA A100-SXM4-40GB"
	)
	for _, tc := range []struct {
		parent   string
		mem      uint64
		mig      string
		profile  string
		exact    bool
		contains string
	}{
		{h100, 81559 << 20, "1g.10gb", "h100-mig-1g.10gb", true, ""},
		{h100, 81559 << 20, "1g.10gb+me", "h100-mig-1g.10gb", true, ""},
		{h100, 81559 << 20, "1g.20gb", "h100-mig-1g.10gb", false, "20 vs 10 GB"},
		{h100, 81559 << 20, "2g.20gb", "h100-mig-2g.20gb", true, ""},
		{h100, 81559 << 20, "3g.40gb", "h100-mig-3g.40gb", true, ""},
		{h100, 81559 << 20, "4g.40gb", "h100-mig-3g.40gb", false, "3 of its 4 compute slices"},
		{h100, 81559 << 20, "7g.80gb", "h100-mig-7g.80gb", true, ""},
		{h100, 81559 << 20, "1c.3g.40gb", "h100-mig-1g.10gb", false, "compute instance of a 3g"},
		{"NVIDIA H200", 143771 << 20, "1g.18gb", "h100-mig-1g.10gb", false, "on an H200"},
		{"NVIDIA H100 NVL", 95830 << 20, "3g.47gb", "h100-mig-3g.40gb", false, "47 vs 40 GB"},
		{a100, 80 << 30, "1g.10gb", "a100-mig-1g.10gb", true, ""},
		{a100, 80 << 30, "2g.20gb", "a100-mig-2g.20gb", true, ""},
		{a100, 80 << 30, "3g.40gb", "a100-mig-3g.40gb", true, ""},
		{a100, 80 << 30, "7g.80gb", "a100-mig-7g.80gb", true, ""},
		{a1040, 40 << 30, "1g.5gb", "a100-mig-1g.10gb", false, "same compute (1 of 7 slices), 5 vs 10 GB, on an A100 40GB"},
		{a1040, 40 << 30, "2g.10gb", "a100-mig-2g.20gb", false, "10 vs 20 GB"},
		{a1040, 40 << 30, "3g.20gb", "a100-mig-3g.40gb", false, "20 vs 40 GB"},
		{a1040, 40 << 30, "4g.20gb", "a100-mig-3g.40gb", false, "3 of its 4 compute slices"},
		{a1040, 40 << 30, "7g.40gb", "a100-mig-7g.80gb", false, "40 vs 80 GB"},
		{a1040, 40 << 30, "1g.10gb", "a100-mig-1g.10gb", false, "on an A100 40GB"},
		{"NVIDIA A30", 24 << 30, "1g.6gb", "", false, "no catalog MIG profiles"},
		{"NVIDIA L4", 24 << 30, "1g.6gb", "", false, MatchNone},
		{h100, 81559 << 20, "garbage", "", false, "unrecognised MIG profile"},
		{"NVIDIA B200", 180 << 30, "1g.23gb", "", false, MatchNone},
	} {
		p, m := MapMIG(tc.parent, tc.mem, tc.mig)
		if p != tc.profile {
			t.Errorf("MapMIG(%q, %q) profile = %q, want %q (match %q)", tc.parent, tc.mig, p, tc.profile, m)
		}
		checkMatch(t, "MapMIG("+tc.parent+", "+tc.mig+")", m, tc.profile, tc.exact, tc.contains)
	}
}

// checkMatch checks a match note's form: exact, "nearest: ..." for a profile
// that is not exact, MatchNone... for no profile; and that it contains want.
func checkMatch(t *testing.T, what, m, profile string, exact bool, want string) {
	t.Helper()
	switch {
	case exact && m != MatchExact:
		t.Errorf("%s match = %q, want %q", what, m, MatchExact)
	case !exact && profile != "" && !strings.HasPrefix(m, "nearest: "):
		t.Errorf("%s match = %q, want a nearest note", what, m)
	case profile == "" && !strings.HasPrefix(m, MatchNone):
		t.Errorf("%s match = %q, want %q...", what, m, MatchNone)
	}
	if !strings.Contains(m, want) {
		t.Errorf("%s match = %q, want it to contain %q", what, m, want)
	}
}

// TestMapProfilesInCatalog: every profile the mapping can return exists in
// the embedded catalog, with the kind it should have.
func TestMapProfilesInCatalog(t *testing.T) {
	cat := catalog.Default()
	names := mappableProfiles()
	if len(names) != 12 {
		t.Errorf("mapping can return %d profiles, want 12 (2 H100/A100 cards, 8 MIG slices, L4, T4): %v", len(names), names)
	}
	for _, n := range names {
		p, ok := cat.Get(n)
		if !ok {
			t.Errorf("mapping returns %q, which is not in the catalog (%v)", n, cat.Names())
			continue
		}
		wantKind := "gpu"
		if strings.Contains(n, "-mig-") {
			wantKind = "mig"
		}
		if string(p.Kind) != wantKind {
			t.Errorf("catalog profile %q has kind %q, want %q", n, p.Kind, wantKind)
		}
	}
}

func TestMapParseMIGProfile(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want MIGShape
		ok   bool
	}{
		{"1g.10gb", MIGShape{ComputeSlices: 1, GPUSlices: 1, MemoryGB: 10}, true},
		{"1g.10gb+me", MIGShape{ComputeSlices: 1, GPUSlices: 1, MemoryGB: 10, Attributes: "+me"}, true},
		{"1g.18gb+me.all", MIGShape{ComputeSlices: 1, GPUSlices: 1, MemoryGB: 18, Attributes: "+me.all"}, true},
		{"1g.12gb-me", MIGShape{ComputeSlices: 1, GPUSlices: 1, MemoryGB: 12, Attributes: "-me"}, true},
		{"1c.3g.20gb", MIGShape{ComputeSlices: 1, GPUSlices: 3, MemoryGB: 20, SharedGPUInstance: true}, true},
		{"3c.3g.20gb", MIGShape{ComputeSlices: 3, GPUSlices: 3, MemoryGB: 20}, true},
		{" 7G.80GB ", MIGShape{ComputeSlices: 7, GPUSlices: 7, MemoryGB: 80}, true},
		{"4c.3g.20gb", MIGShape{}, false},
		{"0g.5gb", MIGShape{}, false},
		{"1g", MIGShape{}, false},
		{"", MIGShape{}, false},
	} {
		got, ok := ParseMIGProfile(tc.in)
		if ok != tc.ok || got != tc.want {
			t.Errorf("ParseMIGProfile(%q) = %+v, %v; want %+v, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestMapMIGNaming(t *testing.T) {
	const a40, h80 = 40960 << 20, 81920 << 20
	for _, tc := range []struct {
		memMB, parent uint64
		want          int
	}{
		{4864, a40, 5}, {9856, a40, 10}, {19968, a40, 20}, {40192, a40, 40},
		{10240, h80, 10}, {20480, h80, 20}, {40960, h80, 40}, {81920, h80, 80},
		{9856, 80 << 30, 10}, {19968, 80 << 30, 20}, {40192, 80 << 30, 40}, {80384, 80 << 30, 80}, // A100 80GB
		{4864, 0, 5},
	} {
		if got := migMemoryGB(tc.memMB, tc.parent); got != tc.want {
			t.Errorf("migMemoryGB(%d MiB, %d) = %d, want %d", tc.memMB, tc.parent, got, tc.want)
		}
	}
	if got := formatMIGProfile(1, 3, 20, ""); got != "1c.3g.20gb" {
		t.Errorf("formatMIGProfile(1, 3, 20) = %q", got)
	}
	if got := formatMIGProfile(1, 1, 10, "+me"); got != "1g.10gb+me" {
		t.Errorf("formatMIGProfile(1, 1, 10, +me) = %q", got)
	}
	for name, want := range map[string]string{
		"NVIDIA A100-SXM4-40GB MIG 1g.5gb":     "1g.5gb",
		"NVIDIA H100 80GB HBM3 MIG 1c.3g.40gb": "1c.3g.40gb",
		"NVIDIA H100 80GB HBM3":                "",
		"NVIDIA A100 MIG nonsense":             "",
	} {
		if got := migProfileFromName(name); got != want {
			t.Errorf("migProfileFromName(%q) = %q, want %q", name, got, want)
		}
	}
}
