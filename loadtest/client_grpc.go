package loadtest

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/accelgate/accelgate/proto/inference"
)

// maxGRPCConns caps the HTTP/2 connections of the gRPC client: each carries
// many concurrent calls.
const maxGRPCConns = 4

// grpcClient sends tensor items as KServe v2 ModelInfer calls with the raw
// input contents, and the x-accelgate-* settings as metadata.
type grpcClient struct {
	conns   []*grpc.ClientConn
	clients []inference.GRPCInferenceServiceClient
	next    atomic.Uint64
	timeout time.Duration
	grace   time.Duration // timeoutGrace; tests shorten it

	mu  sync.Mutex
	raw map[int][]byte // batch size → raw contents (shared, read-only)
}

func newGRPCClient(opts ClientOptions) (*grpcClient, error) {
	n := min(opts.Connections, maxGRPCConns)
	g := &grpcClient{timeout: opts.Timeout, grace: timeoutGrace, raw: make(map[int][]byte)}
	for range n {
		cc, err := grpc.NewClient(opts.GRPC,
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(256<<20), grpc.MaxCallSendMsgSize(256<<20)))
		if err != nil {
			g.Close()
			return nil, err
		}
		g.conns = append(g.conns, cc)
		g.clients = append(g.clients, inference.NewGRPCInferenceServiceClient(cc))
	}
	return g, nil
}

func (g *grpcClient) Close() error {
	var errs []error
	for _, cc := range g.conns {
		errs = append(errs, cc.Close())
	}
	return errors.Join(errs...)
}

func (g *grpcClient) rawFor(images int) []byte {
	if images < 1 {
		images = 1
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if b, ok := g.raw[images]; ok {
		return b
	}
	b := rawImages(images)
	if images <= maxCachedImages {
		g.raw[images] = b
	}
	return b
}

// Do sends it as one ModelInfer call.
func (g *grpcClient) Do(ctx context.Context, it *Item, intended time.Time, o *Outcome) {
	o.Item = it
	timeout := effectiveTimeout(it, g.timeout)
	md := make(metadata.MD, 4)
	if p := priorityName(it.Priority); p != "" {
		md[headerPriority] = []string{p}
	}
	if it.SLO.E2E > 0 {
		md[headerSLO] = []string{string(appendMillis(nil, it.SLO.E2E))}
	}
	if timeout > 0 {
		md[headerTimeout] = []string{string(appendMillis(nil, timeout))}
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout+g.grace)
		defer cancel()
	}
	ctx = metadata.NewOutgoingContext(ctx, md)
	images := max(it.Images, 1)
	req := &inference.ModelInferRequest{
		ModelName: it.Model,
		Inputs: []*inference.ModelInferRequest_InferInputTensor{{
			Name:     TensorInputName,
			Datatype: TensorDatatype,
			Shape:    []int64{int64(images), 3, 224, 224},
		}},
		RawInputContents: [][]byte{g.rawFor(images)},
	}
	var hdr metadata.MD
	cl := g.clients[g.next.Add(1)%uint64(len(g.clients))]
	resp, err := cl.ModelInfer(ctx, req, grpc.Header(&hdr))
	now := time.Now()
	o.Latency = now.Sub(intended)
	o.TTFT = o.Latency
	if err != nil {
		st, _ := status.FromError(err)
		o.Status = 1000 + int(st.Code())
		o.Kind = classifyGRPC(st)
		readGRPCMetadata(hdr, o)
		return
	}
	o.Status = 1000 + int(codes.OK)
	o.Kind, o.OK = KindOK, true
	readGRPCParams(resp.GetParameters(), o)
	readGRPCMetadata(hdr, o)
}

// readGRPCParams reads cost, backend and hardware from response parameters.
func readGRPCParams(ps map[string]*inference.InferParameter, o *Outcome) {
	if p := ps["accelgate_cost_usd"]; p != nil {
		switch v := p.GetParameterChoice().(type) {
		case *inference.InferParameter_DoubleParam:
			o.CostUSD = v.DoubleParam
		case *inference.InferParameter_StringParam:
			if f, err := strconv.ParseFloat(v.StringParam, 64); err == nil {
				o.CostUSD = f
			}
		}
	}
	if p := ps["accelgate_backend"]; p != nil {
		o.Backend = p.GetStringParam()
	}
	if p := ps["accelgate_hardware"]; p != nil {
		o.Hardware = p.GetStringParam()
	}
}

// readGRPCMetadata fills what the parameters did not give from the response
// header metadata (x-accelgate-backend, -hardware, -cost-usd).
func readGRPCMetadata(md metadata.MD, o *Outcome) {
	if o.Backend == "" {
		if v := md.Get(headerBackend); len(v) > 0 {
			o.Backend = v[0]
		}
	}
	if o.Hardware == "" {
		if v := md.Get(headerHardware); len(v) > 0 {
			o.Hardware = v[0]
		}
	}
	if o.CostUSD == 0 {
		if v := md.Get(headerCost); len(v) > 0 {
			if f, err := strconv.ParseFloat(v[0], 64); err == nil {
				o.CostUSD = f
			}
		}
	}
}

// grpcKinds holds "grpc_<name>" for every code, e.g. "grpc_resource_exhausted".
var grpcKinds = func() []string {
	k := make([]string, 17)
	for i := range k {
		k[i] = "grpc_" + snake(codes.Code(i).String())
	}
	return k
}()

func snake(s string) string {
	var b strings.Builder
	for i, r := range s {
		if r >= 'A' && r <= 'Z' {
			if i > 0 {
				b.WriteByte('_')
			}
			r += 'a' - 'A'
		}
		b.WriteRune(r)
	}
	return b.String()
}

// classifyGRPC returns the outcome kind for a failed call. The gateway
// answers both shedding and "no backend" with Unavailable; the message tells
// them apart, and a client-side connection failure says "connection error".
func classifyGRPC(st *status.Status) string {
	msg := strings.ToLower(st.Message())
	switch st.Code() {
	case codes.Unavailable:
		switch {
		case strings.Contains(msg, "shed") || strings.Contains(msg, "slo"):
			return KindShed
		case strings.Contains(msg, "no backend") || strings.Contains(msg, "no_backend"):
			return KindNoBackend
		case strings.Contains(msg, "connection error") || strings.Contains(msg, "transport") ||
			strings.Contains(msg, "connection refused"):
			return KindConnError
		}
		return KindGRPCUnavailable
	case codes.DeadlineExceeded:
		return KindTimeout
	case codes.InvalidArgument:
		return KindBadRequest
	case codes.Canceled:
		return KindCanceled
	}
	if c := int(st.Code()); c >= 0 && c < len(grpcKinds) {
		return grpcKinds[c]
	}
	return "grpc_" + strconv.Itoa(int(st.Code()))
}
