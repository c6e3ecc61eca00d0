package loadtest

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/accelgate/accelgate/backends"
)

// Mix is a request mix: Fill sets the request fields of an Item that the
// caller has zeroed and given its Seq and At, drawing randomness only from r.
// A Mix may keep state (the llm mix keeps its open multi-turn sessions), so
// each Source needs its own; Mixes are not safe for concurrent use.
type Mix interface {
	Fill(r *rand.Rand, it *Item)
}

// Models of the standard workloads.
const (
	ModelLLM        = "llama-3.1-8b-instruct"
	ModelEmbeddings = "bge-base-en-v1.5"
	ModelVision     = "resnet-50"
)

// The standard workloads. Their definitions are fixed so that results compare
// across versions: change one only with a new name.
//
//   - "llm": chat with ModelLLM. 70% of requests stream. Lengths follow the
//     Azure LLM inference trace 2023 (Splitwise, ISCA'24): 70% conversation
//     (median prompt ≈1,020 tokens, median output ≈129), 30% code (median
//     prompt ≈1,500, median output ≈13), lognormal (see the length
//     distributions below). 30% of requests are turns of multi-turn
//     sessions of 2–8 turns (uniform) whose Messages grow turn by turn —
//     the earlier user messages and synthesized assistant replies as long as
//     the earlier outputs, then the new user message — so consecutive turns
//     share a prefix; a session keeps one class, priority and stream
//     setting, and its next turn comes at a later arrival (open loop, at
//     most 64 sessions open; see llmMix). Single requests carry one user
//     message. InputTokens counts the messages' contents (see text.go).
//   - "embeddings": ModelEmbeddings, 1–16 inputs (uniform) of 20–500 tokens
//     each (uniform); a request's inputs are consecutive passages of the
//     corpus, like the chunks of one document.
//   - "vision": ModelVision over KServe (OpTensor), one image per request;
//     10% of requests carry 2–8 (uniform).
//   - "mixed": by count 60% llm, 20% embeddings, 20% vision, with bursty
//     arrivals (StandardArrivals: gamma, cv 2).
//
// Every workload draws priorities 20% Critical, 60% Standard, 20% Sheddable
// and sets the SLO of StandardSLO.
const (
	WorkloadLLM        = "llm"
	WorkloadEmbeddings = "embeddings"
	WorkloadVision     = "vision"
	WorkloadMixed      = "mixed"
)

// Names returns the names of the standard workloads.
func Names() []string {
	return []string{WorkloadLLM, WorkloadEmbeddings, WorkloadVision, WorkloadMixed}
}

// StandardMix returns a fresh instance of the named standard request mix.
func StandardMix(name string) (Mix, error) {
	switch name {
	case WorkloadLLM:
		return newLLMMix(), nil
	case WorkloadEmbeddings:
		return embeddingsMix{}, nil
	case WorkloadVision:
		return visionMix{}, nil
	case WorkloadMixed:
		return &mixedMix{llm: newLLMMix()}, nil
	}
	return nil, fmt.Errorf("unknown workload %q (want llm, embeddings, vision or mixed)", name)
}

// StandardArrivals returns the arrival process of the named standard
// workload at rate requests per second: Gamma(rate, 2) for "mixed", Poisson
// for the others (and for unknown names).
func StandardArrivals(name string, rate float64) Arrivals {
	if name == WorkloadMixed {
		return Gamma(rate, 2)
	}
	return Poisson(rate)
}

// Limit ends a Source after Requests items or at Duration (the first item
// intended at or after Duration is not produced), whichever comes first. A
// zero field is no limit.
type Limit struct {
	Requests int
	Duration time.Duration
}

// Standard returns the named standard workload at rate requests per second:
// NewSource(StandardArrivals(name, rate), StandardMix(name), seed, limit).
func Standard(name string, rate float64, seed int64, limit Limit) (Source, error) {
	mix, err := StandardMix(name)
	if err != nil {
		return nil, err
	}
	return NewSource(StandardArrivals(name, rate), mix, seed, limit), nil
}

