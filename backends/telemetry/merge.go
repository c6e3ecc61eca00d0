package telemetry

import "time"

// Placed is what the gateway itself has placed on a backend: sequences it is
// running there and requests it has queued there.
type Placed struct {
	Running, Waiting float64
}

// Effective is the load a new request placed on a backend would join: the
// merge of what the gateway placed and what the upstream reports.
type Effective struct {
	// Running and Waiting are the larger of the gateway's and the upstream's
	// counts (the gateway's alone when the snapshot is not used).
	Running, Waiting float64
	// KVCacheUsage is the upstream's KV cache fraction, 0..1; -1 when
	// unknown or the snapshot is not used.
	KVCacheUsage float64
	// Upstream reports whether the snapshot was fresh and used.
	Upstream bool
}

// Merge is the merge rule (see the package doc): a fresh snapshot (see
// Snapshot.Fresh) raises the gateway's own counts to the upstream's where the
// upstream reports more, since other clients may share the upstream, and
// supplies the KV cache usage; a nil, stale or errored snapshot is ignored
// and the gateway's counts stand alone. It is pure and does not allocate.
func Merge(placed Placed, s *Snapshot, now time.Time, maxAge time.Duration) Effective {
	e := Effective{Running: placed.Running, Waiting: placed.Waiting, KVCacheUsage: -1}
	if !s.Fresh(now, maxAge) {
		return e
	}
	e.Upstream = true
	if s.Running > e.Running {
		e.Running = s.Running
	}
	if s.Waiting > e.Waiting {
		e.Waiting = s.Waiting
	}
	e.KVCacheUsage = s.KVCacheUsage
	return e
}
