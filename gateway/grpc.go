package gateway

import (
	"context"
	"errors"
	"io"
	"math"
	"strconv"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthgrpc "google.golang.org/grpc/health/grpc_health_v1"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"

	"github.com/accelgate/accelgate/backends"
	"github.com/accelgate/accelgate/proto/inference"
	"github.com/accelgate/accelgate/proto/tensorconv"
)

// Defaults for GRPCOptions.
const (
	DefaultGRPCAddr = "127.0.0.1:8081"
	// DefaultGRPCMaxMessageBytes bounds a received gRPC message (a
	// ModelInferRequest with its tensors), like Config.MaxBodyBytes for HTTP.
	DefaultGRPCMaxMessageBytes = DefaultMaxBodyBytes
)

// Response parameters the gRPC front adds to every ModelInferResponse: where
// the request ran and what it cost (the x-accelgate-* headers of HTTP).
const (
	ParamBackend  = "accelgate_backend"  // string: the backend's name
	ParamHardware = "accelgate_hardware" // string: its hardware profile
	ParamCost     = "accelgate_cost_usd" // double: the attributed cost in USD
)

// Request parameters of a ModelInferRequest the gRPC front reads (Triton's
// schedule_policy extension, plus accelgate's end-to-end SLO).
const (
	ParamSLO      = "slo_ms"   // int64 or double: end-to-end target in milliseconds
	ParamPriority = "priority" // int64: 0 model default, 1 critical, 2 standard, >= 3 sheddable
	ParamTimeout  = "timeout"  // int64: hard timeout in microseconds (shortens the model's)
)

// grpcWindow is the HTTP/2 flow-control window of the gRPC front, per stream
// and per connection.
const grpcWindow = 4 << 20

// grpcServiceName is the full name of the KServe v2 service, for health checks.
const grpcServiceName = "inference.GRPCInferenceService"

// GRPCOptions configures the gRPC front.
type GRPCOptions struct {
	// Name is the server name in ServerMetadata. Default "accelgate".
	Name string
	// Version is the server version in ServerMetadata. Default "0.1.0".
	Version string
	// Extensions are the protocol extensions ServerMetadata lists. Default:
	// parameters and schedule_policy (Triton's priority and timeout request
	// parameters).
	Extensions []string
	// MaxMessageBytes bounds a received message. Default
	// DefaultGRPCMaxMessageBytes.
	MaxMessageBytes int
	// Clock is the time source for arrival times and deadlines; nil means
	// the wall clock.
	Clock backends.Clock
	// ServerOptions are appended to the front's own grpc.ServerOptions.
	ServerOptions []grpc.ServerOption
	// Ref, when set, is where the front reads its dispatcher (the HTTP
	// Server's DispatcherRef), so that it follows fleet reloads; the
	// dispatcher argument of NewGRPCServer is then ignored.
	Ref *DispatcherRef
}

func (o *GRPCOptions) setDefaults() {
	if o.Name == "" {
		o.Name = "accelgate"
	}
	if o.Version == "" {
		o.Version = "0.1.0"
	}
	if o.Extensions == nil {
		o.Extensions = []string{"parameters", "schedule_policy"}
	}
	if o.MaxMessageBytes <= 0 {
		o.MaxMessageBytes = DefaultGRPCMaxMessageBytes
	}
	if o.Clock == nil {
		o.Clock = backends.RealClock
	}
}

