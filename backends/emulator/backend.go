package emulator

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/accelgate/accelgate/backends"
)

// DefaultDimension is an embedding model's vector size when Model.Dimension is
// unset; DefaultClasses is a tensor model's logit count when Model.Classes is.
const (
	DefaultDimension = 1024
	DefaultClasses   = 1000
)

// Options configures a Backend.
type Options struct {
	Clock  backends.Clock // time source and timers; nil means backends.RealClock
	Seed   int64          // seeds the jitter; with the backend's name it fixes every duration
	Config Config         // the core's configuration (JitterSigma 0 disables jitter)
}

// Backend is an emulated accelerator: a backends.Backend whose timing comes
// from a Core driven by a Clock. It is safe for concurrent use: a mutex
// serialises the core, and one timer, re-armed to Core.Next after every change,
// advances it.
type Backend struct {
	desc  *backends.Descriptor
	clock backends.Clock

	mu      sync.Mutex
	core    *Core
	calls   map[uint64]*call // core job ID → waiting call
	nextID  uint64
	timer   backends.Timer
	timerAt time.Time
	gen     uint64
	evbuf   []Event
	closed  bool
}

// call is one Do (or one request of a DoBatch) waiting for its core jobs.
type call struct {
	notify chan struct{} // capacity 1: "look at me"
	// Guarded by Backend.mu.
	jobs   []uint64
	left   int
	toks   []SeqRef
	timing backends.Timing
	cost   float64
	merged bool
	err    error
}

func newCall() *call { return &call{notify: make(chan struct{}, 1)} }

func (cl *call) signal() {
	select {
	case cl.notify <- struct{}{}:
	default:
	}
}

// merge folds one core job's timing into the call's (several parts when a
// request spans batches): the earliest start, the latest result, the busy
// time and cost summed.
func (cl *call) merge(t backends.Timing, cost float64) {
	if !cl.merged {
		cl.timing, cl.cost, cl.merged = t, cost, true
		return
	}
	cl.timing.QueueWait = min(cl.timing.QueueWait, t.QueueWait)
	cl.timing.TTFT = max(cl.timing.TTFT, t.TTFT)
	cl.timing.Total = max(cl.timing.Total, t.Total)
	cl.timing.Busy += t.Busy
	cl.cost += cost
}

// New returns an emulated backend for desc (its Profile, RTT and
// PricePerHour set the timing and cost).
func New(desc *backends.Descriptor, opts Options) *Backend {
	clk := opts.Clock
	if clk == nil {
		clk = backends.RealClock
	}
	rng := rand.New(rand.NewPCG(uint64(opts.Seed), hashString(0, desc.Name)))
	return &Backend{
		desc:  desc,
		clock: clk,
		core:  NewCore(desc.Profile, desc.PricePerHour, desc.RTT, opts.Config, rng),
		calls: make(map[uint64]*call),
	}
}

// Descriptor returns the backend's static description.
func (b *Backend) Descriptor() *backends.Descriptor { return b.desc }

// Stats returns a snapshot of the emulated accelerator's occupancy.
func (b *Backend) Stats() Stats {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.core.Stats()
}

// Close fails the calls in progress with backends.ErrUnavailable and refuses
// new ones.
func (b *Backend) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	now := b.clock.Now()
	for id, cl := range b.calls {
		b.core.Cancel(now, id)
		delete(b.calls, id)
		cl.err = fmt.Errorf("%w: emulated backend %s closed", backends.ErrUnavailable, b.desc.Name)
		cl.signal()
	}
	b.stopTimerLocked()
	return nil
}

func (b *Backend) stopTimerLocked() {
	if b.timer != nil {
		b.timer.Stop()
		b.timer = nil
	}
}

// rearmLocked points the timer at the core's next event.
func (b *Backend) rearmLocked() {
	t, ok := b.core.Next()
	if !ok || b.closed {
		b.stopTimerLocked()
		return
	}
	if b.timer != nil && b.timerAt.Equal(t) {
		return
	}
	b.stopTimerLocked()
	b.gen++
	gen := b.gen
	b.timerAt = t
	b.timer = b.clock.AfterFunc(t.Sub(b.clock.Now()), func() { b.fire(gen) })
}

