package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/accelgate/accelgate/backends"
	"github.com/accelgate/accelgate/backends/fleet"
	"github.com/accelgate/accelgate/backends/nvmldisc"
	"github.com/accelgate/accelgate/backends/telemetry"
	"github.com/accelgate/accelgate/gateway"
)

// defaultAdminAddr is where the admin API listens unless -admin-addr or
// ACCELGATE_ADMIN_ADDR says otherwise: loopback, apart from the public
// fronts.
const defaultAdminAddr = "127.0.0.1:9090"

// adminShutdownTimeout bounds the admin server's graceful stop.
const adminShutdownTimeout = 5 * time.Second

// live is the gateway's view of the backends beyond its own books: the local
// devices named by device_uuid (an nvmldisc.Poller) and the upstreams'
// self-reported load (a telemetry.Scraper feeding the router through a
// gateway.TelemetryWatch). Its fields are indexed like the fleet's backends.
type live struct {
	clock backends.Clock

	uuids   []string         // device_uuid by backend ("" none)
	devices *nvmldisc.Poller // nil: no device_uuid, or NVML unavailable
	nvmlErr string           // why devices is nil although a device_uuid is set

	urls    []string           // metrics_url by backend ("" none)
	targets []int              // scraper target by backend, -1 none
	scraper *telemetry.Scraper // nil: no metrics_url
	watch   *gateway.TelemetryWatch
	maxAge  time.Duration
}

// startLive starts what the fleet file asks for beyond placement: an NVML
// poller when a backend names a device_uuid, and a telemetry scraper with its
// watch when a backend has a metrics_url. specs are the validated backend
// entries, in router order (fleet.File.Backends after Validate). discover is
// the NVML discovery (nvmldisc.DiscoverLocal in the gateway). When NVML is
// unavailable it says so once on warn, names the backends whose device is
// not monitored, and carries on; a device_uuid that NVML does not list is
// reported the same way. Close stops it all.
func startLive(specs []fleet.BackendSpec, tcfg telemetry.Config, d *gateway.Dispatcher, clock backends.Clock,
	discover func() nvmldisc.Inventory, warn io.Writer) (*live, error) {
	if clock == nil {
		clock = backends.RealClock
	}
	l := &live{clock: clock, uuids: make([]string, len(specs)), urls: make([]string, len(specs)), targets: make([]int, len(specs))}
	var (
		monitored []string // backends with a device_uuid
		targets   []telemetry.Target
		byName    = map[string]int{}
	)
	for i, b := range specs {
		l.uuids[i], l.urls[i], l.targets[i] = b.DeviceUUID, b.MetricsURL, -1
		if b.DeviceUUID != "" {
			monitored = append(monitored, b.Name)
		}
		if b.MetricsURL != "" {
			l.targets[i] = len(targets)
			byName[b.Name] = i
			targets = append(targets, telemetry.Target{Name: b.Name, URL: b.MetricsURL})
		}
	}
	if len(monitored) > 0 {
		p := nvmldisc.NewPoller(discover, 0, clock)
		p.Start() // the first discovery, before Start returns
		inv := p.Inventory()
		if !inv.Available {
			p.Stop()
			l.nvmlErr = inv.Reason
			fmt.Fprintf(warn, "accelgate: NVML unavailable (%s): device_uuid of backends %s is not monitored\n",
				strings.TrimPrefix(inv.Reason, nvmldisc.UnavailablePrefix), strings.Join(monitored, ", "))
		} else {
			l.devices = p
			for i, u := range l.uuids {
				if _, ok := inv.Find(u); u != "" && !ok {
					fmt.Fprintf(warn, "accelgate: backend %s: device_uuid %s: no such GPU or MIG device on this machine\n", specs[i].Name, u)
				}
			}
		}
	}
	if len(targets) > 0 {
		sc, err := telemetry.New(tcfg, targets, telemetry.Options{Clock: clock})
		if err != nil {
			l.Close()
			return nil, err
		}
		l.scraper, l.maxAge = sc, sc.Config().MaxAge()
		if err := sc.Start(); err != nil {
			l.Close()
			return nil, err
		}
		if l.watch, err = d.WatchTelemetry(sc, byName, clock, l.maxAge); err != nil {
			l.Close()
			return nil, err
		}
	}
	return l, nil
}

// Close stops the watch (the router forgets the reported load), the scraper
// and the poller. Call it before closing the dispatcher.
func (l *live) Close() {
	if l.watch != nil {
		l.watch.Stop()
	}
	if l.scraper != nil {
		l.scraper.Close()
	}
	if l.devices != nil {
		l.devices.Stop()
	}
}

