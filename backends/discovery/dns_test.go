package discovery

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/accelgate/accelgate/backends/fakeclock"
)

// guard bounds every wait on a channel; it is a failure guard, not a means
// of synchronisation.
const guard = 10 * time.Second

// answer is what the fake resolver returns for one lookup.
type answer struct {
	hosts []string
	srvs  []*net.SRV
	err   error
}

// fakeResolver answers each lookup with the next answer the test hands it,
// blocking the lookup until then, so the test knows which lookup it feeds.
type fakeResolver struct {
	answers chan answer

	mu    sync.Mutex
	calls []string
}

func newFakeResolver() *fakeResolver { return &fakeResolver{answers: make(chan answer)} }

func (f *fakeResolver) note(call string) {
	f.mu.Lock()
	f.calls = append(f.calls, call)
	f.mu.Unlock()
}

func (f *fakeResolver) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

func (f *fakeResolver) LookupHost(ctx context.Context, host string) ([]string, error) {
	f.note("host " + host)
	select {
	case a := <-f.answers:
		return a.hosts, a.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (f *fakeResolver) LookupSRV(ctx context.Context, service, proto, name string) (string, []*net.SRV, error) {
	f.note(fmt.Sprintf("srv %q %q %q", service, proto, name))
	select {
	case a := <-f.answers:
		return "", a.srvs, a.err
	case <-ctx.Done():
		return "", nil, ctx.Err()
	}
}

type dnsHarness struct {
	running
	cfg   DNSConfig
	clock *fakeclock.Clock
	res   *fakeResolver
	src   *DNSSource
	errs  chan error
}

func startDNS(t *testing.T, cfg DNSConfig) *dnsHarness {
	t.Helper()
	h := &dnsHarness{
		clock: fakeclock.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)),
		res:   newFakeResolver(),
		errs:  make(chan error, 16),
	}
	cfg.Timeout = time.Hour // the fake answers at once; never time a lookup out under -race
	src, err := NewDNS(cfg, h.res, h.clock, WithErrorHandler(func(err error) { h.errs <- err }))
	if err != nil {
		t.Fatalf("NewDNS: %v", err)
	}
	h.src, h.cfg = src, src.Config()
	h.run(t, src)
	t.Cleanup(h.stop)
	return h
}

// answer hands the pending (or next) lookup its answer.
func (h *dnsHarness) answer(a answer) {
	h.t.Helper()
	select {
	case h.res.answers <- a:
	case <-time.After(guard):
		h.t.Fatal("no lookup came to answer")
	}
}

// tick moves the fake clock to the next lookup, which is always scheduled
// before the current one starts.
func (h *dnsHarness) tick() {
	h.t.Helper()
	if h.clock.Pending() != 1 {
		h.t.Fatalf("pending timers = %d, want 1", h.clock.Pending())
	}
	h.clock.Advance(h.cfg.Interval)
}

func (h *dnsHarness) nextErr() error {
	h.t.Helper()
	select {
	case err := <-h.errs:
		return err
	case <-time.After(guard):
		h.t.Fatal("no error reported")
		return nil
	}
}

// stop cancels Run and checks that it returned nil, left no timer pending
// and made no update the test did not take.
func (h *dnsHarness) stop() {
	h.t.Helper()
	if h.stopRun() {
		if n := h.clock.Pending(); n != 0 {
			h.t.Errorf("%d timers pending after Run returned", n)
		}
	}
}

func addrs(eps []Endpoint) string {
	s := make([]string, len(eps))
	for i, e := range eps {
		s[i] = e.Address
	}
	return strings.Join(s, " ")
}

func wantAddrs(t *testing.T, eps []Endpoint, want string) {
	t.Helper()
	if got := addrs(eps); got != want {
		t.Fatalf("endpoints = [%s], want [%s]", got, want)
	}
}

