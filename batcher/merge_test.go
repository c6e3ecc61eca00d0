package batcher

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/accelgate/accelgate/backends"
)

// tensorFor builds caller k's [rows, 2] tensor of dt with values distinct
// per caller and per element.
func tensorFor(dt backends.DataType, k, rows int) backends.Tensor {
	t := backends.Tensor{Name: "in", Datatype: dt, Shape: []int64{int64(rows), 2}}
	for i := range rows * 2 {
		v := k*100 + i + 1
		if dt == backends.BYTES {
			s := bytes.Repeat([]byte{byte('a' + k)}, i%3) // lengths 0, 1, 2
			s = append(s, fmt.Sprint(v)...)
			t.Data = binary.LittleEndian.AppendUint32(t.Data, uint32(len(s)))
			t.Data = append(t.Data, s...)
			continue
		}
		b := make([]byte, dt.Size())
		for j := range b {
			b[j] = byte(v >> (8 * (j % 2)))
		}
		if dt == backends.BOOL {
			b[0] = byte(v % 2)
		}
		t.Data = append(t.Data, b...)
	}
	return t
}

func TestMergeSplitTensorsEveryDatatype(t *testing.T) {
	rows := []int{1, 3, 2, 4}
	for dt := backends.BOOL; dt <= backends.BYTES; dt++ {
		t.Run(dt.String(), func(t *testing.T) {
			reqs := make([]*backends.Request, len(rows))
			for k, n := range rows {
				in := tensorFor(dt, k, n)
				if err := in.Validate(); err != nil {
					t.Fatal(err)
				}
				// A second input, FP32 [rows, 1], checks multi-input merges.
				in2 := backends.Tensor{Name: "in2", Datatype: backends.FP32, Shape: []int64{int64(n), 1}, Data: bytes.Repeat([]byte{byte(k), 0, 0, 0}, n)}
				reqs[k] = &backends.Request{ID: fmt.Sprint(k), Op: backends.OpTensor, Rows: n, Tensors: []backends.Tensor{in, in2}}
			}
			merged, offsets, err := MergeTensors(reqs)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(offsets, []int{0, 1, 4, 6, 10}) {
				t.Fatalf("offsets = %v", offsets)
			}
			if len(merged) != 2 || !slices.Equal(merged[0].Shape, []int64{10, 2}) || !slices.Equal(merged[1].Shape, []int64{10, 1}) {
				t.Fatalf("merged shapes %v %v", merged[0].Shape, merged[1].Shape)
			}
			if err := merged[0].Validate(); err != nil {
				t.Fatal(err)
			}
			// Echo the inputs back as outputs: each caller must get exactly
			// its own rows.
			parts, err := SplitTensors(merged, offsets)
			if err != nil {
				t.Fatal(err)
			}
			for k, r := range reqs {
				for i := range r.Tensors {
					got, want := parts[k][i], r.Tensors[i]
					if got.Name != want.Name || got.Datatype != want.Datatype || !slices.Equal(got.Shape, want.Shape) || !bytes.Equal(got.Data, want.Data) {
						t.Errorf("caller %d output %d = %v %v %x, want %v %x", k, i, got.Datatype, got.Shape, got.Data, want.Shape, want.Data)
					}
					if cap(got.Data) != len(got.Data) {
						t.Errorf("caller %d output %d: capacity %d beyond its rows", k, i, cap(got.Data))
					}
				}
			}
		})
	}
}

func TestMergeTensorsMismatch(t *testing.T) {
	a := &backends.Request{ID: "a", Tensors: []backends.Tensor{tensorFor(backends.FP32, 0, 1)}}
	cases := map[string]func(r *backends.Request){
		"name":     func(r *backends.Request) { r.Tensors[0].Name = "other" },
		"datatype": func(r *backends.Request) { r.Tensors[0] = tensorFor(backends.INT32, 1, 1) },
		"trailing": func(r *backends.Request) {
			r.Tensors[0].Shape = []int64{1, 1}
			r.Tensors[0].Data = r.Tensors[0].Data[:4]
		},
		"data":   func(r *backends.Request) { r.Tensors[0].Data = r.Tensors[0].Data[:3] },
		"inputs": func(r *backends.Request) { r.Tensors = append(r.Tensors, r.Tensors[0]) },
	}
	for name, mutate := range cases {
		b := &backends.Request{ID: "b", Tensors: []backends.Tensor{tensorFor(backends.FP32, 1, 1)}}
		mutate(b)
		if _, _, err := MergeTensors([]*backends.Request{a, b}); !errors.Is(err, backends.ErrBadRequest) {
			t.Errorf("%s: err = %v, want ErrBadRequest", name, err)
		}
	}
}