// adminHandler serves the admin API (see cmd/gateway's doc):
//
//	GET /admin/inventory  the local GPUs and MIG devices, discovered per request (nvmldisc)
//	GET /admin/backends   every backend's router state, device and telemetry, as a JSON list
//
// HEAD is answered like GET without a body; other methods get 405 with an
// Allow header. Any other path is 404.
func adminHandler(d *gateway.Dispatcher, l *live, inventory http.Handler) http.Handler {
	return adminHandlerFunc(func() (*gateway.Dispatcher, *live) { return d, l }, inventory, nil)
}

// adminHandlerFunc is adminHandler over the current generation (cur is
// called per request, so the API follows reloads), plus, when rl is not
// nil, POST /admin/reload: reload the fleet file now (200 with
// {"reloaded": true|false} — false when the file did not change; 422 with
// {"error"} when it does not load or validate, and the running fleet stays).
func adminHandlerFunc(cur func() (*gateway.Dispatcher, *live), inventory http.Handler, rl *reloader) http.Handler {
	if inventory == nil {
		inventory = nvmldisc.Handler()
	}
	mux := http.NewServeMux()
	mux.Handle("/admin/inventory", inventory)
	mux.HandleFunc("/admin/backends", func(w http.ResponseWriter, r *http.Request) {
		if !allowGet(w, r) {
			return
		}
		d, l := cur()
		writeJSON(w, r, http.StatusOK, backendsJSON(d, l))
	})
	if rl != nil {
		mux.HandleFunc("/admin/reload", func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodPost {
				w.Header().Set("Allow", "POST")
				writeJSON(w, r, http.StatusMethodNotAllowed, map[string]string{"error": "method " + r.Method + " not allowed; use POST"})
				return
			}
			ok, err := rl.reload(false)
			if err != nil {
				writeJSON(w, r, http.StatusUnprocessableEntity, map[string]string{"error": err.Error()})
				return
			}
			writeJSON(w, r, http.StatusOK, map[string]bool{"reloaded": ok})
		})
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, r, http.StatusNotFound, map[string]string{
			"error": "no admin route " + r.URL.Path + "; try GET /admin/inventory or GET /admin/backends"})
	})
	return mux
}

// allowGet answers 405 to methods other than GET and HEAD.
func allowGet(w http.ResponseWriter, r *http.Request) bool {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return true
	}
	w.Header().Set("Allow", "GET, HEAD")
	writeJSON(w, r, http.StatusMethodNotAllowed, map[string]string{"error": "method " + r.Method + " not allowed; use GET"})
	return false
}

