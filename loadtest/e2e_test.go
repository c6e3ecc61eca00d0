package loadtest

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/accelgate/accelgate/backends"
	"github.com/accelgate/accelgate/backends/catalog"
	"github.com/accelgate/accelgate/backends/fleet"
	"github.com/accelgate/accelgate/gateway"
)

// startGateway runs the gateway on the default fleet in-process, its HTTP
// front (OpenAI and KServe v2) and its KServe v2 gRPC front on 127.0.0.1.
func startGateway(t *testing.T) (httpURL, grpcAddr string) {
	t.Helper()
	cat := catalog.Default()
	f, err := fleet.Default(cat)
	if err != nil {
		t.Fatal(err)
	}
	fl, err := f.Build(cat, fleet.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := gateway.NewFromFleet(fl, gateway.Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Shutdown() })
	gln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gsrv := gateway.NewGRPCServer(srv.Dispatcher(), gateway.GRPCOptions{})
	go gsrv.Serve(gln)
	t.Cleanup(gsrv.Stop)
	return "http://" + ln.Addr().String(), gln.Addr().String()
}

// opCounter wraps a Client and counts outcomes per operation.
type opCounter struct {
	Client
	mu  sync.Mutex
	n   map[backends.Op]int
	ok  map[backends.Op]int
	bad map[string]int
}

func (c *opCounter) Do(ctx context.Context, it *Item, intended time.Time, o *Outcome) {
	c.Client.Do(ctx, it, intended, o)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n[it.Op]++
	if o.OK {
		c.ok[it.Op]++
	} else {
		c.bad[o.Kind]++
	}
}

func newOpCounter(c Client) *opCounter {
	return &opCounter{Client: c, n: map[backends.Op]int{}, ok: map[backends.Op]int{}, bad: map[string]int{}}
}

func checkReport(t *testing.T, rep *RunReport, st RunStats) {
	t.Helper()
	if st.Offered == 0 || st.Offered != st.Recorded || rep.Requests != st.Offered {
		t.Errorf("offered %d, recorded %d, report requests %d", st.Offered, st.Recorded, rep.Requests)
	}
	if rep.OK == 0 {
		t.Errorf("no OK responses: errors %v", rep.Errors)
	}
	if rep.CostUSDPer1K <= 0 {
		t.Errorf("cost per 1k = %v, want > 0", rep.CostUSDPer1K)
	}
	if len(rep.ByHardware) == 0 {
		t.Error("by_hardware is empty")
	}
}

// TestEndToEndMixed runs the standard mixed workload (chat, streams,
// embeddings, KServe v2 HTTP vision with binary tensors) at 50 req/s for 2 s
// against the gateway on the default fleet, then short vision runs over
// KServe v2 gRPC and over HTTP with JSON tensors.
func TestEndToEndMixed(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end run")
	}
	deadline := time.Now().Add(20 * time.Second)
	httpURL, grpcAddr := startGateway(t)

	cl, err := NewClient(ClientOptions{Target: httpURL, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	cnt := newOpCounter(cl)
	src, err := Standard(WorkloadMixed, 50, 1, Limit{Duration: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	rec := NewRecorder(RecorderOptions{Name: "e2e"})
	st, err := RunOpen(context.Background(), src, RunOptions{Client: cnt, Recorder: rec, Duration: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	rep := rec.Report(st.Elapsed)
	checkReport(t, rep, st)
	for _, op := range []backends.Op{backends.OpChat, backends.OpEmbedding, backends.OpTensor} {
		if cnt.n[op] > 0 && cnt.ok[op] == 0 {
			t.Errorf("%v: %d requests, none OK (failures %v)", op, cnt.n[op], cnt.bad)
		}
	}
	if cnt.n[backends.OpTensor] == 0 || cnt.n[backends.OpChat] == 0 {
		t.Errorf("the mixed workload sent %v", cnt.n)
	}
	if rep.TTFTMS.P50 <= 0 || rep.ITLMS.P50 <= 0 {
		t.Errorf("no stream timings: ttft %+v itl %+v", rep.TTFTMS, rep.ITLMS)
	}
	t.Logf("mixed over HTTP: %d requests, ok %d, errors %v, by op %v, cost/1k $%.6f, elapsed %v",
		rep.Requests, rep.OK, rep.Errors, cnt.n, rep.CostUSDPer1K, st.Elapsed)

	// Vision over gRPC through the top-level Run.
	rep, st, err = Run(context.Background(), Config{
		Target: httpURL, GRPC: grpcAddr, Workload: WorkloadVision, Rate: 40,
		Duration: time.Second, Seed: 2, Timeout: 5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	checkReport(t, rep, st)
	t.Logf("vision over gRPC: %d requests, ok %d, errors %v", rep.Requests, rep.OK, rep.Errors)

	// Vision over KServe v2 HTTP with JSON tensor data.
	rep, st, err = Run(context.Background(), Config{
		Target: httpURL, Workload: WorkloadVision, Rate: 20, TensorJSON: true,
		Duration: 500 * time.Millisecond, Seed: 3, Timeout: 5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	checkReport(t, rep, st)
	t.Logf("vision over HTTP/JSON: %d requests, ok %d, errors %v", rep.Requests, rep.OK, rep.Errors)
	if time.Now().After(deadline) {
		t.Errorf("the end-to-end test took more than 20 s")
	}
}
