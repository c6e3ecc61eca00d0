package loadtest

import (
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"time"

	"github.com/accelgate/accelgate/backends"
	"github.com/accelgate/accelgate/backends/catalog"
	"github.com/accelgate/accelgate/backends/emulator"
	"github.com/accelgate/accelgate/backends/fleet"
	"github.com/accelgate/accelgate/batcher"
	"github.com/accelgate/accelgate/router"
)

// The discrete-event simulator.
//
// A Sim runs a workload through the production placement and timing code —
// one emulator.Core per fleet backend and one router.Router — under a virtual
// clock. The cores and the router take the current time as an argument and
// start no goroutines, so the simulator only has to call them in time order:
// the event loop repeatedly takes the earliest of
//
//   - a scenario change (SimEvent: a backend slows down, stops answering or
//     answers again),
//   - the earliest Core.Next() over the backends (a min-heap of backends keyed
//     by their next due time — with batching, the earlier of the emulator
//     core's and the backend's batcher's — re-keyed after every call that
//     changes a core),
//   - the earliest hard-timeout deadline of a request still in flight (a
//     min-heap; entries of requests that finished meanwhile are skipped),
//   - the workload's next arrival (one Item read ahead),
//
// and at equal times takes them in that order, backends by fleet index: a
// completion due at the very instant of a request's deadline is delivered (as
// the live shell delivers a result that is ready when the context ends), and
// an arrival sees the router's books after the completions of its instant.
// Everything is deterministic: the same fleet, workload, seed and options give
// the same outcomes in the same order.
//
// Per request: the Item becomes a backends.Request (see request below), the
// router places it (a ShedError is outcome "shed", backends.ErrNoBackend
// "no_backend"), and it is submitted to the chosen backend's Core — an LLM
// request as one LLMJob (one sequence, non-streaming in the core: the
// simulator needs the first-token and done events, not every token), an
// embeddings or vision request, with batching off, as a batch of its own
// (split into batches of at most the profile's MaxBatch items, as the
// emulator shell does), and with batching fixed or adaptive through the
// backend's batcher.Core, as one member of the batches it forms (see
// batching.go). On the done event of its last part,
// router.Done(now, decision, nil) releases the router's books and the outcome
// is recorded; at its hard timeout, its jobs are cancelled in the core,
// router.Done gets backends.ErrTimeout and the outcome is "timeout" (504).
//
// Stopping answering (SimEvent.Down) is modelled as a network partition
// between the gateway and the backend, in the simulator, not in the core:
// while a backend is down, requests the router places on it never reach it
// and results it produces never come back, so those requests end at their
// hard timeout, exactly as a live gateway would see a silent node (the router
// is not told: timeouts do not eject a backend, only ErrUnavailable does).
// The device itself keeps computing what it had already received.

// simEpoch is virtual time zero: the run's start. Any fixed instant works;
// the cores and the router only compare and subtract times.
var simEpoch = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// SimOptions configures a Sim.
type SimOptions struct {
	// Policy overrides the fleet file's router policy ("" keeps it):
	// accelgate, round-robin or fastest.
	Policy string
	// Seed is mixed into every backend's jitter stream, so runs with
	// different seeds differ in jitter as well as in workload.
	Seed int64
	// Events are scenario changes, applied at their virtual times (any
	// order; they are sorted).
	Events []SimEvent
	// Batching is off, fixed or adaptive ("" too, the gateway's default):
	// see batching.go.
	Batching string
	// RowsAlone, with Batching off, runs every row alone (batch size 1):
	// a request that carries several rows runs them one after another.
	// Without it, off runs each request as sent, its rows together, as the
	// gateway's batching mode off does.
	RowsAlone bool
	// MaxQueueDelay, when positive, is fixed batching's max_queue_delay_us
	// for every model (0 keeps the fleet file's, by default
	// batcher.DefaultMaxQueueDelay).
	MaxQueueDelay time.Duration
}

// SimEvent is a scenario change at virtual time At after the run's start, on
// the backend at index Backend in the fleet file.
type SimEvent struct {
	At      time.Duration
	Backend int
	// Slowdown, when positive, makes every step and batch that starts from
	// At on last Slowdown times as long (emulator.Core.SetSlowdown); 1
	// restores the profile's speed.
	Slowdown float64
	// Down, when Slowdown is 0, makes the backend stop answering from At
	// (true) or answer again (false); see the package notes on the
	// simulator: a partition, so requests placed there meanwhile time out.
	Down bool
}

