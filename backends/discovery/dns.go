package discovery

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/accelgate/accelgate/backends"
)

// DNS defaults.
const (
	DefaultDNSInterval = 30 * time.Second
	DefaultDNSTimeout  = 5 * time.Second
)

// DNSConfig is a pool whose members are the answers to a DNS query.
//
//	dns:
//	  name: vllm.inference.svc.cluster.local
//	  port: 8000            # A/AAAA: the port every address serves on
//	  interval: 30s         # default 30s
//	  timeout: 5s           # per lookup, default 5s
//	  zone: us-east-1a      # optional, stamped on every endpoint
//
//	dns:
//	  name: _http._tcp.vllm.inference.svc.cluster.local
//	  srv: true             # ports come from the SRV records
type DNSConfig struct {
	// Name is the host name to resolve (A/AAAA), or with SRV the SRV name:
	// looked up as given, or as _service._proto.name when Service is set.
	Name string `yaml:"name"`
	// Port is the port of every A/AAAA address (1 to 65535). Not used with SRV.
	Port int `yaml:"port"`
	// SRV looks up SRV records instead of A/AAAA; each record gives target
	// host and port.
	SRV bool `yaml:"srv"`
	// Service and Proto (SRV only) build the query _service._proto.name; with
	// Service empty, Name is queried as given. Proto defaults to tcp when
	// Service is set. Both are written without the leading underscore.
	Service string `yaml:"service"`
	Proto   string `yaml:"proto"`
	// Interval is the time between the starts of two lookups. Default 30s.
	Interval time.Duration `yaml:"interval"`
	// Timeout bounds each lookup (wall-clock time). Default 5s.
	Timeout time.Duration `yaml:"timeout"`
	// Zone, when set, is the Zone of every endpoint found.
	Zone string `yaml:"zone"`
}

// SetDefaults fills the zero Interval, Timeout and (SRV with Service) Proto.
func (c *DNSConfig) SetDefaults() {
	if c.Interval == 0 {
		c.Interval = DefaultDNSInterval
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultDNSTimeout
	}
	if c.SRV && c.Service != "" && c.Proto == "" {
		c.Proto = "tcp"
	}
}

// Validate checks the settings. Each error names the yaml field, e.g.
// "port: must be between 1 and 65535 (the port of every A/AAAA address)";
// the caller prefixes where the section stands. Zero durations pass (they
// mean the defaults).
func (c *DNSConfig) Validate() error {
	var errs []error
	bad := func(field, format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, a...)))
	}
	switch {
	case c.Name == "":
		bad("name", "required")
	case strings.Contains(c.Name, "://"):
		bad("name", "%q is a URL; give a bare host name", c.Name)
	case strings.Contains(c.Name, ":") && net.ParseIP(c.Name) == nil:
		bad("name", "%q has a port; give the host name alone and set port", c.Name)
	case strings.ContainsAny(c.Name, " /\t"):
		bad("name", "%q is not a host name", c.Name)
	}
	if c.SRV {
		if c.Port != 0 {
			bad("port", "not used with srv: true (the SRV records give the ports)")
		}
		if c.Service == "" && c.Proto != "" {
			bad("proto", "only used with service")
		}
		for _, f := range []struct{ field, v string }{{"service", c.Service}, {"proto", c.Proto}} {
			if strings.HasPrefix(f.v, "_") {
				bad(f.field, "%q: write it without the leading underscore", f.v)
			} else if strings.ContainsAny(f.v, ". ") {
				bad(f.field, "%q is not a single DNS label", f.v)
			}
		}
	} else {
		if c.Port < 1 || c.Port > 65535 {
			bad("port", "must be between 1 and 65535 (the port of every A/AAAA address), got %d", c.Port)
		}
		if c.Service != "" {
			bad("service", "only used with srv: true")
		}
		if c.Proto != "" {
			bad("proto", "only used with srv: true")
		}
	}
	if c.Interval < 0 {
		bad("interval", "must not be negative")
	}
	if c.Timeout < 0 {
		bad("timeout", "must not be negative")
	}
	return errors.Join(errs...)
}

// Resolver is the part of *net.Resolver the DNS source uses;
// net.DefaultResolver satisfies it, and tests inject a fake.
type Resolver interface {
	LookupHost(ctx context.Context, host string) ([]string, error)
	LookupSRV(ctx context.Context, service, proto, name string) (string, []*net.SRV, error)
}

var _ Resolver = net.DefaultResolver

