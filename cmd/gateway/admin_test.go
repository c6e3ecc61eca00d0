package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/accelgate/accelgate/backends/catalog"
	"github.com/accelgate/accelgate/backends/fakeclock"
	"github.com/accelgate/accelgate/backends/fleet"
	"github.com/accelgate/accelgate/backends/nvmldisc"
	"github.com/accelgate/accelgate/gateway"
)

var adminT0 = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

// adminFleet is two emulated backends of the same hardware; b0 names a
// device.
const adminFleet = `models:
  - name: llama-3.1-8b-instruct
    kind: llm
backends:
  - name: b0
    hardware: h100-sxm-80gb
    models: [llama-3.1-8b-instruct]
    site: dc-east
    device_uuid: GPU-11111111-2222-3333-4444-555555555555
  - name: b1
    hardware: h100-mig-3g.40gb
    models: [llama-3.1-8b-instruct]
    device_uuid: MIG-99999999-8888-7777-6666-555555555555
`

// buildDispatcher validates and builds a fleet file into a dispatcher.
func buildDispatcher(t *testing.T, src string) (*fleet.File, *gateway.Dispatcher) {
	t.Helper()
	cat := catalog.Default()
	f, err := fleet.Parse([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Validate(cat); err != nil {
		t.Fatal(err)
	}
	fl, err := f.Build(cat, fleet.BuildOptions{Getenv: func(string) string { return "" }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fl.Close() })
	srv, err := gateway.NewFromFleet(fl, gateway.Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Dispatcher().Close() })
	return f, srv.Dispatcher()
}

func unavailable() nvmldisc.Inventory {
	return nvmldisc.Inventory{Reason: nvmldisc.UnavailablePrefix + "libnvidia-ml.so.1: cannot open shared object file"}
}

func get(t *testing.T, method, url string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(""))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

func decodeBackends(t *testing.T, body []byte) []adminBackend {
	t.Helper()
	var bs []adminBackend
	if err := json.Unmarshal(body, &bs); err != nil {
		t.Fatalf("GET /admin/backends: %v\n%s", err, body)
	}
	return bs
}

// TestAdminRoutes: the inventory (NVML unavailable on the CI machines), the
// backends list, HEAD, 405 on other methods, 404 elsewhere; NVML being
// unavailable is said once at start, naming the backends it concerns.
func TestAdminRoutes(t *testing.T) {
	f, d := buildDispatcher(t, adminFleet)
	var warn bytes.Buffer
	lv, err := startLive(f.Backends, f.Telemetry, d, fakeclock.New(adminT0), unavailable, &warn)
	if err != nil {
		t.Fatal(err)
	}
	defer lv.Close()
	want := "accelgate: NVML unavailable (libnvidia-ml.so.1: cannot open shared object file): device_uuid of backends b0, b1 is not monitored\n"
	if warn.String() != want {
		t.Errorf("warning %q, want %q", warn.String(), want)
	}
	ts := httptest.NewServer(adminHandler(d, lv, nil))
	defer ts.Close()

	// The inventory: the real discovery, fresh per request.
	resp, body := get(t, "GET", ts.URL+"/admin/inventory")
	var inv nvmldisc.Inventory
	if resp.StatusCode != 200 || json.Unmarshal(body, &inv) != nil {
		t.Fatalf("GET /admin/inventory: %d %s", resp.StatusCode, body)
	}
	if local := nvmldisc.DiscoverLocal(); inv.Available != local.Available {
		t.Errorf("inventory available=%v, local discovery says %v", inv.Available, local.Available)
	} else if !inv.Available && !strings.HasPrefix(inv.Reason, nvmldisc.UnavailablePrefix) {
		t.Errorf("unavailable inventory without a reason: %s", body)
	}

	resp, body = get(t, "GET", ts.URL+"/admin/backends")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET /admin/backends: %d %v", resp.StatusCode, resp.Header)
	}
	bs := decodeBackends(t, body)
	if len(bs) != 2 {
		t.Fatalf("%d backends:\n%s", len(bs), body)
	}
	b0, b1 := bs[0], bs[1]
	if b0.Name != "b0" || b0.Hardware != "h100-sxm-80gb" || b0.Site != "dc-east" || b0.Transport != fleet.TransportEmulated ||
		!b0.Available || b0.Ejected || b0.Unhealthy || b0.MetadataMismatch || b0.Load != (adminLoad{}) ||
		b0.DeviceUUID != "GPU-11111111-2222-3333-4444-555555555555" || b0.Device != nil ||
		!strings.HasPrefix(b0.DeviceError, "NVML unavailable: ") || b0.Telemetry != nil {
		t.Errorf("b0 = %+v", b0)
	}
	if b1.Name != "b1" || b1.Hardware != "h100-mig-3g.40gb" || !b1.Available || b1.DeviceUUID == "" || b1.DeviceError == "" {
		t.Errorf("b1 = %+v", b1)
	}
	// The raw JSON uses the documented names.
	for _, key := range []string{`"name"`, `"hardware"`, `"site"`, `"transport"`, `"available"`, `"ejected"`, `"unhealthy"`, `"metadata_mismatch"`, `"load"`, `"seqs"`, `"in_flight"`, `"device_uuid"`, `"device_error"`} {
		if !bytes.Contains(body, []byte(key)) {
			t.Errorf("the JSON lacks %s:\n%s", key, body)
		}
	}

	resp, body = get(t, "HEAD", ts.URL+"/admin/backends")
	if resp.StatusCode != 200 || len(body) != 0 {
		t.Errorf("HEAD /admin/backends: %d, %d bytes", resp.StatusCode, len(body))
	}
	for _, path := range []string{"/admin/backends", "/admin/inventory"} {
		for _, method := range []string{"POST", "PUT", "DELETE"} {
			resp, body = get(t, method, ts.URL+path)
			if resp.StatusCode != http.StatusMethodNotAllowed || !strings.Contains(resp.Header.Get("Allow"), "GET") || !bytes.Contains(body, []byte(`"error"`)) {
				t.Errorf("%s %s: %d, Allow %q, %s", method, path, resp.StatusCode, resp.Header.Get("Allow"), body)
			}
		}
	}
	resp, body = get(t, "GET", ts.URL+"/admin/nothing")
	if resp.StatusCode != http.StatusNotFound || !bytes.Contains(body, []byte("/admin/backends")) {
		t.Errorf("GET /admin/nothing: %d %s", resp.StatusCode, body)
	}
}

