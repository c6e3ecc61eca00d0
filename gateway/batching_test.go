package gateway

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/accelgate/accelgate/backends"
	"github.com/accelgate/accelgate/backends/emulator"
	"github.com/accelgate/accelgate/backends/fakeclock"
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
// batching settings.
// newBatchEnv serves one backend with the given batching settings; nil means
// the batcher's defaults (adaptive) for every model.
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
		ch <- answer{status: resp.StatusCode(), body: slices.Clone(resp.Body()), cost: string(resp.Header.Peek(HeaderCost))}
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

// TestBatchEmbeddingsUpstreamIndividual: on an OpenAI upstream (no DoBatch)
// an embeddings batch runs its members as individual calls, each caller
// getting its own answer.
func TestBatchEmbeddingsUpstreamIndividual(t *testing.T) {
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
	if n := len(f.calls); n != 2 {
		t.Fatalf("%d upstream calls, want 2", n)
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
