package gateway

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/accelgate/accelgate/backends"
	"github.com/accelgate/accelgate/batcher"
)

// The gateway routes first, then batches: every backend has one
// batcher.Batcher (built by NewDispatcher from the models' batching settings
// and the backend's profile). Dispatcher.Run hands a placed tensor or
// embeddings request to the chosen backend's batcher, which merges it with
// other requests for the same model (and version) and runs the batch through
// the backend's ExecFunc (execBatch):
//
//   - a BatchBackend (the in-process emulator) runs the batch's members as one
//     emulator batch (DoBatch), each member getting its own result;
//   - any other backend runs a one-member batch with Do, unchanged; a tensor
//     batch of several members is merged (batcher.MergeTensors) into one
//     upstream call whose outputs are split back by rows
//     (batcher.SplitResult: each caller its rows, usage and cost share);
//     an embeddings batch on an OpenAI upstream runs its members as individual
//     calls in parallel (the upstream's JSON is relayed to each caller as is,
//     so it is not merged).
//
// LLM requests are never merged: unless the model's batching mode is off,
// they wait in the backend's admission queue (Batcher.Admit) until their
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
	pred := d.r.BatchPredictor() // the router's learned model serves the batchers
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
			Clock: d.clock, Exec: d.execBatch(i), Parallelism: par,
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
		if live[0].Op == backends.OpTensor {
			parts, err := d.execMerged(ctx, be, bt.Model, live)
			if err != nil {
				return nil, batchError(be.Descriptor(), len(live), err)
			}
			for j, k := range at {
				outs[k].Result = parts[j]
			}
			return outs, nil
		}
		// Embeddings on an OpenAI upstream: the members run as individual
		// calls in parallel, each under its own deadline.
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
				o.Result, o.Err = be.Do(c, r, bt.Model, nil)
			}(live[j], &outs[k])
		}
		wg.Wait()
		return outs, nil
	}
}

// execMerged runs tensor requests as one upstream call: their inputs
// concatenated along the batch dimension, the outputs split back by rows.
func (d *Dispatcher) execMerged(ctx context.Context, be backends.Backend, m *backends.Model, reqs []*backends.Request) ([]*backends.Result, error) {
	tensors, offsets, err := batcher.MergeTensors(reqs)
	if err != nil {
		return nil, err
	}
	first := reqs[0]
	merged := &backends.Request{
		ID: first.ID + "+batch", Op: backends.OpTensor, Model: first.Model, ModelVersion: first.ModelVersion,
		Priority: first.Priority, Arrival: first.Arrival, Tensors: tensors, Outputs: first.Outputs,
		ClientID: first.ClientID, Rows: offsets[len(reqs)],
	}
	for _, r := range reqs {
		merged.EstInputTokens += max(r.EstInputTokens, 0)
		merged.Priority = min(merged.Priority, r.Priority)
		if r.Deadline.After(merged.Deadline) {
			merged.Deadline = r.Deadline
		}
	}
	res, err := be.Do(ctx, merged, m, nil)
	if err != nil {
		return nil, err
	}
	return batcher.SplitResult(res, reqs, offsets)
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