// SimBackendStats is what one backend did in a simulation.
type SimBackendStats struct {
	Placed   int64 `json:"placed"`   // requests the router placed on it
	OK       int64 `json:"ok"`       // of which completed
	Timeouts int64 `json:"timeouts"` // of which hit their hard timeout
	// Evicted is the queued requests its batcher handed back to the router
	// because they could no longer meet their SLO there (placed again).
	Evicted int64   `json:"evicted"`
	CostUSD float64 `json:"cost_usd"` // attributed cost of its completed requests
	// BusySeconds is the accelerator time spent in steps and batches
	// (emulator.Stats.BusyTime), including work for requests that timed out.
	BusySeconds float64 `json:"busy_s"`
}

// SimResult is what a Run measured besides the Recorder's report.
type SimResult struct {
	// Duration is the virtual time from the start to the last outcome (the
	// drain included): the duration to pass to Recorder.Report.
	Duration time.Duration
	// LastArrival is the virtual time of the last request.
	LastArrival time.Duration
	// Requests is the number of Items simulated.
	Requests int64
	// Backends holds per-backend statistics, in fleet order.
	Backends []SimBackendStats
	// Batches and BatchItems count the batches submitted to the cores (vision
	// and embeddings) and the items in them.
	Batches, BatchItems int64
	// Events is the number of event-loop iterations (core advances,
	// timeouts, arrivals and scenario changes).
	Events int64
}

// MeanBatchSize is the mean number of items (images, embedding inputs) per
// batch submitted to the accelerators; 0 when there were none.
func (r *SimResult) MeanBatchSize() float64 {
	if r.Batches == 0 {
		return 0
	}
	return float64(r.BatchItems) / float64(r.Batches)
}

// Sim is a built simulation: the fleet's models, one emulator.Core per
// backend and the router. It runs one workload once (Run); build a new one
// for every run.
type Sim struct {
	models   map[string]*backends.Model
	descs    []*backends.Descriptor
	cores    []*emulator.Core
	router   *router.Router
	events   []SimEvent
	ran      bool
	down     []bool
	maxBatch [][2]int // per backend: vision, embedding MaxBatch (0 = none)

	// Event-loop state.
	reqs   []*simReq // stable pointers: the batchers hold &reqs[i].req
	free   []int32
	bheap  []int32 // backend indices, min-heap on bnext
	bpos   []int32 // backend index → position in bheap
	bnext  []int64 // backend index → Core.Next in ns since the epoch (math.MaxInt64: idle)
	tmo    []tmoEntry
	evbuf  []emulator.Event
	outs   []int
	batch  emulator.BatchJob
	llmJob emulator.LLMJob
	res    SimResult

	// Batching (batching.go); batching is false with Batching off.
	batching      bool
	maxQueueDelay time.Duration       // fixed: the max queue delay in force (the largest of the models')
	bcores        []*batcher.Core     // per backend
	outstanding   [][2]int32          // per backend and class: batches dispatched, not over
	execs         [][2]int32          // per backend and class: executors (0: none)
	recs          []batchRec          // dispatched batches
	freeRecs      []int32             // free entries of recs
	ids           []string            // per slot: the batcher request ID
	polled        []batcher.Batch     // Poll's buffer
	dropped       []*backends.Request // Drop's buffer
	evicted       []*backends.Request // Evict's buffer
	members       []emulator.Member   // dispatch's buffer
	rec           *Recorder
	last          int64 // latest event time processed, ns
}

// simReq is one request in flight. Slots are reused; gen tells incarnations
// apart in job IDs and timeout entries.
type simReq struct {
	item      Item
	req       backends.Request
	model     *backends.Model
	dec       router.Decision
	gen       uint32
	live      bool
	lost      bool          // placed on a backend that is down: never submitted
	queued    bool          // in its backend's batcher
	admitted  bool          // LLM: holds sequence slots of its backend's admission queue
	evictions int8          // times a batcher handed it back to be placed again
	placedAt  time.Time     // when it was last placed
	wait      time.Duration // time spent in the batcher before dispatch
	batchRows int32         // rows of the batch it ran in (batching), 0 alone
	batchID   uint64        // the batcher's ID of that batch (batching), 0 alone
	rec       int32         // its batch's entry in Sim.recs, -1 when none
	backend   int32
	parts     int32 // jobs submitted
	left      int32 // jobs not yet done
	total     time.Duration
	ttft      time.Duration
	cost      float64
}