// NewSource returns a Source that times Items with arr and fills them with
// mix, deterministically for seed. Arrival times and request contents draw
// from separate random streams derived from seed, so the same seed gives the
// same sequence of requests at any rate. Each Item is zeroed, given its Seq
// (from 0) and At, then filled by mix; the source ends at the limit or when
// arr returns Never.
func NewSource(arr Arrivals, mix Mix, seed int64, limit Limit) Source {
	return &source{
		arr:   arr,
		mix:   mix,
		ra:    rand.New(rand.NewPCG(uint64(seed), 0x6172_7269_7661_6c73)), // "arrivals"
		rm:    rand.New(rand.NewPCG(uint64(seed), 0x6d69_7865_7321)),      // "mixes!"
		limit: limit,
	}
}

type source struct {
	arr    Arrivals
	mix    Mix
	ra, rm *rand.Rand
	limit  Limit
	seq    int64
	at     time.Duration
	done   bool
}

func (s *source) Next(it *Item) bool {
	if s.done || (s.limit.Requests > 0 && s.seq >= int64(s.limit.Requests)) {
		return false
	}
	at := s.arr.Next(s.ra, s.at)
	if at == Never || (s.limit.Duration > 0 && at >= s.limit.Duration) {
		s.done = true
		return false
	}
	s.at = at
	*it = Item{Seq: s.seq, At: at}
	s.mix.Fill(s.rm, it)
	s.seq++
	return true
}

// SLO targets of the standard table, by priority (Critical, Standard,
// Sheddable).
var (
	sloTTFT       = [backends.NumPriorities]time.Duration{300 * time.Millisecond, 1000 * time.Millisecond, 3000 * time.Millisecond}
	sloEmbeddings = [backends.NumPriorities]time.Duration{50 * time.Millisecond, 150 * time.Millisecond, 500 * time.Millisecond}
	sloVision     = [backends.NumPriorities]time.Duration{15 * time.Millisecond, 50 * time.Millisecond, 200 * time.Millisecond}
)

// sloTPOT is the time-per-output-token target of every LLM request.
const sloTPOT = 60 * time.Millisecond

// StandardSLO returns the standard SLO for a request (critical / standard /
// sheddable):
//
//   - streaming chat and completions: TTFT 300 / 1,000 / 3,000 ms, TPOT 60 ms;
//   - non-streaming chat and completions: end to end = that TTFT + 60 ms ×
//     outputTokens;
//   - embeddings: end to end 50 / 150 / 500 ms;
//   - tensor (vision): end to end 15 / 50 / 200 ms.
//
// Priorities outside the three classes get the Sheddable targets.
func StandardSLO(op backends.Op, stream bool, p backends.Priority, outputTokens int) backends.SLO {
	if p >= backends.NumPriorities {
		p = backends.Sheddable
	}
	switch op {
	case backends.OpChat, backends.OpCompletion:
		if stream {
			return backends.SLO{TTFT: sloTTFT[p], TPOT: sloTPOT}
		}
		return backends.SLO{E2E: sloTTFT[p] + time.Duration(max(outputTokens, 0))*sloTPOT}
	case backends.OpEmbedding:
		return backends.SLO{E2E: sloEmbeddings[p]}
	case backends.OpTensor:
		return backends.SLO{E2E: sloVision[p]}
	}
	return backends.SLO{}
}

// drawPriority draws 20% Critical, 60% Standard, 20% Sheddable.
func drawPriority(r *rand.Rand) backends.Priority {
	switch r.IntN(5) {
	case 0:
		return backends.Critical
	case 4:
		return backends.Sheddable
	}
	return backends.Standard
}

// lengthDist is a lognormal token-length distribution, rounded and clamped.
type lengthDist struct {
	median, sigma float64
	lo, hi        int
}

func (d lengthDist) draw(r *rand.Rand) int {
	x := math.Round(d.median * math.Exp(d.sigma*r.NormFloat64()))
	return int(min(max(x, float64(d.lo)), float64(d.hi)))
}

