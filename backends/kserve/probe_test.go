package kserve_test

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

// TestProbe: GET /v2/health/ready under the URL's base path; 200 is ready,
// anything else or no server is backends.ErrUnavailable.
func TestProbe(t *testing.T) {
	var status atomic.Int32
	status.Store(http.StatusOK)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || r.URL.Path != "/triton/v2/health/ready" {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(int(status.Load()))
	}))
	defer srv.Close()
	b := newBackend(t, srv.URL+"/triton/v2")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.Probe(ctx); err != nil {
		t.Fatalf("ready server: %v", err)
	}
	status.Store(http.StatusServiceUnavailable)
	if err := b.Probe(ctx); !errors.Is(err, backends.ErrUnavailable) {
		t.Fatalf("not-ready server: %v, want ErrUnavailable", err)
	}
	srv.Close()
	if err := b.Probe(ctx); !errors.Is(err, backends.ErrUnavailable) {
		t.Fatalf("no server: %v, want ErrUnavailable", err)
	}
}
