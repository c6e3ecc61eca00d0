package nvmldisc

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
)

// Match notes. Every mapping result carries one: MatchExact, MatchNone (or
// MatchNone followed by ": <why>"), or "nearest: <why>" naming what differs
// between the hardware found and the catalog profile it was mapped to.
const (
	// MatchExact means the catalog profile describes this hardware.
	MatchExact = "exact"
	// MatchNone means no catalog profile describes this hardware; the
	// profile name is then "".
	MatchNone = "no matching profile"
	// matchNearest prefixes a nearest match's reason.
	matchNearest = "nearest: "
)

// gpuRule maps a whole GPU to a catalog profile.
//
// A rule applies when every token in all appears among the product name's
// tokens (the name upper-cased and split at spaces, hyphens and underscores,
// so "L4" does not match "L40S") and the GPU's total memory in GiB lies in
// [minGiB, maxGiB) (0 means unbounded). When NVML did not report the memory,
// a "<n>GB" token of the name stands in; with neither, memory bounds are
// ignored. The first rule that applies wins, so more specific rules come first.
type gpuRule struct {
	all            []string
	minGiB, maxGiB float64
	profile        string
	match          string
	// label names the hardware in MIG notes ("A100 40GB").
	label string
	// mig is the catalog MIG profile family its MIG slices map to
	// ("h100-mig-", "a100-mig-"), or "" when the catalog has none.
	mig string
}

// gpuRules is the GPU mapping table. Summary (first match wins):
//
//	product name tokens   memory     profile         match
//	GH200                 any        h100-sxm-80gb   nearest: Grace Hopper, H100/H200-class GPU with 96-144 GB
//	H200                  any        h100-sxm-80gb   nearest: same Hopper SMs, 141 GB at 4.8 vs 3.35 TB/s
//	H100 NVL              any        h100-sxm-80gb   nearest: 94 GB at 3.9 TB/s, lower clocks
//	H100 PCIe             any        h100-sxm-80gb   nearest: 114 of 132 SMs, 2.0 TB/s HBM2e
//	H100                  72-88 GiB  h100-sxm-80gb   exact (H100 SXM5 80GB HBM3)
//	H100                  other      h100-sxm-80gb   nearest: other H100 memory size
//	H800                  any        h100-sxm-80gb   nearest: export H100, same SMs, less NVLink
//	A100 PCIe             >= 72 GiB  a100-sxm-80gb   nearest: same SMs, 300 vs 400 W
//	A100                  >= 72 GiB  a100-sxm-80gb   exact (A100 SXM4 80GB)
//	A100                  < 72 GiB   a100-sxm-80gb   nearest: same SMs and clocks, less memory (40 GB)
//	A800                  any        a100-sxm-80gb   nearest: export A100, same SMs, less NVLink
//	L4                    any        l4              exact
//	T4                    any        t4              exact
//	anything else                    ""              no matching profile
//
// MIG slices of the Hopper rows map to h100-mig-*, of the Ampere rows to
// a100-mig-* (see MapMIG); L4 and T4 have no MIG.
var gpuRules = []gpuRule{
	{all: []string{"GH200"}, profile: "h100-sxm-80gb", label: "GH200", mig: "h100-mig-",
		match: "nearest: Grace Hopper GH200, an H100/H200-class GPU with 96-144 GB of faster memory; decode runs faster than predicted"},
	{all: []string{"H200"}, profile: "h100-sxm-80gb", label: "H200", mig: "h100-mig-",
		match: "nearest: same Hopper SMs as the H100 SXM; 141 GB HBM3e at 4.8 vs 3.35 TB/s, so memory-bound decode runs faster than predicted"},
	{all: []string{"H100", "NVL"}, profile: "h100-sxm-80gb", label: "H100 NVL", mig: "h100-mig-",
		match: "nearest: H100 NVL, 94 GB at 3.9 TB/s with lower clocks (400 W)"},
	{all: []string{"H100", "PCIE"}, profile: "h100-sxm-80gb", label: "H100 PCIe", mig: "h100-mig-",
		match: "nearest: H100 PCIe, 114 of 132 SMs and 2.0 vs 3.35 TB/s; runs slower than predicted"},
	{all: []string{"H100"}, minGiB: 72, maxGiB: 88, profile: "h100-sxm-80gb", label: "H100 80GB", mig: "h100-mig-",
		match: MatchExact},
	{all: []string{"H100"}, profile: "h100-sxm-80gb", label: "H100", mig: "h100-mig-",
		match: "nearest: an H100 with other than 80 GB of memory"},
	{all: []string{"H800"}, profile: "h100-sxm-80gb", label: "H800", mig: "h100-mig-",
		match: "nearest: H800 (export H100), same SMs and HBM3, reduced NVLink"},
	{all: []string{"A100", "PCIE"}, minGiB: 72, profile: "a100-sxm-80gb", label: "A100 80GB PCIe", mig: "a100-mig-",
		match: "nearest: A100 80GB PCIe, same SMs, 300 vs 400 W and 1.9 vs 2.0 TB/s"},
	{all: []string{"A100"}, minGiB: 72, profile: "a100-sxm-80gb", label: "A100 80GB", mig: "a100-mig-",
		match: MatchExact},
	{all: []string{"A100"}, maxGiB: 72, profile: "a100-sxm-80gb", label: "A100 40GB", mig: "a100-mig-",
		match: "nearest: same SMs and clocks, less memory (40 vs 80 GB, 1.6 vs 2.0 TB/s)"},
	{all: []string{"A800"}, profile: "a100-sxm-80gb", label: "A800", mig: "a100-mig-",
		match: "nearest: A800 (export A100), same SMs, reduced NVLink"},
	{all: []string{"L4"}, profile: "l4", label: "L4", match: MatchExact},
	{all: []string{"T4"}, profile: "t4", label: "T4", match: MatchExact},
}

