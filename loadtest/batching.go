package loadtest

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/accelgate/accelgate/backends"
	"github.com/accelgate/accelgate/backends/emulator"
	"github.com/accelgate/accelgate/batcher"
	"github.com/accelgate/accelgate/router"
)

// Batching in the simulator.
//
// The gateway routes first, then batches: the router picks the backend, and
// every backend has one batcher.Core holding that backend's queues. With
// SimOptions.Batching fixed or adaptive, the simulator does the same:
//
//   - An embeddings or vision request is placed by the router, then Enqueued
//     into the chosen backend's batcher (a full queue is outcome "shed").
//   - The event loop's backend heap is keyed by the earlier of the
//     emulator core's Next and the batcher's Next. At that time the core is
//     advanced first (results come back, executors free up), then the
//     batcher: Drop hands out the requests whose hard deadline passed while
//     queued (outcome "timeout", never executed), and Poll(now, idle) the
//     batches due. Each batch is submitted to the emulator core as ONE
//     BatchJob with one Member per request (the emulator never forms
//     batches). idle is what the gateway's batcher shell knows: the backend
//     has fewer batches outstanding (dispatched, results not all back) than
//     executors, for every batch class it serves.
//   - LLM requests are never merged. They pass the backend's admission
//     queue (KindAdmission), as Batcher.Admit does in the gateway: at once
//     (TryAdmit) when their sequences fit the free slots and nobody waits,
//     else queued in priority and deadline order until a request that holds
//     slots ends (SlotsFree); then they go to the core alone.
//   - When a request finishes past its end-to-end target, the requests
//     queued on its backend that can no longer meet theirs there are handed
//     back (Core.Evict) and placed again, as the gateway's Run does: on
//     another backend when one serves the model, refused (429) when a
//     sheddable one cannot meet its SLO anywhere.
//   - A request's latency runs from its arrival, so it includes the time it
//     waited in the batcher.
//
// Modes (the fleet file's models[i].batching section supplies
// max_batch_size, max_queue_size and aging; the mode comes from the flag):
//
//   - off: every request executes alone. The batcher is bypassed (its
//     ModeOff would dispatch each request at its arrival instant, which is
//     what submitting it directly does). With SimOptions.RowsAlone — what
//     `loadtest simulate -batching off` uses: the baseline of the batching
//     proof, "batch size 1" — every backend's vision and embedding
//     max_batch is 1 (batchOfOne), so a request that carries several rows
//     runs them one after another, and the router predicts exactly that.
//     (The gateway's mode off is Triton's "no dynamic batching": a request
//     with several rows still runs as one call. On the default workloads
//     that differs little for vision, one image per request mostly, and a
//     lot for embeddings, 1–16 inputs per request.)
//   - fixed: Triton's dynamic batcher (batcher.ModeFixed) with
//     preferred_batch_sizes [the profile's max_batch] unless the fleet file
//     sets some (for the profiles' affine latency models the largest batch
//     is the most efficient one) and max_queue_delay_us from FixedDelays,
//     tuned per workload: see SimulateConfig.MaxQueueDelay.
//   - adaptive: the deadline-aware batcher.ModeAdaptive.
//
// Both batching modes plan with the router's BatchPredictor, as in the
// gateway, and the router's books use the expected batch size it learns
// from the batches it is told about (router.Outcome.BatchRows; see
// router.ProfilePredictor): a request is charged its share of the batch it
// is expected to join, and its SLO check sees the whole batch's duration.

// The batching modes of the simulator.
const (
	BatchingOff      = "off"
	BatchingFixed    = "fixed"
	BatchingAdaptive = "adaptive"
)

// BatchingModes returns the simulator's batching modes, in the order of
// increasing sophistication.
func BatchingModes() []string { return []string{BatchingOff, BatchingFixed, BatchingAdaptive} }

// FixedDelays are the max_queue_delay_us values fixed batching is tuned over.
var FixedDelays = []time.Duration{
	100 * time.Microsecond, 500 * time.Microsecond, time.Millisecond, 2 * time.Millisecond, 5 * time.Millisecond,
}

// ParseBatching parses a comma-separated list of batching modes (off, fixed,
// adaptive, or all).
func ParseBatching(s string) ([]string, error) {
	if strings.TrimSpace(s) == "all" {
		return BatchingModes(), nil
	}
	var out []string
	for _, p := range splitCSV(s) {
		if err := checkBatching(p); err != nil {
			return nil, err
		}
		for _, q := range out {
			if q == p {
				return nil, fmt.Errorf("-batching: %q is listed twice", p)
			}
		}
		out = append(out, p)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("-batching: name at least one mode (%s) or all", strings.Join(BatchingModes(), ", "))
	}
	return out, nil
}

func checkBatching(mode string) error {
	switch mode {
	case BatchingOff, BatchingFixed, BatchingAdaptive:
		return nil
	}
	return fmt.Errorf("-batching: unknown batching mode %q (want %s or all)", mode, strings.Join(BatchingModes(), ", "))
}

