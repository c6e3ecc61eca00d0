package gateway

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/accelgate/accelgate/backends"
	"github.com/accelgate/accelgate/backends/fakeclock"
	"github.com/accelgate/accelgate/batcher"
	"github.com/accelgate/accelgate/router"
)

// TestStatus: Status reports the descriptor fields, the router's books, an
// ejection (until it ends), failed health checks and a metadata mismatch,
// each apart.
func TestStatus(t *testing.T) {
	clock := fakeclock.New(t0)
	prof := testProfile("test-gpu", 3.6)
	bs := []*instant{{}, {err: fmt.Errorf("%w: connection refused", backends.ErrUnavailable)}, {}}
	var list []backends.Backend
	for i, b := range bs {
		b.desc = &backends.Descriptor{Name: fmt.Sprint("b", i), Profile: prof, Models: []string{"llm"},
			PricePerHour: 3.6, Site: "dc-1", Transport: "openai"}
		list = append(list, b)
	}
	bs[1].desc.Models = []string{"llm", "emb"} // b1 alone serves emb
	// Unbatched, so that a request runs at once on the fake clock.
	off := map[string]batcher.Config{"llm": {Mode: batcher.ModeOff}, "emb": {Mode: batcher.ModeOff}}
	d, err := NewDispatcher(list, testModels(), router.Config{}, clock, WithBatching(off))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()

	st := d.Status()
	if len(st) != 3 {
		t.Fatalf("%d entries, want 3", len(st))
	}
	for i, s := range st {
		if s.Index != i || s.Name != fmt.Sprint("b", i) || s.Hardware != "test-gpu" || s.Site != "dc-1" || s.Transport != "openai" ||
			!slices.Equal(s.Models, bs[i].desc.Models) || !s.Available || s.Ejected || s.Unhealthy || s.MetadataMismatch || s.Load != (router.Load{}) {
			t.Errorf("idle status[%d] = %+v", i, s)
		}
	}
	st[0].Models[0] = "changed"
	if d.Backends()[0].Descriptor().Models[0] != "llm" {
		t.Fatal("Status shares the descriptor's model list")
	}

	// A placed request shows in the books until it is cancelled.
	m := d.Models()["llm"]
	req := &backends.Request{ID: "r", Op: backends.OpChat, Model: "llm", N: 1, Rows: 1, EstInputTokens: 40, Priority: backends.Standard}
	p, err := d.Place(req, m, -1)
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(d.Backends(), func(b backends.Backend) bool { return b.Descriptor() == p.Backend() })
	if l := d.Status()[i].Load; l.Seqs != 1 || l.PromptTokens != 40 || l.InFlight != 1 {
		t.Errorf("books of %s with one placed request: %+v", p.Backend().Name, l)
	}
	d.Cancel(&p)
	if l := d.Status()[i].Load; l.Seqs != 0 || l.InFlight != 0 {
		t.Errorf("books after Cancel: %+v", l)
	}

	// b1 fails until it is ejected (three consecutive failures).
	emb := d.Models()["emb"]
	ereq := &backends.Request{ID: "e", Op: backends.OpEmbedding, Model: "emb", Inputs: []string{"x"}, Rows: 1, EstInputTokens: 1, Priority: backends.Standard}
	for range 3 {
		if _, _, err := d.Do(context.Background(), ereq, emb); !errors.Is(err, backends.ErrUnavailable) {
			t.Fatalf("emb on b1: %v", err)
		}
	}
	st = d.Status()
	if s := st[1]; s.Available || !s.Ejected || s.MetadataMismatch {
		t.Errorf("b1 after three failures: %+v, want ejected", s)
	}
	if s := st[0]; !s.Available || s.Ejected {
		t.Errorf("b0 after b1's failures: %+v", s)
	}
	clock.Advance(d.r.Config().EjectFor + time.Second)
	if s := d.Status()[1]; !s.Available || s.Ejected {
		t.Errorf("b1 after its ejection ended: %+v", s)
	}

	// Failed health checks and a metadata mismatch are told apart from an
	// ejection.
	d.setUnhealthy(0, true)
	if s := d.Status()[0]; s.Available || s.Ejected || !s.Unhealthy || s.MetadataMismatch {
		t.Errorf("b0 failing its health checks: %+v", s)
	}
	d.setUnhealthy(0, false)
	if s := d.Status()[0]; !s.Available || s.Unhealthy {
		t.Errorf("b0 healthy again: %+v", s)
	}
	d.mu.Lock()
	d.mismatch[2] = true
	d.r.SetDown(2, true)
	d.mu.Unlock()
	if s := d.Status()[2]; s.Available || s.Ejected || s.Unhealthy || !s.MetadataMismatch {
		t.Errorf("b2 kept out by metadata: %+v", s)
	}
}
