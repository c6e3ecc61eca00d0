package telemetry

import (
	"testing"
	"time"
)

func TestMerge(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	const maxAge = 15 * time.Second
	fresh := &Snapshot{At: now.Add(-2 * time.Second), Running: 10, Waiting: 4, KVCacheUsage: 0.8, GPUUtil: -1, Source: SourceVLLM}
	quiet := &Snapshot{At: now.Add(-2 * time.Second), Running: 1, Waiting: 0, KVCacheUsage: 0.1, GPUUtil: -1, Source: SourceVLLM}
	stale := &Snapshot{At: now.Add(-time.Minute), Running: 10, Waiting: 4, KVCacheUsage: 0.8, Source: SourceVLLM}
	errored := &Snapshot{At: now.Add(-time.Second), Running: 10, Waiting: 4, KVCacheUsage: 0.8, Source: SourceVLLM, Err: "connection refused"}
	triton := &Snapshot{At: now.Add(-time.Second), Waiting: 6, Pending: 6, KVCacheUsage: -1, GPUUtil: 0.9, Source: SourceTriton}
	for _, tc := range []struct {
		name   string
		placed Placed
		s      *Snapshot
		want   Effective
	}{
		{"no snapshot", Placed{3, 2}, nil, Effective{Running: 3, Waiting: 2, KVCacheUsage: -1}},
		{"upstream busier (shared)", Placed{3, 2}, fresh, Effective{Running: 10, Waiting: 4, KVCacheUsage: 0.8, Upstream: true}},
		{"gateway busier (not scraped yet)", Placed{5, 3}, quiet, Effective{Running: 5, Waiting: 3, KVCacheUsage: 0.1, Upstream: true}},
		{"mixed", Placed{12, 1}, fresh, Effective{Running: 12, Waiting: 4, KVCacheUsage: 0.8, Upstream: true}},
		{"stale ignored", Placed{3, 2}, stale, Effective{Running: 3, Waiting: 2, KVCacheUsage: -1}},
		{"errored ignored", Placed{3, 2}, errored, Effective{Running: 3, Waiting: 2, KVCacheUsage: -1}},
		{"triton pending is waiting", Placed{0, 1}, triton, Effective{Running: 0, Waiting: 6, KVCacheUsage: -1, Upstream: true}},
		{"idle", Placed{}, &Snapshot{At: now, KVCacheUsage: 0, GPUUtil: -1, Source: SourceSGLang}, Effective{KVCacheUsage: 0, Upstream: true}},
	} {
		if got := Merge(tc.placed, tc.s, now, maxAge); got != tc.want {
			t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

func TestMergeAllocs(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	s := &Snapshot{At: now, Running: 3, Waiting: 1, KVCacheUsage: 0.5, Source: SourceVLLM}
	var sink Effective
	if n := testing.AllocsPerRun(100, func() { sink = Merge(Placed{1, 2}, s, now, time.Second) }); n != 0 {
		t.Errorf("Merge allocates %v times", n)
	}
	_ = sink
}

func BenchmarkMerge(b *testing.B) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	s := &Snapshot{At: now, Running: 3, Waiting: 1, KVCacheUsage: 0.5, Source: SourceVLLM}
	var sink Effective
	b.ReportAllocs()
	for b.Loop() {
		sink = Merge(Placed{1, 2}, s, now, time.Second)
	}
	_ = sink
}
