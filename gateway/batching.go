package gateway

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/accelgate/accelgate/backends"
	"github.com/accelgate/accelgate/backends/fleet"
	"github.com/accelgate/accelgate/batcher"
)

// The gateway routes first, then batches: every backend has one
// batcher.Batcher (built by NewDispatcher from the models' batching settings
// and the backend's profile). Dispatcher.Run hands a placed tensor or
// embeddings request, or a mergeable completion (below), to the chosen
// backend's batcher, which merges it with other requests for the same model
// (and version) and runs the batch through the backend's ExecFunc
// (execBatch). What is merged where:
//
//   - a BatchBackend (the in-process emulator) runs the batch's members as one
//     emulator batch (DoBatch), each member getting its own result;
//   - any other backend runs a one-member batch with Do, unchanged;
//   - tensors (KServe upstreams): the members' inputs are concatenated along
//     the batch dimension (batcher.MergeTensors) into one upstream call whose
//     outputs are split back by rows (batcher.SplitResult: each caller its
//     rows, usage and cost share);
//   - embeddings (OpenAI-compatible upstreams): the members' inputs, in member
//     order, become the "input" array of one /v1/embeddings call (the first
//     member's body otherwise, batcher.MergeBody); the upstream's JSON is cut
//     into one OpenAI body per caller (batcher.SplitResult: its vectors
//     re-indexed from 0, as float arrays or base64 as the upstream encoded
//     them; usage split by estimated input tokens). Members merge only with
//     the same backends.Request.BatchKey: the same body apart from "input"
//     (model, encoding_format, dimensions, user, ...);
//   - completions (OpenAI-compatible upstreams, transport "openai", which
//     accept prompt arrays: vLLM, TGI's OpenAI route, SGLang): a
//     non-streaming completion whose model's batching mode is not off is
//     queued for a batch (Request.Mergeable, on the placement's own copy)
//     instead of the admission queue. Members merge only when their bodies
//     are identical apart from "prompt" (BatchKey: every sampling parameter,
//     n, stop, seed, logprobs, echo, ... as the same JSON); their prompts, in
//     member order, become one prompt array, and the upstream's choices are
//     split back by index (choice i belongs to prompt i/n), re-indexed from 0
//     for each caller, with prompt tokens split by estimated prompt size and
//     completion tokens by the bytes of each caller's choices' text (the
//     upstream reports no per-choice usage). The queue waits at most the
//     model's max_queue_delay_us for company (fixed mode; the adaptive rule
//     does not model generation time), up to the backend's sequence slots.
//     The batch then passes the admission queue as one request holding its
//     prompts × n sequences. Streams, chat, and completions on the emulator
//     (which batches sequences itself) are never merged.
//
// A merged call that fails fails every member with the batch's error
// (batchError: it wraps backends.ErrUnavailable when the members may be
// placed again elsewhere), except when the upstream rejects it as the
// request's fault (a 4xx other than 401, 403, 408 and 429: one member's
// input too long, say): then the members run again one by one, so that each
// gets its own answer and no caller fails for another's input.
//
// LLM requests that are not merged wait in the backend's admission queue
// (Batcher.Admit), unless the model's batching mode is off, until their
// sequences fit the profile's concurrent-sequence slots, and release the
// slots when they end.

// BatchBackend is implemented by backends that execute a batch formed by the
// gateway as one unit (emulator.Backend): DoBatch runs reqs (all for model,
// all of one op) and returns one result or error per request, in order. It
// must not form batches of its own beyond what it is handed.
type BatchBackend interface {
	DoBatch(ctx context.Context, reqs []*backends.Request, model *backends.Model) ([]*backends.Result, []error)
}

// DispatcherOption configures NewDispatcher.
type DispatcherOption func(*dispatcherOptions)

type dispatcherOptions struct {
	batching map[string]batcher.Config
}

// WithBatching sets each model's batching settings, by model name (the fleet's
// Batching). A model without an entry gets batcher.DefaultConfig()
// (adaptive), as in the fleet file.
func WithBatching(cfgs map[string]batcher.Config) DispatcherOption {
	return func(o *dispatcherOptions) { o.batching = cfgs }
}

