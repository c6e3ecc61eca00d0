package nvmldisc

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/accelgate/accelgate/backends/fakeclock"
)

// sampleInventory is a hand-built inventory: an H100 in MIG mode with two
// slices and an L4.
func sampleInventory() Inventory {
	return Inventory{
		Available:         true,
		DriverVersion:     "550.54.15",
		NVMLVersion:       "12.550.54.15",
		CUDADriverVersion: 12040,
		GPUs: []GPU{
			{
				Index: 0, Name: "NVIDIA H100 80GB HBM3", UUID: "GPU-aaaa",
				MemoryTotalBytes: 80 << 30, MemoryUsedBytes: 12 << 30,
				UtilGPUPct: -1, UtilMemoryPct: -1, PowerDrawW: 312.5, PowerLimitW: 700,
				MIGMode: MIGEnabled, MIGModePending: MIGEnabled,
				Profile: "h100-sxm-80gb", Match: MatchExact,
				MIG: []MIGDevice{
					{Index: 0, Name: "NVIDIA H100 80GB HBM3 MIG 1g.10gb", MIGProfile: "1g.10gb", UUID: "MIG-1111",
						ParentUUID: "GPU-aaaa", GPUInstanceID: 9, ComputeInstanceID: 0,
						MemoryTotalBytes: 10 << 30, MemoryUsedBytes: 3 << 30,
						Profile: "h100-mig-1g.10gb", Match: MatchExact},
					{Index: 1, Name: "NVIDIA H100 80GB HBM3 MIG 4g.40gb", MIGProfile: "4g.40gb", UUID: "MIG-2222",
						ParentUUID: "GPU-aaaa", GPUInstanceID: 2, ComputeInstanceID: 0,
						MemoryTotalBytes: 40 << 30, MemoryUsedBytes: 1 << 30,
						Profile: "h100-mig-3g.40gb", Match: "nearest: 3g.40gb has 3 of its 4 compute slices",
						Errors: []string{"something: ERROR_UNKNOWN"}},
				},
			},
			{
				Index: 1, Name: "NVIDIA L4", UUID: "GPU-bbbb",
				MemoryTotalBytes: 24 << 30, MemoryUsedBytes: 0,
				UtilGPUPct: 37, UtilMemoryPct: 12, PowerDrawW: 40, PowerLimitW: 72,
				MIGMode: MIGUnsupported, MIGModePending: MIGUnsupported,
				Profile: "l4", Match: MatchExact,
			},
		},
	}
}

func TestInventoryJSONRoundTrip(t *testing.T) {
	for _, inv := range []Inventory{
		sampleInventory(),
		{Reason: UnavailablePrefix + "ERROR_LIBRARY_NOT_FOUND"},
	} {
		var buf bytes.Buffer
		if err := inv.WriteJSON(&buf); err != nil {
			t.Fatal(err)
		}
		var got Inventory
		if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
			t.Fatalf("%v\n%s", err, buf.String())
		}
		if !reflect.DeepEqual(got, inv) {
			t.Errorf("round trip changed the inventory:\n got %+v\nwant %+v", got, inv)
		}
	}
	var buf bytes.Buffer
	sampleInventory().WriteJSON(&buf)
	for _, key := range []string{`"available": true`, `"driver_version"`, `"nvml_version"`, `"cuda_driver_version": 12040`,
		`"memory_total_bytes"`, `"memory_used_bytes"`, `"util_gpu_pct": -1`, `"util_memory_pct"`, `"power_draw_w"`,
		`"power_limit_w"`, `"mig_mode": "enabled"`, `"mig_mode_pending"`, `"mig_profile": "1g.10gb"`,
		`"parent_uuid": "GPU-aaaa"`, `"gpu_instance_id": 9`, `"compute_instance_id"`, `"profile": "h100-mig-1g.10gb"`, `"match"`} {
		if !strings.Contains(buf.String(), key) {
			t.Errorf("JSON lacks %s:\n%s", key, buf.String())
		}
	}
}