// fire advances the core to now and hands the events to their calls.
func (b *Backend) fire(gen uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if gen == b.gen {
		b.timer = nil
	}
	if b.closed {
		return
	}
	b.evbuf = b.core.Advance(b.clock.Now(), b.evbuf[:0])
	for i := range b.evbuf {
		ev := &b.evbuf[i]
		switch ev.Kind {
		case EventTokens:
			for _, r := range ev.Seqs {
				if cl := b.calls[r.Job]; cl != nil {
					cl.toks = append(cl.toks, r)
					cl.signal()
				}
			}
		case EventDone:
			if cl := b.calls[ev.Job]; cl != nil {
				delete(b.calls, ev.Job)
				cl.merge(ev.Timing, ev.CostUSD)
				cl.left--
				cl.signal()
			}
		}
		ev.Seqs = nil
	}
	b.rearmLocked()
}

// submit registers cl for the jobs and submits them at the clock's now.
func (b *Backend) submitLLM(cl *call, j *LLMJob) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return fmt.Errorf("%w: emulated backend %s closed", backends.ErrUnavailable, b.desc.Name)
	}
	b.nextID++
	j.ID = b.nextID
	if err := b.core.SubmitLLM(b.clock.Now(), j); err != nil {
		return err
	}
	b.calls[j.ID] = cl
	cl.jobs = append(cl.jobs, j.ID)
	cl.left++
	b.rearmLocked()
	return nil
}

// cancel drops the call's outstanding jobs from the core.
func (b *Backend) cancel(cl *call) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.cancelLocked(cl)
}

func (b *Backend) cancelLocked(cl *call) {
	now := b.clock.Now()
	for _, id := range cl.jobs {
		if b.calls[id] == cl {
			delete(b.calls, id)
			b.core.Cancel(now, id)
		}
	}
	cl.toks = nil
	b.rearmLocked()
}

// wait blocks until the call's jobs are done, handing streamed tokens to
// onTokens (outside the lock). When ctx ends first it cancels the jobs.
func (b *Backend) wait(ctx context.Context, cl *call, onTokens func([]SeqRef) error) error {
	for {
		b.mu.Lock()
		toks, left, err := cl.toks, cl.left, cl.err
		cl.toks = nil
		b.mu.Unlock()
		if len(toks) > 0 && onTokens != nil {
			if err := onTokens(toks); err != nil {
				b.cancel(cl)
				return err
			}
		}
		if err != nil {
			return err
		}
		if left == 0 {
			return nil
		}
		select {
		case <-cl.notify:
		case <-ctx.Done():
			b.mu.Lock()
			if cl.left == 0 || cl.err != nil {
				b.mu.Unlock()
				continue // it finished meanwhile: deliver it
			}
			b.cancelLocked(cl)
			b.mu.Unlock()
			return fmt.Errorf("emulated backend %s: %w", b.desc.Name, ctx.Err())
		}
	}
}

// Do runs one request on the emulated accelerator and blocks until it is done,
// ctx ends or stream fails (see the package doc). Chat and completions run as
// one LLM job; embeddings and tensor requests as a batch of their own (see
// DoBatch). Streaming calls stream from Do's goroutine, never under the lock.
func (b *Backend) Do(ctx context.Context, req *backends.Request, model *backends.Model, stream backends.StreamFunc) (*backends.Result, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("emulated backend %s: %w", b.desc.Name, err)
	}
	switch req.Op {
	case backends.OpChat, backends.OpCompletion:
		return b.doLLM(ctx, req, model, stream)
	case backends.OpEmbedding, backends.OpTensor:
		res, errs := b.DoBatch(ctx, []*backends.Request{req}, model)
		return res[0], errs[0]
	}
	return nil, backends.BadRequestf("", "operation %s is not supported by the emulator", req.Op)
}

func contextError(param string, ctxLen, prompt, completion int) error {
	return &backends.ParamError{Param: param, Err: fmt.Errorf(
		"%w: this model's maximum context length is %d tokens, however you requested %d tokens (%d in the prompt, %d for the completion); reduce the length of the prompt or of max_tokens",
		backends.ErrContextLength, ctxLen, prompt+completion, prompt, completion)}
}

