package gateway

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/accelgate/accelgate/backends"
	"github.com/accelgate/accelgate/backends/emulator"
	"github.com/accelgate/accelgate/backends/fakeclock"
	"github.com/accelgate/accelgate/backends/fleet"
	"github.com/accelgate/accelgate/backends/upstream"
	"github.com/accelgate/accelgate/batcher"
	"github.com/accelgate/accelgate/router"
)

// batchFake is a backend that executes gateway batches as one unit
// (BatchBackend, like the emulator). It records every batch, announces it on
// batched, and, when gate is not nil, holds it until the test sends on (or
// closes) gate. Tensor outputs are computed per row from that row only:
// "output" FP32 [rows, 2] = (row sum, first element), "aux" INT64 [rows] =
// the row sum; embeddings are [len(input), first byte]; usage is the
// request's input bytes; cost 0.001 per row.
type batchFake struct {
	desc    *backends.Descriptor
	gate    chan struct{}
	batched chan []*backends.Request

	mu      sync.Mutex
	batches [][]*backends.Request
	calls   []*backends.Request // Do calls (the non-batch path)
}

func newBatchFake(gated bool) *batchFake {
	f := &batchFake{batched: make(chan []*backends.Request, 64)}
	if gated {
		f.gate = make(chan struct{})
	}
	f.desc = &backends.Descriptor{Name: "t0", Profile: ksProfile(), PricePerHour: 3.6, Models: []string{"vision", "emb", "llm"}}
	return f
}

func (f *batchFake) Descriptor() *backends.Descriptor { return f.desc }
func (f *batchFake) Close() error                     { return nil }

func (f *batchFake) Do(ctx context.Context, req *backends.Request, m *backends.Model, _ backends.StreamFunc) (*backends.Result, error) {
	f.mu.Lock()
	f.calls = append(f.calls, req)
	f.mu.Unlock()
	if req.Op == backends.OpChat || req.Op == backends.OpCompletion {
		if f.gate != nil {
			select {
			case <-f.gate:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		return &backends.Result{Choices: []backends.Choice{{Text: "ok", FinishReason: "stop"}}, CostUSD: 0.001}, nil
	}
	return fakeResult(req, 0.001*float64(max(req.Rows, 1))), nil
}

func (f *batchFake) DoBatch(ctx context.Context, reqs []*backends.Request, m *backends.Model) ([]*backends.Result, []error) {
	members := slices.Clone(reqs)
	f.mu.Lock()
	f.batches = append(f.batches, members)
	f.mu.Unlock()
	f.batched <- members
	res := make([]*backends.Result, len(reqs))
	errs := make([]error, len(reqs))
	if f.gate != nil {
		select {
		case <-f.gate:
		case <-ctx.Done():
			for i := range errs {
				errs[i] = ctx.Err()
			}
			return res, errs
		}
	}
	for i, r := range reqs {
		res[i] = fakeResult(r, 0.001*float64(max(r.Rows, 1)))
	}
	return res, errs
}

func (f *batchFake) recorded() [][]*backends.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.batches)
}

// fakeResult computes a request's outputs row by row.
func fakeResult(r *backends.Request, cost float64) *backends.Result {
	res := &backends.Result{CostUSD: cost}
	if r.Op == backends.OpEmbedding {
		n := 0
		for _, in := range r.Inputs {
			res.Embeddings = append(res.Embeddings, []float32{float32(len(in)), float32(in[0])})
			n += len(in)
		}
		res.Usage = backends.Usage{PromptTokens: n, TotalTokens: n}
		return res
	}
	in := r.Tensors[0]
	rows := int(in.Shape[0])
	out := backends.Tensor{Name: "output", Datatype: backends.FP32, Shape: []int64{int64(rows), 2}}
	aux := backends.Tensor{Name: "aux", Datatype: backends.INT64, Shape: []int64{int64(rows)}}
	for row := range rows {
		var sum, first float32
		for c := range 3 {
			v := math.Float32frombits(binary.LittleEndian.Uint32(in.Data[(row*3+c)*4:]))
			sum += v
			if c == 0 {
				first = v
			}
		}
		out.Data = binary.LittleEndian.AppendUint32(out.Data, math.Float32bits(sum))
		out.Data = binary.LittleEndian.AppendUint32(out.Data, math.Float32bits(first))
		aux.Data = binary.LittleEndian.AppendUint64(aux.Data, uint64(sum))
	}
	res.Tensors = []backends.Tensor{out, aux}
	return res
}

// upstreamFake is a tensor/embeddings upstream without DoBatch (like
// kserve-http, kserve-grpc and openai): it records every Do call and holds
// it, when gate is not nil, until the test releases it. Merged tensor calls
// cost 0.006 in all.
type upstreamFake struct {
	desc  *backends.Descriptor
	gate  chan struct{}
	calls chan *backends.Request
}

func (f *upstreamFake) Descriptor() *backends.Descriptor { return f.desc }
func (f *upstreamFake) Close() error                     { return nil }

