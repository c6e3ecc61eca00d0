package gateway

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/valyala/fasthttp"

	"github.com/accelgate/accelgate/backends"
	"github.com/accelgate/accelgate/backends/fakeclock"
	"github.com/accelgate/accelgate/backends/fleet"
	"github.com/accelgate/accelgate/backends/kserve"
	"github.com/accelgate/accelgate/batcher"
	"github.com/accelgate/accelgate/proto/inference"
	"github.com/accelgate/accelgate/router"
)

// cacheEnv is the HTTP and gRPC fronts over one dispatcher (a fake clock,
// batching off so nothing waits on the clock's timers), with an instant
// backend b0 for llm and emb and a tensor fake t0 for vision.
type cacheEnv struct {
	*testEnv
	d      *Dispatcher
	llm    *instant
	ks     *ksFake
	clk    *fakeclock.Clock
	client inference.GRPCInferenceServiceClient
}

// newCacheEnv builds a cacheEnv; cfgs (when non-nil) goes to
// SetResponseCache.
func newCacheEnv(t *testing.T, cfgs map[string]fleet.ResponseCache) *cacheEnv {
	t.Helper()
	clk := fakeclock.New(time.Now()) // the deadlines are real contexts' deadlines
	llm := &instant{desc: &backends.Descriptor{Name: "b0", Profile: ksProfile(), Models: []string{"llm", "emb"}, PricePerHour: 3.6}}
	ks := &ksFake{desc: &backends.Descriptor{Name: "t0", Profile: ksProfile(), Models: []string{"vision"}, PricePerHour: 3.6}}
	off := batcher.Config{Mode: batcher.ModeOff}
	d, err := NewDispatcher([]backends.Backend{llm, ks}, ksModels(), router.Config{}, clk,
		WithBatching(map[string]batcher.Config{"llm": off, "emb": off, "vision": off, "echo": off}))
	if err != nil {
		t.Fatal(err)
	}
	if cfgs != nil {
		if err := d.SetResponseCache(cfgs); err != nil {
			t.Fatal(err)
		}
	}
	e := &cacheEnv{testEnv: serveInmemory(t, Config{}, d, clk), d: d, llm: llm, ks: ks, clk: clk}
	conn := serveGRPC(t, NewGRPCServer(d, GRPCOptions{Clock: clk})) // stops before the dispatcher closes
	e.client = inference.NewGRPCInferenceServiceClient(conn)
	return e
}

// cacheAll enables every test model's cache with the defaults.
func cacheAll() map[string]fleet.ResponseCache {
	on := fleet.ResponseCache{Enabled: true}
	return map[string]fleet.ResponseCache{"llm": on, "emb": on, "vision": on}
}

func (e *cacheEnv) llmCalls() int {
	e.llm.mu.Lock()
	defer e.llm.mu.Unlock()
	return e.llm.calls
}

func (e *cacheEnv) ksCalls() int {
	e.ks.mu.Lock()
	defer e.ks.mu.Unlock()
	return e.ks.calls
}

// post sends a JSON body and checks the status and the cache header.
func (e *cacheEnv) post(t *testing.T, path, body, wantCache string, headers ...string) *fasthttp.Response {
	t.Helper()
	resp := e.do(t, "POST", path, body, headers...)
	if resp.StatusCode() != 200 {
		t.Fatalf("%s %s: status %d: %s", path, body, resp.StatusCode(), resp.Body())
	}
	if got := string(resp.Header.Peek(HeaderCache)); got != wantCache {
		t.Fatalf("%s %s: %s %q, want %q", path, body, HeaderCache, got, wantCache)
	}
	return resp
}

func costHeader(t *testing.T, resp *fasthttp.Response) float64 {
	t.Helper()
	v, err := strconv.ParseFloat(string(resp.Header.Peek(HeaderCost)), 64)
	if err != nil {
		t.Fatalf("%s: %v", HeaderCost, err)
	}
	return v
}

type embeddingBody struct {
	Data []struct {
		Index     int             `json:"index"`
		Embedding json.RawMessage `json:"embedding"`
	} `json:"data"`
	Usage struct {
		PromptTokens int `json:"prompt_tokens"`
	} `json:"usage"`
}