func (b *Backend) doLLM(ctx context.Context, req *backends.Request, model *backends.Model, stream backends.StreamFunc) (*backends.Result, error) {
	if b.desc.Profile.LLM == nil {
		return nil, fmt.Errorf("%w: %s (%s) does not serve LLMs", backends.ErrUnavailable, b.desc.Name, b.desc.Profile.Name)
	}
	var prompts []string
	var ptoks []int
	promptParam := "prompt"
	if req.Op == backends.OpChat {
		if len(req.Messages) == 0 {
			return nil, backends.BadRequestf("messages", "messages must not be empty")
		}
		text, n := chatPrompt(req.Messages)
		prompts, ptoks, promptParam = []string{text}, []int{n}, "messages"
	} else {
		if len(req.Prompts) == 0 {
			return nil, backends.BadRequestf("prompt", "prompt must not be empty")
		}
		prompts = req.Prompts
		for _, p := range req.Prompts {
			ptoks = append(ptoks, completionPromptTokens(p))
		}
	}
	if req.MaxTokens < 0 {
		return nil, backends.BadRequestf("max_tokens", "max_tokens must be positive, got %d", req.MaxTokens)
	}
	ctxLen := model.ContextLength
	if ctxLen > 0 {
		for _, pt := range ptoks {
			if req.MaxTokens > 0 && pt+req.MaxTokens > ctxLen {
				return nil, contextError("max_tokens", ctxLen, pt, req.MaxTokens)
			}
			if pt >= ctxLen {
				return nil, contextError(promptParam, ctxLen, pt, 0)
			}
		}
	}
	n := max(req.N, 1)
	gens := make([]genChoice, 0, len(prompts)*n)
	job := &LLMJob{Stream: req.Stream && stream != nil}
	var usage backends.Usage
	for pi, prompt := range prompts {
		limit := req.MaxTokens
		if limit == 0 && ctxLen > 0 {
			limit = ctxLen - ptoks[pi]
		}
		usage.PromptTokens += ptoks[pi]
		for k := range n {
			g := makeChoice(prompt, req.Seed, k, limit, req.Stop)
			gens = append(gens, g)
			job.SeqPromptTokens = append(job.SeqPromptTokens, ptoks[pi])
			job.OutputTokens = append(job.OutputTokens, len(g.pieces))
			usage.CompletionTokens += len(g.pieces)
		}
	}
	usage.TotalTokens = usage.PromptTokens + usage.CompletionTokens
	if len(prompts) == 1 {
		// One prompt: its prefixes may be in the prefix cache.
		job.PromptTokens, job.SeqPromptTokens, job.Prefix = ptoks[0], nil, &req.Prefix
	}

	cl := newCall()
	if err := b.submitLLM(cl, job); err != nil {
		return nil, err
	}
	var onTokens func([]SeqRef) error
	if job.Stream {
		onTokens = func(refs []SeqRef) error {
			for _, r := range refs {
				g := &gens[r.Seq]
				if p := g.pieces[r.Token]; p != "" {
					if err := stream(backends.Chunk{Index: int(r.Seq), Text: p}); err != nil {
						return err
					}
				}
				if r.Last {
					if err := stream(backends.Chunk{Index: int(r.Seq), FinishReason: g.finish}); err != nil {
						return err
					}
				}
			}
			return nil
		}
	}
	if err := b.wait(ctx, cl, onTokens); err != nil {
		return nil, err
	}
	res := &backends.Result{Usage: usage, Timing: cl.timing, CostUSD: cl.cost, Choices: make([]backends.Choice, len(gens))}
	for i, g := range gens {
		res.Choices[i] = backends.Choice{Index: i, Text: g.text, FinishReason: g.finish}
	}
	return res, nil
}

// batchItems is one request's items for a batch.
type batchItems struct {
	tokens []int // per item
	cl     *call
	res    *backends.Result
}