func (f *upstreamFake) Do(ctx context.Context, req *backends.Request, m *backends.Model, _ backends.StreamFunc) (*backends.Result, error) {
	f.calls <- req
	if f.gate != nil {
		select {
		case <-f.gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return fakeResult(req, 0.006), nil
}

// newBatchEnv serves the HTTP front in front of one backend with the given
// batching settings; nil means the batcher's defaults (adaptive) for every
// model.
func newBatchEnv(t *testing.T, be backends.Backend, cfgs map[string]batcher.Config) *testEnv {
	t.Helper()
	if cfgs == nil {
		cfgs = map[string]batcher.Config{}
		for name := range ksModels() {
			cfgs[name] = batcher.DefaultConfig()
		}
	}
	d, err := NewDispatcher([]backends.Backend{be}, ksModels(), router.Config{}, backends.RealClock, WithBatching(cfgs))
	if err != nil {
		t.Fatal(err)
	}
	return serveInmemory(t, Config{}, d, backends.RealClock)
}

// fixedCfg holds requests until rows rows are queued (a very long queue
// delay, so the size alone dispatches).
func fixedCfg(rows int) batcher.Config {
	return batcher.Config{Mode: batcher.ModeFixed, MaxBatchSize: rows, MaxQueueDelay: time.Hour}
}

type answer struct {
	status int
	body   []byte
	cost   string
	id     string // x-request-id
}

// post sends a request from its own goroutine; the answer arrives on the
// returned channel.
func (e *testEnv) post(path, body string, headers ...string) <-chan answer {
	ch := make(chan answer, 1)
	go func() {
		req := fasthttp.AcquireRequest()
		defer fasthttp.ReleaseRequest(req)
		resp := fasthttp.AcquireResponse()
		defer fasthttp.ReleaseResponse(resp)
		req.SetRequestURI("http://gw" + path)
		req.Header.SetMethod("POST")
		req.SetBodyString(body)
		req.Header.SetContentType("application/json")
		for i := 0; i+1 < len(headers); i += 2 {
			req.Header.Set(headers[i], headers[i+1])
		}
		if err := e.c.DoTimeout(req, resp, 20*time.Second); err != nil {
			ch <- answer{status: -1, body: []byte(err.Error())}
			return
		}
		ch <- answer{status: resp.StatusCode(), body: slices.Clone(resp.Body()), cost: string(resp.Header.Peek(HeaderCost)),
			id: string(resp.Header.Peek(HeaderRequestID))}
	}()
	return ch
}

// visionBody is a KServe v2 infer body of rows [rows, 3] FP32 rows whose
// values start at base; want is the "output" data each row must get back.
func visionBody(rows int, base float32) (body string, want []float32) {
	var data []string
	for r := range rows {
		var sum float32
		for c := range 3 {
			v := base + float32(r*3+c)
			sum += v
			data = append(data, strconv.FormatFloat(float64(v), 'f', -1, 32))
		}
		want = append(want, sum, base+float32(r*3))
	}
	return fmt.Sprintf(`{"inputs":[{"name":"input","shape":[%d,3],"datatype":"FP32","data":[%s]}]}`, rows, strings.Join(data, ",")), want
}

type inferAnswer struct {
	Outputs []struct {
		Name  string    `json:"name"`
		Shape []int64   `json:"shape"`
		Data  []float32 `json:"data"`
	} `json:"outputs"`
}

func checkVision(t *testing.T, who string, a answer, rows int, want []float32) {
	t.Helper()
	if a.status != 200 {
		t.Fatalf("%s: status %d: %s", who, a.status, a.body)
	}
	var r inferAnswer
	if err := json.Unmarshal(a.body, &r); err != nil {
		t.Fatalf("%s: %v: %s", who, err, a.body)
	}
	if len(r.Outputs) != 2 || r.Outputs[0].Name != "output" || !slices.Equal(r.Outputs[0].Shape, []int64{int64(rows), 2}) ||
		!slices.Equal(r.Outputs[0].Data, want) || len(r.Outputs[1].Data) != rows {
		t.Fatalf("%s: got %s, want output %v", who, a.body, want)
	}
}

// waitFor spins (yielding, no sleeps) until cond holds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		runtime.Gosched()
	}
}

// TestBatchTensorsMergedThroughHTTP: three concurrent KServe v2 requests of
// 1, 2 and 3 rows, distinct inputs, reach the backend as one batch of 6
// rows (the queue dispatches at max_batch_size 6); each caller gets exactly
// its own rows and its cost.
func TestBatchTensorsMergedThroughHTTP(t *testing.T) {
	f := newBatchFake(true)
	e := newBatchEnv(t, f, map[string]batcher.Config{"vision": fixedCfg(6)})
	rows := []int{1, 2, 3}
	var chans []<-chan answer
	var wants [][]float32
	for k, n := range rows {
		body, want := visionBody(n, float32(100*(k+1)))
		chans = append(chans, e.post("/v2/models/vision/infer", body))
		wants = append(wants, want)
	}
	b := <-f.batched // the one batch, held by the backend
	total := 0
	for _, r := range b {
		total += r.Rows
	}
	if len(b) != 3 || total != 6 {
		t.Fatalf("batch of %d requests, %d rows; want 3 requests, 6 rows", len(b), total)
	}
	close(f.gate)
	for k, ch := range chans {
		a := <-ch
		checkVision(t, fmt.Sprintf("caller %d", k), a, rows[k], wants[k])
		if want := fmt.Sprintf("%.10f", 0.001*float64(rows[k])); a.cost != want {
			t.Errorf("caller %d: cost %s, want %s", k, a.cost, want)
		}
	}
	if n := len(f.recorded()); n != 1 {
		t.Fatalf("%d batches, want 1", n)
	}
}

// TestBatchTensorsMergedUpstream: on a backend without DoBatch (a KServe
// upstream), the batch is one merged call with the summed rows, and
// SplitResult gives each caller its rows and its share of the cost.
func TestBatchTensorsMergedUpstream(t *testing.T) {
	f := &upstreamFake{gate: make(chan struct{}), calls: make(chan *backends.Request, 16),
		desc: &backends.Descriptor{Name: "t0", Profile: ksProfile(), PricePerHour: 3.6, Models: []string{"vision"}}}
	e := newBatchEnv(t, f, map[string]batcher.Config{"vision": fixedCfg(6)})
	rows := []int{3, 1, 2}
	var chans []<-chan answer
	var wants [][]float32
	for k, n := range rows {
		body, want := visionBody(n, float32(-50*(k+1)))
		chans = append(chans, e.post("/v2/models/vision/infer", body))
		wants = append(wants, want)
	}
	call := <-f.calls
	if call.Rows != 6 || call.Tensors[0].Shape[0] != 6 || len(call.Tensors[0].Data) != 6*3*4 {
		t.Fatalf("merged call: rows %d, shape %v", call.Rows, call.Tensors[0].Shape)
	}
	close(f.gate)
	for k, ch := range chans {
		a := <-ch
		checkVision(t, fmt.Sprintf("caller %d", k), a, rows[k], wants[k])
		if want := fmt.Sprintf("%.10f", 0.006*float64(rows[k])/6); a.cost != want {
			t.Errorf("caller %d: cost %s, want %s", k, a.cost, want)
		}
	}
	select {
	case c := <-f.calls:
		t.Fatalf("a second upstream call: %+v", c)
	default:
	}
}

type embAnswer struct {
	Data []struct {
		Index     int       `json:"index"`
		Embedding []float32 `json:"embedding"`
	} `json:"data"`
	Usage struct {
		PromptTokens int `json:"prompt_tokens"`
		TotalTokens  int `json:"total_tokens"`
	} `json:"usage"`
}