// migShapes are the catalog's MIG profiles by compute slices (of 7), the same
// for the h100-mig- and a100-mig- families: the catalog has 1g.10gb, 2g.20gb,
// 3g.40gb and 7g.80gb slices of an 80 GB card.
var migShapes = map[int]struct {
	suffix string
	gb     int
}{
	1: {"1g.10gb", 10},
	2: {"2g.20gb", 20},
	3: {"3g.40gb", 40},
	7: {"7g.80gb", 80},
}

// migProfileRE matches an NVML MIG profile name: an optional compute instance
// part "<c>c.", then "<g>g.<mem>gb", then attributes such as "+me",
// "+me.all", "+gfx" or "-me".
var migProfileRE = regexp.MustCompile(`^(?:([0-9]+)c\.)?([0-9]+)g\.([0-9]+)gb((?:[+-][a-z0-9.]+)*)$`)

// MIGShape is a parsed MIG profile name such as "1g.10gb" or "1c.3g.20gb".
type MIGShape struct {
	// ComputeSlices is the compute instance's share of the GPU's 7 compute
	// slices: the "c" count when the name has one, else GPUSlices.
	ComputeSlices int
	// GPUSlices is the GPU instance's compute slices (the "g" count).
	GPUSlices int
	// MemoryGB is the GPU instance's memory (the "gb" number); compute
	// instances of one GPU instance share it.
	MemoryGB int
	// Attributes is the suffix after the memory, e.g. "+me"; "" if none.
	Attributes string
	// SharedGPUInstance is true for a compute instance smaller than its GPU
	// instance (a name with a "c" part that differs from the "g" part).
	SharedGPUInstance bool
}

// ParseMIGProfile parses an NVML MIG profile name ("1g.10gb", "1g.10gb+me",
// "1c.3g.20gb"). It reports false for anything else.
func ParseMIGProfile(s string) (MIGShape, bool) {
	m := migProfileRE.FindStringSubmatch(strings.ToLower(strings.TrimSpace(s)))
	if m == nil {
		return MIGShape{}, false
	}
	g, err1 := strconv.Atoi(m[2])
	mem, err2 := strconv.Atoi(m[3])
	if err1 != nil || err2 != nil || g <= 0 {
		return MIGShape{}, false
	}
	sh := MIGShape{ComputeSlices: g, GPUSlices: g, MemoryGB: mem, Attributes: m[4]}
	if m[1] != "" {
		c, err := strconv.Atoi(m[1])
		if err != nil || c <= 0 || c > g {
			return MIGShape{}, false
		}
		sh.ComputeSlices = c
		sh.SharedGPUInstance = c != g
	}
	return sh, true
}