func TestDNSInitialSet(t *testing.T) {
	h := startDNS(t, DNSConfig{Name: "vllm.example", Port: 8000, Zone: "z1"})
	h.answer(answer{hosts: []string{"10.0.0.2", "2001:db8::1", "10.0.0.1", "10.0.0.2"}})
	eps := h.next()
	wantAddrs(t, eps, "10.0.0.1:8000 10.0.0.2:8000 [2001:db8::1]:8000")
	for _, e := range eps {
		if !e.Ready || e.Zone != "z1" || e.Labels != nil {
			t.Errorf("endpoint %+v: want Ready, zone z1, no labels", e)
		}
	}
	if got := h.res.Calls(); len(got) != 1 || got[0] != "host vllm.example" {
		t.Errorf("lookups = %q", got)
	}
	if err := h.src.LastError(); err != nil {
		t.Errorf("LastError = %v", err)
	}
}

func TestDNSUpdatesOnlyOnChange(t *testing.T) {
	h := startDNS(t, DNSConfig{Name: "vllm.example", Port: 8000, Interval: time.Minute})
	h.answer(answer{hosts: []string{"10.0.0.1", "10.0.0.2"}})
	wantAddrs(t, h.next(), "10.0.0.1:8000 10.0.0.2:8000")

	// The same set, in another order: no update. Had there been one, it
	// would arrive before the next lookup's.
	h.tick()
	h.answer(answer{hosts: []string{"10.0.0.2", "10.0.0.1"}})
	h.tick()
	h.answer(answer{hosts: []string{"10.0.0.2", "10.0.0.3"}})
	wantAddrs(t, h.next(), "10.0.0.2:8000 10.0.0.3:8000")

	h.tick()
	h.answer(answer{hosts: []string{"10.0.0.3", "10.0.0.2"}})
	h.stop()
	if n := len(h.res.Calls()); n != 4 {
		t.Errorf("%d lookups, want 4", n)
	}
}

func TestDNSFailureKeepsLastSet(t *testing.T) {
	h := startDNS(t, DNSConfig{Name: "vllm.example", Port: 8000})
	h.answer(answer{hosts: []string{"10.0.0.1"}})
	wantAddrs(t, h.next(), "10.0.0.1:8000")

	h.tick()
	fail := &net.DNSError{Err: "server misbehaving", Name: "vllm.example", Server: "10.96.0.10:53", IsTemporary: true}
	h.answer(answer{err: fail})
	if err := h.nextErr(); !errors.Is(err, fail) {
		t.Fatalf("reported error %v, want %v", err, fail)
	}
	if err := h.src.LastError(); !errors.Is(err, fail) {
		t.Fatalf("LastError = %v, want %v", err, fail)
	}

	// A timeout too keeps the set; when the name answers again with the
	// same set, still no update, and LastError clears.
	h.tick()
	h.answer(answer{err: context.DeadlineExceeded})
	if err := h.nextErr(); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("reported error %v", err)
	}
	h.tick()
	h.answer(answer{hosts: []string{"10.0.0.1"}})
	h.tick()
	h.answer(answer{hosts: []string{"10.0.0.1", "10.0.0.4"}})
	wantAddrs(t, h.next(), "10.0.0.1:8000 10.0.0.4:8000")
	if err := h.src.LastError(); err != nil {
		t.Errorf("LastError after a success = %v", err)
	}
}

func TestDNSNotFoundEmpties(t *testing.T) {
	h := startDNS(t, DNSConfig{Name: "vllm.example", Port: 8000})
	h.answer(answer{hosts: []string{"10.0.0.1"}})
	wantAddrs(t, h.next(), "10.0.0.1:8000")

	h.tick()
	nx := &net.DNSError{Err: "no such host", Name: "vllm.example", IsNotFound: true}
	h.answer(answer{err: fmt.Errorf("lookup: %w", nx)})
	eps := h.next()
	if eps == nil || len(eps) != 0 {
		t.Fatalf("after not-found: %#v, want an empty, non-nil set", eps)
	}
	if err := h.nextErr(); !errors.Is(err, nx) {
		t.Errorf("reported error %v", err)
	}
	var dnsErr *net.DNSError
	if err := h.src.LastError(); !errors.As(err, &dnsErr) || !dnsErr.IsNotFound {
		t.Errorf("LastError = %v, want the not-found error", err)
	}

	// Not found again: unchanged (empty), no update.
	h.tick()
	h.answer(answer{err: nx})
	h.nextErr()
	h.tick()
	h.answer(answer{hosts: []string{"10.0.0.5"}})
	wantAddrs(t, h.next(), "10.0.0.5:8000")
}