// TestBatchEmbeddingsMerged: three concurrent embeddings requests of 1, 2
// and 3 inputs run as one backend batch of 6 inputs; each caller gets its
// own vectors, in its input order, and its own usage.
func TestBatchEmbeddingsMerged(t *testing.T) {
	f := newBatchFake(true)
	e := newBatchEnv(t, f, map[string]batcher.Config{"emb": fixedCfg(6)})
	inputs := [][]string{{"a"}, {"bb", "ccc"}, {"dddd", "eeeee", "ffffff"}}
	var chans []<-chan answer
	for _, in := range inputs {
		js, _ := json.Marshal(map[string]any{"model": "emb", "input": in})
		chans = append(chans, e.post("/v1/embeddings", string(js)))
	}
	b := <-f.batched
	total := 0
	for _, r := range b {
		total += len(r.Inputs)
	}
	if len(b) != 3 || total != 6 {
		t.Fatalf("batch of %d requests, %d inputs; want 3, 6", len(b), total)
	}
	close(f.gate)
	for k, ch := range chans {
		a := <-ch
		if a.status != 200 {
			t.Fatalf("caller %d: %d %s", k, a.status, a.body)
		}
		var r embAnswer
		if err := json.Unmarshal(a.body, &r); err != nil {
			t.Fatal(err)
		}
		if len(r.Data) != len(inputs[k]) {
			t.Fatalf("caller %d: %d vectors for %d inputs: %s", k, len(r.Data), len(inputs[k]), a.body)
		}
		tokens := 0
		for i, in := range inputs[k] {
			if v := r.Data[i].Embedding; r.Data[i].Index != i || len(v) != 2 || v[0] != float32(len(in)) || v[1] != float32(in[0]) {
				t.Fatalf("caller %d: vector %d is %v, not its input %q's", k, i, v, in)
			}
			tokens += len(in)
		}
		if r.Usage.PromptTokens != tokens || r.Usage.TotalTokens != tokens {
			t.Fatalf("caller %d: usage %+v, want %d tokens", k, r.Usage, tokens)
		}
	}
}

// TestBatchEmbeddingsUpstreamMergedCanonical: on an upstream without DoBatch
// that returns canonical embeddings (no raw body), an embeddings batch is one
// merged call whose vectors are split back per caller.
func TestBatchEmbeddingsUpstreamMergedCanonical(t *testing.T) {
	f := &upstreamFake{calls: make(chan *backends.Request, 16),
		desc: &backends.Descriptor{Name: "t0", Profile: ksProfile(), PricePerHour: 3.6, Models: []string{"emb"}}}
	e := newBatchEnv(t, f, map[string]batcher.Config{"emb": fixedCfg(3)})
	inputs := [][]string{{"x"}, {"yy", "zzz"}}
	var chans []<-chan answer
	for _, in := range inputs {
		js, _ := json.Marshal(map[string]any{"model": "emb", "input": in})
		chans = append(chans, e.post("/v1/embeddings", string(js)))
	}
	for k, ch := range chans {
		a := <-ch
		var r embAnswer
		if a.status != 200 || json.Unmarshal(a.body, &r) != nil || len(r.Data) != len(inputs[k]) || r.Data[0].Embedding[1] != float32(inputs[k][0][0]) {
			t.Fatalf("caller %d: %d %s", k, a.status, a.body)
		}
	}
	if n := len(f.calls); n != 1 {
		t.Fatalf("%d upstream calls, want 1", n)
	}
	if c := <-f.calls; len(c.Inputs) != 3 {
		t.Fatalf("merged call with inputs %q", c.Inputs)
	}
}

// TestBatchDeadlineDropNeverExecutes: a queued request whose hard timeout
// passes gets 504 and is never executed, not even in a later batch.
func TestBatchDeadlineDropNeverExecutes(t *testing.T) {
	f := newBatchFake(false)
	e := newBatchEnv(t, f, map[string]batcher.Config{"vision": fixedCfg(6)})
	body, _ := visionBody(1, 1)
	a := <-e.post("/v2/models/vision/infer", body, HeaderTimeout, "30")
	if a.status != 504 {
		t.Fatalf("status %d: %s", a.status, a.body)
	}
	// A full batch afterwards holds only its own request.
	body, want := visionBody(6, 7)
	checkVision(t, "full batch", <-e.post("/v2/models/vision/infer", body), 6, want)
	bs := f.recorded()
	if len(bs) != 1 || len(bs[0]) != 1 || bs[0][0].Rows != 6 {
		t.Fatalf("batches %v: the timed-out request was executed", bs)
	}
}