// MapGPU maps a whole GPU, by NVML product name and total memory in bytes (0
// if unknown), to a catalog profile name and a match note (MatchExact,
// "nearest: <why>", or MatchNone with profile ""). The table is gpuRules.
func MapGPU(name string, memoryTotalBytes uint64) (profile, match string) {
	r := findRule(name, memoryTotalBytes)
	if r == nil {
		return "", MatchNone
	}
	return r.profile, r.match
}

// MapMIG maps a MIG device to a catalog profile, given its parent GPU's NVML
// product name and total memory in bytes (0 if unknown) and its MIG profile
// name ("1g.10gb", "1c.3g.20gb").
//
// The parent's row of the GPU table picks the family (h100-mig- for Hopper
// GPUs, a100-mig- for A100/A800); within it the slice maps to the catalog
// profile with the same compute: the same number of compute slices out of 7,
// which fixes the SM count and so the compute speed. The catalog has 1g, 2g,
// 3g and 7g slices; a 4g slice maps to 3g.40gb (the same 40 GB on an 80 GB
// card; 3 of its 4 compute slices, so predictions are conservative rather than
// optimistic). A compute instance "<c>c.<g>g.<n>gb" maps by its own c slices.
// The match is MatchExact only when the parent is an exact match (H100 SXM
// 80GB, A100 SXM 80GB) and the slice has the catalog's compute and memory;
// otherwise it is "nearest: " and every difference: compute, memory (for
// example an A100 40GB 1g.5gb: same compute, 5 vs 10 GB), parent card.
//
//	parent             MIG profile          catalog profile      match
//	H100 80GB          1g.10gb (+me)        h100-mig-1g.10gb     exact
//	H100 80GB          1g.20gb              h100-mig-1g.10gb     nearest: same compute, 20 vs 10 GB
//	H100 80GB          2g.20gb              h100-mig-2g.20gb     exact
//	H100 80GB          3g.40gb              h100-mig-3g.40gb     exact
//	H100 80GB          4g.40gb              h100-mig-3g.40gb     nearest: 3 of its 4 compute slices
//	H100 80GB          7g.80gb              h100-mig-7g.80gb     exact
//	A100 80GB          1g.10gb/2g.20gb/3g.40gb/7g.80gb  a100-mig-<same>  exact
//	A100 40GB          1g.5gb               a100-mig-1g.10gb     nearest: same compute, 5 vs 10 GB
//	A100 40GB          2g.10gb              a100-mig-2g.20gb     nearest: same compute, 10 vs 20 GB
//	A100 40GB          3g.20gb              a100-mig-3g.40gb     nearest: same compute, 20 vs 40 GB
//	A100 40GB          4g.20gb              a100-mig-3g.40gb     nearest: 3 of 4 compute slices, 20 vs 40 GB
//	A100 40GB          7g.40gb              a100-mig-7g.80gb     nearest: same compute, 40 vs 80 GB
//	H200, H100 NVL/PCIe, GH200, H800: h100-mig- by compute slices, nearest
//	A30, B200, anything else: "", no matching profile
func MapMIG(parentName string, parentMemoryBytes uint64, migProfile string) (profile, match string) {
	r := findRule(parentName, parentMemoryBytes)
	if r == nil || r.mig == "" {
		return "", MatchNone + ": no catalog MIG profiles for " + quoteName(parentName)
	}
	sh, ok := ParseMIGProfile(migProfile)
	if !ok {
		return "", fmt.Sprintf("%s: unrecognised MIG profile %q", MatchNone, migProfile)
	}
	slices := sh.ComputeSlices
	target := slices
	if target == 4 {
		target = 3
	}
	shape, ok := migShapes[target]
	if !ok {
		return "", fmt.Sprintf("%s: no catalog MIG profile with %d compute slices", MatchNone, slices)
	}
	var why []string
	switch {
	case slices != target:
		why = append(why, fmt.Sprintf("%s has %d of its %d compute slices (no %dg profile), so predictions are conservative", shape.suffix, target, slices, slices))
	default:
		why = append(why, fmt.Sprintf("same compute (%d of 7 slices)", slices))
	}
	exact := r.match == MatchExact && slices == target && !sh.SharedGPUInstance
	if sh.SharedGPUInstance {
		why = append(why, fmt.Sprintf("a compute instance of a %dg GPU instance, sharing its %d GB", sh.GPUSlices, sh.MemoryGB))
	} else if sh.MemoryGB != shape.gb {
		why = append(why, fmt.Sprintf("%d vs %d GB", sh.MemoryGB, shape.gb))
		exact = false
	}
	if r.match != MatchExact {
		why = append(why, "on an "+r.label)
	}
	if exact {
		return r.mig + shape.suffix, MatchExact
	}
	return r.mig + shape.suffix, matchNearest + strings.Join(why, ", ")
}