// writeJSON writes v as indented JSON with status (headers only for HEAD).
func writeJSON(w http.ResponseWriter, r *http.Request, status int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	if r.Method == http.MethodHead {
		return
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// adminBackend is one entry of GET /admin/backends.
type adminBackend struct {
	Name      string   `json:"name"`
	Hardware  string   `json:"hardware"`
	Site      string   `json:"site"`
	Transport string   `json:"transport"`
	Models    []string `json:"models"`
	// Available: the router may place on it now; Ejected: passive outlier
	// detection took it out after failures; Unhealthy: it fails its active
	// health checks; MetadataMismatch: its model metadata differs from the
	// fleet file (see gateway.BackendStatus).
	Available        bool `json:"available"`
	Ejected          bool `json:"ejected"`
	Unhealthy        bool `json:"unhealthy"`
	MetadataMismatch bool `json:"metadata_mismatch"`
	// Load is the router's own books (what the gateway placed and has not
	// seen finish).
	Load adminLoad `json:"load"`
	// DeviceUUID is the fleet file's device_uuid; Device its live state
	// when NVML lists it, DeviceError why not.
	DeviceUUID  string                `json:"device_uuid,omitempty"`
	Device      *nvmldisc.DeviceStats `json:"device,omitempty"`
	DeviceError string                `json:"device_error,omitempty"`
	// Telemetry is the latest scrape of the metrics_url, when there is one.
	Telemetry *adminTelemetry `json:"telemetry,omitempty"`
}

// adminLoad is router.Load in JSON.
type adminLoad struct {
	Seqs         int     `json:"seqs"`
	PromptTokens int     `json:"prompt_tokens"`
	BatchWorkMs  float64 `json:"batch_work_ms"`
	InFlight     int     `json:"in_flight"`
}

// adminTelemetry is a backend's latest telemetry snapshot and what the
// router merges from it.
type adminTelemetry struct {
	MetricsURL string `json:"metrics_url"`
	// Scraped is false before the first scrape ends; the numbers are then
	// zero.
	Scraped bool    `json:"scraped"`
	Source  string  `json:"source,omitempty"`
	Running float64 `json:"running"`
	Waiting float64 `json:"waiting"`
	Pending float64 `json:"pending"`
	// KVCacheUsage is a fraction, -1 when the upstream does not say.
	KVCacheUsage float64 `json:"kv_cache_usage"`
	// AgeMs is how old the numbers are (absent before a successful scrape).
	AgeMs *float64 `json:"age_ms,omitempty"`
	// Fresh: the last scrape succeeded and is at most max_age_ms old, so
	// the router uses it.
	Fresh    bool    `json:"fresh"`
	MaxAgeMs float64 `json:"max_age_ms"`
	Error    string  `json:"error,omitempty"`
	// Reported is what the router merges now (zero when not fresh).
	Reported adminReported `json:"reported"`
}

// adminReported is router.External (the load the router merges) in JSON.
type adminReported struct {
	Seqs    int `json:"seqs"`
	Pending int `json:"pending"`
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// backendsJSON is the body of GET /admin/backends.
func backendsJSON(d *gateway.Dispatcher, l *live) []adminBackend {
	st := d.Status()
	out := make([]adminBackend, len(st))
	var inv *nvmldisc.Inventory
	for i, s := range st {
		b := &out[i]
		*b = adminBackend{
			Name: s.Name, Hardware: s.Hardware, Site: s.Site, Transport: s.Transport, Models: s.Models,
			Available: s.Available, Ejected: s.Ejected, Unhealthy: s.Unhealthy, MetadataMismatch: s.MetadataMismatch,
			Load: adminLoad{Seqs: s.Load.Seqs, PromptTokens: s.Load.PromptTokens, BatchWorkMs: ms(s.Load.BatchWork), InFlight: s.Load.InFlight},
		}
		if l == nil || i >= len(l.uuids) {
			continue
		}
		if u := l.uuids[i]; u != "" {
			b.DeviceUUID = u
			switch {
			case l.devices == nil:
				b.DeviceError = l.nvmlErr
			default:
				if inv == nil {
					v := l.devices.Inventory()
					inv = &v
				}
				if dev, ok := inv.Find(u); ok {
					b.Device = &dev
				} else {
					b.DeviceError = "no such GPU or MIG device on this machine"
				}
			}
		}
		if l.targets[i] >= 0 && l.scraper != nil {
			b.Telemetry = telemetryJSON(l.scraper.Latest(l.targets[i]), l.urls[i], l.clock.Now(), l.maxAge)
			if l.watch != nil {
				r := l.watch.Reported(i)
				b.Telemetry.Reported = adminReported{Seqs: r.Seqs, Pending: r.Pending}
			}
		}
	}
	return out
}

// telemetryJSON describes a snapshot (nil before the first scrape).
func telemetryJSON(s *telemetry.Snapshot, url string, now time.Time, maxAge time.Duration) *adminTelemetry {
	t := &adminTelemetry{MetricsURL: url, KVCacheUsage: -1, MaxAgeMs: ms(maxAge)}
	if s == nil {
		return t
	}
	t.Scraped = true
	t.Source, t.Running, t.Waiting, t.Pending, t.KVCacheUsage, t.Error = s.Source, s.Running, s.Waiting, s.Pending, s.KVCacheUsage, s.Err
	if !s.At.IsZero() {
		age := ms(now.Sub(s.At))
		t.AgeMs = &age
	}
	t.Fresh = s.Fresh(now, maxAge)
	e := gateway.ReportedLoad(s, now, maxAge)
	t.Reported = adminReported{Seqs: e.Seqs, Pending: e.Pending}
	return t
}

// adminServer is the admin API's own HTTP server.
type adminServer struct {
	srv  *http.Server
	errc chan error
}

// serveAdmin serves h on ln in the background. When serving fails, failed
// is called (the gateway stops its fronts); Stop returns the failure.
func serveAdmin(ln net.Listener, h http.Handler, failed func()) *adminServer {
	a := &adminServer{
		srv: &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
			WriteTimeout: 30 * time.Second, IdleTimeout: time.Minute},
		errc: make(chan error, 1),
	}
	go func() {
		err := a.srv.Serve(ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		} else if failed != nil {
			failed()
		}
		a.errc <- err
	}()
	return a
}

// Stop shuts the server down gracefully (requests in flight get
// adminShutdownTimeout) and returns the error serving ended with, if any.
func (a *adminServer) Stop() error {
	ctx, cancel := context.WithTimeout(context.Background(), adminShutdownTimeout)
	defer cancel()
	serr := a.srv.Shutdown(ctx)
	if serr != nil {
		a.srv.Close()
	}
	if err := <-a.errc; err != nil {
		return fmt.Errorf("admin server: %w", err)
	}
	if serr != nil && !errors.Is(serr, context.DeadlineExceeded) {
		return fmt.Errorf("admin server: %w", serr)
	}
	return nil
}