// TestBatchQueueFullSheds: a request that finds its model's queue full gets
// 429 at once; Close then fails the queued requests (502, backend unavailable), none is lost.
func TestBatchQueueFullSheds(t *testing.T) {
	f := newBatchFake(false)
	cfg := fixedCfg(64)
	cfg.MaxQueueSize = 2
	e := newBatchEnv(t, f, map[string]batcher.Config{"vision": cfg})
	body, _ := visionBody(1, 1)
	q1 := e.post("/v2/models/vision/infer", body)
	q2 := e.post("/v2/models/vision/infer", body)
	d := e.srv.Dispatcher()
	waitFor(t, "two queued requests", func() bool { return d.batchers[0].Len() == 2 })
	a := <-e.post("/v2/models/vision/infer", body)
	if a.status != 429 || !strings.Contains(string(a.body), "full") {
		t.Fatalf("status %d: %s", a.status, a.body)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	for _, q := range []<-chan answer{q1, q2} {
		a := <-q
		if a.status != 502 || !strings.Contains(string(a.body), "closed") {
			t.Fatalf("queued request after Close: %d %s", a.status, a.body)
		}
	}
	if bs := f.recorded(); len(bs) != 0 {
		t.Fatalf("batches %v executed", bs)
	}
	// After Close new requests are refused, not queued.
	if a := <-e.post("/v2/models/vision/infer", body); a.status != 502 {
		t.Fatalf("after Close: %d %s", a.status, a.body)
	}
}

// TestBatchModeOff: mode off runs every request as a batch of its own, at
// once, even while earlier ones are executing.
func TestBatchModeOff(t *testing.T) {
	f := newBatchFake(true)
	e := newBatchEnv(t, f, map[string]batcher.Config{"vision": {Mode: batcher.ModeOff}})
	var chans []<-chan answer
	var wants [][]float32
	for k := range 3 {
		body, want := visionBody(k+1, float32(k*10))
		chans = append(chans, e.post("/v2/models/vision/infer", body))
		wants = append(wants, want)
	}
	for range 3 {
		if b := <-f.batched; len(b) != 1 {
			t.Fatalf("mode off: a batch of %d requests", len(b))
		}
	}
	close(f.gate)
	for k, ch := range chans {
		checkVision(t, fmt.Sprintf("caller %d", k), <-ch, k+1, wants[k])
	}
}

// TestLLMAdmissionQueue: with one sequence slot, a second chat request waits
// in the backend's admission queue until the first ends; with mode off there
// is no admission queue.
func TestLLMAdmissionQueue(t *testing.T) {
	f := newBatchFake(true)
	f.desc.Profile.LLM.MaxConcurrency = 1
	e := newBatchEnv(t, f, nil)
	chat := `{"model":"llm","messages":[{"role":"user","content":"hi"}]}`
	first := e.post("/v1/chat/completions", chat)
	d := e.srv.Dispatcher()
	waitFor(t, "the first request at the backend", func() bool { f.mu.Lock(); defer f.mu.Unlock(); return len(f.calls) == 1 })
	second := e.post("/v1/chat/completions", chat)
	waitFor(t, "the second request queued", func() bool { return d.batchers[0].Len() == 1 })
	f.mu.Lock()
	if len(f.calls) != 1 {
		t.Fatalf("%d requests at the backend, want 1 (one slot)", len(f.calls))
	}
	f.mu.Unlock()
	f.gate <- struct{}{}
	if a := <-first; a.status != 200 {
		t.Fatalf("first: %d %s", a.status, a.body)
	}
	f.gate <- struct{}{}
	if a := <-second; a.status != 200 {
		t.Fatalf("second: %d %s", a.status, a.body)
	}

	g := newBatchFake(true)
	g.desc.Profile.LLM.MaxConcurrency = 1
	e = newBatchEnv(t, g, map[string]batcher.Config{"llm": {Mode: batcher.ModeOff}})
	first, second = e.post("/v1/chat/completions", chat), e.post("/v1/chat/completions", chat)
	waitFor(t, "both requests at the backend", func() bool { g.mu.Lock(); defer g.mu.Unlock(); return len(g.calls) == 2 })
	close(g.gate)
	for _, ch := range []<-chan answer{first, second} {
		if a := <-ch; a.status != 200 {
			t.Fatalf("mode off: %d %s", a.status, a.body)
		}
	}
}

// TestBatchFailureRetriedElsewhere: a batch that fails with a retryable
// error fails each member with an error saying so, and the Dispatcher places
// each again on another backend, where it runs once.
func TestBatchFailureRetriedElsewhere(t *testing.T) {
	bad := &ksFake{err: fmt.Errorf("%w: device lost", backends.ErrUnavailable),
		desc: &backends.Descriptor{Name: "bad", Profile: ksProfile(), PricePerHour: 1, Models: []string{"vision"}}}
	good := &upstreamFake{calls: make(chan *backends.Request, 16),
		desc: &backends.Descriptor{Name: "good", Profile: ksProfile(), PricePerHour: 100, Models: []string{"vision"}}}
	cfgs := map[string]batcher.Config{"vision": fixedCfg(2)}
	d, err := NewDispatcher([]backends.Backend{bad, good}, ksModels(), router.Config{}, backends.RealClock, WithBatching(cfgs))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	m := d.Models()["vision"]
	var wg sync.WaitGroup
	for k := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := &backends.Request{ID: "r" + strconv.Itoa(k), Op: backends.OpTensor, Model: "vision", Priority: backends.Standard, Rows: 1,
				Arrival: time.Now(), Deadline: time.Now().Add(time.Minute),
				Tensors: []backends.Tensor{{Name: "input", Datatype: backends.FP32, Shape: []int64{1, 3}, Data: make([]byte, 12)}}}
			ctx, cancel := context.WithDeadline(context.Background(), req.Deadline)
			defer cancel()
			res, desc, err := d.Do(ctx, req, m)
			if err != nil || desc.Name != "good" || len(res.Tensors) != 2 {
				t.Errorf("request %d: %v on %v", k, err, desc)
			}
		}()
	}
	wg.Wait()
	bad.mu.Lock()
	calls := bad.calls
	bad.mu.Unlock()
	if calls != 1 {
		t.Fatalf("the bad backend saw %d calls, want 1 merged call", calls)
	}
	if n := len(good.calls); n != 2 && n != 1 {
		t.Fatalf("the good backend saw %d calls", n)
	}
}

func TestBatchErrorSaysRetryable(t *testing.T) {
	d := &backends.Descriptor{Name: "x"}
	if e := batchError(d, 3, fmt.Errorf("%w: gone", backends.ErrUnavailable)); !strings.Contains(e.Error(), "(retryable elsewhere)") || Classify(e).HTTP != 502 {
		t.Fatalf("%v", e)
	}
	if e := batchError(d, 3, backends.BadRequestf("input", "bad")); !strings.Contains(e.Error(), "(not retryable)") || Classify(e).HTTP != 400 {
		t.Fatalf("%v", e)
	}
}

// TestBatchEmulatorOneBatch: through the HTTP front with the in-process
// emulator (on a fake clock), three concurrent requests of 1, 2 and 3 rows
// run as one emulator batch of 6 rows: the accelerator is busy for exactly
// one 6-row batch, and each caller pays its rows' share of it.
func TestBatchEmulatorOneBatch(t *testing.T) {
	clk := fakeclock.New(time.Now())
	desc := &backends.Descriptor{Name: "emu", Profile: ksProfile(), PricePerHour: 3.6, Models: []string{"vision"}}
	emu := emulator.New(desc, emulator.Options{Clock: clk, Config: emulator.Config{JitterSigma: 0}})
	defer emu.Close()
	d, err := NewDispatcher([]backends.Backend{emu}, ksModels(), router.Config{}, clk, WithBatching(map[string]batcher.Config{"vision": fixedCfg(6)}))
	if err != nil {
		t.Fatal(err)
	}
	e := serveInmemory(t, Config{}, d, clk)

	rows := []int{1, 2, 3}
	var chans []<-chan answer
	for k, n := range rows {
		body, _ := visionBody(n, float32(10*k))
		chans = append(chans, e.post("/v2/models/vision/infer", body))
	}
	waitFor(t, "the batch at the emulator", func() bool { return emu.Stats().Jobs == 3 })
	batch := desc.Profile.Vision.BatchTime(6, 0)
	for k, ch := range chans {
		var a answer
	wait:
		for {
			select {
			case a = <-ch:
				break wait
			default:
				if at, ok := clk.NextDeadline(); ok {
					clk.Set(at)
				}
				runtime.Gosched()
			}
		}
		if a.status != 200 {
			t.Fatalf("caller %d: %d %s", k, a.status, a.body)
		}
		var r inferAnswer
		if err := json.Unmarshal(a.body, &r); err != nil || len(r.Outputs) != 1 || !slices.Equal(r.Outputs[0].Shape, []int64{int64(rows[k]), 2}) {
			t.Fatalf("caller %d: %s", k, a.body)
		}
		cost, _ := strconv.ParseFloat(a.cost, 64)
		if want := desc.PricePerSecond() * batch.Seconds() * float64(rows[k]) / 6; math.Abs(cost-want) > 1e-9 {
			t.Errorf("caller %d: cost %v, want %v", k, cost, want)
		}
	}
	if got := emu.Stats().BusyTime; got != batch {
		t.Fatalf("accelerator busy %v, want one 6-row batch %v (three batches would be %v)", got, batch,
			desc.Profile.Vision.BatchTime(1, 0)+desc.Profile.Vision.BatchTime(2, 0)+desc.Profile.Vision.BatchTime(3, 0))
	}
}