// newBatchers builds one batcher per backend.
func (d *Dispatcher) newBatchers(cfgs map[string]batcher.Config) error {
	d.bcfg = make(map[string]batcher.Config, len(d.models))
	for name := range d.models {
		c, ok := cfgs[name]
		if !ok {
			c = batcher.DefaultConfig()
		}
		c.PreferredBatchSizes = append([]int(nil), c.PreferredBatchSizes...)
		c.SetDefaults()
		if err := c.Validate("models[" + name + "].batching"); err != nil {
			return err
		}
		d.bcfg[name] = c
	}
	descs := make([]*backends.Descriptor, len(d.backends))
	for i, b := range d.backends {
		descs[i] = b.Descriptor()
	}
	// The router's learned model serves the batchers, with its expected
	// latencies for their hand-backs (Core.Evict).
	var pred interface {
		batcher.Predictor
		batcher.Expecter
	} = d.r.BatchPredictor()
	d.batchers = make([]*batcher.Batcher, len(d.backends))
	for i := range d.backends {
		prof := descs[i].Profile
		par := 1
		if prof.Vision != nil {
			par = prof.Vision.Parallelism()
		} else if prof.Embedding != nil {
			par = prof.Embedding.Parallelism()
		}
		b, err := batcher.New(batcher.Options{
			Backend: i, Profile: prof, Models: d.models, Configs: d.bcfg, Predictor: pred,
			Clock: d.clock, Exec: d.execBatch(i), Parallelism: par, RTT: descs[i].RTT,
		})
		if err != nil {
			return err
		}
		d.batchers[i] = b
	}
	return nil
}

// BatchingConfig returns the model's effective batching settings.
func (d *Dispatcher) BatchingConfig(model string) batcher.Config { return d.bcfg[model] }