// NewGRPCServer builds the KServe v2 (Open Inference Protocol) gRPC front
// over a dispatcher: a *grpc.Server with inference.GRPCInferenceService
// (the six core RPCs plus Triton's ModelStreamInfer and RepositoryIndex),
// the standard health service (SERVING while d.Ready(), for the empty service
// name and for inference.GRPCInferenceService) and server reflection. Serve
// it with Serve(listener); stop it with GracefulStop or Stop.
//
// ModelInfer decodes the request into a backends.Request, checks it against
// the model's metadata (PrepareTensorRequest), schedules it from the
// x-accelgate-* call metadata, the slo_ms / priority / timeout request
// parameters and the call's deadline (ApplyTensorScheduling), and runs it
// through d.Do like the HTTP front. Errors carry the gRPC code from Classify.
func NewGRPCServer(d *Dispatcher, opts GRPCOptions) *grpc.Server {
	opts.setDefaults()
	sopts := append([]grpc.ServerOption{
		grpc.MaxRecvMsgSize(opts.MaxMessageBytes),
		grpc.SharedWriteBuffer(true),
		// Tensor requests are large (a 224×224 FP32 image is 588 KiB): a
		// receive window that holds a few of them lets a client send one
		// without waiting for window updates.
		grpc.InitialWindowSize(grpcWindow),
		grpc.InitialConnWindowSize(grpcWindow),
	}, opts.ServerOptions...)
	s := grpc.NewServer(sopts...)
	ref := opts.Ref
	if ref == nil {
		ref = NewDispatcherRef(d)
	}
	f := &grpcFront{ref: ref, opts: opts, clock: opts.Clock}
	f.idPfx = "grpc-" + strconv.FormatInt(f.clock.Now().UnixNano()&0xffffffff, 36) + "-"
	inference.RegisterGRPCInferenceServiceServer(s, f)
	healthgrpc.RegisterHealthServer(s, newReadyHealth(ref))
	reflection.Register(s)
	return s
}

// DefaultGRPCStopTimeout is how long StopGRPC lets calls in flight finish.
const DefaultGRPCStopTimeout = 10 * time.Second

// StopGRPC stops a gRPC server gracefully: it stops accepting connections and
// waits for calls in flight to finish, for at most timeout; past it (open
// streams such as health watches never finish on their own) it closes every
// connection.
func StopGRPC(s *grpc.Server, timeout time.Duration) {
	done := make(chan struct{})
	go func() { s.GracefulStop(); close(done) }()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		s.Stop()
		<-done
	}
}

// Dispatcher returns the dispatcher the HTTP front runs on, so that the gRPC
// front can share it (one router, one set of books).
func (s *Server) Dispatcher() *Dispatcher { return s.ref.Load() }

// grpcFront implements inference.GRPCInferenceServiceServer over a Dispatcher.
type grpcFront struct {
	inference.UnimplementedGRPCInferenceServiceServer
	ref   *DispatcherRef
	opts  GRPCOptions
	clock backends.Clock
	ids   atomic.Uint64
	idPfx string
}

// grpcError converts an error to a gRPC status error through Classify.
func grpcError(err error) error {
	if _, ok := status.FromError(err); ok {
		return err
	}
	return status.Error(Classify(err).GRPC, errorMessage(err))
}

// ServerLive reports that the server answers.
func (f *grpcFront) ServerLive(context.Context, *inference.ServerLiveRequest) (*inference.ServerLiveResponse, error) {
	return &inference.ServerLiveResponse{Live: true}, nil
}

// ServerReady reports whether a backend may receive traffic.
func (f *grpcFront) ServerReady(context.Context, *inference.ServerReadyRequest) (*inference.ServerReadyResponse, error) {
	return &inference.ServerReadyResponse{Ready: f.ref.Load().Ready()}, nil
}

// model resolves a tensor model and version for the metadata RPCs:
// NotFound for an unknown model or version, InvalidArgument for a model that
// is not a tensor model (LLMs and embeddings are served by the OpenAI API).
func (f *grpcFront) model(name, version string) (*backends.Model, error) {
	m, err := f.ref.Load().Model(name)
	if err != nil {
		return nil, grpcError(err)
	}
	if m.Kind != backends.ModelTensor {
		return nil, grpcError(notTensorError(m))
	}
	if !m.HasVersion(version) {
		return nil, grpcError(versionError(m, version))
	}
	return m, nil
}

func notTensorError(m *backends.Model) error {
	return backends.BadRequestf("model_name", "the model %q is a %s model: it is served by the OpenAI API, not by KServe v2", m.Name, m.Kind)
}

func versionError(m *backends.Model, version string) error {
	return &routeError{err: backends.ErrUnknownModel, msg: "model " + strconv.Quote(m.Name) + " has no version " + strconv.Quote(version)}
}

// ModelReady reports whether a backend serving the model may receive traffic.
func (f *grpcFront) ModelReady(_ context.Context, r *inference.ModelReadyRequest) (*inference.ModelReadyResponse, error) {
	if _, err := f.model(r.GetName(), r.GetVersion()); err != nil {
		return nil, err
	}
	return &inference.ModelReadyResponse{Ready: f.ref.Load().ModelReady(r.GetName())}, nil
}