// TestStreamAdmissionBeforeHeaders: a streaming chat request waits for
// admission before its response headers, so a full admission queue answers
// 429 with an OpenAI error body (not a 200 event stream carrying an error
// event), and a queued stream starts streaming once admitted.
func TestStreamAdmissionBeforeHeaders(t *testing.T) {
	f := newBatchFake(true)
	f.desc.Profile.LLM.MaxConcurrency = 1
	e := newBatchEnv(t, f, map[string]batcher.Config{"llm": {MaxQueueSize: 1}})
	stream := `{"model":"llm","stream":true,"messages":[{"role":"user","content":"hi"}]}`
	first := e.post("/v1/chat/completions", stream)
	d := e.srv.Dispatcher()
	waitFor(t, "the first stream at the backend", func() bool { f.mu.Lock(); defer f.mu.Unlock(); return len(f.calls) == 1 })
	second := e.post("/v1/chat/completions", stream)
	waitFor(t, "the second stream queued", func() bool { return d.batchers[0].Len() == 1 })
	a := <-e.post("/v1/chat/completions", stream)
	if a.status != 429 || !strings.Contains(string(a.body), `"error"`) || strings.Contains(string(a.body), "data:") {
		t.Fatalf("full admission queue: status %d, body %s", a.status, a.body)
	}
	f.gate <- struct{}{}
	if a := <-first; a.status != 200 || !strings.Contains(string(a.body), "data: [DONE]") {
		t.Fatalf("first: %d %s", a.status, a.body)
	}
	f.gate <- struct{}{}
	if a := <-second; a.status != 200 || !strings.Contains(string(a.body), "data: [DONE]") {
		t.Fatalf("second: %d %s", a.status, a.body)
	}
}

// openaiFake is an OpenAI-compatible upstream (served by httptest behind a
// real upstream.Backend). It sends every call on calls and answers:
// embeddings: input s → [len(s), s[0]] (little-endian float32 in base64 when
// asked), the data in reverse order, prompt_tokens 1000 + the inputs' bytes,
// and 400 when an input is "bad"; completions: prompt p, choice c → text
// "p#c" at index p's position × n + c, prompt_tokens 100 per prompt,
// completion_tokens the texts' bytes; streams as server-sent events. A
// non-zero status fails every call with it.
type openaiFake struct {
	calls  chan fakeCall
	status atomic.Int32
}

type fakeCall struct {
	path, model, format string
	items               []string // input or prompt
	array               bool     // sent as an array
	n                   int
	stream              bool
	temperature         float64
}

func newOpenAIEnv(t *testing.T, f *openaiFake, cfgs map[string]batcher.Config) *testEnv {
	t.Helper()
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	desc := &backends.Descriptor{Name: "vllm-0", Profile: testProfile("test-gpu", 3.6), Models: []string{"llm", "emb"},
		Transport: fleet.TransportOpenAI, PricePerHour: 3.6}
	up, err := upstream.New(desc, upstream.Config{URL: srv.URL, ModelNames: map[string]string{"emb": "org/emb-v1"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = up.Close() })
	return newBatchEnv(t, up, cfgs)
}

func (f *openaiFake) next(t *testing.T) fakeCall {
	t.Helper()
	select {
	case c := <-f.calls:
		return c
	case <-time.After(10 * time.Second): // a safety bound, not a synchronisation
		t.Fatal("the upstream saw no call")
	}
	return fakeCall{}
}

func (f *openaiFake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var in struct {
		Model          string          `json:"model"`
		Input          json.RawMessage `json:"input"`
		Prompt         json.RawMessage `json:"prompt"`
		N              int             `json:"n"`
		Stream         bool            `json:"stream"`
		EncodingFormat string          `json:"encoding_format"`
		Temperature    float64         `json:"temperature"`
	}
	_ = json.Unmarshal(body, &in)
	c := fakeCall{path: r.URL.Path, model: in.Model, format: in.EncodingFormat, n: max(in.N, 1), stream: in.Stream, temperature: in.Temperature}
	raw := in.Input
	if r.URL.Path == "/v1/completions" {
		raw = in.Prompt
	}
	if c.array = len(raw) > 0 && raw[0] == '['; c.array {
		_ = json.Unmarshal(raw, &c.items)
	} else {
		var s string
		_ = json.Unmarshal(raw, &s)
		c.items = []string{s}
	}
	f.calls <- c
	w.Header().Set("Content-Type", "application/json")
	if st := int(f.status.Load()); st != 0 {
		w.WriteHeader(st)
		fmt.Fprintf(w, `{"error":{"message":"fake failure %d","type":"server_error"}}`, st)
		return
	}
	switch r.URL.Path {
	case "/v1/embeddings":
		if slices.Contains(c.items, "bad") {
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, `{"error":{"message":"input \"bad\" is too long","type":"invalid_request_error","param":"input"}}`)
			return
		}
		var data []string
		tokens := 1000
		for i := len(c.items) - 1; i >= 0; i-- {
			s := c.items[i]
			tokens += len(s)
			v := []float32{float32(len(s)), float32(s[0])}
			var vec string
			if c.format == "base64" {
				var b []byte
				for _, x := range v {
					b = binary.LittleEndian.AppendUint32(b, math.Float32bits(x))
				}
				vec = `"` + base64.StdEncoding.EncodeToString(b) + `"`
			} else {
				js, _ := json.Marshal(v)
				vec = string(js)
			}
			data = append(data, fmt.Sprintf(`{"object":"embedding","index":%d,"embedding":%s}`, i, vec))
		}
		fmt.Fprintf(w, `{"object":"list","data":[%s],"model":%q,"usage":{"prompt_tokens":%d,"total_tokens":%d}}`,
			strings.Join(data, ","), c.model, tokens, tokens)
	case "/v1/completions":
		var choices []string
		completion := 0
		for pi, p := range c.items {
			for k := range c.n {
				text := fmt.Sprintf("%s#%d", p, k)
				completion += len(text)
				choices = append(choices, fmt.Sprintf(`{"index":%d,"text":%q,"logprobs":null,"finish_reason":"length"}`, pi*c.n+k, text))
			}
		}
		if c.stream {
			w.Header().Set("Content-Type", "text/event-stream")
			for _, ch := range choices {
				fmt.Fprintf(w, "data: {\"id\":\"cmpl-up\",\"object\":\"text_completion\",\"model\":%q,\"choices\":[%s]}\n\n", c.model, ch)
			}
			fmt.Fprint(w, "data: [DONE]\n\n")
			return
		}
		prompt := 100 * len(c.items)
		fmt.Fprintf(w, `{"id":"cmpl-up","object":"text_completion","created":1700000000,"model":%q,"choices":[%s],"usage":{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d}}`,
			c.model, strings.Join(choices, ","), prompt, completion, prompt+completion)
	default:
		http.NotFound(w, r)
	}
}