type tmoEntry struct {
	at   int64
	slot int32
	gen  uint32
}

const idle = math.MaxInt64

// NewSim builds a simulation of fleet f (validated with cat) — every backend
// is simulated from its hardware profile, whatever its transport — with the
// router configured by f's router section and opts.
func NewSim(f *fleet.File, cat *catalog.Catalog, opts SimOptions) (*Sim, error) {
	if f == nil || cat == nil {
		return nil, errors.New("simulate: no fleet or catalog")
	}
	s := &Sim{models: make(map[string]*backends.Model, len(f.Models))}
	for i := range f.Models {
		m := f.Models[i].Model()
		s.models[m.Name] = m
	}
	for i := range f.Backends {
		b := &f.Backends[i]
		prof, ok := cat.Get(b.Hardware)
		if !ok {
			return nil, fmt.Errorf("simulate: backends[%d].hardware: unknown profile %q", i, b.Hardware)
		}
		if opts.Batching == BatchingOff && opts.RowsAlone {
			prof = batchOfOne(prof)
		}
		d := &backends.Descriptor{
			Name: b.Name, Profile: prof, Models: append([]string(nil), b.Models...),
			Transport: b.Transport, Site: b.Site,
			RTT:          time.Duration(b.RTTMs * float64(time.Millisecond)),
			PricePerHour: prof.PricePerHour,
		}
		if b.PricePerHour != nil {
			d.PricePerHour = *b.PricePerHour
		}
		cfg := emulator.DefaultConfig()
		if b.Jitter != nil {
			cfg.JitterSigma = *b.Jitter
		}
		h := fnv.New64a()
		h.Write([]byte(b.Name))
		rng := rand.New(rand.NewPCG(uint64(b.Seed), h.Sum64()^uint64(opts.Seed)))
		s.descs = append(s.descs, d)
		s.cores = append(s.cores, emulator.NewCore(prof, d.PricePerHour, d.RTT, cfg, rng))
		var mb [2]int
		if prof.Vision != nil {
			mb[emulator.ClassVision] = max(prof.Vision.MaxBatch, 1)
		}
		if prof.Embedding != nil {
			mb[emulator.ClassEmbedding] = max(prof.Embedding.MaxBatch, 1)
		}
		s.maxBatch = append(s.maxBatch, mb)
	}
	rc := f.Router
	if opts.Policy != "" {
		rc.Policy = opts.Policy
	}
	var mode batcher.Mode
	switch opts.Batching {
	case BatchingOff:
	case BatchingFixed:
		mode = batcher.ModeFixed
	case "", BatchingAdaptive:
		mode = batcher.ModeAdaptive
	default:
		return nil, fmt.Errorf("simulate: %w", checkBatching(opts.Batching))
	}
	if opts.MaxQueueDelay < 0 {
		return nil, fmt.Errorf("simulate: max queue delay %v is negative", opts.MaxQueueDelay)
	}
	r, err := router.New(rc, s.descs, nil)
	if err != nil {
		return nil, fmt.Errorf("simulate: %w", err)
	}
	s.router = r
	if opts.Batching != BatchingOff {
		cfgs := make(map[string]batcher.Config, len(f.Models))
		for i := range f.Models {
			cfgs[f.Models[i].Name] = f.Models[i].BatchingConfig()
		}
		s.initBatching(mode, cfgs, opts.MaxQueueDelay, r.BatchPredictor())
	}
	n := len(s.descs)
	for _, ev := range opts.Events {
		if ev.Backend < 0 || ev.Backend >= n {
			return nil, fmt.Errorf("simulate: scenario event for backend %d: the fleet has %d backends", ev.Backend, n)
		}
		if ev.At < 0 {
			return nil, fmt.Errorf("simulate: scenario event at %v: before the start", ev.At)
		}
		if ev.Slowdown < 0 || math.IsNaN(ev.Slowdown) || math.IsInf(ev.Slowdown, 0) {
			return nil, fmt.Errorf("simulate: scenario slowdown %v is not a positive number", ev.Slowdown)
		}
	}
	s.events = append([]SimEvent(nil), opts.Events...)
	sortEvents(s.events)
	s.down = make([]bool, n)
	s.bheap = make([]int32, n)
	s.bpos = make([]int32, n)
	s.bnext = make([]int64, n)
	for i := range n {
		s.bheap[i], s.bpos[i], s.bnext[i] = int32(i), int32(i), idle
	}
	s.outs = make([]int, 1)
	s.batch.Members = make([]emulator.Member, 1)
	return s, nil
}

