package fleet

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/accelgate/accelgate/backends"
	"github.com/accelgate/accelgate/backends/catalog"
	"github.com/accelgate/accelgate/backends/emulator"
	"github.com/accelgate/accelgate/backends/kserve"
	"github.com/accelgate/accelgate/backends/kservegrpc"
	"github.com/accelgate/accelgate/backends/upstream"
	"github.com/accelgate/accelgate/batcher"
	"github.com/accelgate/accelgate/router"
)

// Fleet is a built fleet: what the gateway serves.
type Fleet struct {
	// Models maps public model names to their settings (read-only).
	Models map[string]*backends.Model
	// ModelOrder lists the models in file order.
	ModelOrder []*backends.Model
	// Backends are in file order; router indices refer to this slice.
	Backends []backends.Backend
	// Router is the validated router section.
	Router router.Config
	// Batching holds every model's effective batching settings (the models
	// section's batching, defaults filled; batcher.DefaultConfig() where it
	// is absent), by model name.
	Batching map[string]batcher.Config
	// Cache holds the response cache settings (defaults filled) of the
	// models whose cache section enables it, by model name; the other
	// models have no entry (gateway.Dispatcher.SetResponseCache).
	Cache map[string]ResponseCache
	// HealthChecks holds every backend's effective health_check settings
	// (the top-level section with the backend's overrides), in Backends
	// order. Emulated backends are never probed.
	HealthChecks []HealthCheck
	// Retry is the validated retry section (defaults filled).
	Retry Retry
	// Hedging is the validated hedging section (defaults filled).
	Hedging Hedging
}

// BuildOptions are the run-time dependencies of Build.
type BuildOptions struct {
	// Clock drives emulated backends; nil means the wall clock.
	Clock backends.Clock
	// Getenv reads API keys named by api_key_env; nil means os.Getenv.
	Getenv func(string) string
}

// Build constructs the fleet's backends. f must have passed Validate with the
// same catalog.
func (f *File) Build(cat *catalog.Catalog, opts BuildOptions) (*Fleet, error) {
	if opts.Clock == nil {
		opts.Clock = backends.RealClock
	}
	if opts.Getenv == nil {
		opts.Getenv = os.Getenv
	}
	fl := &Fleet{Models: make(map[string]*backends.Model, len(f.Models)), Router: f.Router,
		Batching: make(map[string]batcher.Config, len(f.Models)), Retry: f.Retry, Hedging: f.Hedging}
	fl.Retry.SetDefaults()
	fl.Hedging.SetDefaults()
	hc := f.HealthCheck
	hc.SetDefaults()
	for i := range f.Models {
		m := f.Models[i].Model()
		fl.Models[m.Name] = m
		fl.ModelOrder = append(fl.ModelOrder, m)
		fl.Batching[m.Name] = f.Models[i].BatchingConfig()
		if c := f.Models[i].Cache; c != nil && c.Enabled {
			if fl.Cache == nil {
				fl.Cache = make(map[string]ResponseCache)
			}
			cc := *c
			cc.SetDefaults()
			fl.Cache[m.Name] = cc
		}
	}
	for i := range f.Backends {
		b := &f.Backends[i]
		prof, ok := cat.Get(b.Hardware)
		if !ok {
			fl.Close()
			return nil, fmt.Errorf("backends[%d].hardware: unknown profile %q", i, b.Hardware)
		}
		desc := &backends.Descriptor{
			Name:         b.Name,
			Profile:      prof,
			Models:       append([]string(nil), b.Models...),
			Transport:    b.Transport,
			Site:         b.Site,
			RTT:          ms(b.RTTMs),
			PricePerHour: prof.PricePerHour,
		}
		if b.PricePerHour != nil {
			desc.PricePerHour = *b.PricePerHour
		}
		be, err := newBackend(desc, b, opts)
		if err != nil {
			fl.Close()
			var fe *fieldError
			if errors.As(err, &fe) {
				return nil, fmt.Errorf("backends[%d].%s: %s (backend %q)", i, fe.field, fe.msg, b.Name)
			}
			return nil, fmt.Errorf("backends[%d]: %w", i, err)
		}
		fl.Backends = append(fl.Backends, be)
		fl.HealthChecks = append(fl.HealthChecks, hc.Merge(b.HealthCheck))
	}
	return fl, nil
}

// fieldError is a problem with one field of a backend entry found while
// building it; Build names the field as Validate does.
type fieldError struct{ field, msg string }

func (e *fieldError) Error() string { return e.field + ": " + e.msg }

// newBackend constructs the backend an entry's transport names.
func newBackend(desc *backends.Descriptor, b *BackendSpec, opts BuildOptions) (backends.Backend, error) {
	switch b.Transport {
	case TransportOpenAI:
		key := ""
		if b.APIKeyEnv != "" {
			// A named but missing key is a deployment mistake: fail at start
			// rather than send every request without credentials.
			if key = opts.Getenv(b.APIKeyEnv); key == "" {
				return nil, &fieldError{"api_key_env", fmt.Sprintf("environment variable %s is not set (or is empty)", b.APIKeyEnv)}
			}
		}
		u, err := upstream.New(desc, upstream.Config{URL: b.URL, APIKey: key, ModelNames: b.ModelNames})
		if err != nil {
			return nil, err
		}
		return u, nil
	case TransportKServeHTTP:
		u, err := kserve.NewHTTP(desc, kserve.HTTPConfig{URL: b.URL})
		if err != nil {
			return nil, err
		}
		return u, nil
	case TransportKServeGRPC:
		u, err := kservegrpc.New(desc, kservegrpc.Config{Target: strings.TrimPrefix(b.URL, "grpc://")})
		if err != nil {
			return nil, err
		}
		return u, nil
	}
	cfg := emulator.DefaultConfig()
	if b.Jitter != nil {
		cfg.JitterSigma = *b.Jitter
	}
	return emulator.New(desc, emulator.Options{Clock: opts.Clock, Seed: b.Seed, Config: cfg}), nil
}

// Descriptors returns the backends' descriptors in fleet order.
func (fl *Fleet) Descriptors() []*backends.Descriptor {
	out := make([]*backends.Descriptor, len(fl.Backends))
	for i, b := range fl.Backends {
		out[i] = b.Descriptor()
	}
	return out
}

// ModelNames returns the served model names, sorted.
func (fl *Fleet) ModelNames() []string { return modelNames(fl.Models) }

// Close closes every backend.
func (fl *Fleet) Close() error {
	var errs []error
	for _, b := range fl.Backends {
		if err := b.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// WriteTable prints the fleet as a table: backend, hardware, kind, transport,
// site, price per hour and models.
func WriteTable(w io.Writer, fl *Fleet) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "BACKEND\tHARDWARE\tKIND\tTRANSPORT\tSITE\tRTT\t$/HOUR\tMODELS")
	for _, b := range fl.Backends {
		d := b.Descriptor()
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%v\t%.4f\t%s\n", d.Name, d.Profile.Name, d.Profile.Kind, d.Transport, d.Site, d.RTT, d.PricePerHour, strings.Join(d.Models, ","))
	}
	tw.Flush()
}
