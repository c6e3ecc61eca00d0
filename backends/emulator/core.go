package emulator

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/accelgate/accelgate/backends"
)

// DefaultJitterSigma is the jitter the default fleet configures: each step and
// batch duration is multiplied by exp(N(0, 0.05)), about ±5%.
const DefaultJitterSigma = 0.05

// Config tunes a Core.
type Config struct {
	// JitterSigma is the sigma of the lognormal factor exp(N(0, sigma)) that
	// multiplies every step and batch duration (median 1). 0 disables jitter;
	// DefaultJitterSigma is the fleet's default.
	JitterSigma float64
	// NoPrefixCache turns the prefix cache off (see prefix.go).
	NoPrefixCache bool
}

// DefaultConfig returns the configuration the default fleet uses.
func DefaultConfig() Config { return Config{JitterSigma: DefaultJitterSigma} }

// BatchClass is the workload class of a batch: which BatchModel of the Profile
// times it and which executors run it.
type BatchClass uint8

// The batch workload classes.
const (
	ClassVision    BatchClass = iota // Profile.Vision (tensor models)
	ClassEmbedding                   // Profile.Embedding
	numBatchClasses
)

// String returns the class name.
func (c BatchClass) String() string {
	switch c {
	case ClassVision:
		return "vision"
	case ClassEmbedding:
		return "embedding"
	}
	return fmt.Sprintf("class(%d)", uint8(c))
}

// LLMJob is one LLM request as the core sees it: a number of sequences that
// each need a prefill of their prompt and then produce OutputTokens tokens.
// The core copies what it needs; the caller may reuse the value after Submit.
type LLMJob struct {
	ID uint64 // unique among the core's live jobs (LLM and batch members)
	// PromptTokens is the prompt size of every sequence, unless SeqPromptTokens
	// gives each its own. Each sequence is prefilled on its own (no prefix
	// sharing between the n samples of one prompt), which is conservative.
	PromptTokens int
	// SeqPromptTokens, when non-nil, is the prompt size of each sequence
	// (completions with several prompts); its length must equal OutputTokens'.
	SeqPromptTokens []int
	// OutputTokens is the number of tokens each sequence produces, first one
	// included (values below 1 count as 1); its length is the number of
	// sequences: n × prompts.
	OutputTokens []int
	// Stream asks for EventTokens entries for this job's sequences; without
	// it the job only yields EventFirstToken and EventDone.
	Stream bool
	// Prefix describes the prompt's prefixes (every sequence's, for a job
	// with one prompt; ignored with SeqPromptTokens): the prefix cache
	// skips the prefill of the longest cached one (see prefix.go).
	Prefix *backends.Prefix
}

// Member is one job's share of a batch.
type Member struct {
	JobID  uint64 // unique among the core's live jobs; events and Cancel use it
	Items  int    // items (images, inputs) it contributes; below 1 counts as 1
	Tokens int    // tokens in its items (embeddings); 0 for vision
}

// BatchJob is one batch handed to the core whole: the core never merges or
// splits batches (the caller, e.g. the gateway's batcher, forms them and keeps
// them within the BatchModel's MaxBatch). The core copies Members.
type BatchJob struct {
	ID      uint64 // for the caller's bookkeeping; not used in events
	Class   BatchClass
	Members []Member
}

// EventKind says what an Event reports.
type EventKind uint8

// The event kinds.
const (
	// EventTokens: one LLM step (prefill or decode) gave a token to each of
	// the streaming sequences in Event.Seqs.
	EventTokens EventKind = iota
	// EventFirstToken: job Event.Job's first token reached the caller.
	EventFirstToken
	// EventDone: job Event.Job finished; Event.Timing and Event.CostUSD are set.
	EventDone
)

// String returns the kind's name.
func (k EventKind) String() string {
	switch k {
	case EventTokens:
		return "tokens"
	case EventFirstToken:
		return "first-token"
	case EventDone:
		return "done"
	}
	return fmt.Sprintf("event(%d)", uint8(k))
}

