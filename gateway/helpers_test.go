package gateway

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"

	"github.com/accelgate/accelgate/backends"
	"github.com/accelgate/accelgate/router"
)

var t0 = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

// instant is a backend that answers at once: fixed text, fixed cost. It can
// be told to fail, to block until its context ends, or to stream chunks.
type instant struct {
	desc    *backends.Descriptor
	err     error
	block   bool
	mu      sync.Mutex
	calls   int
	lastReq *backends.Request
}

func (b *instant) Descriptor() *backends.Descriptor { return b.desc }
func (b *instant) Close() error                     { return nil }

func (b *instant) Do(ctx context.Context, req *backends.Request, m *backends.Model, stream backends.StreamFunc) (*backends.Result, error) {
	b.mu.Lock()
	b.calls++
	b.lastReq = req
	b.mu.Unlock()
	if b.block {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	if b.err != nil {
		return nil, b.err
	}
	res := &backends.Result{CostUSD: 0.00125, Usage: backends.Usage{PromptTokens: 7, CompletionTokens: 3, TotalTokens: 10}}
	switch req.Op {
	case backends.OpEmbedding:
		for range req.Inputs {
			res.Embeddings = append(res.Embeddings, []float32{0.6, 0.8})
		}
		res.Usage = backends.Usage{PromptTokens: 4, TotalTokens: 4}
	default:
		for i := 0; i < req.Sequences(); i++ {
			text := "hello there friend"
			if stream != nil {
				for _, w := range strings.SplitAfter(text, " ") {
					if err := stream(backends.Chunk{Index: i, Text: w}); err != nil {
						return nil, err
					}
				}
				if err := stream(backends.Chunk{Index: i, FinishReason: "stop"}); err != nil {
					return nil, err
				}
			}
			res.Choices = append(res.Choices, backends.Choice{Index: i, Text: text, FinishReason: "stop"})
		}
	}
	return res, nil
}

func testProfile(name string, price float64) *backends.Profile {
	return &backends.Profile{
		Name: name, Kind: backends.KindGPU, PricePerHour: price, MemoryGB: 80,
		LLM:       &backends.LLMModel{PrefillBaseMs: 1, PrefillMsPer1kTokens: 10, DecodeBaseMs: 5, DecodePerSeqMs: 0.01, MaxConcurrency: 64, Source: "test"},
		Embedding: &backends.BatchModel{BaseMs: 1, PerItemMs: 0.1, MaxBatch: 64, Source: "test"},
	}
}

func testModels() map[string]*backends.Model {
	llm := &backends.Model{Name: "llm", Kind: backends.ModelLLM, Timeout: time.Minute, ContextLength: 8192, ExpectedOutputTokens: 16, DefaultPriority: backends.Standard}
	llm.SLO[backends.Critical] = backends.SLO{TTFT: 300 * time.Millisecond, TPOT: 60 * time.Millisecond}
	llm.SLO[backends.Standard] = backends.SLO{TTFT: time.Second, TPOT: 60 * time.Millisecond}
	llm.SLO[backends.Sheddable] = backends.SLO{TTFT: 3 * time.Second, TPOT: 60 * time.Millisecond}
	emb := &backends.Model{Name: "emb", Kind: backends.ModelEmbedding, Timeout: time.Minute, Dimension: 2, DefaultPriority: backends.Standard}
	return map[string]*backends.Model{"llm": llm, "emb": emb}
}

type testEnv struct {
	srv   *Server
	be    []*instant
	ln    *fasthttputil.InmemoryListener
	c     *fasthttp.Client
	clock backends.Clock
}

// newEnv serves the front over an in-memory listener in front of instant
// backends.
func newEnv(t testing.TB, cfg Config, bes ...*instant) *testEnv {
	t.Helper()
	if len(bes) == 0 {
		bes = []*instant{{}}
	}
	var list []backends.Backend
	for i, b := range bes {
		if b.desc == nil {
			b.desc = &backends.Descriptor{Name: "b" + string(rune('0'+i)), Profile: testProfile("test-gpu", 3.6), Models: []string{"llm", "emb"}, PricePerHour: 3.6}
		}
		list = append(list, b)
	}
	clock := backends.RealClock
	d, err := NewDispatcher(list, testModels(), router.Config{}, clock)
	if err != nil {
		t.Fatal(err)
	}
	e := serveInmemory(t, cfg, d, clock)
	e.be = bes
	return e
}

// serveInmemory serves the HTTP front over d on an in-memory listener and
// returns a client for it; the server, listener and dispatcher are closed
// when the test ends.
func serveInmemory(t testing.TB, cfg Config, d *Dispatcher, clock backends.Clock) *testEnv {
	s := NewServer(cfg, d, clock)
	ln := fasthttputil.NewInmemoryListener()
	go s.Serve(ln)
	t.Cleanup(func() { s.Shutdown(); ln.Close(); d.Close() })
	c := &fasthttp.Client{Dial: func(string) (net.Conn, error) { return ln.Dial() }, MaxConnsPerHost: 64, MaxResponseBodySize: 64 << 20}
	return &testEnv{srv: s, ln: ln, c: c, clock: clock}
}

// do sends one request and returns the response (caller releases it).
func (e *testEnv) do(t testing.TB, method, path, body string, headers ...string) *fasthttp.Response {
	t.Helper()
	req := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(req)
	req.SetRequestURI("http://gw" + path)
	req.Header.SetMethod(method)
	if body != "" {
		req.SetBodyString(body)
		req.Header.SetContentType("application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp := fasthttp.AcquireResponse()
	if err := e.c.DoTimeout(req, resp, 10*time.Second); err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return resp
}