// sortEvents orders scenario events by time, keeping the given order at
// equal times (insertion sort: there are a handful).
func sortEvents(evs []SimEvent) {
	for i := 1; i < len(evs); i++ {
		for j := i; j > 0 && evs[j].At < evs[j-1].At; j-- {
			evs[j], evs[j-1] = evs[j-1], evs[j]
		}
	}
}

// Descriptors returns the simulated backends' descriptors, in fleet order.
func (s *Sim) Descriptors() []*backends.Descriptor { return s.descs }

// Run simulates src to its end and the fleet until every request has an
// outcome, recording each Item (Offered) and its Outcome in rec. A Sim runs
// once.
func (s *Sim) Run(src Source, rec *Recorder) (*SimResult, error) {
	if s.ran {
		return nil, errors.New("simulate: a Sim runs once; build a new one")
	}
	s.ran = true
	s.rec = rec
	s.res = SimResult{Backends: make([]SimBackendStats, len(s.descs))}

	// The next arrival is read ahead into its own slot.
	next := s.alloc()
	have := src.Next(&s.reqs[next].item)
	ev := 0
	for {
		tS, tB, tT, tA := int64(idle), s.bnext[s.bheap[0]], int64(idle), int64(idle)
		if ev < len(s.events) {
			tS = int64(s.events[ev].At)
		}
		for len(s.tmo) > 0 {
			e := s.tmo[0]
			if r := s.reqs[e.slot]; r.live && r.gen == e.gen {
				tT = e.at
				break
			}
			s.popTimeout()
		}
		if have {
			tA = int64(s.reqs[next].item.At)
		}
		t := min(tS, tB, tT, tA)
		if t == idle {
			break
		}
		s.res.Events++
		s.last = max(s.last, t)
		switch t {
		case tS:
			s.apply(s.events[ev])
			ev++
		case tB:
			s.advance(s.bheap[0], t)
		case tT:
			e := s.tmo[0]
			s.popTimeout()
			s.timeout(e.slot, t)
		default:
			s.arrive(next, t)
			s.res.Requests++
			s.res.LastArrival = time.Duration(t)
			next = s.alloc()
			have = src.Next(&s.reqs[next].item)
			if have && s.reqs[next].item.At < time.Duration(t) {
				return nil, fmt.Errorf("simulate: the workload went back in time (item %d at %v after %v)",
					s.reqs[next].item.Seq, s.reqs[next].item.At, time.Duration(t))
			}
		}
	}
	s.res.Duration = time.Duration(s.last)
	for i, c := range s.cores {
		s.res.Backends[i].BusySeconds = c.Stats().BusyTime.Seconds()
	}
	res := s.res
	return &res, nil
}

// alloc returns a free request slot.
func (s *Sim) alloc() int32 {
	if n := len(s.free); n > 0 {
		i := s.free[n-1]
		s.free = s.free[:n-1]
		return i
	}
	if len(s.reqs) >= maxSlots {
		panic(fmt.Sprintf("simulate: more than %d requests in flight at once", maxSlots))
	}
	s.reqs = append(s.reqs, &simReq{})
	return int32(len(s.reqs) - 1)
}

// release ends a request's incarnation and frees its slot.
func (s *Sim) release(i int32) {
	r := s.reqs[i]
	r.live = false
	r.gen++
	s.free = append(s.free, i)
}

func (s *Sim) at(ns int64) time.Time { return simEpoch.Add(time.Duration(ns)) }

// Job IDs pack a request slot (24 bits), a part number (8 bits) and the
// slot's incarnation (32 bits).
const (
	maxSlots = 1 << 24
	maxParts = 1 << 8
)

func jobID(slot int32, gen uint32, part int32) uint64 {
	return uint64(slot) | uint64(part)<<24 | uint64(gen)<<32
}

func splitJobID(id uint64) (slot int32, gen uint32) {
	return int32(id & (maxSlots - 1)), uint32(id >> 32)
}