func TestSplitTensorsRejectsUnbatched(t *testing.T) {
	out := backends.Tensor{Name: "o", Datatype: backends.FP32, Shape: []int64{3}, Data: make([]byte, 12)}
	if _, err := SplitTensors([]backends.Tensor{out}, []int{0, 1, 4}); !errors.Is(err, backends.ErrUnavailable) {
		t.Errorf("err = %v", err)
	}
	bad := backends.Tensor{Name: "o", Datatype: backends.BYTES, Shape: []int64{2}, Data: []byte{1, 0, 0, 0, 'x', 9, 0, 0, 0}}
	if _, err := SplitTensors([]backends.Tensor{bad}, []int{0, 1, 2}); !errors.Is(err, backends.ErrUnavailable) {
		t.Errorf("BYTES overrun: err = %v", err)
	}
}

func TestEmbeddingsMergeSplit(t *testing.T) {
	reqs := []*backends.Request{
		{ID: "a", Inputs: []string{"a1"}, EstInputTokens: 1},
		{ID: "b", Inputs: []string{"b1", "b2", "b3"}, EstInputTokens: 2},
		{ID: "c", Inputs: []string{"c1", "c2"}, EstInputTokens: 2},
	}
	inputs, offsets := MergeEmbeddings(reqs)
	if !slices.Equal(inputs, []string{"a1", "b1", "b2", "b3", "c1", "c2"}) || !slices.Equal(offsets, []int{0, 1, 4, 6}) {
		t.Fatalf("inputs %v offsets %v", inputs, offsets)
	}
	res := &backends.Result{Usage: backends.Usage{PromptTokens: 10, TotalTokens: 10}, CostUSD: 6,
		Timing: backends.Timing{Total: msd(7), Busy: 600}}
	for i := range inputs {
		res.Embeddings = append(res.Embeddings, []float32{float32(i)})
	}
	parts, err := SplitResult(res, reqs, offsets)
	if err != nil {
		t.Fatal(err)
	}
	wantTok := []int{2, 4, 4} // by own tokens 1:2:2 of 10
	wantBusy := []int{100, 300, 200}
	for k, p := range parts {
		if len(p.Embeddings) != offsets[k+1]-offsets[k] || p.Embeddings[0][0] != float32(offsets[k]) {
			t.Errorf("caller %d embeddings %v", k, p.Embeddings)
		}
		if p.Usage.PromptTokens != wantTok[k] || p.Usage.TotalTokens != wantTok[k] {
			t.Errorf("caller %d usage %+v, want %d", k, p.Usage, wantTok[k])
		}
		if int(p.Timing.Busy) != wantBusy[k] || p.Timing.Total != msd(7) || p.CostUSD != float64(wantBusy[k])/100 {
			t.Errorf("caller %d timing %+v cost %v", k, p.Timing, p.CostUSD)
		}
	}
	// Unknown tokens: by rows (1:3:2 of 10 → 1.67, 5, 3.33 → 2, 5, 3).
	reqs[1].EstInputTokens = 0
	parts, _ = SplitResult(res, reqs, offsets)
	sum := 0
	for k, want := range []int{2, 5, 3} {
		if parts[k].Usage.PromptTokens != want {
			t.Errorf("by rows: caller %d got %d, want %d", k, parts[k].Usage.PromptTokens, want)
		}
		sum += parts[k].Usage.PromptTokens
	}
	if sum != 10 {
		t.Errorf("parts sum to %d", sum)
	}
}