func TestCacheEmbeddingsHit(t *testing.T) {
	e := newCacheEnv(t, cacheAll())
	body := `{"model":"emb","input":["one","two"]}`
	first := e.post(t, "/v1/embeddings", body, CacheMiss)
	if c := costHeader(t, first); c != 0.00125 {
		t.Fatalf("miss: cost %v", c)
	}
	firstBody := string(first.Body())
	second := e.post(t, "/v1/embeddings", body, CacheHit)
	if c := costHeader(t, second); c != 0 || string(second.Header.Peek(HeaderCost)) == "" {
		t.Fatalf("hit: cost %q", second.Header.Peek(HeaderCost))
	}
	if string(second.Body()) != firstBody {
		t.Fatalf("hit body %s, want %s", second.Body(), firstBody)
	}
	var out embeddingBody
	if err := json.Unmarshal(second.Body(), &out); err != nil || len(out.Data) != 2 || string(out.Data[1].Embedding) != "[0.6,0.8]" || out.Usage.PromptTokens != 4 {
		t.Fatalf("hit body %s (%v)", second.Body(), err)
	}
	if string(second.Header.Peek(HeaderBackend)) != "b0" || string(second.Header.Peek(HeaderHardware)) != "test-gpu" {
		t.Fatalf("hit placement headers: %s", second.Header.String())
	}
	if !strings.HasPrefix(string(second.Header.Peek(HeaderRequestID)), "emb-") || string(second.Header.Peek(HeaderRequestID)) == string(first.Header.Peek(HeaderRequestID)) {
		t.Fatalf("hit request id %q (first %q)", second.Header.Peek(HeaderRequestID), first.Header.Peek(HeaderRequestID))
	}
	if n := e.llmCalls(); n != 1 {
		t.Fatalf("the backend saw %d calls, want 1", n)
	}
	if st := e.d.ResponseCacheStats()["emb"]; st.Hits != 1 || st.Misses != 1 || st.Entries != 1 {
		t.Fatalf("stats %+v", st)
	}
}

type chatBody struct {
	ID      string `json:"id"`
	Created int64  `json:"created"`
	Choices []struct {
		Message struct {
			Content string `json:"content"`
		} `json:"message"`
		Text string `json:"text"`
	} `json:"choices"`
}

func TestCacheChatTemperatureZero(t *testing.T) {
	e := newCacheEnv(t, cacheAll())
	body := `{"model":"llm","messages":[{"role":"user","content":"hi"}],"temperature":0,"max_tokens":5}`
	var a, b chatBody
	if err := json.Unmarshal(e.post(t, "/v1/chat/completions", body, CacheMiss).Body(), &a); err != nil {
		t.Fatal(err)
	}
	resp := e.post(t, "/v1/chat/completions", body, CacheHit)
	if err := json.Unmarshal(resp.Body(), &b); err != nil {
		t.Fatal(err)
	}
	if costHeader(t, resp) != 0 || len(b.Choices) != 1 || b.Choices[0].Message.Content != "hello there friend" {
		t.Fatalf("hit: %s", resp.Body())
	}
	// The gateway renders the stored result for the new request: its own id.
	if b.ID == a.ID || !strings.HasPrefix(b.ID, "chatcmpl-") || b.ID != string(resp.Header.Peek(HeaderRequestID)) {
		t.Fatalf("hit id %q, first %q", b.ID, a.ID)
	}
	if n := e.llmCalls(); n != 1 {
		t.Fatalf("the backend saw %d calls, want 1", n)
	}
	// Completions too, with n: 1 spelt out.
	comp := `{"model":"llm","prompt":"once upon","temperature":0,"n":1}`
	e.post(t, "/v1/completions", comp, CacheMiss)
	resp = e.post(t, "/v1/completions", comp, CacheHit)
	var c chatBody
	if err := json.Unmarshal(resp.Body(), &c); err != nil || len(c.Choices) != 1 || c.Choices[0].Text != "hello there friend" || !strings.HasPrefix(c.ID, "cmpl-") {
		t.Fatalf("completion hit: %s (%v)", resp.Body(), err)
	}
	// A chat and a completion are different operations.
	if n := e.llmCalls(); n != 2 {
		t.Fatalf("the backend saw %d calls, want 2", n)
	}
}