// SeqRef names one sequence's token in an EventTokens.
type SeqRef struct {
	Job   uint64 // the LLM job
	Seq   int32  // the sequence's index in the job (choice order)
	Token int32  // 0-based index of the token it just got
	Last  bool   // the sequence's last token
}

// Event is something the caller observes, at At: the accelerator produced it
// RTT/2 earlier.
type Event struct {
	Kind EventKind
	At   time.Time
	Job  uint64 // EventFirstToken, EventDone
	// Seqs lists the sequences that got a token in the step (EventTokens). It
	// points into the core's buffers: valid until the next Advance.
	Seqs    []SeqRef
	Timing  backends.Timing // EventDone: measured from the job's submission
	CostUSD float64         // EventDone: the attributed cost
}

// Stats is a read-only snapshot of a core's occupancy.
type Stats struct {
	ActiveSeqs     int           // LLM sequences holding a slot (prefilling or decoding)
	WaitingSeqs    int           // LLM sequences waiting for a slot
	QueuedBatches  int           // batches waiting for an executor
	RunningBatches int           // batches on an executor
	InFlight       int           // jobs submitted but not yet arrived (RTT/2)
	Jobs           int           // live jobs: submitted, not yet delivered done or canceled
	BusyTime       time.Duration // accelerator time spent in steps and batches so far
}

type seq struct {
	job       *llmJob
	idx       int32
	prompt    int
	want      int
	got       int
	prefilled bool
	cached    int // prompt tokens served from the prefix cache
}

type llmJob struct {
	id       uint64
	stream   bool
	canceled bool
	arrived  bool
	started  bool
	gotFirst bool
	produced bool // done produced, delivery pending
	submit   time.Time
	arrive   time.Time
	start    time.Time
	first    time.Time
	left     int
	busy     float64 // attributed nanoseconds
	seqs     []seq
	prefix   backends.Prefix // N == 0: none
}

type bmember struct {
	Member
	canceled bool
	busy     float64
}

type batch struct {
	id       uint64
	class    BatchClass
	submit   time.Time
	arrive   time.Time
	start    time.Time
	arrived  bool
	running  bool
	finished bool
	items    int
	tokens   int
	live     int
	members  []bmember
}

type arrival struct {
	at  time.Time
	llm *llmJob
	b   *batch
}

type pendEvent struct {
	ev     Event
	lo, hi int // EventTokens: the refs in pendSeqs
}

type executor struct {
	b   *batch
	end time.Time
}

type pool struct {
	m     *backends.BatchModel
	exec  []executor
	queue []*batch
	qhead int
}

// stepKind is what the LLM engine is doing.
type stepKind uint8

const (
	stepIdle stepKind = iota
	stepPrefill
	stepDecode
)

// Core is the emulated accelerator's timing: a single-threaded, deterministic
// state machine. It starts no goroutines, takes no locks and never reads the
// clock; every method takes the current time, which must not go backwards
// between calls. A goroutine shell (Backend) or a discrete-event simulator
// drives it: submit jobs, ask Next when something is due, call Advance then.
type Core struct {
	pcache *prefixCache // nil: no prefix cache
	p      *backends.Profile
	price  float64 // USD per nanosecond
	half   time.Duration
	sigma  float64
	rng    *rand.Rand

	llm     map[uint64]*llmJob
	batches map[uint64]*batch // member job ID → batch

	arrivals []arrival
	ahead    int

	// LLM engine.
	maxConc  int
	waiting  []*seq
	whead    int
	active   []*seq
	step     stepKind
	stepEnd  time.Time
	firstBuf []*llmJob
	doneBuf  []*llmJob

	pools [numBatchClasses]pool

	pend     []pendEvent
	phead    int
	pendSeqs []SeqRef
	busy     time.Duration

	// Slowdown (SetSlowdown): steps and batches that start before slowAt
	// are scaled by slowOld, those that start at or after it by slowNew.
	slowAt           time.Time
	slowOld, slowNew float64
}

