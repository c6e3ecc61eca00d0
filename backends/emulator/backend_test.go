package emulator

import (
	"context"
	"errors"
	"math"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/accelgate/accelgate/backends"
	"github.com/accelgate/accelgate/backends/fakeclock"
)

var (
	llmModel   = &backends.Model{Name: "llama", Kind: backends.ModelLLM, ContextLength: 8192}
	embedModel = &backends.Model{Name: "embed", Kind: backends.ModelEmbedding, Dimension: 16, ContextLength: 512}
	visModel   = &backends.Model{Name: "resnet", Kind: backends.ModelTensor, Classes: 10}
)

func newTestBackend(p *backends.Profile, rtt time.Duration) (*Backend, *fakeclock.Clock) {
	clk := fakeclock.New(t0)
	desc := &backends.Descriptor{Name: "emu-0", Profile: p, Transport: "emulated", RTT: rtt, PricePerHour: p.PricePerHour}
	return New(desc, Options{Clock: clk, Seed: 1}), clk
}

// drive runs f in a goroutine and moves the fake clock from deadline to
// deadline until f returns; it never sleeps.
func drive(t *testing.T, clk *fakeclock.Clock, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	for i := 0; ; i++ {
		select {
		case <-done:
			return
		default:
		}
		if d, ok := clk.NextDeadline(); ok {
			clk.Set(d)
		} else {
			runtime.Gosched()
		}
		if i > 1e7 {
			t.Fatal("request does not finish")
		}
	}
}

func do(t *testing.T, b *Backend, clk *fakeclock.Clock, req *backends.Request, model *backends.Model, stream backends.StreamFunc) (res *backends.Result, err error) {
	t.Helper()
	drive(t, clk, func() { res, err = b.Do(context.Background(), req, model, stream) })
	return res, err
}

func chatReq() *backends.Request {
	return &backends.Request{
		ID: "r1", Op: backends.OpChat, Model: "llama", N: 1,
		Messages: []backends.Message{
			{Role: "system", Content: "You are a helpful assistant."},
			{Role: "user", Content: "Tell me about accelerators and how they batch requests."},
		},
	}
}