func splitCSV(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// batchOfOne returns a copy of p whose vision and embedding batch models
// run one row at a time (MaxBatch 1): the hardware as batching off uses it.
func batchOfOne(p *backends.Profile) *backends.Profile {
	q := *p
	for _, bm := range []**backends.BatchModel{&q.Vision, &q.Embedding} {
		if *bm != nil {
			c := **bm
			c.MaxBatch = 1
			*bm = &c
		}
	}
	return &q
}

// batchClass returns the emulator class of a batchable op.
func batchClass(op backends.Op) (emulator.BatchClass, bool) {
	switch op {
	case backends.OpTensor:
		return emulator.ClassVision, true
	case backends.OpEmbedding:
		return emulator.ClassEmbedding, true
	}
	return 0, false
}

func classModel(p *backends.Profile, c emulator.BatchClass) *backends.BatchModel {
	if c == emulator.ClassVision {
		return p.Vision
	}
	return p.Embedding
}

// batchRec tracks one dispatched batch until every member's result came
// back or the member ended otherwise: the batcher shell's in-flight count.
type batchRec struct {
	left  int32
	b     int32
	class emulator.BatchClass
	id    uint64 // the batcher's Batch.ID, reported with Finished
}

// initBatching builds the batchers (one per backend) for mode, with the
// fleet file's per-model settings in cfgs.
func (s *Sim) initBatching(mode batcher.Mode, cfgs map[string]batcher.Config, delay time.Duration, pred batcher.Predictor) {
	s.batching = true
	s.maxQueueDelay = delay
	if delay <= 0 {
		for _, cfg := range cfgs {
			s.maxQueueDelay = max(s.maxQueueDelay, cfg.MaxQueueDelay)
		}
	}
	n := len(s.descs)
	s.bcores = make([]*batcher.Core, n)
	s.outstanding = make([][2]int32, n)
	s.execs = make([][2]int32, n)
	for i, d := range s.descs {
		bc := make(map[string]batcher.Config, len(cfgs))
		for name, cfg := range cfgs {
			cfg.PreferredBatchSizes = append([]int(nil), cfg.PreferredBatchSizes...)
			cfg.Mode = mode
			if mode == batcher.ModeFixed {
				m := s.models[name]
				if len(cfg.PreferredBatchSizes) == 0 && m != nil {
					var bm *backends.BatchModel
					switch m.Kind {
					case backends.ModelTensor:
						bm = d.Profile.Vision
					case backends.ModelEmbedding:
						bm = d.Profile.Embedding
					}
					if bm != nil {
						mb := bm.MaxBatch
						if cfg.MaxBatchSize > 0 {
							mb = min(mb, cfg.MaxBatchSize)
						}
						cfg.PreferredBatchSizes = []int{mb}
					}
				}
				if delay > 0 {
					cfg.MaxQueueDelay = delay
				}
			}
			bc[name] = cfg
		}
		s.bcores[i] = batcher.NewCore(batcher.Options{
			Backend: i, Profile: d.Profile, Models: s.models, Configs: bc, Predictor: pred, RTT: d.RTT,
		})
		for c := range 2 {
			if bm := classModel(d.Profile, emulator.BatchClass(c)); bm != nil {
				s.execs[i][c] = int32(bm.Parallelism())
			}
		}
	}
}

// slotID returns the batcher request ID of slot i (its index in decimal).
func (s *Sim) slotID(i int32) string {
	for int(i) >= len(s.ids) {
		s.ids = append(s.ids, strconv.Itoa(len(s.ids)))
	}
	return s.ids[i]
}

func slotOf(req *backends.Request) int32 {
	n, err := strconv.Atoi(req.ID)
	if err != nil {
		panic("simulate: a batcher returned a request the simulator did not queue: " + req.ID)
	}
	return int32(n)
}

// enqueue queues request i (placed on backend b) in b's batcher at now.
func (s *Sim) enqueue(i, b int32, now time.Time) {
	r := s.reqs[i]
	r.req.ID = s.slotID(i)
	if err := s.bcores[b].Enqueue(now, &r.req); err != nil {
		s.router.Done(now, r.dec, router.Outcome{Err: err})
		switch {
		case errors.Is(err, backends.ErrShed):
			s.finishError(i, 429, "shed")
		case errors.Is(err, backends.ErrBadRequest):
			s.finishError(i, 400, "bad_request")
		default:
			s.finishError(i, 502, "unavailable")
		}
		return
	}
	r.queued = true
	s.pollBatcher(b, now)
}

// idleFor reports whether backend b has a free executor for every batch
// class it serves, as far as the gateway knows (batches outstanding).
func (s *Sim) idleFor(b int32) bool {
	for c := range 2 {
		if e := s.execs[b][c]; e > 0 && s.outstanding[b][c] >= e {
			return false
		}
	}
	return true
}

// pollBatcher fails the requests whose deadline passed in b's batcher and
// dispatches the batches due at now.
func (s *Sim) pollBatcher(b int32, now time.Time) {
	bc := s.bcores[b]
	t := int64(now.Sub(simEpoch))
	s.dropped = bc.Drop(now, s.dropped[:0])
	for k, req := range s.dropped {
		i := slotOf(req)
		s.unqueue(i)
		s.timeout(i, t)
		s.dropped[k] = nil
	}
	s.polled = bc.Poll(now, s.idleFor(b), s.polled[:0])
	for k := range s.polled {
		s.dispatch(b, &s.polled[k], now)
		s.polled[k] = batcher.Batch{}
	}
}

// dispatch submits one batch formed by b's batcher to b's emulator core as
// one BatchJob with a Member per request.
func (s *Sim) dispatch(b int32, bt *batcher.Batch, now time.Time) {
	for _, req := range bt.Members {
		i := slotOf(req)
		s.unqueue(i)
		s.reqs[i].wait = now.Sub(s.reqs[i].req.Arrival)
	}
	if bt.Kind == batcher.KindAdmission {
		// An LLM request's sequences fit the backend's free slots: it is
		// admitted and goes to the backend alone.
		for _, req := range bt.Members {
			i := slotOf(req)
			s.reqs[i].admitted = true
			s.send(i, b, now)
		}
		return
	}
	first := slotOf(bt.Members[0])
	class, _ := batchClass(s.reqs[first].item.Op)
	if s.down[b] {
		for _, req := range bt.Members {
			s.reqs[slotOf(req)].lost = true // never reaches the backend: it will time out
		}
		s.bcores[b].Finished(now, bt.ID, false) // it occupies no executor
		return
	}
	mb := s.maxBatch[b][class]
	if len(bt.Members) == 1 && (mb == 0 || s.reqs[first].req.Rows > mb) {
		// A request larger than MaxBatch runs alone, split by the backend.
		if err := s.submit(first, b, now); err != nil {
			s.bcores[b].Finished(now, bt.ID, false)
			s.failSubmit(first, now, err)
			return
		}
		s.reqs[first].rec = s.trackBatch(b, class, bt.ID, 1)
		return
	}
	s.members = s.members[:0]
	rows := 0
	for _, req := range bt.Members {
		i := slotOf(req)
		r := s.reqs[i]
		tok := 0
		if r.item.Op == backends.OpEmbedding {
			tok = r.item.InputTokens
		}
		s.members = append(s.members, emulator.Member{JobID: jobID(i, r.gen, 0), Items: r.req.Rows, Tokens: tok})
		rows += r.req.Rows
	}
	job := emulator.BatchJob{ID: uint64(s.res.Batches), Class: class, Members: s.members}
	if err := s.cores[b].SubmitBatch(now, &job); err != nil {
		s.bcores[b].Finished(now, bt.ID, false)
		for _, req := range bt.Members {
			s.failSubmit(slotOf(req), now, err)
		}
		return
	}
	rec := s.trackBatch(b, class, bt.ID, len(bt.Members))
	for _, req := range bt.Members {
		r := s.reqs[slotOf(req)]
		r.parts, r.left, r.rec, r.batchRows, r.batchID = 1, 1, rec, int32(rows), bt.ID
	}
	s.res.Batches++
	s.res.BatchItems += int64(rows)
}

// unqueue marks request i as out of its backend's batcher.
func (s *Sim) unqueue(i int32) {
	r := s.reqs[i]
	if !r.queued {
		return
	}
	r.queued = false
}

// failSubmit ends request i whose submission failed at now.
func (s *Sim) failSubmit(i int32, now time.Time, err error) {
	r := s.reqs[i]
	s.router.Done(now, r.dec, router.Outcome{Err: err})
	s.cancelParts(i, now)
	s.releaseSlots(i)
	if errors.Is(err, backends.ErrBadRequest) {
		s.finishError(i, 400, "bad_request")
	} else {
		s.finishError(i, 502, "unavailable")
	}
}

// trackBatch records a batch of members requests submitted to backend b's
// class executors (outstanding until memberEnded hears of all of them) and
// returns its record.
func (s *Sim) trackBatch(b int32, class emulator.BatchClass, id uint64, members int) int32 {
	rec := s.allocRec()
	s.recs[rec] = batchRec{left: int32(members), b: b, class: class, id: id}
	s.outstanding[b][class]++
	return rec
}

func (s *Sim) allocRec() int32 {
	if n := len(s.freeRecs); n > 0 {
		k := s.freeRecs[n-1]
		s.freeRecs = s.freeRecs[:n-1]
		return k
	}
	s.recs = append(s.recs, batchRec{})
	return int32(len(s.recs) - 1)
}

// memberEnded tells request i's batch record that i's share is over at now:
// its result came back (ok), or it timed out or failed; the last one tells
// the batcher the batch is over.
func (s *Sim) memberEnded(i int32, now time.Time, ok bool) {
	r := s.reqs[i]
	k := r.rec
	if k < 0 {
		return
	}
	r.rec = -1
	rec := &s.recs[k]
	rec.left--
	if rec.left == 0 {
		s.outstanding[rec.b][rec.class]--
		s.bcores[rec.b].Finished(now, rec.id, ok) // the batch's results came back, or it was abandoned
		s.freeRecs = append(s.freeRecs, k)
	}
}