// ServerMetadata reports the server's name, version and extensions.
func (f *grpcFront) ServerMetadata(context.Context, *inference.ServerMetadataRequest) (*inference.ServerMetadataResponse, error) {
	return &inference.ServerMetadataResponse{Name: f.opts.Name, Version: f.opts.Version, Extensions: f.opts.Extensions}, nil
}

// ModelMetadata reports a model's versions, platform and tensors.
func (f *grpcFront) ModelMetadata(_ context.Context, r *inference.ModelMetadataRequest) (*inference.ModelMetadataResponse, error) {
	m, err := f.model(r.GetName(), r.GetVersion())
	if err != nil {
		return nil, err
	}
	return &inference.ModelMetadataResponse{
		Name:     m.Name,
		Versions: m.Versions,
		Platform: m.Platform,
		Inputs:   tensorMetadata(m.Inputs),
		Outputs:  tensorMetadata(m.Outputs),
	}, nil
}

func tensorMetadata(specs []backends.TensorSpec) []*inference.ModelMetadataResponse_TensorMetadata {
	out := make([]*inference.ModelMetadataResponse_TensorMetadata, len(specs))
	for i, s := range specs {
		out[i] = &inference.ModelMetadataResponse_TensorMetadata{Name: s.Name, Datatype: s.Datatype, Shape: s.Shape}
	}
	return out
}

// RepositoryIndex lists every tensor model (one entry per served version) with its
// state: READY when a backend serving it may receive traffic, otherwise
// UNAVAILABLE with the reason.
func (f *grpcFront) RepositoryIndex(_ context.Context, r *inference.RepositoryIndexRequest) (*inference.RepositoryIndexResponse, error) {
	resp := &inference.RepositoryIndexResponse{}
	for _, m := range f.ref.Load().SortedModels() {
		if m.Kind != backends.ModelTensor {
			continue
		}
		n := m.Name
		ready := f.ref.Load().ModelReady(n)
		if r.GetReady() && !ready {
			continue
		}
		state, reason := "READY", ""
		if !ready {
			state, reason = "UNAVAILABLE", "no healthy backend serves the model"
		}
		versions := m.Versions
		if len(versions) == 0 {
			versions = []string{""}
		}
		for _, v := range versions {
			resp.Models = append(resp.Models, &inference.RepositoryIndexResponse_ModelIndex{Name: n, Version: v, State: state, Reason: reason})
		}
	}
	return resp, nil
}

// ModelInfer runs one inference request.
func (f *grpcFront) ModelInfer(ctx context.Context, r *inference.ModelInferRequest) (*inference.ModelInferResponse, error) {
	resp, err := f.infer(ctx, r)
	if err != nil {
		if errors.Is(err, backends.ErrShed) {
			grpc.SetTrailer(ctx, metadata.Pairs("retry-after", strconv.Itoa(retryAfterSeconds(err))))
		}
		return nil, grpcError(err)
	}
	if p := resp.GetParameters()[ParamCache]; p != nil {
		grpc.SetHeader(ctx, metadata.Pairs(HeaderCache, p.GetStringParam())) // response cache (cache.go)
	}
	return resp, nil
}

// ModelStreamInfer answers each request on the stream in order. A request
// that fails gets a response with error_message set (and infer_response
// carrying the model name and the request's id) and the stream goes on; the
// stream itself ends when the client closes its side or the call ends.
func (f *grpcFront) ModelStreamInfer(stream grpc.BidiStreamingServer[inference.ModelInferRequest, inference.ModelStreamInferResponse]) error {
	ctx := stream.Context()
	for {
		r, err := stream.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		resp, err := f.infer(ctx, r)
		out := &inference.ModelStreamInferResponse{InferResponse: resp}
		if err != nil {
			out.ErrorMessage = errorMessage(err)
			out.InferResponse = &inference.ModelInferResponse{ModelName: r.GetModelName(), ModelVersion: r.GetModelVersion(), Id: r.GetId()}
		}
		if err := stream.Send(out); err != nil {
			return err
		}
	}
}

