package gateway

import (
	"slices"

	"github.com/accelgate/accelgate/router"
)

// BackendStatus is one backend's state as the router sees it at one moment,
// for the admin API (cmd/gateway's GET /admin/backends).
type BackendStatus struct {
	// Index is the backend's router index (its position in the fleet).
	Index int
	// Name, Hardware (the catalog profile's name), Site and Transport come
	// from the backend's descriptor; Models are the models it serves (a
	// copy).
	Name      string
	Hardware  string
	Site      string
	Transport string
	Models    []string
	// Available reports whether the backend may receive traffic now: it is
	// not ejected, not failing its health checks and not kept out by a
	// metadata mismatch.
	Available bool
	// Ejected reports that passive outlier detection took the backend out
	// of rotation after failures and its ejection has not ended yet. It is
	// told only when neither Unhealthy nor MetadataMismatch holds (the
	// router does not say why a backend is unavailable).
	Ejected bool
	// Unhealthy reports that the active health checks (HealthChecker) keep
	// the backend out of rotation.
	Unhealthy bool
	// MetadataMismatch reports that CheckMetadata keeps the backend out of
	// rotation: its model metadata differs from the fleet file.
	MetadataMismatch bool
	// Load is the router's books for the backend: what the gateway placed
	// on it and has not seen finish. A telemetry report (SetExternal) is
	// not included; the router merges it at placement time.
	Load router.Load
}

// Status returns every backend's state, in router order. It reads the router
// under the dispatcher's lock, once, so the entries are one consistent
// picture.
func (d *Dispatcher) Status() []BackendStatus {
	now := d.clock.Now()
	out := make([]BackendStatus, len(d.backends))
	d.mu.Lock()
	for i := 0; i < d.r.Len(); i++ {
		available := d.r.Available(i, now)
		unhealthy := d.unhealthy != nil && d.unhealthy[i]
		out[i] = BackendStatus{
			Index:            i,
			Available:        available,
			Unhealthy:        unhealthy,
			MetadataMismatch: d.mismatch[i],
			// The router takes a backend out of rotation when it is marked
			// down (SetDown, whose only callers are the health checks and
			// CheckMetadata) or ejected, and does not say which: an
			// unavailable backend that neither keeps out is ejected.
			Ejected: !available && !unhealthy && !d.mismatch[i],
			Load:    d.r.Load(i),
		}
	}
	d.mu.Unlock()
	for i, b := range d.backends {
		desc := b.Descriptor()
		s := &out[i]
		s.Name, s.Site, s.Transport, s.Models = desc.Name, desc.Site, desc.Transport, slices.Clone(desc.Models)
		if desc.Profile != nil {
			s.Hardware = desc.Profile.Name
		}
	}
	return out
}