// fakeMetrics is an upstream's /metrics under vLLM's names.
type fakeMetrics struct{ running, waiting atomic.Int64 }

func (m *fakeMetrics) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	fmt.Fprintf(w, "# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running{model_name=\"m\"} %d\n"+
		"# TYPE vllm:num_requests_waiting gauge\nvllm:num_requests_waiting{model_name=\"m\"} %d\n"+
		"# TYPE vllm:kv_cache_usage_perc gauge\nvllm:kv_cache_usage_perc{model_name=\"m\"} 0.25\n", m.running.Load(), m.waiting.Load())
}

// TestAdminBackendsDeviceAndTelemetry: with NVML listing the devices, an
// entry carries its device's live memory and utilisation; with a
// metrics_url, the latest scrape and what the router merges from it.
func TestAdminBackendsDeviceAndTelemetry(t *testing.T) {
	up := &fakeMetrics{}
	up.running.Store(3)
	up.waiting.Store(40)
	mts := httptest.NewServer(up)
	defer mts.Close()
	src := fmt.Sprintf(`models:
  - name: llama-3.1-8b-instruct
    kind: llm
backends:
  - name: up-0
    hardware: h100-sxm-80gb
    transport: openai
    url: http://127.0.0.1:9/v1
    models: [llama-3.1-8b-instruct]
    device_uuid: GPU-aaaa
    metrics_url: %s/metrics
  - name: up-1
    hardware: h100-mig-3g.40gb
    transport: openai
    url: http://127.0.0.1:9/v1
    models: [llama-3.1-8b-instruct]
    device_uuid: MIG-bbbb
  - name: up-2
    hardware: h100-sxm-80gb
    transport: openai
    url: http://127.0.0.1:9/v1
    models: [llama-3.1-8b-instruct]
    device_uuid: GPU-elsewhere
telemetry:
  interval: 1s
`, mts.URL)
	f, d := buildDispatcher(t, src)
	inv := nvmldisc.Inventory{Available: true, GPUs: []nvmldisc.GPU{
		{Index: 0, Name: "NVIDIA H100 80GB HBM3", UUID: "GPU-aaaa", MemoryTotalBytes: 80 << 30, MemoryUsedBytes: 20 << 30,
			UtilGPUPct: 37, UtilMemoryPct: 12, PowerDrawW: 300, MIGMode: nvmldisc.MIGDisabled, Profile: "h100-sxm-80gb", Match: "exact"},
		{Index: 1, Name: "NVIDIA H100 80GB HBM3", UUID: "GPU-cccc", MIGMode: nvmldisc.MIGEnabled, UtilGPUPct: -1, UtilMemoryPct: -1,
			MIG: []nvmldisc.MIGDevice{{Name: "MIG 3g.40gb", UUID: "MIG-bbbb", ParentUUID: "GPU-cccc", MemoryTotalBytes: 40 << 30, MemoryUsedBytes: 1 << 30, Profile: "h100-mig-3g.40gb"}}},
	}}
	clock := fakeclock.New(adminT0)
	var warn bytes.Buffer
	lv, err := startLive(f.Backends, f.Telemetry, d, clock, func() nvmldisc.Inventory { return inv }, &warn)
	if err != nil {
		t.Fatal(err)
	}
	defer lv.Close()
	if want := "accelgate: backend up-2: device_uuid GPU-elsewhere: no such GPU or MIG device on this machine\n"; warn.String() != want {
		t.Errorf("warnings %q, want %q", warn.String(), want)
	}
	ts := httptest.NewServer(adminHandler(d, lv, nil))
	defer ts.Close()

	// Before the first scrape.
	_, body := get(t, "GET", ts.URL+"/admin/backends")
	bs := decodeBackends(t, body)
	if tel := bs[0].Telemetry; tel == nil || tel.Scraped || tel.Fresh || tel.MetricsURL != mts.URL+"/metrics" || tel.Reported != (adminReported{}) {
		t.Fatalf("telemetry before a scrape: %+v", tel)
	}
	if bs[1].Telemetry != nil {
		t.Errorf("up-1 has no metrics_url but telemetry %+v", bs[1].Telemetry)
	}

	clock.Advance(0) // the first scrape and its apply
	clock.Advance(500 * time.Millisecond)
	_, body = get(t, "GET", ts.URL+"/admin/backends")
	bs = decodeBackends(t, body)
	tel := bs[0].Telemetry
	if tel == nil || !tel.Scraped || !tel.Fresh || tel.Source != "vllm" || tel.Running != 3 || tel.Waiting != 40 || tel.KVCacheUsage != 0.25 ||
		tel.AgeMs == nil || *tel.AgeMs != 500 || tel.MaxAgeMs != 3000 || tel.Error != "" || tel.Reported != (adminReported{Seqs: 43, Pending: 43}) {
		t.Errorf("telemetry after a scrape: %+v\n%s", tel, body)
	}
	if dev := bs[0].Device; dev == nil || dev.MemoryUsedBytes != 20<<30 || dev.MemoryTotalBytes != 80<<30 || dev.UtilGPUPct != 37 || bs[0].DeviceError != "" {
		t.Errorf("up-0 device %+v (%s)", dev, bs[0].DeviceError)
	}
	if dev := bs[1].Device; dev == nil || !dev.MIG || dev.ParentUUID != "GPU-cccc" || dev.MemoryTotalBytes != 40<<30 || dev.UtilGPUPct != -1 {
		t.Errorf("up-1 device %+v (%s)", dev, bs[1].DeviceError)
	}
	if bs[2].Device != nil || bs[2].DeviceError != "no such GPU or MIG device on this machine" {
		t.Errorf("up-2: %+v", bs[2])
	}

	// The upstream goes away: the report turns stale and the router forgets it.
	mts.Close()
	clock.Advance(4 * time.Second)
	_, body = get(t, "GET", ts.URL+"/admin/backends")
	tel = decodeBackends(t, body)[0].Telemetry
	if tel == nil || tel.Fresh || tel.Error == "" || tel.Running != 3 || tel.Reported != (adminReported{}) {
		t.Errorf("telemetry after the upstream went away: %+v", tel)
	}
}