// Token-length distributions of the llm workload. The medians are the Azure
// LLM inference trace 2023 summaries from the Splitwise paper (Patel et al.,
// ISCA'24; trace at github.com/Azure/AzurePublicDataset,
// AzureLLMInferenceDataset2023.md): coding median prompt ≈1,500 tokens and
// median output ≈13; conversation median prompt ≈1,020 and median output
// ≈129; inputs heavy-tailed up to ~8k. The sigmas (log-space standard
// deviations) are not published; they are this package's choice, fixed so
// results compare across versions, picked so the tails reach the paper's
// ~8k inputs while only a few percent hit the clamps:
//
//	conversation prompt  median 1,020  σ 1.0  (p90 ≈ 3,680; 2.7% clamped at 7,000)
//	conversation output  median   129  σ 0.9  (p90 ≈ 408;   0.4% clamped at 1,024)
//	code prompt          median 1,500  σ 0.8  (p90 ≈ 4,180; 2.7% clamped at 7,000)
//	code output          median    13  σ 1.2  (p90 ≈ 60,    p99 ≈ 210)
//
// Prompts are clamped to [16, 7000] tokens and outputs to [1, 1024] so every
// request fits an 8k context.
var (
	convPrompt = lengthDist{median: 1020, sigma: 1.0, lo: minPrompt, hi: maxContext}
	convOutput = lengthDist{median: 129, sigma: 0.9, lo: 1, hi: maxOutput}
	codePrompt = lengthDist{median: 1500, sigma: 0.8, lo: minPrompt, hi: maxContext}
	codeOutput = lengthDist{median: 13, sigma: 1.2, lo: 1, hi: maxOutput}
)

const (
	minPrompt  = 16   // shortest prompt (or user message) in the llm workload
	maxContext = 7000 // longest prompt, a whole session's conversation included
	maxOutput  = 1024 // most output tokens
)

// llm workload shares.
const (
	streamShare       = 0.70 // requests that stream
	convShare         = 0.70 // conversation (the rest is code)
	sessionShare      = 0.30 // requests that are turns of multi-turn sessions
	minTurns          = 2
	maxTurns          = 8
	maxOpenSessions   = 64
	newSessionOneInN  = 5 // 1/E[turns] for turns uniform on [2, 8]
	sessionIDPrefix   = "s"
	roleUser          = "user"
	roleAssistant     = "assistant"
	maxSessionMessage = 2*maxTurns - 1
)

// llmMix is the "llm" workload.
//
// Sessions: 30% of its requests are turns of multi-turn chat sessions. A
// session has 2–8 turns (uniform), one class (conversation or code), one
// priority and one stream setting, all drawn when it starts. Each turn's
// Messages are the earlier turns — the user's previous messages and
// synthesized assistant replies as long as the previous turns' output
// tokens — followed by the new user message, so turn k+1's conversation
// starts with turn k's exactly (a growing shared prefix, for measuring
// prefix affinity). Every user message draws its length from the class's
// prompt distribution; when a session's final conversation would exceed
// 7,000 tokens all its user messages and earlier outputs are scaled down
// (above floors of 16 and 1 tokens) to fit. Item.InputTokens is the whole
// conversation.
//
// Open loop: a request that is a session turn starts a new session with
// probability 1/5 (the mean of 1/turns), or while none is open, and otherwise
// continues an open session chosen uniformly — so a session's next turn
// comes at a later, random arrival — with at most 64 sessions open (at the
// cap, it always continues one). Sessions still open when the source ends
// are left unfinished.
type llmMix struct {
	open   []*session
	free   []*session // finished sessions, for reuse
	nextID int64
	idBuf  []byte
}

type session struct {
	id        string
	priority  backends.Priority
	stream    bool
	turns     int // planned turns
	done      int // turns produced so far
	user, out [maxTurns]int
	msgs      []backends.Message // the conversation up to the latest user message
	tokens    int                // content tokens in msgs
}

func newLLMMix() *llmMix { return &llmMix{} }

func (m *llmMix) Fill(r *rand.Rand, it *Item) {
	it.Op = backends.OpChat
	it.Model = ModelLLM
	if r.Float64() < sessionShare {
		m.turn(r, it)
		return
	}
	prompt, output := convPrompt, convOutput
	if r.Float64() >= convShare {
		prompt, output = codePrompt, codeOutput
	}
	it.Priority = drawPriority(r)
	it.Stream = r.Float64() < streamShare
	in, out := prompt.draw(r), output.draw(r)
	it.InputTokens, it.OutputTokens = in, out
	it.Messages = []backends.Message{{Role: roleUser, Content: corpus().text(r, in)}}
	it.SLO = StandardSLO(it.Op, it.Stream, it.Priority, out)
}