// apply applies a scenario change at its time.
func (s *Sim) apply(ev SimEvent) {
	if ev.Slowdown > 0 {
		// Validated in NewSim, and events are applied in time order.
		if err := s.cores[ev.Backend].SetSlowdown(s.at(int64(ev.At)), ev.Slowdown); err != nil {
			panic(err)
		}
		s.fix(int32(ev.Backend))
		return
	}
	s.down[ev.Backend] = ev.Down
}

// SimRequest fills req from it, arriving at now, the way the gateway's fronts
// build a request from the harness's HTTP request: the model's default SLO
// for the item's priority (for non-streaming LLM requests, an end-to-end
// target of TTFT + TPOT × the planned output when the model sets none),
// overridden by the item's non-zero targets (the harness sends those as
// x-accelgate-slo-* headers); the hard deadline from the model's timeout,
// shortened by the item's; EstInputTokens = InputTokens, MaxTokens =
// OutputTokens, N = 1, and Rows = the embedding inputs or images. Text
// (Messages, Prompts, Inputs) is left out: the simulator needs only sizes.
// m may be nil (an unknown model): then there is no default SLO or deadline.
func SimRequest(req *backends.Request, it *Item, now time.Time, m *backends.Model) {
	*req = backends.Request{
		Op: it.Op, Model: it.Model, Priority: it.Priority, Stream: it.Stream,
		EstInputTokens: it.InputTokens, MaxTokens: it.OutputTokens, N: 1,
		Arrival: now,
	}
	if m != nil {
		req.SLO = m.SLO[min(it.Priority, backends.Sheddable)]
		if req.SLO.E2E == 0 && m.Kind == backends.ModelLLM && req.SLO.TTFT > 0 && req.SLO.TPOT > 0 {
			req.SLO.E2E = req.SLO.TTFT + time.Duration(req.ExpectedOutputTokens(m.ExpectedOutputTokens))*req.SLO.TPOT
		}
		timeout := m.Timeout
		if timeout <= 0 {
			timeout = backends.DefaultTimeout
		}
		if it.Timeout > 0 && it.Timeout < timeout {
			timeout = it.Timeout
		}
		req.Deadline = now.Add(timeout)
	}
	if it.SLO.E2E > 0 {
		req.SLO.E2E = it.SLO.E2E
	}
	if it.SLO.TTFT > 0 {
		req.SLO.TTFT = it.SLO.TTFT
	}
	if it.SLO.TPOT > 0 {
		req.SLO.TPOT = it.SLO.TPOT
	}
	switch it.Op {
	case backends.OpEmbedding:
		req.Rows = max(len(it.Inputs), 1)
	case backends.OpTensor:
		req.Rows = max(it.Images, 1)
	default:
		req.Rows = 1
		if len(it.Messages) > 0 {
			req.Prefix.SetMessages(it.Model, it.Messages, it.InputTokens)
		} else if it.Prompt != "" {
			req.Prefix.SetText(it.Model, it.Prompt, it.InputTokens)
		}
	}
}

// arrive places and submits the request in slot i at t.
func (s *Sim) arrive(i int32, t int64) {
	r := s.reqs[i]
	r.live, r.lost, r.backend, r.parts, r.left = true, false, -1, 0, 0
	r.total, r.ttft, r.cost = 0, 0, 0
	r.queued, r.wait, r.rec, r.batchRows, r.batchID = false, 0, -1, 0, 0
	r.admitted, r.evictions = false, 0
	s.rec.Offered()
	now := s.at(t)
	m := s.models[r.item.Model]
	r.model = m
	SimRequest(&r.req, &r.item, now, m)
	if m == nil || !m.Serves(r.item.Op) {
		s.finishError(i, 404, "unknown_model")
		return
	}
	dec, err := s.router.Place(now, &r.req, m, -1)
	if err != nil {
		s.placeFailed(i, err)
		return
	}
	s.pushTimeout(tmoEntry{at: int64(r.req.Deadline.Sub(simEpoch)), slot: i, gen: r.gen})
	s.start(i, dec, now)
}

