package kservegrpc

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"strings"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/accelgate/accelgate/backends"
	"github.com/accelgate/accelgate/proto/inference"
	"github.com/accelgate/accelgate/proto/tensorconv"
)

// Defaults for the zero values of Config.
const (
	DefaultDialTimeout = 3 * time.Second
	// DefaultMaxMessageBytes bounds a response message (the outputs).
	DefaultMaxMessageBytes = 256 << 20
)

// Config is how to reach a KServe v2 gRPC server.
type Config struct {
	// Target is the server's address, host:port (a "grpc://" prefix is
	// accepted and dropped). No TLS.
	Target string
	// DialTimeout bounds one connection attempt. DefaultDialTimeout when zero
	// or negative.
	DialTimeout time.Duration
	// MaxMessageBytes bounds a received message. DefaultMaxMessageBytes when
	// zero or negative.
	MaxMessageBytes int
	// DialOptions are appended to the transport's own (tests use them to
	// dial in-memory listeners).
	DialOptions []grpc.DialOption
}

// Backend forwards tensor requests to one KServe v2 gRPC server over one
// shared connection. It is safe for concurrent use.
type Backend struct {
	desc     *backends.Descriptor
	conn     *grpc.ClientConn
	client   inference.GRPCInferenceServiceClient
	inflight atomic.Int64 // requests in Do
}

var (
	_ backends.Backend        = (*Backend)(nil)
	_ backends.MetadataSource = (*Backend)(nil)
)

// New returns a Backend for the server at cfg.Target, described by desc. The
// target must be host:port. No connection is made until the first request;
// after a failure the connection is re-established with backoff.
func New(desc *backends.Descriptor, cfg Config) (*Backend, error) {
	if desc == nil {
		return nil, errors.New("kservegrpc: nil descriptor")
	}
	target := strings.TrimPrefix(strings.TrimSpace(cfg.Target), "grpc://")
	host, port, err := net.SplitHostPort(target)
	if err != nil || port == "" || strings.ContainsAny(target, "/?#") {
		return nil, fmt.Errorf("kserve-grpc %s: target %q: want host:port", desc.Name, cfg.Target)
	}
	if host == "" {
		target = net.JoinHostPort("localhost", port)
	}
	dialTimeout := cfg.DialTimeout
	if dialTimeout <= 0 {
		dialTimeout = DefaultDialTimeout
	}
	maxMsg := cfg.MaxMessageBytes
	if maxMsg <= 0 {
		maxMsg = DefaultMaxMessageBytes
	}
	bc := backoff.DefaultConfig
	bc.MaxDelay = 5 * time.Second
	opts := append([]grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: bc, MinConnectTimeout: dialTimeout}),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMsg)),
		grpc.WithUserAgent("accelgate"),
		grpc.WithSharedWriteBuffer(true),
		// Tensor responses can be large: a window that holds a few lets the
		// upstream send one without waiting for window updates.
		grpc.WithInitialWindowSize(4 << 20),
		grpc.WithInitialConnWindowSize(4 << 20),
	}, cfg.DialOptions...)
	conn, err := grpc.NewClient("passthrough:///"+target, opts...)
	if err != nil {
		return nil, fmt.Errorf("kserve-grpc %s: %w", desc.Name, err)
	}
	return &Backend{desc: desc, conn: conn, client: inference.NewGRPCInferenceServiceClient(conn)}, nil
}

// Descriptor returns the backend's static description.
func (b *Backend) Descriptor() *backends.Descriptor { return b.desc }

// Close closes the connection; requests in flight fail and later ones fail
// with backends.ErrUnavailable.
func (b *Backend) Close() error {
	err := b.conn.Close()
	if status.Code(err) == codes.Canceled { // already closed
		return nil
	}
	return err
}

