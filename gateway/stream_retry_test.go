package gateway

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/accelgate/accelgate/backends"
	"github.com/accelgate/accelgate/router"
)

// failingLLM fails every request with a backend failure before producing
// anything.
type failingLLM struct {
	desc  *backends.Descriptor
	calls int
}

func (f *failingLLM) Descriptor() *backends.Descriptor { return f.desc }
func (f *failingLLM) Close() error                     { return nil }
func (f *failingLLM) Do(context.Context, *backends.Request, *backends.Model, backends.StreamFunc) (*backends.Result, error) {
	f.calls++
	return nil, fmt.Errorf("%w: connection refused", backends.ErrUnavailable)
}

// TestStreamRetriedBeforeFirstEvent: a stream whose backend fails before any
// event reached the client (only the headers did) is run again on another
// backend and completes normally, with no error event.
func TestStreamRetriedBeforeFirstEvent(t *testing.T) {
	bad := &failingLLM{desc: &backends.Descriptor{Name: "bad", Profile: ksProfile(), PricePerHour: 0.1, Models: []string{"llm"}}}
	good := newBatchFake(false)
	good.desc.PricePerHour = 100 // the failing one is cheaper: it is tried first
	d, err := NewDispatcher([]backends.Backend{bad, good}, ksModels(), router.Config{}, backends.RealClock)
	if err != nil {
		t.Fatal(err)
	}
	e := serveInmemory(t, Config{}, d, backends.RealClock)
	a := <-e.post("/v1/chat/completions", `{"model":"llm","stream":true,"messages":[{"role":"user","content":"hi"}]}`)
	if a.status != 200 || strings.Contains(string(a.body), `"error"`) || !strings.Contains(string(a.body), "data: [DONE]") {
		t.Fatalf("stream: %d %s", a.status, a.body)
	}
	if bad.calls != 1 {
		t.Fatalf("the failing backend saw %d calls, want 1 (then the retry elsewhere)", bad.calls)
	}
}