// TestCacheNotCacheable: sampling temperatures, an absent temperature
// (OpenAI's default is 1), n > 1 and streams are never cached and carry no
// cache header.
func TestCacheNotCacheable(t *testing.T) {
	e := newCacheEnv(t, cacheAll())
	for _, body := range []string{
		`{"model":"llm","messages":[{"role":"user","content":"hi"}],"temperature":0.7}`,
		`{"model":"llm","messages":[{"role":"user","content":"hi"}]}`,
		`{"model":"llm","messages":[{"role":"user","content":"hi"}],"temperature":null}`,
		`{"model":"llm","messages":[{"role":"user","content":"hi"}],"temperature":0,"n":2}`,
	} {
		before := e.llmCalls()
		e.post(t, "/v1/chat/completions", body, "")
		e.post(t, "/v1/chat/completions", body, "")
		if n := e.llmCalls() - before; n != 2 {
			t.Fatalf("%s: %d backend calls, want 2", body, n)
		}
	}
	stream := `{"model":"llm","messages":[{"role":"user","content":"hi"}],"temperature":0,"stream":true}`
	for range 2 {
		before := e.llmCalls()
		resp := e.post(t, "/v1/chat/completions", stream, "")
		if !strings.Contains(string(resp.Body()), "data: [DONE]") {
			t.Fatalf("stream: %s", resp.Body())
		}
		if e.llmCalls()-before != 1 {
			t.Fatal("a stream did not run")
		}
	}
	if st := e.d.ResponseCacheStats()["llm"]; st.Entries != 0 || st.Hits != 0 || st.Misses != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestCacheKeyIgnoresSpelling: whitespace, field order, string escapes and
// number spelling give the same key; any content difference another.
func TestCacheKeyIgnoresSpelling(t *testing.T) {
	e := newCacheEnv(t, cacheAll())
	e.post(t, "/v1/chat/completions", `{"model":"llm","messages":[{"role":"user","content":"hi"}],"temperature":0,"max_tokens":5,"top_p":1}`, CacheMiss)
	e.post(t, "/v1/chat/completions", "{\n  \"top_p\": 1.0,\n  \"max_tokens\": 5,\n  \"temperature\": 0.0,\n  \"messages\": [ {\"content\": \"\\u0068i\", \"role\": \"user\"} ],\n  \"model\": \"llm\"\n}", CacheHit)
	for _, body := range []string{
		`{"model":"llm","messages":[{"role":"user","content":"hi!"}],"temperature":0,"max_tokens":5,"top_p":1}`,
		`{"model":"llm","messages":[{"role":"user","content":"hi"}],"temperature":0,"max_tokens":6,"top_p":1}`,
		`{"model":"llm","messages":[{"role":"system","content":"hi"}],"temperature":0,"max_tokens":5,"top_p":1}`,
		`{"model":"llm","messages":[{"role":"user","content":"hi"}],"temperature":0,"max_tokens":5,"top_p":0.5}`,
		`{"model":"llm","messages":[{"role":"user","content":"hi"}],"temperature":0,"max_tokens":5,"top_p":1,"seed":3}`,
		`{"model":"llm","messages":[{"role":"user","content":"hi"}],"temperature":0,"max_tokens":5,"top_p":1,"stop":"x"}`,
		`{"model":"llm","messages":[{"role":"user","content":"hi"}],"temperature":0,"max_tokens":5,"top_p":1,"response_format":{"type":"json_object"}}`,
	} {
		e.post(t, "/v1/chat/completions", body, CacheMiss)
	}
	// Embeddings: a string is a one-string list, float is the default
	// encoding; base64 and dimensions are different answers.
	e.post(t, "/v1/embeddings", `{"model":"emb","input":"abc"}`, CacheMiss)
	e.post(t, "/v1/embeddings", `{"input":["abc"], "encoding_format":"float", "model":"emb"}`, CacheHit)
	e.post(t, "/v1/embeddings", `{"model":"emb","input":"abd"}`, CacheMiss)
	b64 := e.post(t, "/v1/embeddings", `{"model":"emb","input":"abc","encoding_format":"base64"}`, CacheMiss)
	hit := e.post(t, "/v1/embeddings", `{"model":"emb","encoding_format":"base64","input":"abc"}`, CacheHit)
	if string(hit.Body()) != string(b64.Body()) || !strings.Contains(string(hit.Body()), `"embedding":"`) {
		t.Fatalf("base64 hit %s, want %s", hit.Body(), b64.Body())
	}
	e.post(t, "/v1/embeddings", `{"model":"emb","input":"abc","dimensions":1}`, CacheMiss)
	e.post(t, "/v1/embeddings", `{"model":"emb","input":"abc","dimensions":1.0}`, CacheHit)
}

func TestCacheTTL(t *testing.T) {
	e := newCacheEnv(t, map[string]fleet.ResponseCache{"emb": {Enabled: true, TTL: time.Minute}})
	body := `{"model":"emb","input":"abc"}`
	e.post(t, "/v1/embeddings", body, CacheMiss)
	e.clk.Advance(time.Minute - time.Nanosecond)
	e.post(t, "/v1/embeddings", body, CacheHit)
	e.clk.Advance(time.Nanosecond) // stored a minute ago: expired
	e.post(t, "/v1/embeddings", body, CacheMiss)
	e.post(t, "/v1/embeddings", body, CacheHit) // the new answer, for a new minute
	if n := e.llmCalls(); n != 2 {
		t.Fatalf("the backend saw %d calls, want 2", n)
	}
}

// TestCacheLRU: max_entries bounds a model's entries, least recently used
// out first.
func TestCacheLRU(t *testing.T) {
	e := newCacheEnv(t, map[string]fleet.ResponseCache{"emb": {Enabled: true, MaxEntries: 2}})
	e.post(t, "/v1/embeddings", `{"model":"emb","input":"a"}`, CacheMiss)
	e.post(t, "/v1/embeddings", `{"model":"emb","input":"b"}`, CacheMiss)
	e.post(t, "/v1/embeddings", `{"model":"emb","input":"a"}`, CacheHit)  // a is now the most recent
	e.post(t, "/v1/embeddings", `{"model":"emb","input":"c"}`, CacheMiss) // evicts b
	e.post(t, "/v1/embeddings", `{"model":"emb","input":"a"}`, CacheHit)
	e.post(t, "/v1/embeddings", `{"model":"emb","input":"b"}`, CacheMiss)
}

func TestCacheDisabledByDefault(t *testing.T) {
	for name, cfgs := range map[string]map[string]fleet.ResponseCache{
		"no SetResponseCache": nil,
		"enabled false":       {"emb": {MaxEntries: 10}, "llm": {}},
		"another model":       {"llm": {Enabled: true}},
	} {
		e := newCacheEnv(t, cfgs)
		for range 2 {
			e.post(t, "/v1/embeddings", `{"model":"emb","input":"abc"}`, "")
		}
		if n := e.llmCalls(); n != 2 {
			t.Fatalf("%s: the backend saw %d calls, want 2", name, n)
		}
		if _, ok := e.d.ResponseCacheStats()["emb"]; ok {
			t.Fatalf("%s: emb has a cache", name)
		}
	}
}

// TestCacheStoresOnlySuccess: a failed request leaves nothing behind.
func TestCacheStoresOnlySuccess(t *testing.T) {
	e := newCacheEnv(t, cacheAll())
	e.llm.mu.Lock()
	e.llm.err = errors.New("boom")
	e.llm.mu.Unlock()
	body := `{"model":"emb","input":"abc"}`
	resp := e.do(t, "POST", "/v1/embeddings", body)
	if resp.StatusCode() == 200 || string(resp.Header.Peek(HeaderCache)) != CacheMiss {
		t.Fatalf("failure: %d %s", resp.StatusCode(), resp.Header.String())
	}
	e.llm.mu.Lock()
	e.llm.err = nil
	e.llm.mu.Unlock()
	e.post(t, "/v1/embeddings", body, CacheMiss)
	e.post(t, "/v1/embeddings", body, CacheHit)
}

// visionBinary is the KServe binary-extension request for the vision model
// with inputs [[1,2,3],[4,5,6.5]], asking for binary outputs.
func visionBinary(id string) (body, jsonLen string) {
	js := `{"id":"` + id + `","parameters":{"binary_data_output":true},"inputs":[{"name":"input","shape":[2,3],"datatype":"FP32","parameters":{"binary_data_size":24}}]}`
	var bin []byte
	for _, f := range []float32{1, 2, 3, 4, 5, 6.5} {
		bin = binary.LittleEndian.AppendUint32(bin, math.Float32bits(f))
	}
	return js + string(bin), strconv.Itoa(len(js))
}

// TestCacheKServe: a JSON request, the same tensor through the binary
// extension and through gRPC (raw and typed contents, unary and stream)
// share one entry, each answer rendered in its own request's encoding.
func TestCacheKServe(t *testing.T) {
	e := newCacheEnv(t, cacheAll())
	jsonBody := `{"id":"j1","inputs":[{"name":"input","shape":[2,3],"datatype":"FP32","data":[[1,2,3],[4,5,6.5]]}]}`
	var r ksResp
	ksJSON(t, e.post(t, "/v2/models/vision/infer", jsonBody, CacheMiss), 200, &r)
	if r.Parameters["accelgate_cost_usd"] != 0.00125 {
		t.Fatalf("miss parameters %v", r.Parameters)
	}

	body, jl := visionBinary("b1")
	resp := e.post(t, "/v2/models/vision/infer", body, CacheHit, kserve.HeaderInferenceHeaderContentLength, jl)
	if string(resp.Header.ContentType()) != "application/octet-stream" || costHeader(t, resp) != 0 {
		t.Fatalf("binary hit: %s", resp.Header.String())
	}
	n, _ := strconv.Atoi(string(resp.Header.Peek(kserve.HeaderInferenceHeaderContentLength)))
	dec, err := kserve.DecodeInferResponse(resp.Body(), n)
	if err != nil || dec.ID != "b1" || dec.CostUSD != 0 || dec.Backend != "t0" || len(dec.Outputs) != 2 || !dec.Binary[0] ||
		math.Float32frombits(binary.LittleEndian.Uint32(dec.Outputs[0].Data[8:])) != 15.5 {
		t.Fatalf("binary hit: %+v %v", dec, err)
	}
	// Asking for one output, or another version, is another request.
	e.post(t, "/v2/models/vision/infer", `{"inputs":[{"name":"input","shape":[2,3],"datatype":"FP32","data":[1,2,3,4,5,6.5]}],"outputs":[{"name":"aux"}]}`, CacheMiss)
	e.post(t, "/v2/models/vision/versions/2/infer", jsonBody, CacheMiss)
	e.post(t, "/v2/models/vision/infer", strings.Replace(jsonBody, "6.5", "6.25", 1), CacheMiss)
	if n := e.ksCalls(); n != 4 {
		t.Fatalf("the backend saw %d calls, want 4", n)
	}

	// gRPC: raw contents, then typed contents, then a stream.
	var raw []byte
	for _, f := range []float32{1, 2, 3, 4, 5, 6.5} {
		raw = binary.LittleEndian.AppendUint32(raw, math.Float32bits(f))
	}
	greq := &inference.ModelInferRequest{ModelName: "vision", Id: "g1",
		Inputs:           []*inference.ModelInferRequest_InferInputTensor{{Name: "input", Datatype: "FP32", Shape: []int64{2, 3}}},
		RawInputContents: [][]byte{raw}}
	ctx := tctx(t)
	var md metadata.MD
	gresp, err := e.client.ModelInfer(ctx, greq, grpc.Header(&md))
	if err != nil {
		t.Fatal(err)
	}
	if got := md.Get(HeaderCache); len(got) != 1 || got[0] != CacheHit {
		t.Fatalf("gRPC metadata %v", md)
	}
	ps := gresp.GetParameters()
	if ps[ParamCache].GetStringParam() != CacheHit || ps[ParamCost].GetDoubleParam() != 0 || ps[ParamBackend].GetStringParam() != "t0" ||
		gresp.GetId() != "g1" || len(gresp.GetRawOutputContents()) != 2 || string(gresp.GetRawOutputContents()[0]) != string(dec.Outputs[0].Data) {
		t.Fatalf("gRPC hit: %v", gresp)
	}
	typed := &inference.ModelInferRequest{ModelName: "vision", Id: "g2",
		Inputs: []*inference.ModelInferRequest_InferInputTensor{{Name: "input", Datatype: "FP32", Shape: []int64{2, 3},
			Contents: &inference.InferTensorContents{Fp32Contents: []float32{1, 2, 3, 4, 5, 6.5}}}}}
	md = nil
	gresp, err = e.client.ModelInfer(ctx, typed, grpc.Header(&md))
	if err != nil || md.Get(HeaderCache)[0] != CacheHit || len(gresp.GetOutputs()) != 2 || gresp.GetOutputs()[1].GetContents() == nil {
		t.Fatalf("gRPC typed hit: %v %v %v", gresp, md, err)
	}
	stream, err := e.client.ModelStreamInfer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	miss := &inference.ModelInferRequest{ModelName: "vision", Id: "s2",
		Inputs:           []*inference.ModelInferRequest_InferInputTensor{{Name: "input", Datatype: "FP32", Shape: []int64{1, 3}}},
		RawInputContents: [][]byte{raw[:12]}}
	for _, r := range []*inference.ModelInferRequest{greq, miss, miss} {
		if err := stream.Send(r); err != nil {
			t.Fatal(err)
		}
	}
	stream.CloseSend()
	var states []string
	for {
		r, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		states = append(states, r.GetInferResponse().GetParameters()[ParamCache].GetStringParam())
	}
	if strings.Join(states, ",") != "hit,miss,hit" {
		t.Fatalf("stream cache states %v", states)
	}
	if n := e.ksCalls(); n != 5 {
		t.Fatalf("the backend saw %d calls, want 5", n)
	}
}

// TestCacheGRPCMiss: a cacheable gRPC request that runs says miss in its
// metadata; a model without a cache says nothing.
func TestCacheGRPCMiss(t *testing.T) {
	e := newCacheEnv(t, map[string]fleet.ResponseCache{"vision": {Enabled: true}})
	req := &inference.ModelInferRequest{ModelName: "vision",
		Inputs: []*inference.ModelInferRequest_InferInputTensor{{Name: "input", Datatype: "FP32", Shape: []int64{1, 3},
			Contents: &inference.InferTensorContents{Fp32Contents: []float32{1, 2, 3}}}}}
	var md metadata.MD
	resp, err := e.client.ModelInfer(tctx(t), req, grpc.Header(&md))
	if err != nil || md.Get(HeaderCache)[0] != CacheMiss || resp.GetParameters()[ParamCache].GetStringParam() != CacheMiss ||
		resp.GetParameters()[ParamCost].GetDoubleParam() != 0.00125 {
		t.Fatalf("miss: %v %v %v", resp, md, err)
	}
	e = newCacheEnv(t, map[string]fleet.ResponseCache{"emb": {Enabled: true}})
	md = nil
	resp, err = e.client.ModelInfer(tctx(t), req, grpc.Header(&md))
	if err != nil || len(md.Get(HeaderCache)) != 0 || resp.GetParameters()[ParamCache] != nil {
		t.Fatalf("no cache: %v %v %v", resp, md, err)
	}
}

// TestCacheKeyCanonicalForm checks the key function itself.
func TestCacheKeyCanonicalForm(t *testing.T) {
	d := &Dispatcher{models: ksModels()}
	if err := d.SetResponseCache(cacheAll()); err != nil {
		t.Fatal(err)
	}
	key := func(body string) cacheKey {
		t.Helper()
		req := &backends.Request{Model: "llm"}
		if err := decodeLLM(backends.OpChat, []byte(body), req); err != nil {
			t.Fatal(err)
		}
		req.Body = []byte(body)
		s, ok := d.cacheSlotFor(req)
		if !ok {
			t.Fatalf("%s: not cacheable", body)
		}
		return s.key
	}
	same := [][2]string{
		{`{"model":"llm","messages":[{"role":"user","content":"x"}],"temperature":0,"top_p":1,"seed":7}`, `{"seed":7,"top_p":1e0,"temperature":-0.0,"messages":[{"content":"x","role":"user"}],"model":"llm"}`},
		{`{"model":"llm","messages":[{"role":"user","content":"x"}],"temperature":0,"logit_bias":{"1":2,"3":4}}`, `{"model":"llm","messages":[{"role":"user","content":"x"}],"temperature":0,"logit_bias":{"3":4,"1":2}}`},
		{`{"model":"llm","messages":[{"role":"user","content":"x"}],"temperature":0}`, `{"model":"llm","messages":[{"role":"user","content":"x"}],"temperature":0,"n":1,"stream":false}`},
	}
	for _, p := range same {
		if key(p[0]) != key(p[1]) {
			t.Errorf("different keys:\n%s\n%s", p[0], p[1])
		}
	}
	diff := [][2]string{
		{`{"model":"llm","messages":[{"role":"user","content":"x"}],"temperature":0,"x":18446744073709551616}`, `{"model":"llm","messages":[{"role":"user","content":"x"}],"temperature":0,"x":18446744073709551617}`},
		{`{"model":"llm","messages":[{"role":"user","content":"x"}],"temperature":0,"x":"1"}`, `{"model":"llm","messages":[{"role":"user","content":"x"}],"temperature":0,"x":1}`},
		{`{"model":"llm","messages":[{"role":"user","content":"x"}],"temperature":0,"x":[1,2]}`, `{"model":"llm","messages":[{"role":"user","content":"x"}],"temperature":0,"x":[[1],2]}`},
		{`{"model":"llm","messages":[{"role":"user","content":"x"}],"temperature":0,"x":1.5}`, `{"model":"llm","messages":[{"role":"user","content":"x"}],"temperature":0,"x":1.25}`},
		{`{"model":"llm","messages":[{"role":"user","content":"ab"},{"role":"user","content":"c"}],"temperature":0}`, `{"model":"llm","messages":[{"role":"user","content":"a"},{"role":"user","content":"bc"}],"temperature":0}`},
	}
	for _, p := range diff {
		if key(p[0]) == key(p[1]) {
			t.Errorf("same key:\n%s\n%s", p[0], p[1])
		}
	}
	// A tensor's key depends on its data, not on its encoding (the fronts
	// decode to raw data), and not on the binary flag of its outputs.
	tensor := func(data []byte, outs ...backends.OutputRequest) cacheKey {
		req := &backends.Request{Op: backends.OpTensor, Model: "vision", Outputs: outs,
			Tensors: []backends.Tensor{{Name: "input", Datatype: backends.FP32, Shape: []int64{1, 3}, Data: data}}}
		s, ok := d.cacheSlotFor(req)
		if !ok {
			t.Fatal("tensor request not cacheable")
		}
		return s.key
	}
	data := make([]byte, 12)
	if tensor(data, backends.OutputRequest{Name: "aux"}) != tensor(data, backends.OutputRequest{Name: "aux", Binary: true}) ||
		tensor(data) == tensor(data, backends.OutputRequest{Name: "aux"}) || tensor(data) == tensor(make([]byte, 12)[:11]) {
		t.Error("tensor keys")
	}
}

// TestCacheNoAllocsWhenNotCacheable: a request that is not cacheable costs
// the cache nothing, even for a model with a cache.
func TestCacheNoAllocsWhenNotCacheable(t *testing.T) {
	d := &Dispatcher{models: ksModels()}
	if err := d.SetResponseCache(map[string]fleet.ResponseCache{"llm": {Enabled: true}}); err != nil {
		t.Fatal(err)
	}
	reqs := []*backends.Request{
		{Op: backends.OpChat, Model: "llm", N: 1, Body: []byte(benchChat)},                   // no temperature
		{Op: backends.OpChat, Model: "llm", N: 1, Temperature: 0.5, Body: []byte(benchChat)}, // sampling
		{Op: backends.OpChat, Model: "llm", N: 1, Stream: true, Body: []byte(benchChat)},     // stream
		{Op: backends.OpEmbedding, Model: "emb", Inputs: []string{"x"}},                      // no cache for the model
	}
	for i, req := range reqs {
		if _, ok := d.cacheSlotFor(req); ok {
			t.Fatalf("request %d is cacheable", i)
		}
		if n := testing.AllocsPerRun(100, func() { d.cacheSlotFor(req) }); n != 0 {
			t.Errorf("request %d: %v allocs", i, n)
		}
	}
}

func TestSetResponseCacheErrors(t *testing.T) {
	d := &Dispatcher{models: ksModels()}
	for _, tc := range []struct {
		cfgs map[string]fleet.ResponseCache
		want string
	}{
		{map[string]fleet.ResponseCache{"nope": {Enabled: true}}, `models[nope].cache: the model "nope" does not exist`},
		{map[string]fleet.ResponseCache{"emb": {Enabled: true, MaxEntries: -1}}, "models[emb].cache.max_entries"},
		{map[string]fleet.ResponseCache{"emb": {Enabled: true, TTL: -time.Second}}, "models[emb].cache.ttl"},
	} {
		if err := d.SetResponseCache(tc.cfgs); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want %q", tc.cfgs, err, tc.want)
		}
	}
}
