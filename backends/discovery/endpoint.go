package discovery

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
)

// Endpoint is one discovered member of a pool.
type Endpoint struct {
	// Address is host:port, ready to dial (an IPv6 host is bracketed).
	Address string
	// Zone is the failure zone the endpoint stands in, or "" when the source
	// does not know it (Kubernetes: the EndpointSlice endpoint's zone; DNS:
	// DNSConfig.Zone).
	Zone string
	// Ready reports whether the endpoint should take traffic. The sources in
	// this package emit ready endpoints only, so it is always true there; the
	// field lets other sources report members that are warming up.
	Ready bool
	// Labels are optional source-specific facts about the endpoint (see the
	// Label* constants); nil when there are none.
	Labels map[string]string
}

// Labels the sources in this package set on endpoints.
const (
	// LabelSRVPriority is an SRV-discovered endpoint's record priority
	// (decimal; lower is preferred).
	LabelSRVPriority = "dns.srv.priority"
	// LabelSRVWeight is an SRV-discovered endpoint's record weight (decimal).
	LabelSRVWeight = "dns.srv.weight"
	// LabelPod is the name of the pod behind a Kubernetes endpoint, when the
	// EndpointSlice names one.
	LabelPod = "k8s.pod"
	// LabelNode is the node a Kubernetes endpoint runs on, when known.
	LabelNode = "k8s.node"
)

// Source produces the live endpoint set of one pool.
type Source interface {
	// Run discovers until ctx is done, then returns nil; it returns an error
	// only when it cannot start (for example, when it is already running).
	//
	// Run calls update, serially from its own goroutine, with the full
	// endpoint set, sorted and de-duplicated as Normalize leaves it: once
	// when the first resolution succeeds (even when that set is empty, so the
	// caller can tell "discovered, empty" from "not known yet"), and after
	// that each time the set changes, never with a set Equal to the previous
	// one. Before the first successful resolution update is not called. The
	// slice and its Labels maps belong to update, which may keep them.
	// update should return promptly: discovery waits for it.
	Run(ctx context.Context, update func([]Endpoint)) error
}

// ErrRunning is what Run returns when the source is already running.
var ErrRunning = errors.New("discovery: source is already running")

// Normalize sorts eps by Address (as strings) and drops every endpoint whose
// Address an earlier one in eps already has: among duplicates, the one that
// came first wins, so a source orders its candidates by preference before
// normalizing. It reorders and reuses eps's backing array and returns the
// shortened slice.
func Normalize(eps []Endpoint) []Endpoint {
	slices.SortStableFunc(eps, func(a, b Endpoint) int { return strings.Compare(a.Address, b.Address) })
	return slices.CompactFunc(eps, func(a, b Endpoint) bool { return a.Address == b.Address })
}

// Equal reports whether two endpoint sets are the same, labels included.
// Both are taken as Normalize leaves them; order matters.
func Equal(a, b []Endpoint) bool {
	return slices.EqualFunc(a, b, func(x, y Endpoint) bool {
		return x.Address == y.Address && x.Zone == y.Zone && x.Ready == y.Ready && maps.Equal(x.Labels, y.Labels)
	})
}

// clone deep-copies eps (labels included); the result is never nil, so an
// empty set reaches update as an empty, non-nil slice.
func clone(eps []Endpoint) []Endpoint {
	out := make([]Endpoint, len(eps))
	for i, e := range eps {
		e.Labels = maps.Clone(e.Labels)
		out[i] = e
	}
	return out
}

// emitter applies the update rules of Source.Run.
type emitter struct {
	update  func([]Endpoint)
	last    []Endpoint
	emitted bool
}

// offer passes eps (normalized) to update unless it equals the last set
// passed; it reports whether it did.
func (e *emitter) offer(eps []Endpoint) bool {
	if e.emitted && Equal(e.last, eps) {
		return false
	}
	e.emitted = true
	e.last = clone(eps)
	e.update(clone(eps))
	return true
}

// Option adjusts a source built by NewDNS or NewK8s.
type Option func(*options)

type options struct {
	onError func(error)
}

// WithErrorHandler has the source call f with every discovery error (a failed
// or not-found lookup, a failed list or watch), from the source's goroutine,
// besides recording it for LastError. f should return promptly.
func WithErrorHandler(f func(error)) Option {
	return func(o *options) { o.onError = f }
}

func buildOptions(opts []Option) options {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	return o
}