// NewCore returns a core for profile p at pricePerHour (USD), whose caller sits
// rtt away (half of it before a job arrives, half after a result is produced).
// rng drives the jitter; nil means a fixed seed.
func NewCore(p *backends.Profile, pricePerHour float64, rtt time.Duration, cfg Config, rng *rand.Rand) *Core {
	if rng == nil {
		rng = rand.New(rand.NewPCG(1, 2))
	}
	c := &Core{
		p:       p,
		price:   pricePerHour / 3600 / 1e9,
		half:    rtt / 2,
		sigma:   cfg.JitterSigma,
		rng:     rng,
		llm:     make(map[uint64]*llmJob),
		batches: make(map[uint64]*batch),
		slowOld: 1,
		slowNew: 1,
	}
	if p.LLM != nil {
		c.maxConc = max(p.LLM.MaxConcurrency, 1)
		if !cfg.NoPrefixCache {
			c.pcache = newPrefixCache(float64(c.maxConc) * PrefixCacheTokensPerSlot)
		}
	}
	for i, m := range []*backends.BatchModel{p.Vision, p.Embedding} {
		if m != nil {
			c.pools[i] = pool{m: m, exec: make([]executor, m.Parallelism())}
		}
	}
	return c
}

// Profile returns the hardware profile the core emulates.
func (c *Core) Profile() *backends.Profile { return c.p }

func (c *Core) live(id uint64) bool {
	if _, ok := c.llm[id]; ok {
		return true
	}
	_, ok := c.batches[id]
	return ok
}

// SubmitLLM hands an LLM job to the core at now; it arrives at now + RTT/2. It
// fails with backends.ErrUnavailable when the profile has no LLM model, and
// when the ID is already live or the job has no sequences.
func (c *Core) SubmitLLM(now time.Time, j *LLMJob) error {
	if c.p.LLM == nil {
		return fmt.Errorf("%w: profile %q does not serve LLMs", backends.ErrUnavailable, c.p.Name)
	}
	if len(j.OutputTokens) == 0 {
		return fmt.Errorf("emulator: LLM job %d has no sequences", j.ID)
	}
	if j.SeqPromptTokens != nil && len(j.SeqPromptTokens) != len(j.OutputTokens) {
		return fmt.Errorf("emulator: LLM job %d: %d prompt sizes for %d sequences", j.ID, len(j.SeqPromptTokens), len(j.OutputTokens))
	}
	if c.live(j.ID) {
		return fmt.Errorf("emulator: job ID %d is already live", j.ID)
	}
	lj := &llmJob{id: j.ID, stream: j.Stream, submit: now, left: len(j.OutputTokens), seqs: make([]seq, len(j.OutputTokens))}
	if j.Prefix != nil && j.SeqPromptTokens == nil {
		lj.prefix = *j.Prefix
	}
	for i, n := range j.OutputTokens {
		pt := j.PromptTokens
		if j.SeqPromptTokens != nil {
			pt = j.SeqPromptTokens[i]
		}
		lj.seqs[i] = seq{job: lj, idx: int32(i), prompt: max(pt, 0), want: max(n, 1)}
	}
	c.llm[j.ID] = lj
	c.pushArrival(arrival{at: now.Add(c.half), llm: lj})
	return nil
}

// SubmitBatch hands a whole batch to the core at now; it arrives at now +
// RTT/2 and runs on the class's next free executor, in FIFO order. It fails
// with backends.ErrUnavailable when the profile lacks the class, and when a
// member's ID is already live or the batch is empty.
func (c *Core) SubmitBatch(now time.Time, b *BatchJob) error {
	if int(b.Class) >= len(c.pools) || c.pools[b.Class].m == nil {
		return fmt.Errorf("%w: profile %q does not serve %s", backends.ErrUnavailable, c.p.Name, b.Class)
	}
	if len(b.Members) == 0 {
		return fmt.Errorf("emulator: batch %d has no members", b.ID)
	}
	for i, m := range b.Members {
		if c.live(m.JobID) {
			return fmt.Errorf("emulator: job ID %d is already live", m.JobID)
		}
		for _, o := range b.Members[:i] {
			if o.JobID == m.JobID {
				return fmt.Errorf("emulator: job ID %d appears twice in batch %d", m.JobID, b.ID)
			}
		}
	}
	bt := &batch{id: b.ID, class: b.Class, submit: now, members: make([]bmember, len(b.Members)), live: len(b.Members)}
	for i, m := range b.Members {
		m.Items = max(m.Items, 1)
		m.Tokens = max(m.Tokens, 0)
		bt.members[i] = bmember{Member: m}
		bt.items += m.Items
		bt.tokens += m.Tokens
		c.batches[m.JobID] = bt
	}
	c.pushArrival(arrival{at: now.Add(c.half), b: bt})
	return nil
}