func TestChatStreamTimingAndPieces(t *testing.T) {
	p := testProfile(8)
	rtt := 40 * time.Millisecond
	b, clk := newTestBackend(p, rtt)
	req := chatReq()
	req.Stream = true
	var chunks []backends.Chunk
	res, err := do(t, b, clk, req, llmModel, func(c backends.Chunk) error {
		chunks = append(chunks, c)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Choices) != 1 {
		t.Fatalf("%d choices", len(res.Choices))
	}
	ch := res.Choices[0]
	var sb strings.Builder
	for i, c := range chunks {
		if c.Index != 0 {
			t.Fatalf("chunk index %d", c.Index)
		}
		if c.FinishReason != "" && i != len(chunks)-1 {
			t.Fatalf("finish reason on chunk %d of %d", i, len(chunks))
		}
		sb.WriteString(c.Text)
	}
	if sb.String() != ch.Text {
		t.Fatalf("pieces concatenate to %q, want %q", sb.String(), ch.Text)
	}
	if last := chunks[len(chunks)-1]; last.FinishReason != "stop" || ch.FinishReason != "stop" {
		t.Errorf("finish reasons %q / %q, want stop (natural end)", last.FinishReason, ch.FinishReason)
	}
	u := res.Usage
	if u.CompletionTokens < 15 || u.CompletionTokens > 450 || u.CompletionTokens != CountTokens(ch.Text) {
		t.Errorf("completion tokens %d for %q (%d by the tokenizer)", u.CompletionTokens, ch.Text, CountTokens(ch.Text))
	}
	if u.PromptTokens < 20 || u.TotalTokens != u.PromptTokens+u.CompletionTokens {
		t.Errorf("usage %+v", u)
	}
	pre := p.LLM.PrefillTime(u.PromptTokens)
	want := backends.Timing{
		TTFT:  rtt + pre,
		Total: rtt + pre + time.Duration(u.CompletionTokens-1)*p.LLM.DecodeStep(1),
	}
	want.Busy = want.Total - rtt
	if res.Timing != want {
		t.Errorf("timing %+v, want %+v", res.Timing, want)
	}
	if math.Abs(res.CostUSD-want.Busy.Seconds()*testPricePerSec) > 1e-12 {
		t.Errorf("cost %v", res.CostUSD)
	}
	if !clk.Now().Equal(t0.Add(want.Total)) {
		t.Errorf("finished at %v, want %v", clk.Now().Sub(t0), want.Total)
	}
	if s := b.Stats(); s.Jobs != 0 || s.ActiveSeqs != 0 {
		t.Errorf("stats after: %+v", s)
	}
}

func TestMaxTokensStopAndN(t *testing.T) {
	p := testProfile(8)
	b, clk := newTestBackend(p, 0)

	req := chatReq()
	req.MaxTokens = 5
	res, err := do(t, b, clk, req, llmModel, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c := res.Choices[0]; c.FinishReason != "length" || res.Usage.CompletionTokens != 5 || CountTokens(c.Text) != 5 {
		t.Errorf("max_tokens 5: %+v, usage %+v", c, res.Usage)
	}

	full, err := do(t, b, clk, chatReq(), llmModel, nil)
	if err != nil {
		t.Fatal(err)
	}
	text := full.Choices[0].Text
	ws := strings.Fields(text)
	stop := " " + ws[len(ws)/2]
	req = chatReq()
	req.Stop = []string{"zzz-never", stop}
	req.Stream = true
	var sb strings.Builder
	res, err = do(t, b, clk, req, llmModel, func(c backends.Chunk) error { sb.WriteString(c.Text); return nil })
	if err != nil {
		t.Fatal(err)
	}
	if want := text[:strings.Index(text, stop)]; res.Choices[0].Text != want || sb.String() != want {
		t.Errorf("stop %q: got %q (streamed %q), want %q", stop, res.Choices[0].Text, sb.String(), want)
	}
	if res.Choices[0].FinishReason != "stop" || res.Usage.CompletionTokens >= full.Usage.CompletionTokens {
		t.Errorf("stop: finish %q, %d tokens of %d", res.Choices[0].FinishReason, res.Usage.CompletionTokens, full.Usage.CompletionTokens)
	}

	req = chatReq()
	req.N = 2
	req.Stream = true
	texts := map[int]*strings.Builder{0: {}, 1: {}}
	finished := map[int]string{}
	res, err = do(t, b, clk, req, llmModel, func(c backends.Chunk) error {
		texts[c.Index].WriteString(c.Text)
		if c.FinishReason != "" {
			finished[c.Index] = c.FinishReason
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Choices) != 2 || res.Choices[0].Text == res.Choices[1].Text {
		t.Fatalf("n=2: %d choices, same text %v", len(res.Choices), len(res.Choices) == 2)
	}
	for i, c := range res.Choices {
		if c.Index != i || texts[i].String() != c.Text || finished[i] != c.FinishReason {
			t.Errorf("choice %d: index %d, streamed %q/%q, want %q/%q", i, c.Index, texts[i].String(), finished[i], c.Text, c.FinishReason)
		}
	}
	if res.Choices[0].Text != text {
		t.Error("choice 0 differs from the n=1 answer for the same prompt and seed")
	}

	// Completions: 2 prompts × n=2, OpenAI index order; usage counts prompts once.
	creq := &backends.Request{Op: backends.OpCompletion, Prompts: []string{"Once upon a time", "The capital of France is"}, N: 2, MaxTokens: 30}
	res, err = do(t, b, clk, creq, llmModel, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Choices) != 4 {
		t.Fatalf("%d choices, want 4", len(res.Choices))
	}
	if want := completionPromptTokens(creq.Prompts[0]) + completionPromptTokens(creq.Prompts[1]); res.Usage.PromptTokens != want {
		t.Errorf("prompt tokens %d, want %d", res.Usage.PromptTokens, want)
	}
	single, _ := do(t, b, clk, &backends.Request{Op: backends.OpCompletion, Prompts: []string{"The capital of France is"}, N: 2, MaxTokens: 30}, llmModel, nil)
	if res.Choices[2].Text != single.Choices[0].Text || res.Choices[3].Text != single.Choices[1].Text {
		t.Error("choices 2, 3 should be prompt 1's samples 0, 1")
	}
}

func TestContextLengthAndUnavailable(t *testing.T) {
	p := testProfile(8)
	b, clk := newTestBackend(p, 0)
	small := &backends.Model{Name: "tiny", Kind: backends.ModelLLM, ContextLength: 50}
	req := chatReq()
	req.MaxTokens = 100
	_, err := do(t, b, clk, req, small, nil)
	var pe *backends.ParamError
	if !errors.Is(err, backends.ErrContextLength) || !errors.As(err, &pe) || pe.Param != "max_tokens" {
		t.Fatalf("err %v, want ErrContextLength on max_tokens", err)
	}
	if !strings.Contains(err.Error(), "maximum context length is 50") {
		t.Errorf("message %q", err)
	}
	req = chatReq()
	req.Messages[1].Content = strings.Repeat("word ", 100)
	if _, err = do(t, b, clk, req, small, nil); !errors.Is(err, backends.ErrContextLength) || !errors.As(err, &pe) || pe.Param != "messages" {
		t.Errorf("long prompt: %v", err)
	}
	// Without max_tokens the output stops at the context's end.
	tight := &backends.Model{Name: "tight", Kind: backends.ModelLLM, ContextLength: 60}
	res, err := do(t, b, clk, &backends.Request{Op: backends.OpCompletion, Prompts: []string{"hello"}, Seed: 3}, tight, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Usage.TotalTokens > 60 {
		t.Errorf("total %d tokens exceed the context", res.Usage.TotalTokens)
	}

	vb, vclk := newTestBackend(&backends.Profile{Name: "vis", Vision: p.Vision}, 0)
	if _, err := do(t, vb, vclk, chatReq(), llmModel, nil); !errors.Is(err, backends.ErrUnavailable) {
		t.Errorf("chat on a vision-only profile: %v", err)
	}
	if _, err := do(t, vb, vclk, &backends.Request{Op: backends.OpEmbedding, Inputs: []string{"x"}}, embedModel, nil); !errors.Is(err, backends.ErrUnavailable) {
		t.Errorf("embedding on a vision-only profile: %v", err)
	}
}

func norm(v []float32) float64 {
	var s float64
	for _, x := range v {
		s += float64(x) * float64(x)
	}
	return math.Sqrt(s)
}

func TestEmbeddings(t *testing.T) {
	p := testProfile(8)
	rtt := 10 * time.Millisecond
	b, clk := newTestBackend(p, rtt)
	inputs := []string{"the quick brown fox", "jumps over", "the lazy dog", "the quick brown fox", "a", "b"}
	res, err := do(t, b, clk, &backends.Request{Op: backends.OpEmbedding, Inputs: inputs}, embedModel, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Embeddings) != len(inputs) {
		t.Fatalf("%d vectors", len(res.Embeddings))
	}
	tokens := 0
	for i, v := range res.Embeddings {
		tokens += CountTokens(inputs[i])
		if len(v) != 16 || math.Abs(norm(v)-1) > 1e-5 {
			t.Errorf("vector %d: dim %d norm %v", i, len(v), norm(v))
		}
	}
	if !slices.Equal(res.Embeddings[0], res.Embeddings[3]) || slices.Equal(res.Embeddings[0], res.Embeddings[1]) {
		t.Error("same input must give the same vector, different inputs different ones")
	}
	if res.Usage != (backends.Usage{PromptTokens: tokens, TotalTokens: tokens}) {
		t.Errorf("usage %+v, want %d tokens", res.Usage, tokens)
	}
	// MaxBatch 4 on one executor: batches of 4 and 2 items, one after the other.
	t4 := CountTokens(inputs[0]) + CountTokens(inputs[1]) + CountTokens(inputs[2]) + CountTokens(inputs[3])
	want := rtt + p.Embedding.BatchTime(4, t4) + p.Embedding.BatchTime(2, tokens-t4)
	if res.Timing.Total != want {
		t.Errorf("total %v, want %v", res.Timing.Total, want)
	}
	again, _ := do(t, b, clk, &backends.Request{Op: backends.OpEmbedding, Inputs: inputs[:1]}, embedModel, nil)
	if !slices.Equal(again.Embeddings[0], res.Embeddings[0]) {
		t.Error("embedding not deterministic across calls")
	}

	// DoBatch: two requests share batches.
	var rs []*backends.Result
	var errs []error
	drive(t, clk, func() {
		rs, errs = b.DoBatch(context.Background(), []*backends.Request{
			{Op: backends.OpEmbedding, Inputs: []string{"one", "two"}},
			{Op: backends.OpEmbedding},
			{Op: backends.OpEmbedding, Inputs: []string{"three"}},
		}, embedModel)
	})
	if errs[0] != nil || errs[2] != nil || !errors.Is(errs[1], backends.ErrBadRequest) {
		t.Fatalf("errs %v", errs)
	}
	if rs[0].Timing.Total != rs[2].Timing.Total || rs[0].Timing.Total != rtt+p.Embedding.BatchTime(3, 3) {
		t.Errorf("batched totals %v, %v", rs[0].Timing.Total, rs[2].Timing.Total)
	}
	if math.Abs(rs[0].CostUSD-2*rs[2].CostUSD) > 1e-15 {
		t.Errorf("costs %v, %v: want split by items", rs[0].CostUSD, rs[2].CostUSD)
	}
}

func TestTensor(t *testing.T) {
	p := testProfile(8)
	b, clk := newTestBackend(p, 0)
	img := make([]byte, 3*16) // three 16-byte "images"; the first two identical
	for i := 32; i < 48; i++ {
		img[i] = byte(i)
	}
	req := &backends.Request{Op: backends.OpTensor, Rows: 3,
		Tensors: []backends.Tensor{{Name: "input", Datatype: backends.UINT8, Shape: []int64{3, 16}, Data: img}}}
	res, err := do(t, b, clk, req, visModel, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Tensors) != 1 {
		t.Fatalf("%d output tensors, want 1", len(res.Tensors))
	}
	out := res.Tensors[0]
	if out.Datatype != backends.FP32 || len(out.Shape) != 2 || out.Shape[0] != 3 || out.Shape[1] != 10 {
		t.Fatalf("output %s %v", out.Datatype, out.Shape)
	}
	if err := out.Validate(); err != nil {
		t.Fatal(err)
	}
	if res.Timing.Total != p.Vision.BatchTime(3, 0) {
		t.Errorf("total %v", res.Timing.Total)
	}
	row := func(t backends.Tensor, i int) []byte { return t.Data[i*40 : (i+1)*40] }
	again, _ := do(t, b, clk, req, visModel, nil)
	if string(row(again.Tensors[0], 2)) != string(row(out, 2)) {
		t.Error("logits must be deterministic per item")
	}
	if string(row(out, 0)) != string(row(out, 1)) || string(row(out, 0)) == string(row(out, 2)) {
		t.Error("identical images must get identical logits, different images different ones")
	}
}

func TestCancelAndStreamError(t *testing.T) {
	p := testProfile(8)
	b, clk := newTestBackend(p, 20*time.Millisecond)

	// The first chunk blocks until the test has cancelled ctx; the clock
	// stops then, so the request cannot finish first.
	ctx, cancel := context.WithCancel(context.Background())
	got, released, done := make(chan struct{}), make(chan struct{}), make(chan error)
	req := chatReq()
	req.Stream = true
	go func() {
		first := true
		_, err := b.Do(ctx, req, llmModel, func(backends.Chunk) error {
			if first {
				first = false
				close(got)
				<-released
			}
			return nil
		})
		done <- err
	}()
	for clk.Pending() == 0 { // until Do has submitted
		runtime.Gosched()
	}
	_, promptTokens := chatPrompt(req.Messages)
	clk.Set(t0.Add(20*time.Millisecond + p.LLM.PrefillTime(promptTokens))) // the first token's arrival
	<-got
	cancel()
	close(released)
	err := <-done
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v, want context.Canceled", err)
	}
	if s := b.Stats(); (s != Stats{BusyTime: s.BusyTime}) {
		t.Errorf("core not empty after cancel: %+v", s)
	}

	ctx, cancel = context.WithTimeout(context.Background(), time.Hour)
	cancel()
	if _, err := b.Do(ctx, chatReq(), llmModel, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("done ctx: %v", err)
	}

	boom := errors.New("client went away")
	n := 0
	req.Stream = true
	_, err = do(t, b, clk, req, llmModel, func(backends.Chunk) error {
		n++
		if n == 3 {
			return boom
		}
		return nil
	})
	if !errors.Is(err, boom) || n != 3 {
		t.Fatalf("err %v after %d chunks, want the stream's error after 3", err, n)
	}
	if s := b.Stats(); (s != Stats{BusyTime: s.BusyTime}) {
		t.Errorf("core not empty after a stream error: %+v", s)
	}
}

func TestConcurrentRequests(t *testing.T) {
	p := testProfile(4)
	b, clk := newTestBackend(p, 10*time.Millisecond)
	const n = 12
	var wg sync.WaitGroup
	results := make([]*backends.Result, n)
	errs := make([]error, n)
	drive(t, clk, func() {
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				req := chatReq()
				req.Seed = int64(i)
				req.Stream = i%2 == 0
				var sb strings.Builder
				results[i], errs[i] = b.Do(context.Background(), req, llmModel, func(c backends.Chunk) error { sb.WriteString(c.Text); return nil })
				if errs[i] == nil && req.Stream && sb.String() != results[i].Choices[0].Text {
					errs[i] = errors.New("stream differs from text")
				}
			}()
		}
		wg.Wait()
	})
	var cost float64
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("request %d: %v", i, errs[i])
		}
		cost += results[i].CostUSD
	}
	s := b.Stats()
	if want := s.BusyTime.Seconds() * testPricePerSec; math.Abs(cost-want) > 1e-9 {
		t.Errorf("costs %v, want %v", cost, want)
	}
	if s.Jobs != 0 {
		t.Errorf("stats %+v", s)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Do(context.Background(), chatReq(), llmModel, nil); !errors.Is(err, backends.ErrUnavailable) {
		t.Errorf("after Close: %v", err)
	}
}

// TestRealClock is a smoke test of the default clock's timer path (a few
// milliseconds of real time); timing assertions are lower bounds only.
func TestRealClock(t *testing.T) {
	p := testProfile(8)
	p.LLM = &backends.LLMModel{PrefillBaseMs: 1, PrefillMsPer1kTokens: 1, DecodeBaseMs: 0.5, DecodePerSeqMs: 0.1, MaxConcurrency: 8, Source: "test"}
	desc := &backends.Descriptor{Name: "emu-real", Profile: p, RTT: 2 * time.Millisecond, PricePerHour: p.PricePerHour}
	b := New(desc, Options{Config: DefaultConfig()})
	defer b.Close()
	req := chatReq()
	req.MaxTokens = 8
	req.Stream = true
	chunks := 0
	start := time.Now()
	res, err := b.Do(context.Background(), req, llmModel, func(backends.Chunk) error { chunks++; return nil })
	if err != nil {
		t.Fatal(err)
	}
	if chunks < 2 || res.Usage.CompletionTokens != 8 || res.Choices[0].FinishReason != "length" {
		t.Errorf("%d chunks, usage %+v", chunks, res.Usage)
	}
	if el := time.Since(start); el < res.Timing.Total || res.Timing.Total < 2*time.Millisecond+time.Millisecond {
		t.Errorf("took %v, reported total %v", el, res.Timing.Total)
	}
}