// Close closes every backend's batcher: each queued request fails with an
// error wrapping backends.ErrUnavailable (none is lost silently), and later
// requests are refused the same way. Batches already executing run to the
// end. It does not close the backends (the fleet owns them). Close is
// idempotent.
func (d *Dispatcher) Close() error {
	var errs []error
	for _, b := range d.batchers {
		if b == nil {
			continue
		}
		if err := b.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// runBatched runs a placed request through the backend's batcher: tensor and
// embeddings requests join a batch; LLM requests pass the admission queue
// (unless the model's batching mode is off) and then run on the backend.
func (d *Dispatcher) runBatched(ctx context.Context, p *Placement, req *backends.Request, m *backends.Model, stream backends.StreamFunc) (*backends.Result, error) {
	bt := d.batchers[p.dec.Index]
	switch req.Op {
	case backends.OpTensor, backends.OpEmbedding:
		return bt.Do(ctx, req)
	case backends.OpChat, backends.OpCompletion:
		if p.release == nil && d.mergesCompletion(p.dec.Index, req, m) {
			// The batch queue decides on the placement's own copy: a
			// retry or a hedge elsewhere decides again.
			r := *req
			r.Mergeable = true
			return bt.Do(ctx, &r)
		}
		if p.release != nil { // admitted before the response headers (PlaceAdmitted)
			defer p.release()
		} else if d.bcfg[m.Name].Mode != batcher.ModeOff {
			release, err := bt.Admit(ctx, req)
			if err != nil {
				return nil, err
			}
			defer release()
		}
	}
	return p.b.Do(ctx, req, m, stream)
}

// mergesCompletion reports whether req, placed on backend i, may be merged
// with other completions into one prompt-array call: a non-streaming
// completion with a BatchKey, its model's batching not off, on a backend
// that accepts prompt arrays.
func (d *Dispatcher) mergesCompletion(i int, req *backends.Request, m *backends.Model) bool {
	return req.Op == backends.OpCompletion && !req.Stream && req.BatchKey != "" &&
		d.bcfg[m.Name].Mode != batcher.ModeOff && acceptsPromptArrays(d.backends[i])
}

// acceptsPromptArrays reports whether a backend answers a completions
// request with a prompt array (OpenAI's form: choice i for prompt i/n):
// OpenAI-compatible upstreams do. The emulator would too, but it batches
// sequences itself and keeps a prefix cache for single prompts only, so its
// completions are not merged.
func acceptsPromptArrays(be backends.Backend) bool {
	return be.Descriptor().Transport == fleet.TransportOpenAI
}

// execBatch returns backend i's batcher.ExecFunc.
func (d *Dispatcher) execBatch(i int) batcher.ExecFunc {
	run := d.execBatchRaw(i)
	return func(ctx context.Context, bt batcher.Batch) ([]batcher.Outcome, error) {
		outs, err := run(ctx, bt)
		// The batch's context ends at its latest member's deadline and each
		// individual call's at its own: a deadline error is the members' hard
		// timeout, whether or not the caller has noticed yet.
		if err != nil {
			return nil, hardTimeout(err)
		}
		for k := range outs {
			if outs[k].Err != nil {
				outs[k].Err = hardTimeout(outs[k].Err)
			}
		}
		return outs, nil
	}
}

// hardTimeout wraps a deadline error in backends.ErrTimeout, as Run does.
func hardTimeout(err error) error {
	if errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, backends.ErrTimeout) {
		return fmt.Errorf("%w: the request did not finish within its hard timeout (%w)", backends.ErrTimeout, err)
	}
	return err
}

func (d *Dispatcher) execBatchRaw(i int) batcher.ExecFunc {
	return func(ctx context.Context, bt batcher.Batch) ([]batcher.Outcome, error) {
		be := d.backends[i]
		outs := make([]batcher.Outcome, len(bt.Members))
		// Members whose hard deadline has passed are dropped, never executed.
		now := d.clock.Now()
		live := make([]*backends.Request, 0, len(bt.Members))
		at := make([]int, 0, len(bt.Members))
		for k, r := range bt.Members {
			if !r.Deadline.IsZero() && !now.Before(r.Deadline) {
				outs[k].Err = fmt.Errorf("%w: the request's deadline passed before its batch was dispatched", backends.ErrTimeout)
				continue
			}
			live = append(live, r)
			at = append(at, k)
		}
		if len(live) == 0 {
			return outs, nil
		}
		if live[0].Op == backends.OpCompletion {
			return d.execCompletions(ctx, i, bt.Model, live, at, outs)
		}
		if bb, ok := be.(BatchBackend); ok {
			res, errs := bb.DoBatch(ctx, live, bt.Model)
			for j, k := range at {
				outs[k] = batcher.Outcome{Result: res[j], Err: errs[j]}
			}
			return outs, nil
		}
		if len(live) == 1 {
			res, err := be.Do(ctx, live[0], bt.Model, nil)
			outs[at[0]] = batcher.Outcome{Result: res, Err: err}
			return outs, nil
		}
		merged, offsets, err := mergeRequests(live)
		var parts []*backends.Result
		if err == nil {
			parts, err = runMerged(ctx, be, bt.Model, merged, live, offsets)
		}
		if err != nil {
			if live[0].Op == backends.OpEmbedding && rejected(ctx, err) {
				runEach(ctx, be, bt.Model, live, at, outs)
				return outs, nil
			}
			return nil, batchError(be.Descriptor(), len(live), err)
		}
		for j, k := range at {
			outs[k].Result = parts[j]
		}
		return outs, nil
	}
}

// execCompletions runs a batch of mergeable completions on backend i: one
// member as it is, several as one prompt-array call split back per caller.
// Either way the call first passes the backend's admission queue as one
// request holding all its sequences, and releases them when it ends.
func (d *Dispatcher) execCompletions(ctx context.Context, i int, m *backends.Model, live []*backends.Request, at []int, outs []batcher.Outcome) ([]batcher.Outcome, error) {
	be := d.backends[i]
	run := live[0]
	var offsets []int
	if len(live) > 1 {
		merged, off, err := mergeRequests(live)
		if err != nil {
			return nil, batchError(be.Descriptor(), len(live), err)
		}
		run, offsets = merged, off
	}
	adm := *run
	adm.Mergeable = false // to the admission queue
	release, err := d.batchers[i].Admit(ctx, &adm)
	if err != nil {
		if len(live) == 1 {
			outs[at[0]].Err = err
			return outs, nil
		}
		return nil, batchError(be.Descriptor(), len(live), err)
	}
	defer release()
	if len(live) == 1 {
		res, err := be.Do(ctx, run, m, nil)
		outs[at[0]] = batcher.Outcome{Result: res, Err: err}
		return outs, nil
	}
	parts, err := runMerged(ctx, be, m, run, live, offsets)
	if err != nil {
		if rejected(ctx, err) {
			runEach(ctx, be, m, live, at, outs) // under the merged call's admission
			return outs, nil
		}
		return nil, batchError(be.Descriptor(), len(live), err)
	}
	for j, k := range at {
		outs[k].Result = parts[j]
	}
	return outs, nil
}

// mergeRequests builds the one request that carries a batch of tensor,
// embeddings or completions requests (see the top of this file), and the
// offsets batcher.SplitResult cuts its answer with.
func mergeRequests(reqs []*backends.Request) (*backends.Request, []int, error) {
	first := reqs[0]
	merged := &backends.Request{
		ID: first.ID + "+batch", Op: first.Op, Model: first.Model, ModelVersion: first.ModelVersion,
		Priority: first.Priority, SLO: first.SLO, Arrival: first.Arrival, Site: first.Site,
		ClientID: first.ClientID, BatchKey: first.BatchKey,
	}
	var offsets []int
	var err error
	switch first.Op {
	case backends.OpTensor:
		merged.Tensors, offsets, err = batcher.MergeTensors(reqs)
		merged.Outputs = first.Outputs
		merged.Rows = offsets[len(reqs)]
	case backends.OpEmbedding:
		merged.Inputs, offsets = batcher.MergeEmbeddings(reqs)
		merged.Body, err = batcher.MergeBody(first.Body, "input", merged.Inputs)
		merged.Rows = len(merged.Inputs)
	case backends.OpCompletion:
		merged.Prompts, offsets = batcher.MergeCompletions(reqs)
		merged.Body, err = batcher.MergeBody(first.Body, "prompt", merged.Prompts)
		merged.N, merged.MaxTokens, merged.Stop = first.N, first.MaxTokens, first.Stop
		merged.Seed, merged.Temperature = first.Seed, first.Temperature
		merged.Rows = merged.Sequences()
	default:
		err = fmt.Errorf("%w: %s requests are not merged", backends.ErrBadRequest, first.Op)
	}
	if err != nil {
		return nil, nil, err
	}
	for _, r := range reqs {
		merged.EstInputTokens += max(r.EstInputTokens, 0)
		merged.Priority = min(merged.Priority, r.Priority)
		if r.Deadline.After(merged.Deadline) {
			merged.Deadline = r.Deadline
		}
		if r.Arrival.Before(merged.Arrival) {
			merged.Arrival = r.Arrival
		}
	}
	return merged, offsets, nil
}

// runMerged runs the merged request and cuts its answer into the members'
// results (batcher.SplitResult).
func runMerged(ctx context.Context, be backends.Backend, m *backends.Model, merged *backends.Request, reqs []*backends.Request, offsets []int) ([]*backends.Result, error) {
	res, err := be.Do(ctx, merged, m, nil)
	if err != nil {
		return nil, err
	}
	return batcher.SplitResult(res, reqs, offsets)
}

// rejected reports whether a merged call failed because the upstream
// rejected the request itself (a 4xx that is neither 429 nor one of those
// that wrap backends.ErrUnavailable): a member's input may be at fault, so
// the members are worth running one by one.
func rejected(ctx context.Context, err error) bool {
	var ue *backends.UpstreamError
	return ctx.Err() == nil && errors.As(err, &ue) && ue.Status >= 400 && ue.Status < 500 &&
		!errors.Is(err, backends.ErrUnavailable) && !errors.Is(err, backends.ErrShed)
}

// runEach runs the members as individual calls in parallel, each under its
// own deadline, and sets outs[at[j]] to member j's outcome.
func runEach(ctx context.Context, be backends.Backend, m *backends.Model, live []*backends.Request, at []int, outs []batcher.Outcome) {
	var wg sync.WaitGroup
	for j, k := range at {
		wg.Add(1)
		go func(r *backends.Request, o *batcher.Outcome) {
			defer wg.Done()
			c := ctx
			if !r.Deadline.IsZero() {
				var cancel context.CancelFunc
				c, cancel = context.WithDeadline(ctx, r.Deadline)
				defer cancel()
			}
			o.Result, o.Err = be.Do(c, r, m, nil)
		}(live[j], &outs[k])
	}
	wg.Wait()
}

// batchError is the error every member of a failed batch gets: it keeps err's
// classification and says whether the request may be placed again elsewhere
// (err wraps backends.ErrUnavailable: the Dispatcher retries it, and since
// the batch failed it never ran twice).
func batchError(d *backends.Descriptor, n int, err error) error {
	if errors.Is(err, backends.ErrUnavailable) {
		return fmt.Errorf("a batch of %d requests failed on %s (retryable elsewhere): %w", n, d.Name, err)
	}
	return fmt.Errorf("a batch of %d requests failed on %s (not retryable): %w", n, d.Name, err)
}
