package kservegrpc

import (
	"context"
	"fmt"

	"github.com/accelgate/accelgate/backends"
	"github.com/accelgate/accelgate/proto/inference"
)

// Probe asks the server whether it is ready (KServe v2's ServerReady RPC)
// on the backend's connection. Errors are mapped as Do's are; a server that
// answers not ready is backends.ErrUnavailable.
func (b *Backend) Probe(ctx context.Context) error {
	resp, err := b.client.ServerReady(ctx, &inference.ServerReadyRequest{})
	if err != nil {
		return b.mapError(ctx, err)
	}
	if !resp.GetReady() {
		return fmt.Errorf("kserve-grpc %s: %w: the server is not ready", b.desc.Name, backends.ErrUnavailable)
	}
	return nil
}