// TestStartLiveNothingToDo: no device_uuid and no metrics_url start
// nothing and print nothing.
func TestStartLiveNothingToDo(t *testing.T) {
	f, d := buildDispatcher(t, `models:
  - name: m
    kind: llm
backends:
  - name: b0
    hardware: l4
    models: [m]
`)
	var warn bytes.Buffer
	called := false
	lv, err := startLive(f.Backends, f.Telemetry, d, fakeclock.New(adminT0), func() nvmldisc.Inventory { called = true; return unavailable() }, &warn)
	if err != nil {
		t.Fatal(err)
	}
	lv.Close()
	if called || warn.Len() != 0 || lv.devices != nil || lv.scraper != nil {
		t.Errorf("discovered %v, warned %q, live %+v", called, warn.String(), lv)
	}
}

// TestAdminListenerIsSeparate runs the real wiring: the admin API answers on
// its own address (printed on the first line as admin=HOST:PORT) and not on
// the public HTTP front.
func TestAdminListenerIsSeparate(t *testing.T) {
	addrs := startGatewayWith(t, adminFleet, "-admin-addr", "127.0.0.1:0")
	if addrs["admin"] == "" || addrs["admin"] == addrs["http"] {
		t.Fatalf("first line names %v, want a separate admin=HOST:PORT", addrs)
	}
	resp, body := get(t, "GET", "http://"+addrs["admin"]+"/admin/backends")
	if resp.StatusCode != 200 {
		t.Fatalf("admin GET /admin/backends: %d %s", resp.StatusCode, body)
	}
	if bs := decodeBackends(t, body); len(bs) != 2 || bs[0].Name != "b0" || bs[0].DeviceUUID == "" {
		t.Errorf("admin backends: %s", body)
	}
	resp, body = get(t, "GET", "http://"+addrs["admin"]+"/admin/inventory")
	if resp.StatusCode != 200 || !bytes.Contains(body, []byte(`"available"`)) {
		t.Errorf("admin GET /admin/inventory: %d %s", resp.StatusCode, body)
	}
	for _, path := range []string{"/admin/backends", "/admin/inventory"} {
		if resp, _ := get(t, "GET", "http://"+addrs["http"]+path); resp.StatusCode != http.StatusNotFound {
			t.Errorf("public front GET %s: %d, want 404", path, resp.StatusCode)
		}
	}
}