// infer decodes, schedules and runs one request; errors are unclassified.
func (f *grpcFront) infer(ctx context.Context, r *inference.ModelInferRequest) (*inference.ModelInferResponse, error) {
	now := f.clock.Now()
	m, err := f.ref.Load().Model(r.GetModelName())
	if err != nil {
		return nil, err
	}
	if !m.Serves(backends.OpTensor) {
		return nil, notTensorError(m)
	}
	tensors, raw, err := tensorconv.InputTensors(r)
	if err != nil {
		return nil, err
	}
	req := &backends.Request{
		ID:           f.idPfx + strconv.FormatUint(f.ids.Add(1), 36),
		Op:           backends.OpTensor,
		Model:        m.Name,
		ModelVersion: r.GetModelVersion(),
		Tensors:      tensors,
		ClientID:     r.GetId(),
	}
	if outs := r.GetOutputs(); len(outs) > 0 {
		req.Outputs = make([]backends.OutputRequest, len(outs))
		for i, o := range outs {
			req.Outputs[i] = backends.OutputRequest{Name: o.GetName()}
		}
	}
	if err := PrepareTensorRequest(req, m); err != nil {
		return nil, err
	}
	params, err := tensorParams(r.GetParameters())
	if err != nil {
		return nil, err
	}
	md, _ := metadata.FromIncomingContext(ctx)
	get := func(name string) []byte {
		if v := md[name]; len(v) > 0 {
			return []byte(v[0])
		}
		return nil
	}
	dl, _ := ctx.Deadline()
	if err := ApplyTensorScheduling(req, m, get, params, dl, now); err != nil {
		return nil, err
	}
	cctx, cancel := context.WithDeadline(ctx, req.Deadline)
	res, desc, cached, err := f.ref.Load().doCached(cctx, req, m)
	cancel()
	if err != nil {
		return nil, err
	}
	version := req.ModelVersion
	if version == "" && len(m.Versions) > 0 {
		version = m.Versions[0]
	}
	hardware := ""
	if desc.Profile != nil {
		hardware = desc.Profile.Name
	}
	resp := &inference.ModelInferResponse{
		ModelName:    m.Name,
		ModelVersion: version,
		Id:           r.GetId(),
		Parameters: map[string]*inference.InferParameter{
			ParamBackend:  {ParameterChoice: &inference.InferParameter_StringParam{StringParam: desc.Name}},
			ParamHardware: {ParameterChoice: &inference.InferParameter_StringParam{StringParam: hardware}},
			ParamCost:     {ParameterChoice: &inference.InferParameter_DoubleParam{DoubleParam: sanitizeCost(res.CostUSD)}},
		},
	}
	if cached != "" {
		resp.Parameters[ParamCache] = &inference.InferParameter{ParameterChoice: &inference.InferParameter_StringParam{StringParam: cached}}
	}
	if err := appendOutputs(resp, SelectOutputs(req, res.Tensors), raw); err != nil {
		return nil, err
	}
	return resp, nil
}

// errBadOutput marks a backend result the front cannot encode (500).
var errBadOutput = errors.New("the backend returned a malformed output tensor")

// appendOutputs encodes the result's tensors: as raw_output_contents when
// the request used raw inputs or an output has no typed form (FP16, BF16),
// otherwise as typed contents.
func appendOutputs(resp *inference.ModelInferResponse, outs []backends.Tensor, raw bool) error {
	if !raw {
		for i := range outs {
			if tensorconv.NeedsRaw(outs[i].Datatype) {
				raw = true
				break
			}
		}
	}
	resp.Outputs = make([]*inference.ModelInferResponse_InferOutputTensor, len(outs))
	if raw {
		resp.RawOutputContents = make([][]byte, len(outs))
	}
	for i := range outs {
		t := &outs[i]
		o := &inference.ModelInferResponse_InferOutputTensor{Name: t.Name, Datatype: t.Datatype.String(), Shape: t.Shape}
		if raw {
			resp.RawOutputContents[i] = t.Data
		} else {
			c, err := tensorconv.RawToContents(t.Name, t.Datatype, t.Data)
			if err != nil {
				return &routeError{err: errBadOutput, msg: errBadOutput.Error() + ": " + err.Error()}
			}
			o.Contents = c
		}
		resp.Outputs[i] = o
	}
	return nil
}