func (c *Core) pushArrival(a arrival) {
	// Arrivals are FIFO: the caller's time does not go backwards.
	if n := len(c.arrivals); n > c.ahead && a.at.Before(c.arrivals[n-1].at) {
		a.at = c.arrivals[n-1].at
	}
	c.arrivals = append(c.arrivals, a)
}

// Cancel drops a job at now, wherever it is: in flight to the core, waiting,
// running (its LLM slots free up at once; a running batch finishes for its
// other members, the executor stays busy until it ends), or produced but not
// yet delivered. Time already spent on it stays in BusyTime. It reports
// whether the job was live.
func (c *Core) Cancel(now time.Time, jobID uint64) bool {
	_ = now // the core needs no time to cancel; kept for the API's symmetry
	if j, ok := c.llm[jobID]; ok {
		delete(c.llm, jobID)
		j.canceled = true
		if j.arrived && !j.produced {
			c.removeSeqs(j)
		}
		c.dropPending(jobID)
		return true
	}
	b, ok := c.batches[jobID]
	if !ok {
		return false
	}
	delete(c.batches, jobID)
	for i := range b.members {
		m := &b.members[i]
		if m.JobID != jobID || m.canceled {
			continue
		}
		m.canceled = true
		b.live--
		if !b.running && !b.finished {
			b.items -= m.Items
			b.tokens -= m.Tokens
			if b.live == 0 && b.arrived {
				c.pools[b.class].remove(b)
			}
		}
	}
	if b.finished {
		c.dropPending(jobID)
	}
	return true
}

func (p *pool) remove(b *batch) {
	q := p.queue[p.qhead:]
	for i, x := range q {
		if x == b {
			copy(q[i:], q[i+1:])
			q[len(q)-1] = nil
			p.queue = p.queue[:len(p.queue)-1]
			return
		}
	}
}

func (c *Core) removeSeqs(j *llmJob) {
	w := c.waiting[:c.whead]
	for _, s := range c.waiting[c.whead:] {
		if s.job != j {
			w = append(w, s)
		}
	}
	clear(c.waiting[len(w):])
	c.waiting = w
	a := c.active[:0]
	for _, s := range c.active {
		if s.job != j {
			a = append(a, s)
		}
	}
	clear(c.active[len(a):])
	c.active = a
}

// dropPending removes a job's undelivered events and token refs.
func (c *Core) dropPending(id uint64) {
	out := c.pend[:c.phead]
	for _, pe := range c.pend[c.phead:] {
		switch pe.ev.Kind {
		case EventTokens:
			w := pe.lo
			for _, r := range c.pendSeqs[pe.lo:pe.hi] {
				if r.Job != id {
					c.pendSeqs[w] = r
					w++
				}
			}
			pe.hi = w
			if pe.hi == pe.lo {
				continue
			}
		default:
			if pe.ev.Job == id {
				continue
			}
		}
		out = append(out, pe)
	}
	clear(c.pend[len(out):])
	c.pend = out
}

// Next returns when the next event is due: an arrival, the end of a step or a
// batch, or a result reaching the caller. ok is false when the core is idle.
func (c *Core) Next() (t time.Time, ok bool) {
	t, ok = c.nextInternal()
	if c.phead < len(c.pend) {
		if at := c.pend[c.phead].ev.At; !ok || at.Before(t) {
			t, ok = at, true
		}
	}
	return t, ok
}