// Do sends a tensor request to the upstream and returns its outputs; see the
// package doc for the protocol, the errors and the cost rule. model is not
// used: the upstream knows its own models.
func (b *Backend) Do(ctx context.Context, req *backends.Request, model *backends.Model, stream backends.StreamFunc) (*backends.Result, error) {
	if req.Op != backends.OpTensor {
		return nil, fmt.Errorf("kserve-grpc %s: %w: %s requests are not supported by a KServe v2 upstream",
			b.desc.Name, backends.ErrUnavailable, req.Op)
	}
	concurrency := b.inflight.Add(1)
	defer b.inflight.Add(-1)
	start := time.Now()
	if err := ctx.Err(); err != nil {
		return nil, b.ctxError(err)
	}
	id := req.ClientID
	if id == "" {
		id = req.ID
	}
	r := &inference.ModelInferRequest{
		ModelName:        req.Model,
		ModelVersion:     req.ModelVersion,
		Id:               id,
		Inputs:           make([]*inference.ModelInferRequest_InferInputTensor, len(req.Tensors)),
		RawInputContents: make([][]byte, len(req.Tensors)),
	}
	for i := range req.Tensors {
		t := &req.Tensors[i]
		r.Inputs[i] = &inference.ModelInferRequest_InferInputTensor{Name: t.Name, Datatype: t.Datatype.String(), Shape: t.Shape}
		r.RawInputContents[i] = t.Data
	}
	if len(req.Outputs) > 0 {
		r.Outputs = make([]*inference.ModelInferRequest_InferRequestedOutputTensor, len(req.Outputs))
		for i, o := range req.Outputs {
			r.Outputs[i] = &inference.ModelInferRequest_InferRequestedOutputTensor{Name: o.Name}
		}
	}
	resp, err := b.client.ModelInfer(ctx, r)
	if err != nil {
		return nil, b.mapError(ctx, err)
	}
	outs, err := tensorconv.OutputTensors(resp)
	if err != nil {
		return nil, fmt.Errorf("kserve-grpc %s: %w: malformed response: %w", b.desc.Name, backends.ErrUnavailable, err)
	}
	total := time.Since(start)
	res := &backends.Result{Tensors: outs}
	res.Timing = backends.Timing{TTFT: total, Total: total}
	res.Timing.Busy, res.CostUSD = backends.AttributeByConcurrency(b.desc, total, concurrency)
	if math.IsNaN(res.CostUSD) || res.CostUSD < 0 {
		res.CostUSD = 0
	}
	return res, nil
}

// ModelMetadata asks the upstream for a model's metadata (the ModelMetadata
// RPC). Errors are mapped as Do's are.
func (b *Backend) ModelMetadata(ctx context.Context, model, version string) (*backends.ModelMetadata, error) {
	resp, err := b.client.ModelMetadata(ctx, &inference.ModelMetadataRequest{Name: model, Version: version})
	if err != nil {
		return nil, b.mapError(ctx, err)
	}
	return &backends.ModelMetadata{
		Name:     resp.GetName(),
		Versions: resp.GetVersions(),
		Platform: resp.GetPlatform(),
		Inputs:   specs(resp.GetInputs()),
		Outputs:  specs(resp.GetOutputs()),
	}, nil
}

func specs(ts []*inference.ModelMetadataResponse_TensorMetadata) []backends.TensorSpec {
	out := make([]backends.TensorSpec, len(ts))
	for i, t := range ts {
		out[i] = backends.TensorSpec{Name: t.GetName(), Datatype: t.GetDatatype(), Shape: t.GetShape()}
	}
	return out
}

// ctxError wraps the context's error.
func (b *Backend) ctxError(err error) error {
	return fmt.Errorf("kserve-grpc %s: %w", b.desc.Name, err)
}

// mapError maps an RPC error to the gateway's sentinels (see the package doc).
func (b *Backend) mapError(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return b.ctxError(cerr)
	}
	st := status.Convert(err)
	switch st.Code() {
	case codes.InvalidArgument, codes.OutOfRange, codes.FailedPrecondition:
		return &backends.UpstreamError{Status: 400, Message: st.Message()}
	case codes.NotFound:
		return &backends.UpstreamError{Status: 404, Message: st.Message()}
	case codes.DeadlineExceeded:
		return fmt.Errorf("kserve-grpc %s: %w: %s", b.desc.Name, context.DeadlineExceeded, st.Message())
	}
	return fmt.Errorf("kserve-grpc %s: %w: %s: %s", b.desc.Name, backends.ErrUnavailable, st.Code(), st.Message())
}