// start sends request i, placed by dec at now, on its way: vision and
// embeddings requests to the backend's batcher, LLM requests through its
// admission queue (with batching; at once when slots are free and nobody
// waits, as Batcher.Admit does), then to the backend.
func (s *Sim) start(i int32, dec router.Decision, now time.Time) {
	r := s.reqs[i]
	r.dec, r.placedAt = dec, now
	b := int32(dec.Index)
	r.backend = b
	s.res.Backends[b].Placed++
	if s.batching {
		// Route, then batch or admit: the batcher sits in the gateway,
		// before the partition of a down backend (what it releases is lost
		// on the way).
		_, batch := batchClass(r.item.Op)
		if r.req.ID = s.slotID(i); batch || !s.bcores[b].TryAdmit(&r.req) {
			s.enqueue(i, b, now)
			s.fix(b)
			return
		}
		r.admitted = true
	}
	s.send(i, b, now)
}

// send submits request i to backend b's core at now.
func (s *Sim) send(i, b int32, now time.Time) {
	s.reqs[i].wait = now.Sub(s.reqs[i].req.Arrival) // held in the gateway
	if s.down[b] {
		s.reqs[i].lost = true // it never reaches the backend; it will time out
		return
	}
	if err := s.submit(i, b, now); err != nil {
		s.failSubmit(i, now, err)
		return
	}
	s.fix(b)
}

// releaseSlots gives request i's admission slots back to its backend's
// admission queue, which releases what now fits at its next poll.
func (s *Sim) releaseSlots(i int32) {
	r := s.reqs[i]
	if !r.admitted {
		return
	}
	r.admitted = false
	s.bcores[r.backend].SlotsFree(r.req.Sequences())
	s.fix(r.backend)
}

// maxSimEvictions bounds how often one request is handed back and placed
// again (the gateway's maxEvictions).
const maxSimEvictions = 3

// evict hands the requests queued on backend b that can no longer meet
// their SLO there back to the router, as the gateway does when a request
// on b finished past its end-to-end target: each is placed again (on
// another backend when one serves the model), refused when it is
// sheddable and cannot meet its SLO anywhere, and failed after
// maxSimEvictions hand-backs.
func (s *Sim) evict(b int32, now time.Time) {
	s.evicted = s.bcores[b].Evict(now, s.evicted[:0])
	for k, req := range s.evicted {
		s.evicted[k] = nil
		i := slotOf(req)
		s.unqueue(i)
		r := s.reqs[i]
		s.res.Backends[b].Evicted++
		s.router.Done(now, r.dec, router.Outcome{}) // unexecuted: nothing to learn
		if r.evictions++; r.evictions > maxSimEvictions {
			s.finishError(i, 502, "unavailable") // batcher.ErrEvicted wraps ErrUnavailable: 502
			continue
		}
		dec, err := s.router.Place(now, &r.req, r.model, int(b))
		if errors.Is(err, backends.ErrNoBackend) {
			dec, err = s.router.Place(now, &r.req, r.model, -1)
		}
		if err != nil {
			s.placeFailed(i, err)
			continue
		}
		s.start(i, dec, now)
	}
	s.fix(b)
}

// placeFailed ends request i, which the router could not place, with the
// status the gateway would answer.
func (s *Sim) placeFailed(i int32, err error) {
	var shed *router.ShedError
	switch {
	case errors.As(err, &shed):
		s.finishError(i, 429, "shed")
	case errors.Is(err, backends.ErrNoBackend):
		s.finishError(i, 503, "no_backend")
	default:
		s.finishError(i, 500, "error")
	}
}

// submit hands request i to core b as one LLM job or as batches of at most
// the profile's MaxBatch items.
func (s *Sim) submit(i, b int32, now time.Time) error {
	r := s.reqs[i]
	c := s.cores[b]
	it := &r.item
	switch it.Op {
	case backends.OpChat, backends.OpCompletion:
		s.outs[0] = it.OutputTokens
		s.llmJob = emulator.LLMJob{ID: jobID(i, r.gen, 0), PromptTokens: it.InputTokens, OutputTokens: s.outs, Prefix: &r.req.Prefix}
		if err := c.SubmitLLM(now, &s.llmJob); err != nil {
			return err
		}
		r.parts, r.left = 1, 1
		return nil
	}
	class := emulator.ClassVision
	if it.Op == backends.OpEmbedding {
		class = emulator.ClassEmbedding
	}
	mb := s.maxBatch[b][class]
	if mb == 0 {
		return fmt.Errorf("%w: %s does not serve %s", backends.ErrUnavailable, s.descs[b].Name, class)
	}
	items, tokens := r.req.Rows, 0
	if it.Op == backends.OpEmbedding {
		tokens = it.InputTokens
	}
	if (items+mb-1)/mb > maxParts {
		return fmt.Errorf("%w: %d items make more than %d batches of %d", backends.ErrBadRequest, items, maxParts, mb)
	}
	for done := 0; done < items; {
		n := min(items-done, mb)
		// Tokens are spread evenly over the items; the last part takes the
		// remainder.
		tok := tokens * n / items
		if done+n == items {
			tok = tokens - tokens*done/items
		}
		s.batch.ID = jobID(i, r.gen, r.parts)
		s.batch.Class = class
		s.batch.Members[0] = emulator.Member{JobID: s.batch.ID, Items: n, Tokens: tok}
		if err := c.SubmitBatch(now, &s.batch); err != nil {
			return err
		}
		r.parts++
		r.left++
		s.res.Batches++
		s.res.BatchItems += int64(n)
		done += n
	}
	return nil
}