func sanitizeCost(usd float64) float64 {
	if math.IsNaN(usd) || math.IsInf(usd, 0) || usd < 0 {
		return 0
	}
	return usd
}

// tensorParams reads the scheduling parameters from a request's parameter
// map. Other parameters are ignored.
func tensorParams(ps map[string]*inference.InferParameter) (TensorParams, error) {
	var p TensorParams
	if len(ps) == 0 {
		return p, nil
	}
	if v, ok := ps[ParamSLO]; ok {
		switch x := v.GetParameterChoice().(type) {
		case *inference.InferParameter_Int64Param:
			p.SLOms = float64(x.Int64Param)
		case *inference.InferParameter_DoubleParam:
			p.SLOms = x.DoubleParam
		case *inference.InferParameter_Uint64Param:
			p.SLOms = float64(x.Uint64Param)
		default:
			return p, backends.BadRequestf(ParamSLO, "parameter %s must be a number of milliseconds (int64 or double)", ParamSLO)
		}
		if math.IsNaN(p.SLOms) {
			return p, backends.BadRequestf(ParamSLO, "parameter %s is NaN", ParamSLO)
		}
		p.HasSLO = true
	}
	var err error
	if v, ok := ps[ParamPriority]; ok {
		if p.Priority, err = intParam(ParamPriority, v); err != nil {
			return p, err
		}
		p.HasPriority = true
	}
	if v, ok := ps[ParamTimeout]; ok {
		if p.TimeoutUS, err = intParam(ParamTimeout, v); err != nil {
			return p, err
		}
		p.HasTimeout = true
	}
	return p, nil
}

// intParam reads an integer parameter sent as int64, uint64 or an integral
// double.
func intParam(name string, v *inference.InferParameter) (int64, error) {
	switch x := v.GetParameterChoice().(type) {
	case *inference.InferParameter_Int64Param:
		return x.Int64Param, nil
	case *inference.InferParameter_Uint64Param:
		if x.Uint64Param > math.MaxInt64 {
			return 0, backends.BadRequestf(name, "parameter %s is out of range", name)
		}
		return int64(x.Uint64Param), nil
	case *inference.InferParameter_DoubleParam:
		d := x.DoubleParam
		if d != math.Trunc(d) || d < math.MinInt64 || d >= math.MaxInt64 {
			return 0, backends.BadRequestf(name, "parameter %s must be an integer, got %v", name, d)
		}
		return int64(d), nil
	}
	return 0, backends.BadRequestf(name, "parameter %s must be an integer (int64_param)", name)
}

// readyHealth is the standard health service whose status follows
// Dispatcher.Ready: it is refreshed on every Check and List, and every
// second while a Watch is open.
type readyHealth struct {
	*health.Server
	ref *DispatcherRef
}

func newReadyHealth(ref *DispatcherRef) *readyHealth {
	h := &readyHealth{Server: health.NewServer(), ref: ref}
	h.refresh()
	return h
}

// watchRefresh is how often an open Watch re-reads readiness.
const watchRefresh = time.Second

func (h *readyHealth) refresh() {
	st := healthpb.HealthCheckResponse_NOT_SERVING
	if h.ref.Load().Ready() {
		st = healthpb.HealthCheckResponse_SERVING
	}
	h.SetServingStatus("", st)
	h.SetServingStatus(grpcServiceName, st)
}

// Check refreshes the status and answers it.
func (h *readyHealth) Check(ctx context.Context, r *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	h.refresh()
	return h.Server.Check(ctx, r)
}

// List refreshes the statuses and lists them.
func (h *readyHealth) List(ctx context.Context, r *healthpb.HealthListRequest) (*healthpb.HealthListResponse, error) {
	h.refresh()
	return h.Server.List(ctx, r)
}

// Watch streams status changes, re-reading readiness every second while the
// stream is open.
func (h *readyHealth) Watch(r *healthpb.HealthCheckRequest, stream healthgrpc.Health_WatchServer) error {
	h.refresh()
	done := make(chan struct{})
	defer close(done)
	go func() {
		t := time.NewTicker(watchRefresh)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-stream.Context().Done():
				return
			case <-t.C:
				h.refresh()
			}
		}
	}()
	return h.Server.Watch(r, stream)
}