func (c *Core) nextInternal() (t time.Time, ok bool) {
	consider := func(x time.Time) {
		if !ok || x.Before(t) {
			t, ok = x, true
		}
	}
	if c.ahead < len(c.arrivals) {
		consider(c.arrivals[c.ahead].at)
	}
	if c.step != stepIdle {
		consider(c.stepEnd)
	}
	for i := range c.pools {
		for _, e := range c.pools[i].exec {
			if e.b != nil {
				consider(e.end)
			}
		}
	}
	return t, ok
}

// Advance processes everything due at or before now, in time order, and
// appends to out the events that reach the caller by now, in order. Events'
// Seqs stay valid until the next Advance. Advance does not allocate once its
// buffers have grown to the load.
func (c *Core) Advance(now time.Time, out []Event) []Event {
	c.compact()
	for {
		t, ok := c.nextInternal()
		if !ok || t.After(now) {
			break
		}
		if c.step != stepIdle && !c.stepEnd.After(t) {
			c.endLLMStep(c.stepEnd)
		}
		for i := range c.pools {
			p := &c.pools[i]
			for k := range p.exec {
				if e := &p.exec[k]; e.b != nil && !e.end.After(t) {
					c.endBatch(e.b, e.end)
					e.b = nil
				}
			}
		}
		for c.ahead < len(c.arrivals) && !c.arrivals[c.ahead].at.After(t) {
			c.arrive(c.arrivals[c.ahead])
			c.arrivals[c.ahead] = arrival{}
			c.ahead++
		}
		c.schedule(t)
	}
	for c.phead < len(c.pend) && !c.pend[c.phead].ev.At.After(now) {
		pe := &c.pend[c.phead]
		ev := pe.ev
		if ev.Kind == EventTokens {
			ev.Seqs = c.pendSeqs[pe.lo:pe.hi:pe.hi]
		}
		if ev.Kind == EventDone {
			delete(c.llm, ev.Job)
			delete(c.batches, ev.Job)
		}
		out = append(out, ev)
		c.phead++
	}
	return out
}

// compact reclaims delivered events and drained FIFOs' heads.
func (c *Core) compact() {
	if c.phead > 0 {
		n := copy(c.pend, c.pend[c.phead:])
		clear(c.pend[n:])
		c.pend = c.pend[:n]
		c.phead = 0
		lo := len(c.pendSeqs)
		for _, pe := range c.pend {
			if pe.ev.Kind == EventTokens {
				lo = pe.lo
				break
			}
		}
		m := copy(c.pendSeqs, c.pendSeqs[lo:])
		c.pendSeqs = c.pendSeqs[:m]
		for i := range c.pend {
			if c.pend[i].ev.Kind == EventTokens {
				c.pend[i].lo -= lo
				c.pend[i].hi -= lo
			}
		}
	}
	if c.ahead > 0 && c.ahead*2 >= len(c.arrivals) {
		n := copy(c.arrivals, c.arrivals[c.ahead:])
		clear(c.arrivals[n:])
		c.arrivals = c.arrivals[:n]
		c.ahead = 0
	}
	if c.whead > 0 && c.whead*2 >= len(c.waiting) {
		n := copy(c.waiting, c.waiting[c.whead:])
		clear(c.waiting[n:])
		c.waiting = c.waiting[:n]
		c.whead = 0
	}
	for i := range c.pools {
		p := &c.pools[i]
		if p.qhead > 0 && p.qhead*2 >= len(p.queue) {
			n := copy(p.queue, p.queue[p.qhead:])
			clear(p.queue[n:])
			p.queue = p.queue[:n]
			p.qhead = 0
		}
	}
}

func (c *Core) arrive(a arrival) {
	if j := a.llm; j != nil {
		if j.canceled {
			return
		}
		j.arrived, j.arrive = true, a.at
		for i := range j.seqs {
			c.waiting = append(c.waiting, &j.seqs[i])
		}
		return
	}
	b := a.b
	if b.live == 0 {
		return
	}
	b.arrived, b.arrive = true, a.at
	p := &c.pools[b.class]
	p.queue = append(p.queue, b)
}