// embRawAnswer is an embeddings answer with the vectors as sent.
type embRawAnswer struct {
	Object string `json:"object"`
	Model  string `json:"model"`
	Data   []struct {
		Object    string          `json:"object"`
		Index     int             `json:"index"`
		Embedding json.RawMessage `json:"embedding"`
	} `json:"data"`
	Usage struct {
		PromptTokens int `json:"prompt_tokens"`
		TotalTokens  int `json:"total_tokens"`
	} `json:"usage"`
}

// vector decodes an embedding sent as a float array or base64.
func vector(t *testing.T, raw json.RawMessage) []float32 {
	t.Helper()
	var v []float32
	if len(raw) > 0 && raw[0] == '"' {
		var s string
		_ = json.Unmarshal(raw, &s)
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			t.Fatalf("embedding %s: %v", raw, err)
		}
		for i := 0; i+4 <= len(b); i += 4 {
			v = append(v, math.Float32frombits(binary.LittleEndian.Uint32(b[i:])))
		}
		return v
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("embedding %s: %v", raw, err)
	}
	return v
}

// checkEmbeddings checks that a caller got exactly its inputs' vectors,
// indexed from 0, under the public model name, and returns its prompt tokens.
func checkEmbeddings(t *testing.T, who string, a answer, inputs []string, base64 bool) int {
	t.Helper()
	if a.status != 200 {
		t.Fatalf("%s: %d %s", who, a.status, a.body)
	}
	var r embRawAnswer
	if err := json.Unmarshal(a.body, &r); err != nil {
		t.Fatalf("%s: %v: %s", who, err, a.body)
	}
	if r.Object != "list" || r.Model != "emb" || len(r.Data) != len(inputs) {
		t.Fatalf("%s: %s, want %d vectors of model emb", who, a.body, len(inputs))
	}
	for i, in := range inputs {
		d := r.Data[i]
		if d.Object != "embedding" || d.Index != i || (d.Embedding[0] == '"') != base64 {
			t.Fatalf("%s: data[%d] = %+v (base64 %v)", who, i, d, base64)
		}
		if v := vector(t, d.Embedding); !slices.Equal(v, []float32{float32(len(in)), float32(in[0])}) {
			t.Fatalf("%s: vector %d is %v, not its input %q's", who, i, v, in)
		}
	}
	if r.Usage.PromptTokens <= 0 || r.Usage.TotalTokens != r.Usage.PromptTokens {
		t.Fatalf("%s: usage %+v", who, r.Usage)
	}
	return r.Usage.PromptTokens
}

// contiguous reports whether want appears in items as one run.
func contiguous(items, want []string) bool {
	for i := range items {
		if i+len(want) <= len(items) && slices.Equal(items[i:i+len(want)], want) {
			return true
		}
	}
	return false
}

// TestBatchEmbeddingsOpenAIOneCall: three concurrent embeddings requests of
// 1, 3 and 2 distinct inputs reach an OpenAI upstream as ONE call with the
// 6 inputs (each caller's contiguous, under the upstream's model name), and
// each caller gets exactly its own vectors, re-indexed from 0, under the
// public model name, with usage summing to the upstream's.
func TestBatchEmbeddingsOpenAIOneCall(t *testing.T) {
	f := &openaiFake{calls: make(chan fakeCall, 64)}
	e := newOpenAIEnv(t, f, map[string]batcher.Config{"emb": fixedCfg(6)})
	inputs := [][]string{{"a"}, {"bb", "ccc", "dddd"}, {"eeeee", "ffffff"}}
	var chans []<-chan answer
	for _, in := range inputs {
		js, _ := json.Marshal(map[string]any{"model": "emb", "input": in, "dimensions": 2})
		chans = append(chans, e.post("/v1/embeddings", string(js)))
	}
	c := f.next(t)
	if c.path != "/v1/embeddings" || c.model != "org/emb-v1" || !c.array || len(c.items) != 6 {
		t.Fatalf("upstream call %+v, want one call with 6 inputs", c)
	}
	upstreamTokens := 1000
	for _, in := range inputs {
		if !contiguous(c.items, in) {
			t.Fatalf("merged inputs %q do not hold %q in order", c.items, in)
		}
		for _, s := range in {
			upstreamTokens += len(s)
		}
	}
	sum := 0
	for k, ch := range chans {
		sum += checkEmbeddings(t, fmt.Sprintf("caller %d", k), <-ch, inputs[k], false)
	}
	if sum != upstreamTokens {
		t.Fatalf("callers' prompt tokens sum to %d, the upstream reported %d", sum, upstreamTokens)
	}
	select {
	case c := <-f.calls:
		t.Fatalf("a second upstream call: %+v", c)
	default:
	}
}