// mappableProfiles lists every profile name MapGPU and MapMIG can return
// (the tests check each exists in the catalog).
func mappableProfiles() []string {
	seen := map[string]bool{}
	var out []string
	add := func(p string) {
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	for _, r := range gpuRules {
		add(r.profile)
		if r.mig != "" {
			for _, s := range migShapes {
				add(r.mig + s.suffix)
			}
		}
	}
	return out
}

// findRule returns the first rule of gpuRules that applies, or nil.
func findRule(name string, memoryTotalBytes uint64) *gpuRule {
	toks := nameTokens(name)
	gib := float64(memoryTotalBytes) / gib
	if memoryTotalBytes == 0 {
		gib = memoryFromName(toks)
	}
	for i := range gpuRules {
		r := &gpuRules[i]
		if !hasAll(toks, r.all) {
			continue
		}
		if gib > 0 && ((r.minGiB > 0 && gib < r.minGiB) || (r.maxGiB > 0 && gib >= r.maxGiB)) {
			continue
		}
		return r
	}
	return nil
}

// nameTokens upper-cases name and splits it at spaces, hyphens and
// underscores: "NVIDIA A100-SXM4-40GB" -> NVIDIA, A100, SXM4, 40GB.
func nameTokens(name string) []string {
	return strings.FieldsFunc(strings.ToUpper(name), func(r rune) bool {
		return r == ' ' || r == '-' || r == '_' || r == '\t'
	})
}

func hasAll(toks, want []string) bool {
	for _, w := range want {
		found := false
		for _, t := range toks {
			if t == w {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// memoryFromName reads a "<n>GB" token ("80GB"), or returns 0.
func memoryFromName(toks []string) float64 {
	for _, t := range toks {
		if n, ok := strings.CutSuffix(t, "GB"); ok {
			if v, err := strconv.Atoi(n); err == nil && v > 0 {
				return float64(v)
			}
		}
	}
	return 0
}

func quoteName(s string) string {
	if s == "" {
		return "an unnamed GPU"
	}
	return strconv.Quote(s)
}

// gib is one GiB in bytes.
const gib = 1 << 30

// migMemoryGB is the "<n>gb" of a MIG profile name for a GPU instance of
// memMB MiB on a GPU with parentTotalBytes of memory, computed as nvidia-smi
// and go-nvlib do: the fraction of the card rounded up to eighths, times the
// card's memory rounded up to whole GiB. With the parent's memory unknown it
// is memMB rounded to whole GiB. (A100 40GB: 4864 MiB -> 5; H100 80GB:
// 10240 MiB -> 10.)
func migMemoryGB(memMB uint64, parentTotalBytes uint64) int {
	if parentTotalBytes == 0 {
		return int(math.Round(float64(memMB) / 1024))
	}
	frac := float64(memMB) * (1 << 20) / float64(parentTotalBytes)
	frac = math.Ceil(frac*8) / 8
	totalGB := float64((parentTotalBytes + gib - 1) / gib)
	return int(math.Round(frac * totalGB))
}

// formatMIGProfile builds a MIG profile name: "<g>g.<mem>gb<attrs>", with a
// "<c>c." prefix for a compute instance smaller than its GPU instance.
func formatMIGProfile(ciSlices, giSlices, memGB int, attrs string) string {
	s := fmt.Sprintf("%dg.%dgb%s", giSlices, memGB, attrs)
	if ciSlices > 0 && ciSlices != giSlices {
		s = fmt.Sprintf("%dc.%s", ciSlices, s)
	}
	return s
}

// migProfileFromName returns the MIG profile a MIG device's NVML name ends
// with ("NVIDIA A100-SXM4-40GB MIG 1g.5gb" -> "1g.5gb"), or "" if it has none.
func migProfileFromName(name string) string {
	i := strings.LastIndex(name, "MIG ")
	if i < 0 {
		return ""
	}
	p := strings.TrimSpace(name[i+len("MIG "):])
	if _, ok := ParseMIGProfile(p); !ok {
		return ""
	}
	return p
}