// SetSlowdown makes the accelerator factor times slower from now on: every
// LLM step and batch that starts at or after now lasts factor times its
// profile (and jitter) duration; steps and batches that started earlier keep
// their end. factor 1 restores the profile's speed, and a later call replaces
// an earlier one. It models a degraded device (thermal throttling, a noisy
// neighbour) for the simulator's scenarios. It fails, changing nothing, when
// factor is not a positive finite number or now is before the time of an
// earlier SetSlowdown.
func (c *Core) SetSlowdown(now time.Time, factor float64) error {
	if !(factor > 0) || math.IsInf(factor, 0) {
		return fmt.Errorf("emulator: slowdown factor %v is not a positive finite number", factor)
	}
	if now.Before(c.slowAt) {
		return fmt.Errorf("emulator: slowdown at %v is before the previous one at %v", now, c.slowAt)
	}
	// Steps already started keep their duration; a step not yet started that
	// is due before now (the caller has not advanced to now) still gets the
	// factor in force at its start.
	c.slowOld = c.slowdown(now)
	c.slowAt, c.slowNew = now, factor
	return nil
}

// Slowdown returns the slowdown factor in force for a step starting at t (1
// unless SetSlowdown changed it).
func (c *Core) Slowdown(t time.Time) float64 { return c.slowdown(t) }

func (c *Core) slowdown(t time.Time) float64 {
	if t.Before(c.slowAt) {
		return c.slowOld
	}
	return c.slowNew
}

// jitter scales d, a step or batch starting at t, by exp(N(0, sigma)) and the
// slowdown in force at t; it never returns less than 1ns.
func (c *Core) jitter(d time.Duration, t time.Time) time.Duration {
	if c.sigma > 0 {
		d = time.Duration(float64(d) * math.Exp(c.sigma*c.rng.NormFloat64()))
	}
	if f := c.slowdown(t); f != 1 {
		d = time.Duration(float64(d) * f)
	}
	return max(d, 1)
}

// schedule starts whatever can start at t: an LLM step when the engine is
// idle, batches on free executors.
func (c *Core) schedule(t time.Time) {
	if c.step == stepIdle {
		c.startLLMStep(t)
	}
	for i := range c.pools {
		p := &c.pools[i]
		for k := range p.exec {
			if p.qhead >= len(p.queue) {
				break
			}
			if e := &p.exec[k]; e.b == nil {
				b := p.queue[p.qhead]
				p.queue[p.qhead] = nil
				p.qhead++
				c.startBatch(b, e, t)
			}
		}
	}
}

func (c *Core) startLLMStep(t time.Time) {
	free := c.maxConc - len(c.active)
	if nw := len(c.waiting) - c.whead; nw > 0 && free > 0 {
		k := min(free, nw)
		adm := c.waiting[c.whead : c.whead+k]
		tokens := 0
		for _, s := range adm {
			if p := &s.job.prefix; p.N > 0 && c.pcache != nil {
				s.cached = c.pcache.cached(p, s.prompt)
				c.pcache.insert(p)
			}
			tokens += s.prompt - s.cached
		}
		d := c.jitter(c.p.LLM.PrefillTime(tokens), t)
		for _, s := range adm {
			j := s.job
			if !j.started {
				j.started, j.start = true, t
			}
			if tokens > 0 {
				j.busy += float64(d) * float64(s.prompt-s.cached) / float64(tokens)
			} else {
				j.busy += float64(d) / float64(k)
			}
			c.active = append(c.active, s)
		}
		clear(adm)
		c.whead += k
		c.step, c.stepEnd = stepPrefill, t.Add(d)
		c.busy += d
		return
	}
	if n := len(c.active); n > 0 {
		d := c.jitter(c.p.LLM.DecodeStep(n), t)
		share := float64(d) / float64(n)
		for _, s := range c.active {
			s.job.busy += share
		}
		c.step, c.stepEnd = stepDecode, t.Add(d)
		c.busy += d
	}
}