func TestInventoryTableUnavailable(t *testing.T) {
	for reason, want := range map[string]string{
		UnavailablePrefix + "ERROR_LIBRARY_NOT_FOUND": "NVML unavailable: ERROR_LIBRARY_NOT_FOUND\n",
		"built without cgo":                           "NVML unavailable: built without cgo\n",
		"":                                            "NVML unavailable: unknown reason\n",
	} {
		var buf bytes.Buffer
		if err := (Inventory{Reason: reason}).WriteTable(&buf); err != nil {
			t.Fatal(err)
		}
		if buf.String() != want {
			t.Errorf("WriteTable(reason %q) = %q, want %q", reason, buf.String(), want)
		}
	}
}

func TestInventoryTable(t *testing.T) {
	var buf bytes.Buffer
	if err := sampleInventory().WriteTable(&buf); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) != 7 { // summary, header, GPU, 2 MIG, GPU, error
		t.Fatalf("got %d lines, want 7:\n%s", len(lines), out)
	}
	if lines[0] != "NVML 12.550.54.15, driver 550.54.15, CUDA 12.4: 2 GPU(s)" {
		t.Errorf("summary = %q", lines[0])
	}
	// Columns line up: each row's UUID and PROFILE start where the header's do.
	header := lines[1]
	for _, col := range []struct{ name, gpu0, mig0, mig1, gpu1 string }{
		{"UUID", "GPU-aaaa", "MIG-1111", "MIG-2222", "GPU-bbbb"},
		{"PROFILE", "h100-sxm-80gb", "h100-mig-1g.10gb", "h100-mig-3g.40gb", "l4"},
	} {
		at := strings.LastIndex(header, " "+col.name+" ") + 1
		for i, v := range []string{col.gpu0, col.mig0, col.mig1, col.gpu1} {
			if got := strings.Index(lines[2+i], " "+v) + 1; got != at {
				t.Errorf("row %d: %s at column %d, header %s at %d:\n%s", i, v, got, col.name, at, out)
			}
		}
	}
	for i, want := range []string{
		"0  ", "  0:0  ", "  0:1  ", "1  ",
	} {
		if !strings.HasPrefix(lines[2+i], want) {
			t.Errorf("row %d = %q, want prefix %q", i, lines[2+i], want)
		}
	}
	for _, want := range []string{"MIG 1g.10gb (gi 9, ci 0)", "12.0/80.0 GiB", "312/700 W", "enabled/enabled",
		"37%/12%", "unsupported/unsupported", "nearest: 3g.40gb has 3 of its 4 compute slices", "exact"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	if lines[6] != "error: GPU 0 MIG 1: something: ERROR_UNKNOWN" {
		t.Errorf("error line = %q", lines[6])
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestInventoryWriteErrors(t *testing.T) {
	if err := sampleInventory().WriteTable(failWriter{}); err == nil || err.Error() != "disk full" {
		t.Errorf("WriteTable to a failing writer = %v, want disk full", err)
	}
	if err := (Inventory{}).WriteTable(failWriter{}); err == nil {
		t.Error("WriteTable (unavailable) to a failing writer: no error")
	}
	if err := sampleInventory().WriteJSON(failWriter{}); err == nil {
		t.Error("WriteJSON to a failing writer: no error")
	}
}

func TestInventoryFind(t *testing.T) {
	inv := sampleInventory()
	s, ok := inv.Find("GPU-bbbb")
	want := DeviceStats{UUID: "GPU-bbbb", Name: "NVIDIA L4", Profile: "l4", Match: MatchExact,
		MemoryTotalBytes: 24 << 30, UtilGPUPct: 37, UtilMemoryPct: 12, PowerDrawW: 40}
	if !ok || s != want {
		t.Errorf("Find(GPU-bbbb) = %+v, %v; want %+v", s, ok, want)
	}
	s, ok = inv.Find(" mig-1111 ")
	want = DeviceStats{UUID: "MIG-1111", ParentUUID: "GPU-aaaa", MIG: true, Name: "NVIDIA H100 80GB HBM3 MIG 1g.10gb",
		Profile: "h100-mig-1g.10gb", Match: MatchExact, MemoryUsedBytes: 3 << 30, MemoryTotalBytes: 10 << 30,
		UtilGPUPct: -1, UtilMemoryPct: -1, PowerDrawW: -1}
	if !ok || s != want {
		t.Errorf("Find(mig-1111) = %+v, %v; want %+v", s, ok, want)
	}
	for _, u := range []string{"", "GPU-cccc", "MIG"} {
		if _, ok := inv.Find(u); ok {
			t.Errorf("Find(%q) found something", u)
		}
	}
}

func TestHandler(t *testing.T) {
	var calls atomic.Int32
	h := NewHandler(func() Inventory { calls.Add(1); return sampleInventory() })

	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/admin/accelerators", nil))
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("GET: %d %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	var got Inventory
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil || !reflect.DeepEqual(got, sampleInventory()) {
		t.Errorf("GET body: %v\n%s", err, rec.Body.String())
	}

	for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete} {
		rec = httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(m, "/admin/accelerators", strings.NewReader("{}")))
		var body map[string]string
		if rec.Code != http.StatusMethodNotAllowed || rec.Header().Get("Allow") != "GET, HEAD" {
			t.Errorf("%s: %d, Allow %q", m, rec.Code, rec.Header().Get("Allow"))
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || !strings.Contains(body["error"], "not allowed") {
			t.Errorf("%s body: %v %q", m, err, rec.Body.String())
		}
	}

	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodHead, "/admin/accelerators", nil))
	if rec.Code != http.StatusOK || rec.Body.Len() != 0 {
		t.Errorf("HEAD: %d, %d body bytes", rec.Code, rec.Body.Len())
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("discover ran %d times, want 1 (GET only)", n)
	}
}