// TestBatchEmbeddingsOpenAIFormatsNotMixed: a float request and a base64
// request never share a call (the float one runs alone), while two base64
// requests merge, each caller getting base64 vectors as the upstream
// encoded them.
func TestBatchEmbeddingsOpenAIFormatsNotMixed(t *testing.T) {
	f := &openaiFake{calls: make(chan fakeCall, 64)}
	e := newOpenAIEnv(t, f, map[string]batcher.Config{"emb": fixedCfg(2)})
	d := e.srv.Dispatcher()
	a := e.post("/v1/embeddings", `{"model":"emb","input":"aa"}`)
	waitFor(t, "the float request queued", func() bool { return d.batchers[0].Len() == 1 })
	b := e.post("/v1/embeddings", `{"model":"emb","input":["bbb"],"encoding_format":"base64"}`)
	// Two rows are queued, so the queue dispatches, but the base64 request
	// cannot join the float one: it runs alone.
	if c := f.next(t); !slices.Equal(c.items, []string{"aa"}) || c.format != "" {
		t.Fatalf("first call %+v, want the float request alone", c)
	}
	checkEmbeddings(t, "float", <-a, []string{"aa"}, false)
	c := e.post("/v1/embeddings", `{"encoding_format": "base64", "input":["c"], "model":"emb"}`)
	if call := f.next(t); !slices.Equal(call.items, []string{"bbb", "c"}) || call.format != "base64" {
		t.Fatalf("second call %+v, want the two base64 requests merged", call)
	}
	checkEmbeddings(t, "base64 b", <-b, []string{"bbb"}, true)
	checkEmbeddings(t, "base64 c", <-c, []string{"c"}, true)
}

// TestBatchEmbeddingsOpenAIFailure: a merged call that fails (503) fails
// every member, once, with an error that says the batch may be retried
// elsewhere (it wraps backends.ErrUnavailable).
func TestBatchEmbeddingsOpenAIFailure(t *testing.T) {
	f := &openaiFake{calls: make(chan fakeCall, 64)}
	f.status.Store(http.StatusServiceUnavailable)
	srv := httptest.NewServer(f)
	defer srv.Close()
	desc := &backends.Descriptor{Name: "vllm-0", Profile: testProfile("test-gpu", 3.6), Models: []string{"emb"}, Transport: fleet.TransportOpenAI, PricePerHour: 3.6}
	up, err := upstream.New(desc, upstream.Config{URL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	d, err := NewDispatcher([]backends.Backend{up}, testModels(), router.Config{}, backends.RealClock, WithBatching(map[string]batcher.Config{"emb": fixedCfg(3)}))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	m := d.Models()["emb"]
	var wg sync.WaitGroup
	for k, body := range []string{`{"model":"emb","input":"x"}`, `{"model":"emb","input":["yy","zz"]}`} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := &backends.Request{ID: "e" + strconv.Itoa(k), Priority: backends.Standard, Body: []byte(body)}
			if _, err := decodeEmbedding(req.Body, req); err != nil {
				t.Error(err)
				return
			}
			req.Arrival = time.Now()
			req.Deadline = req.Arrival.Add(time.Minute)
			ctx, cancel := context.WithDeadline(context.Background(), req.Deadline)
			defer cancel()
			_, _, err := d.Do(ctx, req, m)
			if !errors.Is(err, backends.ErrUnavailable) || !strings.Contains(err.Error(), "a batch of 2 requests failed") ||
				!strings.Contains(err.Error(), "retryable elsewhere") {
				t.Errorf("member %d: %v", k, err)
			}
		}()
	}
	wg.Wait()
	if n := len(f.calls); n != 1 {
		t.Fatalf("%d upstream calls, want the one merged call", n)
	}
}

// TestBatchEmbeddingsOpenAIRejectedRunsEach: when the upstream rejects a
// merged call as the request's fault (400: one member's input), the members
// run again one by one, so the others still get their answers.
func TestBatchEmbeddingsOpenAIRejectedRunsEach(t *testing.T) {
	f := &openaiFake{calls: make(chan fakeCall, 64)}
	e := newOpenAIEnv(t, f, map[string]batcher.Config{"emb": fixedCfg(2)})
	good := e.post("/v1/embeddings", `{"model":"emb","input":"good"}`)
	bad := e.post("/v1/embeddings", `{"model":"emb","input":"bad"}`)
	checkEmbeddings(t, "good", <-good, []string{"good"}, false)
	if a := <-bad; a.status != 400 || !strings.Contains(string(a.body), "too long") {
		t.Fatalf("bad: %d %s", a.status, a.body)
	}
	if c := f.next(t); len(c.items) != 2 {
		t.Fatalf("first call %+v, want the merged call", c)
	}
	if n := len(f.calls); n != 2 {
		t.Fatalf("%d calls after the merged one, want 2 (one per member)", n)
	}
}

type cmplAnswer struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Model   string `json:"model"`
	Choices []struct {
		Index        int    `json:"index"`
		Text         string `json:"text"`
		FinishReason string `json:"finish_reason"`
	} `json:"choices"`
	Usage struct {
		PromptTokens     int `json:"prompt_tokens"`
		CompletionTokens int `json:"completion_tokens"`
		TotalTokens      int `json:"total_tokens"`
	} `json:"usage"`
}

// checkCompletion checks that a caller got its prompt's n choices, indexed
// from 0, and returns its prompt and completion tokens.
// A merged call's answer carries the caller's request ID; a call of one
// member relays the upstream's body as is.
func checkCompletion(t *testing.T, who string, a answer, prompt string, n int, merged bool) (int, int) {
	t.Helper()
	if a.status != 200 {
		t.Fatalf("%s: %d %s", who, a.status, a.body)
	}
	var r cmplAnswer
	if err := json.Unmarshal(a.body, &r); err != nil {
		t.Fatalf("%s: %v: %s", who, err, a.body)
	}
	if r.Object != "text_completion" || r.Model != "llm" || (merged && r.ID != a.id) || len(r.Choices) != n {
		t.Fatalf("%s (request %s): %s", who, a.id, a.body)
	}
	for k, c := range r.Choices {
		if c.Index != k || c.Text != fmt.Sprintf("%s#%d", prompt, k) || c.FinishReason != "length" {
			t.Fatalf("%s: choice %d is %+v, not its prompt %q's", who, k, c, prompt)
		}
	}
	if r.Usage.PromptTokens <= 0 || r.Usage.TotalTokens != r.Usage.PromptTokens+r.Usage.CompletionTokens {
		t.Fatalf("%s: usage %+v", who, r.Usage)
	}
	return r.Usage.PromptTokens, r.Usage.CompletionTokens
}