// DoBatch runs several embedding or tensor requests (all for model, all of
// its op) as shared batches, the way the gateway's batcher hands them over:
// their items are packed in order into batches of at most the BatchModel's
// MaxBatch items (a request may span batches), each request a member of the
// batches it is in. It returns one result or error per request, in order;
// when ctx ends, the unfinished requests are cancelled and fail with its error.
func (b *Backend) DoBatch(ctx context.Context, reqs []*backends.Request, model *backends.Model) ([]*backends.Result, []error) {
	results := make([]*backends.Result, len(reqs))
	errs := make([]error, len(reqs))
	if err := ctx.Err(); err != nil {
		for i := range errs {
			errs[i] = fmt.Errorf("emulated backend %s: %w", b.desc.Name, err)
		}
		return results, errs
	}
	var class BatchClass
	var bm *backends.BatchModel
	if model.Kind == backends.ModelTensor {
		class, bm = ClassVision, b.desc.Profile.Vision
	} else {
		class, bm = ClassEmbedding, b.desc.Profile.Embedding
	}
	if bm == nil {
		for i := range errs {
			errs[i] = fmt.Errorf("%w: %s (%s) does not serve %s", backends.ErrUnavailable, b.desc.Name, b.desc.Profile.Name, class)
		}
		return results, errs
	}
	items := make([]*batchItems, len(reqs))
	for i, req := range reqs {
		it, err := b.prepareBatch(req, model, class)
		if err != nil {
			errs[i] = err
			continue
		}
		items[i] = it
	}

	// Pack the items into batches of at most MaxBatch.
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		for i, it := range items {
			if it != nil {
				errs[i] = fmt.Errorf("%w: emulated backend %s closed", backends.ErrUnavailable, b.desc.Name)
			}
		}
		return results, errs
	}
	now := b.clock.Now()
	maxBatch := max(bm.MaxBatch, 1)
	var cur BatchJob
	flush := func() {
		if len(cur.Members) == 0 {
			return
		}
		b.nextID++
		cur.ID = b.nextID
		if err := b.core.SubmitBatch(now, &cur); err != nil {
			panic(fmt.Sprintf("emulator: %v", err)) // IDs are fresh and the class exists
		}
		cur = BatchJob{Class: class}
	}
	cur.Class = class
	inBatch := 0
	for _, it := range items {
		if it == nil {
			continue
		}
		var m *Member
		for _, tok := range it.tokens {
			if inBatch == maxBatch {
				flush()
				inBatch, m = 0, nil
			}
			if m == nil {
				b.nextID++
				cur.Members = append(cur.Members, Member{JobID: b.nextID})
				m = &cur.Members[len(cur.Members)-1]
				b.calls[m.JobID] = it.cl
				it.cl.jobs = append(it.cl.jobs, m.JobID)
				it.cl.left++
			}
			m.Items++
			m.Tokens += tok
			inBatch++
		}
		m = nil
	}
	flush()
	b.rearmLocked()
	b.mu.Unlock()

	for i, it := range items {
		if it == nil {
			continue
		}
		if err := b.wait(ctx, it.cl, nil); err != nil {
			errs[i] = err
			continue
		}
		it.res.Timing, it.res.CostUSD = it.cl.timing, it.cl.cost
		results[i] = it.res
	}
	return results, errs
}

// prepareBatch validates a request and computes its items and outputs.
func (b *Backend) prepareBatch(req *backends.Request, model *backends.Model, class BatchClass) (*batchItems, error) {
	it := &batchItems{cl: newCall(), res: &backends.Result{}}
	if class == ClassEmbedding {
		if req.Op != backends.OpEmbedding {
			return nil, backends.BadRequestf("", "model %s serves embeddings, not %s", model.Name, req.Op)
		}
		if len(req.Inputs) == 0 {
			return nil, backends.BadRequestf("input", "input must not be empty")
		}
		dim := model.Dimension
		if dim <= 0 {
			dim = DefaultDimension
		}
		total := 0
		for i, in := range req.Inputs {
			n := CountTokens(in)
			if model.ContextLength > 0 && n > model.ContextLength {
				return nil, &backends.ParamError{Param: "input", Err: fmt.Errorf(
					"%w: input %d has %d tokens, more than the model's maximum context length of %d",
					backends.ErrContextLength, i, n, model.ContextLength)}
			}
			it.tokens = append(it.tokens, n)
			total += n
			it.res.Embeddings = append(it.res.Embeddings, embedding(in, dim))
		}
		it.res.Usage = backends.Usage{PromptTokens: total, TotalTokens: total}
		return it, nil
	}
	if req.Op != backends.OpTensor {
		return nil, backends.BadRequestf("", "model %s serves tensors, not %s", model.Name, req.Op)
	}
	rows := max(req.Rows, 1)
	classes := model.Classes
	if classes <= 0 {
		classes = DefaultClasses
	}
	// One output tensor of logits, [rows, classes] FP32, named as the model's
	// first declared output. Each row's logits depend only on that row's
	// input bytes, so the same image always gets the same answer.
	name := "output"
	if len(model.Outputs) > 0 {
		name = model.Outputs[0].Name
	}
	out := backends.Tensor{Name: name, Datatype: backends.FP32, Shape: []int64{int64(rows), int64(classes)},
		Data: make([]byte, 0, rows*classes*4)}
	var in []byte
	if len(req.Tensors) > 0 {
		in = req.Tensors[0].Data
	}
	per := len(in) / rows
	for i := range rows {
		it.tokens = append(it.tokens, 0)
		h := hashString(uint64(req.Seed), string(in[i*per:(i+1)*per]))
		for _, v := range logits(h, 0, classes) {
			out.Data = binary.LittleEndian.AppendUint32(out.Data, math.Float32bits(v))
		}
	}
	it.res.Tensors = append(it.res.Tensors, out)
	return it, nil
}

var _ backends.Backend = (*Backend)(nil)