// TestHandlerLocal: the default handler discovers on this machine; whatever
// it finds, GET answers 200 with an inventory.
func TestHandlerLocal(t *testing.T) {
	rec := httptest.NewRecorder()
	Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	var got Inventory
	if rec.Code != http.StatusOK {
		t.Fatalf("GET: %d", rec.Code)
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatalf("%v\n%s", err, rec.Body.String())
	}
	if !got.Available && !strings.HasPrefix(got.Reason, UnavailablePrefix) {
		t.Errorf("unavailable without a reason: %+v", got)
	}
}

func TestInventoryPoller(t *testing.T) {
	start := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	clk := fakeclock.New(start)
	var n atomic.Int32
	discover := func() Inventory {
		inv := sampleInventory()
		inv.GPUs[1].UtilGPUPct = int(n.Add(1))
		return inv
	}
	p := NewPoller(discover, 5*time.Second, clk)
	if _, ok := p.Find("GPU-bbbb"); ok || !p.Updated().IsZero() {
		t.Fatal("a poller found a device before Start")
	}
	p.Start()
	p.Start() // no second loop
	if s, ok := p.Find("GPU-bbbb"); !ok || s.UtilGPUPct != 1 || !p.Updated().Equal(start) {
		t.Fatalf("after Start: %+v %v, updated %v", s, ok, p.Updated())
	}
	clk.Advance(5*time.Second - time.Nanosecond)
	if got := n.Load(); got != 1 {
		t.Fatalf("discovered %d times before the interval passed", got)
	}
	clk.Advance(time.Nanosecond)
	clk.Advance(5 * time.Second)
	if s, _ := p.Find("GPU-bbbb"); s.UtilGPUPct != 3 || !p.Updated().Equal(start.Add(10*time.Second)) {
		t.Errorf("after 10 s: util %d (want 3), updated %v", s.UtilGPUPct, p.Updated())
	}
	p.Stop()
	clk.Advance(time.Minute)
	if got := n.Load(); got != 3 {
		t.Errorf("discovered %d times, want 3 (none after Stop)", got)
	}
	if clk.Pending() != 0 {
		t.Errorf("%d callbacks pending after Stop", clk.Pending())
	}
	if got := p.Inventory(); !got.Available || got.GPUs[1].UtilGPUPct != 3 {
		t.Errorf("inventory after Stop: %+v", got)
	}
	// The Poller's Inventory method serves a handler without discovering.
	rec := httptest.NewRecorder()
	NewHandler(p.Inventory).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	if rec.Code != http.StatusOK || n.Load() != 3 {
		t.Errorf("handler over a poller: %d, %d discoveries", rec.Code, n.Load())
	}
}