func TestDNSFirstUpdate(t *testing.T) {
	t.Run("failures before the first success call nothing", func(t *testing.T) {
		h := startDNS(t, DNSConfig{Name: "vllm.example", Port: 8000})
		h.answer(answer{err: errors.New("connection refused")})
		h.nextErr()
		h.tick()
		h.answer(answer{hosts: []string{"10.0.0.1"}})
		wantAddrs(t, h.next(), "10.0.0.1:8000")
	})
	t.Run("an empty first answer is reported", func(t *testing.T) {
		h := startDNS(t, DNSConfig{Name: "vllm.example", Port: 8000})
		h.answer(answer{})
		if eps := h.next(); eps == nil || len(eps) != 0 {
			t.Fatalf("first update %#v, want empty", eps)
		}
		h.tick()
		h.answer(answer{})
		h.tick()
		h.answer(answer{hosts: []string{"10.0.0.1"}})
		wantAddrs(t, h.next(), "10.0.0.1:8000")
	})
	t.Run("a not-found first answer is reported", func(t *testing.T) {
		h := startDNS(t, DNSConfig{Name: "vllm.example", Port: 8000})
		h.answer(answer{err: &net.DNSError{Err: "no such host", IsNotFound: true}})
		if eps := h.next(); len(eps) != 0 {
			t.Fatalf("first update %#v, want empty", eps)
		}
	})
}

func TestDNSSRV(t *testing.T) {
	h := startDNS(t, DNSConfig{Name: "vllm.inference.svc.cluster.local", SRV: true, Service: "http"})
	if h.cfg.Proto != "tcp" {
		t.Fatalf("proto default = %q, want tcp", h.cfg.Proto)
	}
	// The resolver's order (by priority, shuffled by weight) must not leak
	// into the set: it is sorted by address, the priorities are labels, and
	// a target:port listed twice keeps its preferred record.
	h.answer(answer{srvs: []*net.SRV{
		{Target: "b.vllm.", Port: 8000, Priority: 10, Weight: 5},
		{Target: "c.vllm.", Port: 8001, Priority: 20, Weight: 1},
		{Target: "a.vllm.", Port: 8000, Priority: 10, Weight: 50},
		{Target: "c.vllm.", Port: 8001, Priority: 5, Weight: 3},  // preferred duplicate
		{Target: "b.vllm.", Port: 9000, Priority: 30, Weight: 0}, // other port: another endpoint
		{Target: ".", Port: 8000, Priority: 1},                   // "not available"
		{Target: "d.vllm.", Port: 0, Priority: 1},                // no port
		nil,
	}})
	eps := h.next()
	wantAddrs(t, eps, "a.vllm:8000 b.vllm:8000 b.vllm:9000 c.vllm:8001")
	wantLabels := []string{"10/50", "10/5", "30/0", "5/3"}
	for i, e := range eps {
		got := e.Labels[LabelSRVPriority] + "/" + e.Labels[LabelSRVWeight]
		if got != wantLabels[i] || !e.Ready {
			t.Errorf("%s: priority/weight %s, ready %v; want %s, ready", e.Address, got, e.Ready, wantLabels[i])
		}
	}
	if got := h.res.Calls(); len(got) != 1 || got[0] != `srv "http" "tcp" "vllm.inference.svc.cluster.local"` {
		t.Errorf("lookups = %q", got)
	}

	// A changed weight is a change (labels are part of the set).
	h.tick()
	h.answer(answer{srvs: []*net.SRV{
		{Target: "a.vllm.", Port: 8000, Priority: 10, Weight: 50},
		{Target: "b.vllm.", Port: 8000, Priority: 10, Weight: 5},
		{Target: "b.vllm.", Port: 9000, Priority: 30, Weight: 0},
		{Target: "c.vllm.", Port: 8001, Priority: 5, Weight: 4},
	}})
	eps = h.next()
	if got := eps[3].Labels[LabelSRVWeight]; got != "4" {
		t.Errorf("c.vllm weight = %s, want 4", got)
	}

	// Records returned with an error (malformed names dropped) are used.
	h.tick()
	partial := &net.DNSError{Err: "cannot unmarshal DNS message", Name: "vllm"}
	h.answer(answer{srvs: []*net.SRV{{Target: "a.vllm.", Port: 8000, Priority: 10, Weight: 50}}, err: partial})
	wantAddrs(t, h.next(), "a.vllm:8000")
	if err := h.src.LastError(); !errors.Is(err, partial) {
		t.Errorf("LastError = %v, want %v", err, partial)
	}
}