// TestBatchCompletionsOpenAIMerged: two non-streaming completions whose
// bodies differ only in their prompt (key order and spacing aside) reach an
// OpenAI upstream as one call with a 2-element prompt array; each caller
// gets its own prompt's choices (n = 2), re-indexed from 0, under its own
// ID, with usage summing to the upstream's.
func TestBatchCompletionsOpenAIMerged(t *testing.T) {
	f := &openaiFake{calls: make(chan fakeCall, 64)}
	e := newOpenAIEnv(t, f, map[string]batcher.Config{"llm": fixedCfg(4)})
	prompts := []string{"alpha", "beta"}
	chans := []<-chan answer{
		e.post("/v1/completions", `{"model":"llm","prompt":"alpha","temperature":0.5,"max_tokens":8,"n":2}`),
		e.post("/v1/completions", `{"n": 2, "max_tokens": 8, "prompt": "beta", "model": "llm", "temperature": 0.5}`),
	}
	c := f.next(t)
	if c.path != "/v1/completions" || !c.array || len(c.items) != 2 || c.n != 2 || c.stream ||
		!slices.Contains(c.items, "alpha") || !slices.Contains(c.items, "beta") {
		t.Fatalf("upstream call %+v, want one call with both prompts", c)
	}
	var prompt, completion int
	for k, ch := range chans {
		p, cpl := checkCompletion(t, prompts[k], <-ch, prompts[k], 2, true)
		prompt, completion = prompt+p, completion+cpl
	}
	if want := len("alpha#0")*2 + len("beta#0")*2; prompt != 200 || completion != want {
		t.Fatalf("usage sums to %d prompt, %d completion tokens; the upstream reported 200, %d", prompt, completion, want)
	}
	if n := len(f.calls); n != 0 {
		t.Fatalf("%d more upstream calls", n)
	}
}

// TestBatchCompletionsOpenAITemperatureNotMerged: completions with
// different temperatures never share a call; those with the same do.
func TestBatchCompletionsOpenAITemperatureNotMerged(t *testing.T) {
	f := &openaiFake{calls: make(chan fakeCall, 64)}
	e := newOpenAIEnv(t, f, map[string]batcher.Config{"llm": fixedCfg(2)})
	d := e.srv.Dispatcher()
	a := e.post("/v1/completions", `{"model":"llm","prompt":"a","temperature":0.5}`)
	waitFor(t, "the first completion queued", func() bool { return d.batchers[0].Len() == 1 })
	b := e.post("/v1/completions", `{"model":"llm","prompt":"b","temperature":0.7}`)
	if c := f.next(t); c.array || !slices.Equal(c.items, []string{"a"}) || c.temperature != 0.5 {
		t.Fatalf("first call %+v, want the 0.5 completion alone, as sent", c)
	}
	checkCompletion(t, "a", <-a, "a", 1, false)
	c := e.post("/v1/completions", `{"model":"llm","prompt":"c","temperature":0.7}`)
	if call := f.next(t); !slices.Equal(call.items, []string{"b", "c"}) || call.temperature != 0.7 {
		t.Fatalf("second call %+v, want the two 0.7 completions merged", call)
	}
	checkCompletion(t, "b", <-b, "b", 1, true)
	checkCompletion(t, "c", <-c, "c", 1, true)
}

// TestBatchCompletionStreamsNeverMerged: streaming completions pass the
// admission queue and run as calls of their own, however the queue is set.
func TestBatchCompletionStreamsNeverMerged(t *testing.T) {
	f := &openaiFake{calls: make(chan fakeCall, 64)}
	e := newOpenAIEnv(t, f, map[string]batcher.Config{"llm": fixedCfg(2)})
	x := e.post("/v1/completions", `{"model":"llm","prompt":"x","stream":true}`)
	y := e.post("/v1/completions", `{"model":"llm","prompt":"y","stream":true}`)
	for _, ch := range []<-chan answer{x, y} {
		if a := <-ch; a.status != 200 || !strings.Contains(string(a.body), "data: [DONE]") {
			t.Fatalf("stream: %d %s", a.status, a.body)
		}
	}
	for range 2 {
		if c := f.next(t); c.array || len(c.items) != 1 || !c.stream {
			t.Fatalf("stream call %+v, want one prompt as sent", c)
		}
	}
}

// TestBatchKeyCanonical: the batch key ignores key order, spacing and the
// merged member, and leaves out encoding_format "float" (the default).
func TestBatchKeyCanonical(t *testing.T) {
	for _, c := range []struct {
		a, b string
		skip string
		same bool
	}{
		{`{"model":"m","input":"a","dimensions":256}`, `{ "dimensions" : 256, "input":["b","c"], "model":"m" }`, "input", true},
		{`{"model":"m","input":"a"}`, `{"model":"m","input":"b","encoding_format":"float"}`, "input", true},
		{`{"model":"m","input":"a"}`, `{"model":"m","input":"b","encoding_format":"base64"}`, "input", false},
		{`{"model":"m","input":"a","dimensions":256}`, `{"model":"m","input":"b","dimensions":512}`, "input", false},
		{`{"model":"m","prompt":"a","temperature":0.5,"stop":["END"]}`, `{"stop":[ "END" ],"prompt":"b","temperature":0.5,"model":"m"}`, "prompt", true},
		{`{"model":"m","prompt":"a","temperature":0.5}`, `{"model":"m","prompt":"a","temperature":0.5,"top_p":0.9}`, "prompt", false},
	} {
		ka, kb := batchKey([]byte(c.a), c.skip, c.skip == "input"), batchKey([]byte(c.b), c.skip, c.skip == "input")
		if (ka == kb) != c.same {
			t.Errorf("%s vs %s: keys %s and %s, same %v", c.a, c.b, ka, kb, c.same)
		}
	}
	req := &backends.Request{}
	if err := decodeLLM(backends.OpCompletion, []byte(`{"model":"m","prompt":"a","stream":true}`), req); err != nil || req.BatchKey != "" {
		t.Fatalf("a stream has key %q (%v)", req.BatchKey, err)
	}
	if err := decodeLLM(backends.OpChat, []byte(`{"model":"m","messages":[{"role":"user","content":"a"}]}`), req); err != nil || req.BatchKey != "" {
		t.Fatalf("chat has key %q (%v)", req.BatchKey, err)
	}
}