// DNSSource is a Source that re-resolves a DNS name at a fixed interval.
//
// Rules, for each lookup:
//   - success: the answers are the new set (A/AAAA: each address at Port;
//     SRV: each target:port, target without its trailing dot, priority and
//     weight in Labels; records with target "." or port 0 are skipped, and
//     of two records for one target:port the lower priority, then the higher
//     weight, wins);
//   - not found (a *net.DNSError with IsNotFound, i.e. NXDOMAIN or no records
//     of the type): the name is authoritatively gone, so the set becomes
//     empty; the error is still recorded;
//   - SRV records returned together with an error (Go's resolver drops
//     records with malformed names and says so): the remaining records are
//     the new set, and the error is recorded;
//   - any other failure (timeout, SERVFAIL, no reachable server): the set
//     stays as it was, and the error is recorded.
//
// The first lookup runs as soon as Run starts; the next starts Interval
// after the previous one started (on the injected clock), or when the
// previous one ends if that is later.
type DNSSource struct {
	cfg      DNSConfig
	resolver Resolver
	clock    backends.Clock
	opts     options
	running  atomic.Bool

	mu      sync.Mutex
	lastErr error
}

var _ Source = (*DNSSource)(nil)

// NewDNS returns a DNS source for cfg, which it copies, defaults and
// validates (returning Validate's error). A nil resolver means
// net.DefaultResolver; a nil clock means backends.RealClock.
func NewDNS(cfg DNSConfig, resolver Resolver, clock backends.Clock, opts ...Option) (*DNSSource, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if resolver == nil {
		resolver = net.DefaultResolver
	}
	if clock == nil {
		clock = backends.RealClock
	}
	return &DNSSource{cfg: cfg, resolver: resolver, clock: clock, opts: buildOptions(opts)}, nil
}

// Config returns the source's settings, defaults filled.
func (s *DNSSource) Config() DNSConfig { return s.cfg }

// LastError returns the error of the most recent lookup (a failure, or a
// not-found answer), or nil when it succeeded or none has finished yet.
func (s *DNSSource) LastError() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastErr
}

// Run implements Source.
func (s *DNSSource) Run(ctx context.Context, update func([]Endpoint)) error {
	if !s.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer s.running.Store(false)

	em := emitter{update: update}
	tick := make(chan struct{}, 1)
	fire := func() {
		select {
		case tick <- struct{}{}:
		default:
		}
	}
	for {
		// The next lookup is scheduled before this one starts, so a clock
		// advanced by a test once this lookup is under way finds it pending.
		timer := s.clock.AfterFunc(s.cfg.Interval, fire)
		eps, use, err := s.lookup(ctx)
		if ctx.Err() != nil {
			timer.Stop()
			return nil
		}
		s.record(err)
		if use {
			em.offer(eps)
		}
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case <-tick:
		}
	}
}

func (s *DNSSource) record(err error) {
	s.mu.Lock()
	s.lastErr = err
	s.mu.Unlock()
	if err != nil && s.opts.onError != nil {
		s.opts.onError(err)
	}
}

// lookup resolves once. use reports whether eps is the new set; err, when
// not nil, is recorded whether or not the set is used.
func (s *DNSSource) lookup(ctx context.Context) (eps []Endpoint, use bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	if s.cfg.SRV {
		_, srvs, err := s.resolver.LookupSRV(ctx, s.cfg.Service, s.cfg.Proto, s.cfg.Name)
		switch {
		case err == nil:
			return s.fromSRV(srvs), true, nil
		case isNotFound(err):
			return nil, true, err
		case len(srvs) > 0:
			return s.fromSRV(srvs), true, err
		default:
			return nil, false, err
		}
	}
	hosts, err := s.resolver.LookupHost(ctx, s.cfg.Name)
	switch {
	case err == nil:
	case isNotFound(err):
		return nil, true, err
	default:
		return nil, false, err
	}
	port := strconv.Itoa(s.cfg.Port)
	eps = make([]Endpoint, 0, len(hosts))
	for _, h := range hosts {
		eps = append(eps, Endpoint{Address: net.JoinHostPort(h, port), Zone: s.cfg.Zone, Ready: true})
	}
	return Normalize(eps), true, nil
}

func (s *DNSSource) fromSRV(srvs []*net.SRV) []Endpoint {
	srvs = slices.DeleteFunc(slices.Clone(srvs), func(r *net.SRV) bool { return r == nil })
	// Preferred records first, so Normalize keeps them among duplicates.
	slices.SortStableFunc(srvs, func(a, b *net.SRV) int {
		if a.Priority != b.Priority {
			return int(a.Priority) - int(b.Priority)
		}
		return int(b.Weight) - int(a.Weight)
	})
	eps := make([]Endpoint, 0, len(srvs))
	for _, r := range srvs {
		target := strings.TrimSuffix(r.Target, ".")
		if target == "" || r.Port == 0 {
			continue // "." means the service is decidedly not available there
		}
		eps = append(eps, Endpoint{
			Address: net.JoinHostPort(target, strconv.Itoa(int(r.Port))),
			Zone:    s.cfg.Zone,
			Ready:   true,
			Labels: map[string]string{
				LabelSRVPriority: strconv.Itoa(int(r.Priority)),
				LabelSRVWeight:   strconv.Itoa(int(r.Weight)),
			},
		})
	}
	return Normalize(eps)
}

func isNotFound(err error) bool {
	var dnsErr *net.DNSError
	return errors.As(err, &dnsErr) && dnsErr.IsNotFound
}
