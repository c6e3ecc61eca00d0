package loadtest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/accelgate/accelgate/backends"
)

// The throughput benchmarks measure the generator alone on one core: the
// trivial server runs in a separate process (this test binary, re-executed
// as TestHelperTrivialServer with GOMAXPROCS=1), and the benchmark sets
// GOMAXPROCS=1 for itself, so the generator's figure is what one core does.
//
//	go test -run '^$' -bench 'OpenAIClientThroughput|OpenLoopRate' -benchtime 200000x ./loadtest/

const trivialServerEnv = "LOADTEST_TRIVIAL_SERVER"

// TestHelperTrivialServer is not a test: re-executed with
// LOADTEST_TRIVIAL_SERVER=1 it serves a fixed OpenAI-style answer on
// 127.0.0.1, prints its address and exits when its stdin closes.
// benchConnections is the connection count of the generator's throughput
// benchmark (the README's 30,000 req/s figure).
const benchConnections = 64

func TestHelperTrivialServer(t *testing.T) {
	if os.Getenv(trivialServerEnv) != "1" {
		t.Skip("helper process for the throughput benchmarks")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"id":"x","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}`)
	srv := &fasthttp.Server{
		Handler: func(ctx *fasthttp.RequestCtx) {
			ctx.Response.Header.Set(headerBackend, "h100-0")
			ctx.Response.Header.Set(headerHardware, "h100-sxm-80gb")
			ctx.Response.Header.Set(headerCost, "0.0000012345")
			ctx.SetContentType("application/json")
			ctx.SetBody(body)
		},
		NoDefaultServerHeader: true,
		NoDefaultDate:         true,
		Concurrency:           1 << 16,
	}
	go srv.Serve(ln)
	fmt.Println(ln.Addr().String())
	io.Copy(io.Discard, os.Stdin)
	srv.Shutdown()
}

// startTrivialServer starts the helper process and returns its address.
func startTrivialServer(b *testing.B) string {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperTrivialServer$", "-test.count=1")
	cmd.Env = append(os.Environ(), trivialServerEnv+"=1", "GOMAXPROCS=1")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		stdin.Close()
		cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		b.Fatalf("helper server: %v", err)
	}
	return strings.TrimSpace(line)
}

// burstSource yields n copies of one item, all due at once or spaced by gap.
type burstSource struct {
	n, i int
	gap  time.Duration
	tmpl Item
}

func (s *burstSource) Next(it *Item) bool {
	if s.i >= s.n {
		return false
	}
	*it = s.tmpl
	it.Seq = int64(s.i)
	it.At = time.Duration(s.i) * s.gap
	s.i++
	return true
}

func benchItem() Item {
	return Item{
		Op: backends.OpChat, Model: "llama-3.1-8b-instruct", Priority: backends.Standard,
		SLO: backends.SLO{E2E: time.Second}, InputTokens: 8, OutputTokens: 16,
		Messages: []backends.Message{{Role: "user", Content: "Say hello to the load generator, please."}},
	}
}

// benchRun runs n items through the full generator path (scheduler, worker
// pool, fasthttp client, recorder) on one core against the helper server.
func benchRun(b *testing.B, n int, gap time.Duration) (RunStats, *RunReport) {
	addr := startTrivialServer(b)
	prev := runtime.GOMAXPROCS(1)
	defer runtime.GOMAXPROCS(prev)
	cl, err := NewClient(ClientOptions{Target: "http://" + addr, Connections: benchConnections})
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	// Open the connections before timing.
	RunOpen(context.Background(), &burstSource{n: 4 * benchConnections, tmpl: benchItem()},
		RunOptions{Client: cl, Recorder: NewRecorder(RecorderOptions{}), MaxInflight: benchConnections})
	rec := NewRecorder(RecorderOptions{Name: "bench"})
	b.ReportAllocs()
	b.ResetTimer()
	st, err := RunOpen(context.Background(), &burstSource{n: n, gap: gap, tmpl: benchItem()},
		RunOptions{Client: cl, Recorder: rec, MaxInflight: benchConnections})
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	rep := rec.Report(st.Elapsed)
	if rep.OK != int64(n) {
		b.Fatalf("%d of %d OK: %v", rep.OK, n, rep.Errors)
	}
	return st, rep
}

// BenchmarkOpenAIClientThroughput is the generator's ceiling: b.N
// non-streaming chat requests, all due at once, at most 64 in flight over 64
// keep-alive connections; req/s is what one core sustains.
func BenchmarkOpenAIClientThroughput(b *testing.B) {
	st, rep := benchRun(b, b.N, 0)
	b.ReportMetric(float64(b.N)/st.Elapsed.Seconds(), "req/s")
	b.ReportMetric(rep.LatencyMS.P99, "p99-ms")
}

// BenchmarkOpenLoopRate30k sends at a fixed 30,000 req/s (b.N requests) and
// reports the achieved rate and how far behind schedule the generator fell.
func BenchmarkOpenLoopRate30k(b *testing.B) {
	gap := time.Second / 30000
	st, _ := benchRun(b, b.N, gap)
	b.ReportMetric(float64(b.N)/st.Elapsed.Seconds(), "req/s")
	b.ReportMetric(float64(st.MaxSentLate)/1e6, "max-late-ms")
	b.ReportMetric(float64(st.SentLate), "late>100ms")
}