func TestDNSSRVNameAsGiven(t *testing.T) {
	h := startDNS(t, DNSConfig{Name: "_grpc._tcp.triton.example", SRV: true})
	h.answer(answer{srvs: []*net.SRV{{Target: "t1.example.", Port: 8001}}})
	wantAddrs(t, h.next(), "t1.example:8001")
	if got := h.res.Calls(); len(got) != 1 || got[0] != `srv "" "" "_grpc._tcp.triton.example"` {
		t.Errorf("lookups = %q", got)
	}
}

func TestDNSRunTwice(t *testing.T) {
	h := startDNS(t, DNSConfig{Name: "vllm.example", Port: 8000})
	h.answer(answer{hosts: []string{"10.0.0.1"}})
	h.next()
	if err := h.src.Run(context.Background(), func([]Endpoint) {}); !errors.Is(err, ErrRunning) {
		t.Errorf("second Run = %v, want ErrRunning", err)
	}
}

func TestDNSConfigDefaults(t *testing.T) {
	var c DNSConfig
	c.SetDefaults()
	if c.Interval != 30*time.Second || c.Timeout != 5*time.Second || c.Proto != "" {
		t.Errorf("defaults: %+v", c)
	}
	src, err := NewDNS(DNSConfig{Name: "h", Port: 1}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if src.resolver != net.DefaultResolver {
		t.Error("nil resolver is not net.DefaultResolver")
	}
}

func TestDNSConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg  DNSConfig
		want []string // substrings of the error; none: valid
	}{
		{cfg: DNSConfig{Name: "vllm.example", Port: 8000}},
		{cfg: DNSConfig{Name: "10.0.0.1", Port: 8000}},
		{cfg: DNSConfig{Name: "::1", Port: 8000}},
		{cfg: DNSConfig{Name: "_http._tcp.vllm", SRV: true}},
		{cfg: DNSConfig{Name: "vllm", SRV: true, Service: "http", Proto: "udp"}},
		{cfg: DNSConfig{}, want: []string{"name: required", "port: must be between 1 and 65535"}},
		{cfg: DNSConfig{Name: "vllm.example:8000", Port: 8000}, want: []string{"name: \"vllm.example:8000\" has a port"}},
		{cfg: DNSConfig{Name: "http://vllm", Port: 8000}, want: []string{"name: \"http://vllm\" is a URL"}},
		{cfg: DNSConfig{Name: "vllm", Port: 70000}, want: []string{"port: must be between 1 and 65535"}},
		{cfg: DNSConfig{Name: "vllm", Port: 80, SRV: true}, want: []string{"port: not used with srv"}},
		{cfg: DNSConfig{Name: "vllm", Port: 80, Service: "http"}, want: []string{"service: only used with srv"}},
		{cfg: DNSConfig{Name: "vllm", SRV: true, Proto: "tcp"}, want: []string{"proto: only used with service"}},
		{cfg: DNSConfig{Name: "vllm", SRV: true, Service: "_http"}, want: []string{"service: \"_http\": write it without the leading underscore"}},
		{cfg: DNSConfig{Name: "vllm", Port: 80, Interval: -time.Second, Timeout: -1}, want: []string{"interval: must not be negative", "timeout: must not be negative"}},
	} {
		if !wantInvalid(t, tc.cfg, tc.cfg.Validate(), tc.want) {
			continue
		}
		if _, nerr := NewDNS(tc.cfg, nil, nil); nerr == nil {
			t.Errorf("%+v: NewDNS accepted it", tc.cfg)
		}
	}
}

