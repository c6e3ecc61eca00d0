package main

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sync"

	"go.yaml.in/yaml/v3"

	"github.com/accelgate/accelgate/backends/discovery"
	"github.com/accelgate/accelgate/backends/fleet"
)

// Dynamic discovery.
//
// A backend entry with a discover section is a pool (fleet.BackendSpec
// .Discover): the gateway runs its source — DNS (backends/discovery's
// DNSSource, re-resolved every interval) or a Kubernetes Service's
// EndpointSlices (K8sSource, client-go informers, in-cluster credentials) —
// and every time the set of endpoints changes it reloads the fleet with the
// pool expanded to one backend per endpoint (fleet.File.ExpandPools), the
// same way a changed file is applied: new members get traffic at once,
// removed ones drain.

// poolSources runs the sources of a fleet's pools.
type poolSources struct {
	ctx       context.Context
	newSource func(name string, spec *fleet.DiscoverSpec) (discovery.Source, error)
	changed   func() // called (on its own goroutine) when a pool's endpoints change
	logf      func(format string, a ...any)

	mu      sync.Mutex
	running map[string]*runningPool
}

type runningPool struct {
	key    string // the pool's discover section, as YAML: a change restarts it
	cancel context.CancelFunc
	eps    []fleet.Endpoint
}

// endpoints returns every pool's current endpoints.
func (p *poolSources) endpoints() map[string][]fleet.Endpoint {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string][]fleet.Endpoint, len(p.running))
	for name, rp := range p.running {
		out[name] = slices.Clone(rp.eps)
	}
	return out
}

// check decodes every pool's discover section, so that a bad one fails the
// load with a message that names it.
func checkPools(f *fleet.File) error {
	for _, i := range f.Pools() {
		if _, _, err := decodeDiscover(f.Backends[i].Discover); err != nil {
			return fmt.Errorf("backends[%d].discover: %w", i, err)
		}
	}
	return nil
}

// reconcile starts the sources of f's pools that are not running (or whose
// section changed) and stops those of pools f no longer has. It does not
// wait for stopped sources.
func (p *poolSources) reconcile(f *fleet.File) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.running == nil {
		p.running = map[string]*runningPool{}
	}
	want := map[string]bool{}
	for _, i := range f.Pools() {
		b := &f.Backends[i]
		want[b.Name] = true
		key := discoverKey(b.Discover)
		if rp := p.running[b.Name]; rp != nil && rp.key == key {
			continue
		} else if rp != nil {
			rp.cancel()
		}
		src, err := p.newSource(b.Name, b.Discover)
		if err != nil {
			p.logf("pool %s: %v (the pool stays empty)", b.Name, err)
			delete(p.running, b.Name)
			continue
		}
		ctx, cancel := context.WithCancel(p.ctx)
		rp := &runningPool{key: key, cancel: cancel}
		p.running[b.Name] = rp
		name := b.Name
		go func() {
			err := src.Run(ctx, func(eps []discovery.Endpoint) { p.update(name, rp, eps) })
			if err != nil && ctx.Err() == nil {
				p.logf("pool %s: discovery stopped: %v", name, err)
			}
		}()
	}
	for name, rp := range p.running {
		if !want[name] {
			rp.cancel()
			delete(p.running, name)
		}
	}
}

// update records a pool's new endpoint set and asks for a reload.
func (p *poolSources) update(name string, rp *runningPool, eps []discovery.Endpoint) {
	addrs := make([]fleet.Endpoint, 0, len(eps))
	for _, e := range eps {
		if e.Ready {
			addrs = append(addrs, e.Address)
		}
	}
	slices.Sort(addrs)
	p.mu.Lock()
	if p.running[name] != rp || slices.Equal(rp.eps, addrs) {
		p.mu.Unlock()
		return
	}
	rp.eps = addrs
	p.mu.Unlock()
	p.logf("pool %s: %d endpoints %v", name, len(addrs), addrs)
	go p.changed()
}

// stop stops every source.
func (p *poolSources) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for name, rp := range p.running {
		rp.cancel()
		delete(p.running, name)
	}
}

func discoverKey(d *fleet.DiscoverSpec) string {
	b, _ := yaml.Marshal(d)
	return string(b)
}

// decodeDiscover decodes a pool's discover section strictly into the
// source's configuration (defaults filled, validated).
func decodeDiscover(d *fleet.DiscoverSpec) (*discovery.DNSConfig, *discovery.K8sConfig, error) {
	strict := func(n *yaml.Node, v any) error {
		raw, err := yaml.Marshal(n)
		if err != nil {
			return err
		}
		dec := yaml.NewDecoder(bytes.NewReader(raw))
		dec.KnownFields(true)
		return dec.Decode(v)
	}
	if d.DNS.Kind != 0 {
		var c discovery.DNSConfig
		if err := strict(&d.DNS, &c); err != nil {
			return nil, nil, fmt.Errorf("dns: %w", err)
		}
		c.SetDefaults()
		if err := c.Validate(); err != nil {
			return nil, nil, fmt.Errorf("dns.%w", err)
		}
		return &c, nil, nil
	}
	var c discovery.K8sConfig
	if err := strict(&d.Kubernetes, &c); err != nil {
		return nil, nil, fmt.Errorf("kubernetes: %w", err)
	}
	c.SetDefaults()
	if err := c.Validate(); err != nil {
		return nil, nil, fmt.Errorf("kubernetes.%w", err)
	}
	return nil, &c, nil
}

// newPoolSource builds the real source of a pool: DNS through the system
// resolver, Kubernetes through the in-cluster client.
func newPoolSource(logf func(string, ...any)) func(name string, spec *fleet.DiscoverSpec) (discovery.Source, error) {
	return func(name string, spec *fleet.DiscoverSpec) (discovery.Source, error) {
		dns, k8s, err := decodeDiscover(spec)
		if err != nil {
			return nil, err
		}
		onErr := discovery.WithErrorHandler(func(err error) { logf("pool %s: %v", name, err) })
		if dns != nil {
			return discovery.NewDNS(*dns, nil, nil, onErr)
		}
		client, err := discovery.InClusterClient()
		if err != nil {
			return nil, fmt.Errorf("kubernetes: %w (the gateway must run inside the cluster, with get/list/watch on endpointslices)", err)
		}
		return discovery.NewK8s(*k8s, client, onErr)
	}
}

// newPoolSourceFn is newPoolSource; tests replace it with fake sources.
var newPoolSourceFn = newPoolSource