// turn fills it with the next turn of a new or open session.
func (m *llmMix) turn(r *rand.Rand, it *Item) {
	var s *session
	i := len(m.open)
	if i == 0 || (i < maxOpenSessions && r.IntN(newSessionOneInN) == 0) {
		s = m.start(r)
		m.open = append(m.open, s)
	} else {
		i = r.IntN(len(m.open))
		s = m.open[i]
	}
	c := corpus()
	if s.done > 0 {
		reply := s.out[s.done-1]
		s.msgs = append(s.msgs, backends.Message{Role: roleAssistant, Content: c.text(r, reply)})
		s.tokens += reply
	}
	user := s.user[s.done]
	s.msgs = append(s.msgs, backends.Message{Role: roleUser, Content: c.text(r, user)})
	s.tokens += user
	s.done++
	it.SessionID = s.id
	it.Turn = s.done
	it.Priority = s.priority
	it.Stream = s.stream
	it.InputTokens = s.tokens
	it.OutputTokens = s.out[s.done-1]
	it.Messages = append([]backends.Message(nil), s.msgs...)
	it.SLO = StandardSLO(it.Op, it.Stream, it.Priority, it.OutputTokens)
	if s.done == s.turns {
		last := len(m.open) - 1
		m.open[i] = m.open[last]
		m.open[last] = nil
		m.open = m.open[:last]
		clear(s.msgs)
		s.msgs = s.msgs[:0]
		m.free = append(m.free, s)
	}
}

// start draws a new session.
func (m *llmMix) start(r *rand.Rand) *session {
	var s *session
	if n := len(m.free); n > 0 {
		s = m.free[n-1]
		m.free = m.free[:n-1]
	} else {
		s = &session{msgs: make([]backends.Message, 0, maxSessionMessage)}
	}
	m.nextID++
	m.idBuf = strconv.AppendInt(append(m.idBuf[:0], sessionIDPrefix...), m.nextID, 10)
	s.id = string(m.idBuf)
	prompt, output := convPrompt, convOutput
	if r.Float64() >= convShare {
		prompt, output = codePrompt, codeOutput
	}
	s.priority = drawPriority(r)
	s.stream = r.Float64() < streamShare
	s.turns = minTurns + r.IntN(maxTurns-minTurns+1)
	s.done, s.tokens = 0, 0
	total := 0
	for k := range s.turns {
		s.user[k], s.out[k] = prompt.draw(r), output.draw(r)
		total += s.user[k]
		if k < s.turns-1 {
			total += s.out[k]
		}
	}
	if total > maxContext {
		// Scale the parts above their floors so the last turn's conversation
		// is at most maxContext tokens.
		floors := minPrompt*s.turns + (s.turns - 1)
		f := float64(maxContext-floors) / float64(total-floors)
		for k := range s.turns {
			s.user[k] = minPrompt + int(float64(s.user[k]-minPrompt)*f)
			if k < s.turns-1 {
				s.out[k] = 1 + int(float64(s.out[k]-1)*f)
			}
		}
	}
	return s
}

// embeddingsMix is the "embeddings" workload.
type embeddingsMix struct{}

func (embeddingsMix) Fill(r *rand.Rand, it *Item) {
	it.Op = backends.OpEmbedding
	it.Model = ModelEmbeddings
	it.Priority = drawPriority(r)
	var lens [16]int
	n := 1 + r.IntN(16)
	for i := range n {
		lens[i] = 20 + r.IntN(500-20+1)
		it.InputTokens += lens[i]
	}
	it.Inputs = make([]string, n)
	corpus().texts(r, lens[:n], it.Inputs)
	it.SLO = StandardSLO(it.Op, false, it.Priority, 0)
}

// visionMix is the "vision" workload.
type visionMix struct{}

func (visionMix) Fill(r *rand.Rand, it *Item) {
	it.Op = backends.OpTensor
	it.Model = ModelVision
	it.Priority = drawPriority(r)
	it.Images = 1
	if r.IntN(10) == 0 {
		it.Images = 2 + r.IntN(7)
	}
	it.SLO = StandardSLO(it.Op, false, it.Priority, 0)
}

// mixedMix is the "mixed" workload: by count 60% llm, 20% embeddings, 20% vision.
type mixedMix struct{ llm *llmMix }

func (m *mixedMix) Fill(r *rand.Rand, it *Item) {
	switch r.IntN(5) {
	case 3:
		embeddingsMix{}.Fill(r, it)
	case 4:
		visionMix{}.Fill(r, it)
	default:
		m.llm.Fill(r, it)
	}
}
