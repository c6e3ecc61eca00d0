package upstream

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/accelgate/accelgate/backends"
)

// TestProbe: GET <base>/health with the API key; 200 is ready, and so is
// 404 (a server without a health endpoint that answered); anything else is
// backends.ErrUnavailable; a canceled probe returns the context's error.
func TestProbe(t *testing.T) {
	var status atomic.Int32
	status.Store(http.StatusOK)
	var auth atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || r.URL.Path != "/llama/health" {
			http.NotFound(w, r)
			return
		}
		auth.Store(r.Header.Get("Authorization"))
		w.WriteHeader(int(status.Load()))
	}))
	defer srv.Close()
	b, err := New(&backends.Descriptor{Name: "up"}, Config{URL: srv.URL + "/llama/v1", APIKey: "sk-probe-123"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.Probe(ctx); err != nil {
		t.Fatalf("healthy upstream: %v", err)
	}
	if got := auth.Load(); got != "Bearer sk-probe-123" {
		t.Fatalf("Authorization %q", got)
	}
	status.Store(http.StatusNotFound)
	if err := b.Probe(ctx); err != nil {
		t.Fatalf("404 (no health endpoint): %v", err)
	}
	for _, st := range []int{http.StatusServiceUnavailable, http.StatusUnauthorized, http.StatusInternalServerError} {
		status.Store(int32(st)) // 503: llama.cpp while it loads its model
		if err := b.Probe(ctx); !errors.Is(err, backends.ErrUnavailable) {
			t.Fatalf("%d: %v, want ErrUnavailable", st, err)
		}
	}
	cctx, ccancel := context.WithCancel(ctx)
	ccancel()
	if err := b.Probe(cctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled probe: %v, want context.Canceled", err)
	}
}