func TestMergeBodySetsOneMember(t *testing.T) {
	body := []byte(`{"model":"bge", "input":"one","dimensions":256 ,"user":"u<1>","encoding_format":"base64"}`)
	got, err := MergeBody(body, "input", []string{"a", "b\"c", "<d>"})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"input":["a","b\"c","<d>"],"dimensions":256,"encoding_format":"base64","model":"bge","user":"u<1>"}`
	if string(got) != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	if got, err := MergeBody(nil, "input", []string{"a"}); got != nil || err != nil {
		t.Fatalf("nil body: %s, %v", got, err)
	}
	if _, err := MergeBody([]byte(`[1]`), "input", nil); !errors.Is(err, backends.ErrBadRequest) {
		t.Fatalf("not an object: %v", err)
	}
}

// TestSplitEmbeddingsRaw: an OpenAI upstream's merged embeddings body (out of
// index order, one vector base64) is cut into one body per caller, each with
// exactly its vectors, byte for byte, re-indexed from 0, the public model and
// usage summing to the upstream's.
func TestSplitEmbeddingsRaw(t *testing.T) {
	reqs := []*backends.Request{
		{ID: "a", Op: backends.OpEmbedding, Model: "bge", Inputs: []string{"x"}, EstInputTokens: 1},
		{ID: "b", Op: backends.OpEmbedding, Model: "bge", Inputs: []string{"yy", "zz", "ww"}, EstInputTokens: 3},
		{ID: "c", Op: backends.OpEmbedding, Model: "bge", Inputs: []string{"v", "u"}, EstInputTokens: 2},
	}
	_, offsets := MergeEmbeddings(reqs)
	raw := `{"object":"list","model":"BAAI/bge","data":[` +
		`{"object":"embedding","index":5,"embedding":[5.5, 5]},` +
		`{"object":"embedding","index":0,"embedding":[0.25,0]},` +
		`{"object":"embedding","index":1,"embedding":[1e-3,1]},` +
		`{"object":"embedding","index":2,"embedding":"AAAAQA=="},` +
		`{"object":"embedding","index":3,"embedding":[3,3]},` +
		`{"object":"embedding","index":4,"embedding":[4,4]}],` +
		`"usage":{"prompt_tokens":13,"total_tokens":13}}`
	res := &backends.Result{Raw: []byte(raw), Usage: backends.Usage{PromptTokens: 13, TotalTokens: 13}, CostUSD: 0.6}
	parts, err := SplitResult(res, reqs, offsets)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		`{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.25,0]}],"model":"bge","usage":{"prompt_tokens":2,"total_tokens":2}}`,
		`{"object":"list","data":[{"object":"embedding","index":0,"embedding":[1e-3,1]},{"object":"embedding","index":1,"embedding":"AAAAQA=="},{"object":"embedding","index":2,"embedding":[3,3]}],"model":"bge","usage":{"prompt_tokens":7,"total_tokens":7}}`,
		`{"object":"list","data":[{"object":"embedding","index":0,"embedding":[4,4]},{"object":"embedding","index":1,"embedding":[5.5, 5]}],"model":"bge","usage":{"prompt_tokens":4,"total_tokens":4}}`,
	}
	sum := 0
	for k, p := range parts {
		if string(p.Raw) != want[k] {
			t.Errorf("caller %d:\n got %s\nwant %s", k, p.Raw, want[k])
		}
		sum += p.Usage.PromptTokens
		if wantCost := 0.6 * float64(offsets[k+1]-offsets[k]) / 6; math.Abs(p.CostUSD-wantCost) > 1e-12 {
			t.Errorf("caller %d: cost %v, want %v", k, p.CostUSD, wantCost)
		}
	}
	if sum != 13 {
		t.Fatalf("usage sums to %d, want 13", sum)
	}
	for _, bad := range []string{
		`{"data":[{"index":0,"embedding":[1]}]}`,                                                          // too few
		`{"data":[` + strings.Repeat(`{"index":0,"embedding":[1]},`, 5) + `{"index":0,"embedding":[1]}]}`, // repeated index
		`{"data":[` + strings.Repeat(`{"embedding":[1]},`, 5) + `{"embedding":null}]}`,                    // missing vector
		`not json`,
	} {
		if _, err := SplitResult(&backends.Result{Raw: []byte(bad)}, reqs, offsets); !errors.Is(err, backends.ErrUnavailable) {
			t.Errorf("%s: err %v, want ErrUnavailable", bad, err)
		}
	}
}

// TestSplitCompletionsRaw: a prompt-array answer with n = 2 is split by
// choice index (choice i belongs to prompt i/2): each caller gets its choices
// re-indexed from 0 with their other members kept, its own ID, the public
// model, prompt tokens by estimated prompt size and completion tokens by its
// text's bytes, both summing to the upstream's.
func TestSplitCompletionsRaw(t *testing.T) {
	reqs := []*backends.Request{
		{ID: "cmpl-a", Op: backends.OpCompletion, Model: "llama", Prompts: []string{"p0"}, N: 2, EstInputTokens: 10},
		{ID: "cmpl-b", Op: backends.OpCompletion, Model: "llama", Prompts: []string{"p1", "p2"}, N: 2, EstInputTokens: 30},
	}
	prompts, offsets := MergeCompletions(reqs)
	if !slices.Equal(prompts, []string{"p0", "p1", "p2"}) || !slices.Equal(offsets, []int{0, 1, 3}) {
		t.Fatalf("merged %v %v", prompts, offsets)
	}
	var choices []string
	for i := 5; i >= 0; i-- { // out of order
		choices = append(choices, fmt.Sprintf(`{"text":"%s","index":%d,"logprobs":null,"finish_reason":"length","stop_reason":null}`,
			strings.Repeat("t", i+1), i))
	}
	raw := `{"id":"cmpl-up","object":"text_completion","created":1700000000,"model":"meta/llama","choices":[` +
		strings.Join(choices, ",") + `],"usage":{"prompt_tokens":40,"completion_tokens":42,"total_tokens":82},"system_fingerprint":"fp1"}`
	res := &backends.Result{Raw: []byte(raw), Usage: backends.Usage{PromptTokens: 40, CompletionTokens: 42, TotalTokens: 82}}
	parts, err := SplitResult(res, reqs, offsets)
	if err != nil {
		t.Fatal(err)
	}
	ch := func(j, n int) string {
		return fmt.Sprintf(`{"index":%d,"finish_reason":"length","logprobs":null,"stop_reason":null,"text":"%s"}`, j, strings.Repeat("t", n))
	}
	// Text bytes: caller a 1+2 = 3, caller b 3+4+5+6 = 18; 42 completion tokens → 6 and 36.
	want := []string{
		`{"id":"cmpl-a","object":"text_completion","created":1700000000,"model":"llama","choices":[` + ch(0, 1) + `,` + ch(1, 2) +
			`],"usage":{"prompt_tokens":10,"completion_tokens":6,"total_tokens":16},"system_fingerprint":"fp1"}`,
		`{"id":"cmpl-b","object":"text_completion","created":1700000000,"model":"llama","choices":[` + ch(0, 3) + `,` + ch(1, 4) + `,` + ch(2, 5) + `,` + ch(3, 6) +
			`],"usage":{"prompt_tokens":30,"completion_tokens":36,"total_tokens":66},"system_fingerprint":"fp1"}`,
	}
	for k, p := range parts {
		if string(p.Raw) != want[k] {
			t.Errorf("caller %d:\n got %s\nwant %s", k, p.Raw, want[k])
		}
	}
	if _, err := SplitResult(&backends.Result{Raw: []byte(`{"choices":[{"index":0,"text":"x"}]}`)}, reqs, offsets); !errors.Is(err, backends.ErrUnavailable) {
		t.Fatalf("too few choices: %v", err)
	}

	// A backend's canonical choices split the same way.
	res = &backends.Result{Usage: backends.Usage{PromptTokens: 4, CompletionTokens: 21}}
	for i := range 6 {
		res.Choices = append(res.Choices, backends.Choice{Index: i, Text: strings.Repeat("t", i+1), FinishReason: "stop"})
	}
	parts, err = SplitResult(res, reqs, offsets)
	if err != nil {
		t.Fatal(err)
	}
	if c := parts[1].Choices; len(c) != 4 || c[0].Index != 0 || c[0].Text != "ttt" || c[3].Index != 3 || c[3].Text != "tttttt" {
		t.Fatalf("caller 1 choices %+v", c)
	}
	if parts[0].Usage.CompletionTokens != 3 || parts[1].Usage.CompletionTokens != 18 || parts[0].Usage.PromptTokens != 1 {
		t.Fatalf("usage %+v %+v", parts[0].Usage, parts[1].Usage)
	}
}

// creq is a mergeable completion of the test LLM model.
func creq(key string, temp float64, prompts ...string) *backends.Request {
	nextID++
	return &backends.Request{ID: "c" + strconv.Itoa(nextID), Op: backends.OpCompletion, Model: "llama", Priority: backends.Standard,
		Prompts: prompts, N: 1, Temperature: temp, Rows: len(prompts), BatchKey: key, Mergeable: true}
}

// TestCoreMergesCompletionsByKey: mergeable completions queue for a batch
// (not for admission), wait at most MaxQueueDelay (fixed, even when the
// model's mode is adaptive), are capped by the sequence slots, and only
// requests with the same key and sampling parameters share a batch; other
// completions and chat go to the admission queue.
func TestCoreMergesCompletionsByKey(t *testing.T) {
	c := NewCore(Options{Models: testModels, Configs: map[string]Config{"llama": {MaxQueueDelay: msd(5)}}, Predictor: linPred{base: msd(1)}, Slots: 4})
	a, b := creq("k1", 0.5, "a"), creq("k1", 0.5, "b1", "b2")
	for _, r := range []*backends.Request{a, b} {
		if err := c.Enqueue(at(0), r); err != nil {
			t.Fatal(err)
		}
	}
	if got := c.Poll(at(4.9), true, nil); len(got) != 0 {
		t.Fatalf("dispatched before MaxQueueDelay: %v", got)
	}
	got := c.Poll(at(5), true, nil)
	if len(got) != 1 || got[0].Kind != KindBatch || !slices.Equal(ids(got[0].Members), []string{a.ID, b.ID}) || got[0].Rows != 3 {
		t.Fatalf("batches %+v", got)
	}
	if free, _ := c.Slots(); free != 4 {
		t.Fatalf("a batch took %d slots", 4-free)
	}

	// Different keys or temperature: separate batches, in queue order.
	x, y, z := creq("k1", 0.5, "x"), creq("k2", 0.5, "y"), creq("k1", 0.7, "z")
	for _, r := range []*backends.Request{x, y, z} {
		if err := c.Enqueue(at(10), r); err != nil {
			t.Fatal(err)
		}
	}
	got = c.Poll(at(15), true, nil)
	if len(got) != 3 {
		t.Fatalf("%d batches, want 3 (no two compatible)", len(got))
	}

	// Slots cap a batch: 5 one-prompt requests, 4 slots.
	for range 5 {
		if err := c.Enqueue(at(20), creq("k1", 0.5, "p")); err != nil {
			t.Fatal(err)
		}
	}
	got = c.Poll(at(20), true, nil)
	if len(got) != 1 || len(got[0].Members) != 4 {
		t.Fatalf("full batch: %+v", got)
	}
	c.Poll(at(25), true, nil)

	// Not mergeable (a stream, or a backend without prompt arrays) and
	// chat: the admission queue, one at a time.
	s := creq("", 0, "s")
	s.Mergeable, s.Stream = false, true
	chat := &backends.Request{ID: "chat", Op: backends.OpChat, Model: "llama", Messages: []backends.Message{{Role: "user", Content: "hi"}}, Mergeable: true}
	for _, r := range []*backends.Request{s, chat} {
		if err := c.Enqueue(at(30), r); err != nil {
			t.Fatal(err)
		}
	}
	got = c.Poll(at(30), true, nil)
	if len(got) != 2 || got[0].Kind != KindAdmission || got[1].Kind != KindAdmission {
		t.Fatalf("admissions %+v", got)
	}
}