// advance advances core b to t and handles the events it delivers.
func (s *Sim) advance(b int32, t int64) {
	now := s.at(t)
	s.evbuf = s.cores[b].Advance(now, s.evbuf[:0])
	for k := range s.evbuf {
		ev := &s.evbuf[k]
		if ev.Kind != emulator.EventDone {
			continue
		}
		slot, gen := splitJobID(ev.Job)
		if int(slot) >= len(s.reqs) {
			continue
		}
		r := s.reqs[slot]
		if !r.live || r.gen != gen {
			continue
		}
		if s.down[b] {
			continue // the result never comes back: the request will time out
		}
		r.total = max(r.total, ev.Timing.Total)
		r.ttft = max(r.ttft, ev.Timing.TTFT)
		r.cost += ev.CostUSD
		r.left--
		if r.left == 0 {
			s.complete(slot, now)
		}
	}
	if s.batching {
		s.pollBatcher(b, now)
	}
	s.fix(b)
}

// complete records request i's successful outcome at now.
func (s *Sim) complete(i int32, now time.Time) {
	r := s.reqs[i]
	// The router learns the backend's latency, from dispatch: the time held
	// in the batcher is the batcher's doing (as the gateway reports it). An
	// LLM request's wait for admission is the backend's queue, which the
	// router predicts: the gateway measures it from the placement.
	ro := router.Outcome{E2E: r.total, TTFT: r.ttft, BatchRows: int(r.batchRows), BatchID: r.batchID}
	llm := r.item.Op == backends.OpChat || r.item.Op == backends.OpCompletion
	if llm {
		held := r.wait - r.placedAt.Sub(r.req.Arrival) // since this placement
		ro.E2E, ro.TTFT = held+r.total, held+r.ttft
	}
	if out := r.item.OutputTokens; out > 1 && llm {
		ro.TPOT = (r.total - r.ttft) / time.Duration(out-1)
	}
	d := r.dec.Backend
	st := &s.res.Backends[r.backend]
	st.OK++
	st.CostUSD += r.cost
	// Latencies are measured from the intended send time, which is the
	// submission time: the core's Timing is measured from submission.
	s.memberEnded(i, now, true)
	o := Outcome{
		Item: &r.item, Latency: r.wait + r.total, TTFT: r.wait + r.ttft,
		Status: 200, Kind: "ok", OK: true, CostUSD: r.cost,
		Backend: d.Name, Hardware: d.Profile.Name,
		InputTokens: r.item.InputTokens,
	}
	var itl [1]time.Duration
	switch r.item.Op {
	case backends.OpChat, backends.OpCompletion:
		out := max(r.item.OutputTokens, 1)
		o.OutputTokens = out
		if r.item.Stream {
			if out > 1 {
				itl[0] = (r.total - r.ttft) / time.Duration(out-1)
				o.ITL = itl[:]
			}
		} else {
			o.TTFT = o.Latency
		}
	default:
		o.TTFT = o.Latency
	}
	// The SLO as the client saw it steers the router's margins.
	ro.SLO = sloOutcome(&o)
	s.router.Done(now, r.dec, ro)
	s.rec.Record(&o)
	s.releaseSlots(i)
	b, late := r.backend, r.req.SLO.E2E > 0 && now.Sub(r.placedAt) > r.req.SLO.E2E
	s.release(i)
	if late && s.batching {
		// It fell behind: the queued requests b can no longer serve in time
		// go back to the router (the gateway's Run does the same).
		s.evict(b, now)
	}
}

