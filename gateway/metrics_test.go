package gateway

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/accelgate/accelgate/backends"
	"github.com/accelgate/accelgate/backends/emulator"
	"github.com/accelgate/accelgate/backends/fakeclock"
	"github.com/accelgate/accelgate/backends/telemetry"
	"github.com/accelgate/accelgate/router"
)

func TestMetricsRoute(t *testing.T) {
	e := newEnv(t, Config{})
	resp := e.do(t, "GET", "/metrics", "")
	if resp.StatusCode() != fasthttp.StatusNotFound {
		t.Errorf("without a metrics writer: %d, want 404", resp.StatusCode())
	}
	fasthttp.ReleaseResponse(resp)

	e.srv.SetMetrics(func(w io.Writer) error {
		_, err := io.WriteString(w, "# TYPE up gauge\nup 1\n")
		return err
	})
	resp = e.do(t, "GET", "/metrics", "")
	if resp.StatusCode() != fasthttp.StatusOK || string(resp.Header.ContentType()) != MetricsContentType || string(resp.Body()) != "# TYPE up gauge\nup 1\n" {
		t.Errorf("GET /metrics: %d %q %q", resp.StatusCode(), resp.Header.ContentType(), resp.Body())
	}
	fasthttp.ReleaseResponse(resp)

	resp = e.do(t, "POST", "/metrics", "{}")
	if resp.StatusCode() != fasthttp.StatusMethodNotAllowed || string(resp.Header.Peek("Allow")) != "GET" {
		t.Errorf("POST /metrics: %d, Allow %q", resp.StatusCode(), resp.Header.Peek("Allow"))
	}
	fasthttp.ReleaseResponse(resp)

	e.srv.SetMetrics(func(w io.Writer) error {
		io.WriteString(w, "partial")
		return errors.New("boom")
	})
	resp = e.do(t, "GET", "/metrics", "")
	if resp.StatusCode() != fasthttp.StatusInternalServerError || strings.Contains(string(resp.Body()), "partial") {
		t.Errorf("failing writer: %d %q", resp.StatusCode(), resp.Body())
	}
	fasthttp.ReleaseResponse(resp)

	e.srv.SetMetrics(nil)
	resp = e.do(t, "GET", "/metrics", "")
	if resp.StatusCode() != fasthttp.StatusNotFound {
		t.Errorf("after SetMetrics(nil): %d, want 404", resp.StatusCode())
	}
	fasthttp.ReleaseResponse(resp)
}

// TestMetricsEndToEnd: an emulated accelerator's vLLM-named metrics, served
// by the gateway's GET /metrics, scraped by the telemetry Scraper on a fake
// clock and merged with what the gateway placed.
func TestMetricsEndToEnd(t *testing.T) {
	const slots, n = 2, 5
	emu, emuClock := llmEmulator(t, "emu-0", slots)
	d, err := NewDispatcher([]backends.Backend{emu}, testModels(), router.Config{}, emuClock)
	if err != nil {
		t.Fatal(err)
	}
	env := serveInmemory(t, Config{}, d, emuClock)
	env.srv.SetMetrics(emu.WriteMetrics)

	// The scraper reaches the in-memory listener through its own transport.
	client := &http.Client{Transport: &http.Transport{
		DialContext: func(context.Context, string, string) (net.Conn, error) { return env.ln.Dial() },
	}}
	scrapeClock := fakeclock.New(t0)
	sc, err := telemetry.New(telemetry.Config{Interval: time.Second}, []telemetry.Target{{Name: "emu-0", URL: "http://emu/metrics"}},
		telemetry.Options{Clock: scrapeClock, Client: client})
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	if err := sc.Start(); err != nil {
		t.Fatal(err)
	}
	scrapeClock.Advance(0)
	idle := sc.Latest(0)
	if idle == nil || idle.Err != "" || idle.Source != telemetry.SourceVLLM || idle.Running != 0 || idle.Waiting != 0 {
		t.Fatalf("idle snapshot %+v", idle)
	}

	// Load the emulator directly, as another client sharing it would: the
	// gateway placed nothing.
	stopLoad := loadEmulator(t, emu, n)
	emuClock.Advance(0) // they arrive; the first prefill admits two
	scrapeClock.Advance(time.Second)

	busy := sc.Latest(0)
	if busy.Err != "" || busy.Running != slots || busy.Waiting != n-slots || !(busy.KVCacheUsage > 0 && busy.KVCacheUsage < 1) {
		t.Fatalf("busy snapshot %+v", busy)
	}
	maxAge := sc.Config().MaxAge()
	eff := telemetry.Merge(telemetry.Placed{Running: 1}, busy, scrapeClock.Now(), maxAge)
	want := telemetry.Effective{Running: slots, Waiting: n - slots, KVCacheUsage: busy.KVCacheUsage, Upstream: true}
	if eff != want {
		t.Errorf("merged %+v, want %+v", eff, want)
	}
	// Once stale (the scraper stopped), the gateway's own count stands.
	sc.Close()
	if eff := telemetry.Merge(telemetry.Placed{Running: 1}, busy, scrapeClock.Now().Add(maxAge+time.Second), maxAge); eff.Running != 1 || eff.Upstream {
		t.Errorf("stale snapshot used: %+v", eff)
	}

	stopLoad()
}

// llmEmulator is an emulated accelerator serving "llm" with slots sequence
// slots, on a fake clock that starts at t0; it is closed when the test ends.
func llmEmulator(t *testing.T, name string, slots int) (*emulator.Backend, *fakeclock.Clock) {
	t.Helper()
	clk := fakeclock.New(t0)
	prof := testProfile("emu-gpu", 3.6)
	prof.LLM.MaxConcurrency = slots
	emu := emulator.New(&backends.Descriptor{Name: name, Profile: prof, Models: []string{"llm"}, PricePerHour: 3.6},
		emulator.Options{Clock: clk, Seed: 1})
	t.Cleanup(func() { emu.Close() })
	return emu, clk
}

// loadEmulator submits n chat requests to emu directly, as clients the
// gateway does not know about would, and returns once the emulator has them
// all; stop cancels them and waits for their goroutines.
func loadEmulator(t *testing.T, emu *emulator.Backend, n int) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := &backends.Request{ID: "r", Op: backends.OpChat, Model: "llm", N: 1, Seed: int64(i),
				Messages: []backends.Message{{Role: "user", Content: "Tell me about accelerators."}}}
			emu.Do(ctx, req, testModels()["llm"], nil)
		}()
	}
	for i := 0; emu.Stats().Jobs < n; i++ {
		if i > 1e7 {
			cancel()
			wg.Wait()
			t.Fatal("the requests were not submitted")
		}
		runtime.Gosched()
	}
	return func() { cancel(); wg.Wait() }
}
