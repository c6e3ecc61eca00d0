package gateway

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/accelgate/accelgate/backends"
	"github.com/accelgate/accelgate/router"
)

// TestSwapDispatcherKeepsInFlight: a chat request in flight on the old
// generation finishes there after the swap; new requests go to the new
// generation's backend; Drain returns once the old one's request ended.
func TestSwapDispatcherKeepsInFlight(t *testing.T) {
	old := newBatchFake(true)
	old.desc.Name = "old-0"
	e := newBatchEnv(t, old, nil)
	chat := `{"model":"llm","messages":[{"role":"user","content":"hi"}]}`
	first := e.post("/v1/chat/completions", chat)
	waitFor(t, "the request at the old backend", func() bool { old.mu.Lock(); defer old.mu.Unlock(); return len(old.calls) == 1 })

	nu := newBatchFake(false)
	nu.desc.Name = "new-0"
	d2, err := NewDispatcher([]backends.Backend{nu}, ksModels(), router.Config{}, backends.RealClock)
	if err != nil {
		t.Fatal(err)
	}
	prev := e.srv.SwapDispatcher(d2)
	if prev.Outstanding() != 1 {
		t.Fatalf("old generation has %d placements outstanding, want 1", prev.Outstanding())
	}
	// A new request runs on the new generation at once.
	a := <-e.post("/v1/chat/completions", chat)
	if a.status != 200 {
		t.Fatalf("new request: %d %s", a.status, a.body)
	}
	nu.mu.Lock()
	n := len(nu.calls)
	nu.mu.Unlock()
	if n != 1 {
		t.Fatalf("the new backend saw %d calls, want 1", n)
	}
	// Drain waits for the old request.
	drained := make(chan error, 1)
	go func() { drained <- prev.Drain(context.Background()) }()
	select {
	case err := <-drained:
		t.Fatalf("Drain returned (%v) while a request was in flight", err)
	default:
	}
	old.gate <- struct{}{}
	if a := <-first; a.status != 200 || !strings.Contains(string(a.body), "ok") {
		t.Fatalf("in-flight request after the swap: %d %s", a.status, a.body)
	}
	select {
	case err := <-drained:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Drain did not return after the last request ended")
	}
	if err := prev.Close(); err != nil {
		t.Fatal(err)
	}
	// A drain bounded by a context reports what is left.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := d2.Drain(ctx); err != nil {
		t.Fatalf("idle dispatcher: %v", err)
	}
}
