package kservegrpc_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc"

	"github.com/accelgate/accelgate/backends"
	"github.com/accelgate/accelgate/proto/inference"
)

// readyServer answers ServerReady with its flag.
type readyServer struct {
	inference.UnimplementedGRPCInferenceServiceServer
	ready atomic.Bool
}

func (s *readyServer) ServerReady(context.Context, *inference.ServerReadyRequest) (*inference.ServerReadyResponse, error) {
	return &inference.ServerReadyResponse{Ready: s.ready.Load()}, nil
}

// TestProbe: the ServerReady RPC; not ready, or a server without the RPC,
// is backends.ErrUnavailable.
func TestProbe(t *testing.T) {
	rs := &readyServer{}
	rs.ready.Store(true)
	srv := grpc.NewServer()
	inference.RegisterGRPCInferenceServiceServer(srv, rs)
	b, _ := serve(t, srv, 1)
	ctx := ctxT(t)
	if err := b.Probe(ctx); err != nil {
		t.Fatalf("ready server: %v", err)
	}
	rs.ready.Store(false)
	if err := b.Probe(ctx); !errors.Is(err, backends.ErrUnavailable) {
		t.Fatalf("not-ready server: %v, want ErrUnavailable", err)
	}
	if err := fakeBackend(t, &fakeServer{}).Probe(ctx); !errors.Is(err, backends.ErrUnavailable) {
		t.Fatalf("server without ServerReady: %v, want ErrUnavailable", err)
	}
}