// TestAdminDisabled: -admin-addr "" serves no admin API; an admin address
// equal to a public one is refused.
func TestAdminDisabled(t *testing.T) {
	addrs := startGatewayWith(t, adminFleet, "-admin-addr", "")
	if _, ok := addrs["admin"]; ok {
		t.Errorf("admin address printed although disabled: %v", addrs)
	}
	err := run(context.Background(), []string{"-http-addr", "127.0.0.1:18080", "-admin-addr", "127.0.0.1:18080"},
		func(string) string { return "" }, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "must not share") {
		t.Errorf("admin on the public address: %v", err)
	}
}

// TestAdminAddrFromEnv: ACCELGATE_ADMIN_ADDR sets the default.
func TestAdminAddrFromEnv(t *testing.T) {
	env := func(k string) string {
		if k == "ACCELGATE_ADMIN_ADDR" {
			return "127.0.0.1:18081"
		}
		return ""
	}
	err := run(context.Background(), []string{"-http-addr", "127.0.0.1:18081"}, env, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "-admin-addr 127.0.0.1:18081") {
		t.Errorf("env admin address not used: %v", err)
	}
}

// TestDiscoverFlag: -discover prints what runDiscover prints and returns
// (exit 0) without serving; -json makes it JSON; -json alone is an error.
func TestDiscoverFlag(t *testing.T) {
	noenv := func(string) string { return "" }
	var want, got bytes.Buffer
	if err := runDiscover(&want, false); err != nil {
		t.Fatal(err)
	}
	if err := run(context.Background(), []string{"-discover"}, noenv, &got); err != nil {
		t.Fatalf("-discover: %v", err)
	}
	if got.String() != want.String() {
		t.Errorf("-discover printed %q, want %q", got.String(), want.String())
	}
	if !nvmldisc.DiscoverLocal().Available && !strings.HasPrefix(got.String(), "NVML unavailable: ") {
		t.Errorf("-discover without NVML: %q", got.String())
	}
	got.Reset()
	if err := run(context.Background(), []string{"-discover", "-json"}, noenv, &got); err != nil {
		t.Fatalf("-discover -json: %v", err)
	}
	var inv nvmldisc.Inventory
	if err := json.Unmarshal(got.Bytes(), &inv); err != nil {
		t.Fatalf("-discover -json: %v\n%s", err, got.String())
	}
	if err := run(context.Background(), []string{"-json"}, noenv, io.Discard); err == nil {
		t.Error("-json without -discover accepted")
	}
}