// endLLMStep gives the step's tokens at t: the first token to the sequences
// the prefill admitted, or one token to every active sequence after a decode.
func (c *Core) endLLMStep(t time.Time) {
	prefill := c.step == stepPrefill
	c.step = stepIdle
	at := t.Add(c.half)
	lo := len(c.pendSeqs)
	c.firstBuf, c.doneBuf = c.firstBuf[:0], c.doneBuf[:0]
	keep := c.active[:0]
	for _, s := range c.active {
		if prefill {
			if s.prefilled {
				keep = append(keep, s)
				continue
			}
			s.prefilled = true
		}
		s.got++
		j := s.job
		if !j.gotFirst {
			j.gotFirst, j.first = true, t
			c.firstBuf = append(c.firstBuf, j)
		}
		last := s.got >= s.want
		if j.stream {
			c.pendSeqs = append(c.pendSeqs, SeqRef{Job: j.id, Seq: s.idx, Token: int32(s.got - 1), Last: last})
		}
		if !last {
			keep = append(keep, s)
			continue
		}
		j.left--
		if j.left == 0 {
			j.produced = true
			c.doneBuf = append(c.doneBuf, j)
		}
	}
	clear(c.active[len(keep):])
	c.active = keep
	if hi := len(c.pendSeqs); hi > lo {
		c.pend = append(c.pend, pendEvent{ev: Event{Kind: EventTokens, At: at}, lo: lo, hi: hi})
	}
	for i, j := range c.firstBuf {
		c.pend = append(c.pend, pendEvent{ev: Event{Kind: EventFirstToken, At: at, Job: j.id}})
		c.firstBuf[i] = nil
	}
	for i, j := range c.doneBuf {
		c.pend = append(c.pend, pendEvent{ev: Event{
			Kind: EventDone, At: at, Job: j.id,
			Timing: backends.Timing{
				QueueWait: j.start.Sub(j.arrive),
				TTFT:      j.first.Add(c.half).Sub(j.submit),
				Total:     at.Sub(j.submit),
				Busy:      time.Duration(math.Round(j.busy)),
			},
			CostUSD: j.busy * c.price,
		}})
		c.doneBuf[i] = nil
	}
}

func (c *Core) startBatch(b *batch, e *executor, t time.Time) {
	d := c.jitter(c.pools[b.class].m.BatchTime(b.items, b.tokens), t)
	for i := range b.members {
		if m := &b.members[i]; !m.canceled {
			m.busy = float64(d) * float64(m.Items) / float64(b.items)
		}
	}
	b.running, b.start = true, t
	e.b, e.end = b, t.Add(d)
	c.busy += d
}

func (c *Core) endBatch(b *batch, t time.Time) {
	b.running, b.finished = false, true
	at := t.Add(c.half)
	for _, m := range b.members {
		if m.canceled {
			continue
		}
		total := at.Sub(b.submit)
		c.pend = append(c.pend, pendEvent{ev: Event{
			Kind: EventDone, At: at, Job: m.JobID,
			Timing: backends.Timing{
				QueueWait: b.start.Sub(b.arrive),
				TTFT:      total,
				Total:     total,
				Busy:      time.Duration(math.Round(m.busy)),
			},
			CostUSD: m.busy * c.price,
		}})
	}
}

// Stats returns a snapshot of the core's occupancy.
func (c *Core) Stats() Stats {
	s := Stats{
		ActiveSeqs:  len(c.active),
		WaitingSeqs: len(c.waiting) - c.whead,
		Jobs:        len(c.llm) + len(c.batches),
		BusyTime:    c.busy,
	}
	for _, a := range c.arrivals[c.ahead:] {
		if a.llm != nil && !a.llm.canceled || a.b != nil && a.b.live > 0 {
			s.InFlight++
		}
	}
	for i := range c.pools {
		p := &c.pools[i]
		s.QueuedBatches += len(p.queue) - p.qhead
		for _, e := range p.exec {
			if e.b != nil {
				s.RunningBatches++
			}
		}
	}
	return s
}