// sloOutcome judges o's SLO for the router (unknown without a target).
func sloOutcome(o *Outcome) router.SLOOutcome {
	if o.Item.SLO.Zero() {
		return router.SLOUnknown
	}
	if o.MetSLO() {
		return router.SLOMet
	}
	return router.SLOMissed
}

// timeout ends request i at its hard deadline t.
func (s *Sim) timeout(i int32, t int64) {
	r := s.reqs[i]
	now := s.at(t)
	if r.queued {
		s.bcores[r.backend].Cancel(r.req.ID)
		s.unqueue(i)
		s.fix(r.backend)
	}
	s.memberEnded(i, now, false)
	s.cancelParts(i, now)
	s.releaseSlots(i)
	s.router.Done(now, r.dec, router.Outcome{Err: backends.ErrTimeout, E2E: time.Duration(t) - r.item.At, SLO: router.SLOMissed})
	s.res.Backends[r.backend].Timeouts++
	o := Outcome{Item: &r.item, Latency: time.Duration(t) - r.item.At, Status: 504, Kind: "timeout", InputTokens: r.item.InputTokens}
	o.TTFT = o.Latency
	s.rec.Record(&o)
	s.release(i)
}

// cancelParts drops request i's jobs from its core.
func (s *Sim) cancelParts(i int32, now time.Time) {
	r := s.reqs[i]
	if r.backend < 0 || r.parts == 0 {
		return
	}
	c := s.cores[r.backend]
	for p := range r.parts {
		c.Cancel(now, jobID(i, r.gen, p))
	}
	s.fix(r.backend)
}

// finishError records request i's failure before it reached a backend.
func (s *Sim) finishError(i int32, status int, kind string) {
	r := s.reqs[i]
	o := Outcome{Item: &r.item, Status: status, Kind: kind, InputTokens: r.item.InputTokens}
	s.rec.Record(&o)
	s.release(i)
}

// Backend heap: an indexed binary min-heap of backend indices on bnext.

// fix re-keys backend b after its core changed.
func (s *Sim) fix(b int32) {
	k := int64(idle)
	if t, ok := s.cores[b].Next(); ok {
		k = int64(t.Sub(simEpoch))
	}
	if s.batching {
		if t, ok := s.bcores[b].Next(); ok {
			k = min(k, int64(t.Sub(simEpoch)))
		}
	}
	old := s.bnext[b]
	s.bnext[b] = k
	if k < old {
		s.bup(int(s.bpos[b]))
	} else if k > old {
		s.bdown(int(s.bpos[b]))
	}
}

// bless orders heap positions i and j by due time, then by backend index.
func (s *Sim) bless(i, j int) bool {
	a, b := s.bheap[i], s.bheap[j]
	if s.bnext[a] != s.bnext[b] {
		return s.bnext[a] < s.bnext[b]
	}
	return a < b
}

func (s *Sim) bswap(i, j int) {
	h := s.bheap
	h[i], h[j] = h[j], h[i]
	s.bpos[h[i]], s.bpos[h[j]] = int32(i), int32(j)
}

func (s *Sim) bup(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !s.bless(i, p) {
			return
		}
		s.bswap(i, p)
		i = p
	}
}

func (s *Sim) bdown(i int) {
	n := len(s.bheap)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		m := l
		if r := l + 1; r < n && s.bless(r, l) {
			m = r
		}
		if !s.bless(m, i) {
			return
		}
		s.bswap(i, m)
		i = m
	}
}

// Timeout heap: a binary min-heap of deadlines, then slots (deterministic
// order at equal deadlines).

func tmoLess(a, b tmoEntry) bool {
	if a.at != b.at {
		return a.at < b.at
	}
	return a.slot < b.slot
}

func (s *Sim) pushTimeout(e tmoEntry) {
	s.tmo = append(s.tmo, e)
	h := s.tmo
	i := len(h) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !tmoLess(h[i], h[p]) {
			break
		}
		h[i], h[p] = h[p], h[i]
		i = p
	}
}

func (s *Sim) popTimeout() {
	h := s.tmo
	n := len(h) - 1
	h[0] = h[n]
	h = h[:n]
	s.tmo = h
	i := 0
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		m := l
		if r := l + 1; r < n && tmoLess(h[r], h[l]) {
			m = r
		}
		if !tmoLess(h[m], h[i]) {
			return
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
}
