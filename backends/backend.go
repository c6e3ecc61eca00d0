package backends

import (
	"context"
	"time"
)

// Descriptor is the static description of a backend; it does not change while
// the backend is in the fleet.
type Descriptor struct {
	Name         string        // unique in the fleet, e.g. "h100-0"
	Profile      *Profile      // hardware profile (shared, read-only)
	Models       []string      // public model names it serves
	Transport    string        // "emulated", "openai", ...
	Site         string        // where it stands (datacenter, edge site)
	RTT          time.Duration // network round trip from the gateway
	PricePerHour float64       // effective price: the profile's unless overridden
}

// PricePerSecond is the effective price in USD per second.
func (d *Descriptor) PricePerSecond() float64 { return d.PricePerHour / 3600 }

// AttributeByConcurrency is the cost rule of the upstream transports, which
// cannot see the accelerator's batches: a request that took total while
// inflight requests (itself included) were in flight on the backend is
// attributed busy = total ÷ inflight of the accelerator's time, and costs the
// backend's price per second × busy.
func AttributeByConcurrency(d *Descriptor, total time.Duration, inflight int64) (busy time.Duration, costUSD float64) {
	busy = total / time.Duration(max(inflight, 1))
	return busy, d.PricePerSecond() * busy.Seconds()
}

// ServesModel reports whether the backend serves the named model.
func (d *Descriptor) ServesModel(name string) bool {
	for _, m := range d.Models {
		if m == name {
			return true
		}
	}
	return false
}

// Backend executes requests on one accelerator endpoint: a whole GPU, a MIG
// slice, a TPU host, an ASIC card, an edge node, or an emulated device.
//
// Implementations are safe for concurrent use. Do blocks until the request is
// complete, ctx is done, or it fails. It honours ctx: when ctx ends it stops
// the work (an upstream is told to stop generating) and returns ctx.Err()
// wrapped. For streaming requests (req.Stream) it calls stream for each chunk
// in order and stops with that error if stream returns one; stream is nil for
// non-streaming requests. Errors are classified with the sentinels in
// errors.go.
type Backend interface {
	Descriptor() *Descriptor
	Do(ctx context.Context, req *Request, model *Model, stream StreamFunc) (*Result, error)
	Close() error
}

// ModelMetadata is a tensor model's metadata as a KServe v2 server reports it.
type ModelMetadata struct {
	Name     string
	Versions []string
	Platform string
	Inputs   []TensorSpec
	Outputs  []TensorSpec
}

// MetadataSource is implemented by backends that can report the metadata of a
// model they serve (KServe v2 upstreams). The gateway compares it with the
// fleet file at start and on reconnect, and keeps a backend that disagrees
// out of rotation. It may do I/O; it is never called on the request path.
type MetadataSource interface {
	ModelMetadata(ctx context.Context, model, version string) (*ModelMetadata, error)
}