func TestDNSConfigYAML(t *testing.T) {
	src := `
name: _http._tcp.vllm.inference.svc.cluster.local
srv: true
interval: 10s
timeout: 2s
zone: eu-west-1b
`
	var c DNSConfig
	dec := yaml.NewDecoder(strings.NewReader(src))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		t.Fatal(err)
	}
	want := DNSConfig{Name: "_http._tcp.vllm.inference.svc.cluster.local", SRV: true, Interval: 10 * time.Second, Timeout: 2 * time.Second, Zone: "eu-west-1b"}
	if c != want {
		t.Errorf("decoded %+v, want %+v", c, want)
	}
	if err := c.Validate(); err != nil {
		t.Error(err)
	}
}

func TestNormalizeEqual(t *testing.T) {
	eps := Normalize([]Endpoint{
		{Address: "b:1", Zone: "first"},
		{Address: "a:1"},
		{Address: "b:1", Zone: "second"},
	})
	if addrs(eps) != "a:1 b:1" || eps[1].Zone != "first" {
		t.Errorf("Normalize = %+v", eps)
	}
	x := []Endpoint{{Address: "a:1", Labels: map[string]string{"k": "v"}}}
	y := []Endpoint{{Address: "a:1", Labels: map[string]string{"k": "w"}}}
	if Equal(x, y) || !Equal(x, clone(x)) || !Equal(nil, []Endpoint{}) {
		t.Error("Equal")
	}
}

// running is a Source's Run under test: the updates it makes, its result,
// and how to stop it.
type running struct {
	t       *testing.T
	updates chan []Endpoint
	cancel  context.CancelFunc
	done    chan error
}

// run starts src.Run on its own goroutine.
func (r *running) run(t *testing.T, src Source) {
	r.t = t
	r.updates, r.done = make(chan []Endpoint, 16), make(chan error, 1)
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() { r.done <- src.Run(ctx, func(eps []Endpoint) { r.updates <- eps }) }()
}

// next returns the next update.
func (r *running) next() []Endpoint {
	r.t.Helper()
	select {
	case eps := <-r.updates:
		return eps
	case <-time.After(guard):
		r.t.Fatal("no update")
		return nil
	}
}

// stop is stopRun for Cleanup.
func (r *running) stop() { r.t.Helper(); r.stopRun() }

// stopRun cancels Run and checks that it returned nil and made no update
// the test did not take; it reports false when Run was stopped already.
func (r *running) stopRun() bool {
	r.t.Helper()
	if r.cancel == nil {
		return false
	}
	r.cancel()
	r.cancel = nil
	select {
	case err := <-r.done:
		if err != nil {
			r.t.Errorf("Run returned %v, want nil", err)
		}
	case <-time.After(guard):
		r.t.Fatal("Run did not return after cancel")
	}
	if n := len(r.updates); n != 0 {
		r.t.Errorf("%d unexpected updates left: %v", n, <-r.updates)
	}
	return true
}

// wantInvalid checks cfg's Validate error err: none when want is empty,
// else one that contains every substring in want. It reports whether cfg
// was expected to be invalid (and the caller checks its constructor
// refuses it too).
func wantInvalid(t *testing.T, cfg any, err error, want []string) bool {
	t.Helper()
	if len(want) == 0 {
		if err != nil {
			t.Errorf("%+v: unexpected error %v", cfg, err)
		}
		return false
	}
	if err == nil {
		t.Errorf("%+v: no error, want %q", cfg, want)
		return false
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("%+v: error %q lacks %q", cfg, err, w)
		}
	}
	return true
}
