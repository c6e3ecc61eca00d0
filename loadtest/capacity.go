package loadtest

// Fleet capacity and the cost lower bound: one small linear program.
//
// # Request classes
//
// A standard workload is summarised by a few request classes (at most 18, for
// "mixed"), each with a share of the requests and one representative request:
//
//   - llm: {conversation, code} × {stream, non-stream} × {critical, standard,
//     sheddable}: 12 classes. Shares: convShare (70%) conversation,
//     streamShare (70%) streams, priorities 20/60/20 (drawPriority). The
//     representative prompt and output are the MEANS of the class's lengths
//     over single requests and turns of multi-turn sessions together
//     (sessionShare of requests are turns; a turn's prompt is the whole
//     conversation so far, so turns are much longer than single requests).
//     Single requests' means integrate the clamped lognormal length
//     distributions (convPrompt, convOutput, codePrompt, codeOutput);
//     session turns' means come from a fixed-seed Monte Carlo of sessions
//     drawn as llmMix.start draws them (turn-weighted, clamped to maxContext).
//   - embeddings: by priority (3 classes), mean inputs per request × mean
//     tokens per input.
//   - vision: by priority (3 classes), mean images per request.
//   - mixed: 60% llm, 20% embeddings, 20% vision of the above.
//
// Why the mean and not a high quantile: accelerator time per request is
// affine in the token counts for a fixed batch size or concurrency (the
// profiles' latency models are affine), so the mean request's busy time is
// exactly the mean busy time and the class's throughput is exact. Checking
// the SLO at the mean rather than at a tail quantile is optimistic (some
// long requests of a class would miss their SLO on hardware the bound lets
// serve it), which is the right direction for a bound: Capacity.RPS is
// meant as an upper bound on what any router can sustain on the emulated
// fleet and LowerBoundCostPer1k as a lower bound on what it must pay, not
// as predictions. Every simplification below is optimistic but one: each
// LLM request pays its whole PrefillTime, base included (3–10 ms), though
// the emulator admits all waiting sequences in one prefill step and so can
// share the base; it matches the router's and the emulator's attributed
// busy time for a lone admission and lowers μ by about 6% on the default fleet's H100.
//
// # Service rates
//
// μ[c][b] is the rate (requests per second) at which backend b serves class
// c when it serves nothing else, at the largest batch or concurrency c's SLO
// allows, with no queueing and no waiting for a batch to fill (both
// optimistic). RTT is the backend's rtt_ms; times are the profile's affine
// latency models evaluated in float64 (mean token counts are not integers).
//
// LLM (continuous batching as the emulator does it: a prefill step gives a
// sequence its first token and stalls the others, then O−1 decode steps of
// DecodeStep(n) each, n = active sequences). With P = PrefillTime(prompt),
// O = output tokens, the largest n ≤ MaxConcurrency such that
//
//	stream:     RTT + P ≤ TTFT target  and  DecodeStep(n) ≤ TPOT target
//	non-stream: RTT + P + (O−1)·DecodeStep(n) ≤ E2E target (TTFT + O × TPOT)
//
// gives
//
//	μ = n / (n·P + (O−1)·DecodeStep(n))
//
// that is, 1/μ = P + (O−1)·DecodeStep(n)/n, the accelerator time the
// emulator attributes to one request (each request pays its whole prefill,
// which stalls every other sequence; the decode steps are shared by n). The
// TPOT check ignores the prefill stalls, which lengthen a stream's mean
// inter-token gap by about n·P/(O−1) (optimistic again). μ grows with n, so
// the largest feasible n is the best for both capacity and cost.
//
// Batch classes (vision, embeddings). A request has m items (images or
// inputs; the mean) of t tokens each (embeddings; 0 for vision). A batch of
// B items takes T(B) = BaseMs + PerItemMs·B + PerKTokensMs·B·t/1000 and
// Parallelism() executors run batches at once. B is the largest batch size
// in [m, MaxBatch] with RTT + T(B) ≤ E2E target, treated as continuous (a
// time average of neighbouring integer sizes); then
//
//	μ = executors × (B/m) / T(B)
//
// and μ = 0 when not even one request fits the SLO alone (B < m). A request
// with more items than MaxBatch is split into k = ⌈m/MaxBatch⌉ batches that
// run on the executors ⌈k/executors⌉ rounds deep: μ = executors / (k·T(m/k)).
//
// μ is 0 where the backend does not list the class's model (BackendSpec.
// Models), its profile has no latency model for the class, or the class's
// model is missing from the fleet file. The transport is ignored: upstream
// backends are assumed to perform as their profile says. p[b] is the
// backend's price per second (price_per_hour_usd override honoured).
//
// # The linear programs
//
// x[c][b] ≥ 0 is the rate of class c sent to backend b (requests/s), defined
// only where μ[c][b] > 0; x[c][b]/μ[c][b] is the fraction of b's time it
// takes (time sharing).
//
// Capacity:
//
//	maximise λ  s.t.  Σ_b x[c][b] = share[c]·λ   for every class c
//	                  Σ_c x[c][b]/μ[c][b] ≤ 1    for every backend b
//
// Cost at rate λ0 ≤ RPS (the attributed-cost model: busy time × price):
//
//	minimise Σ x[c][b]·p[b]/μ[c][b]  s.t.  Σ_b x[c][b] = share[c]·λ0,
//	                                        Σ_c x[c][b]/μ[c][b] ≤ 1
//
// reported per 1,000 requests: min/λ0 × 1000. Without the capacity rows the
// bound would put everything on the cheapest node and mean nothing; with
// them it fills the cheapest-per-request backends first and spills to
// dearer ones only as their capacity runs out, so the bound rises with the
// rate.
//
// Both are solved with gonum's simplex (lp.Simplex: minimise c·z s.t.
// A z = b, z ≥ 0) in the variables y[c][b] = x[c][b]/μ[c][b] (fractions of
// backend time, all in [0, 1]) plus one slack per backend row; class rows are
// scaled to keep the coefficients near 1. The capacity program solves for
// Λ = λ/u, u = min_c Σ_b μ[c][b]/share[c] (an upper bound on λ), from the
// feasible basis y = 0, Λ = 0, slacks = 1; the cost program lets gonum find
// a basis, and a rate within 1e-6 of RPS is retried a hair lower if rounding
// makes that fail. Classes with no share and backends serving none of the
// classes take no part (their rows and columns would be empty).

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"gonum.org/v1/gonum/mat"
	"gonum.org/v1/gonum/optimize/convex/lp"

	"github.com/accelgate/accelgate/backends"
	"github.com/accelgate/accelgate/backends/catalog"
	"github.com/accelgate/accelgate/backends/fleet"
)

// ErrOverCapacity is returned (wrapped) by Capacity.LowerBoundCostPer1k for a
// rate above the fleet's SLO capacity.
var ErrOverCapacity = errors.New("rate exceeds the fleet's SLO capacity")

// Capacity is a fleet's SLO capacity for a workload and the data for its cost
// bound. Build it with FleetCapacity; it is immutable and safe for concurrent
// use.
type Capacity struct {
	// RPS is the largest rate of the workload's mix the fleet can serve with
	// every request class meeting its SLO (an upper bound: see the file
	// comment). It is 0 when some class has no backend that can meet its SLO.
	RPS float64
	// Classes are the request classes used (name, share of requests, SLO, the
	// representative request), in a fixed order.
	Classes []CapacityClass
	// Backends are the fleet's backend names in file order.
	Backends []string
	// Unservable names the classes no backend can serve within their SLO
	// (empty when RPS > 0).
	Unservable []string

	lp *capacityLP
}

// CapacityClass is one request class of a workload.
type CapacityClass struct {
	// Name is e.g. "llm/conversation/stream/critical", "embeddings/standard"
	// or "vision/sheddable".
	Name     string
	Model    string
	Op       backends.Op
	Stream   bool
	Priority backends.Priority
	// Share is the fraction of the workload's requests in the class; the
	// classes' shares sum to 1.
	Share float64
	// SLO holds the targets the class is checked against (StandardSLO; for
	// non-streaming LLM classes E2E is that of the mean output length).
	SLO backends.SLO
	// InputTokens is the mean prompt length (llm) or the mean tokens per
	// input (embeddings); OutputTokens the mean output length (llm).
	InputTokens, OutputTokens float64
	// Items is the mean number of inputs (embeddings) or images (vision) per
	// request; 1 for llm.
	Items float64
}

// CostBound is the solution of the cost program at one rate.
type CostBound struct {
	Rate      float64 // requests per second
	CostPer1k float64 // USD per 1,000 requests
	CostPerS  float64 // USD per second at Rate
	// Assign[c][b] is the rate of class c sent to backend b (requests/s).
	Assign [][]float64
	// Busy[b] is the fraction of backend b's time in use.
	Busy []float64
}

// FleetCapacity computes the SLO capacity of fleet f (validated against cat)
// for the named standard workload, and keeps what LowerBoundCostPer1k needs.
// A fleet that cannot serve some class of the workload within its SLO gets
// RPS 0 (see Unservable) and no error.
func FleetCapacity(f *fleet.File, cat *catalog.Catalog, workload string) (*Capacity, error) {
	if f == nil || cat == nil {
		return nil, errors.New("capacity: nil fleet or catalog")
	}
	classes, err := CapacityClasses(workload)
	if err != nil {
		return nil, err
	}
	kinds := make(map[string]backends.ModelKind, len(f.Models))
	for _, m := range f.Models {
		kinds[m.Name] = backends.ModelKind(m.Kind)
	}
	c := &Capacity{Classes: classes, Backends: make([]string, len(f.Backends))}
	share := make([]float64, len(classes))
	mu := make([][]float64, len(classes))
	price := make([]float64, len(f.Backends))
	for j := range f.Backends {
		b := &f.Backends[j]
		c.Backends[j] = b.Name
		prof, ok := cat.Get(b.Hardware)
		if !ok {
			return nil, fmt.Errorf("capacity: backend %q: unknown hardware profile %q", b.Name, b.Hardware)
		}
		pph := prof.PricePerHour
		if b.PricePerHour != nil {
			pph = *b.PricePerHour
		}
		price[j] = pph / 3600
	}
	for i := range classes {
		cl := &classes[i]
		share[i] = cl.Share
		mu[i] = make([]float64, len(f.Backends))
		for j := range f.Backends {
			b := &f.Backends[j]
			if !slices.Contains(b.Models, cl.Model) || kinds[cl.Model] != classKind(cl.Op) {
				continue
			}
			prof, _ := cat.Get(b.Hardware)
			mu[i][j] = serviceRate(prof, time.Duration(b.RTTMs*float64(time.Millisecond)), cl)
		}
	}
	c.lp, err = newCapacityLP(share, mu, price)
	if err != nil {
		return nil, fmt.Errorf("capacity of %s: %w", workload, err)
	}
	c.RPS = c.lp.rps
	for i, cl := range classes {
		if !slices.ContainsFunc(mu[i], func(v float64) bool { return v > 0 }) {
			c.Unservable = append(c.Unservable, cl.Name)
		}
	}
	return c, nil
}

// LowerBoundCostPer1k is the least cost per 1,000 requests at which the fleet
// can serve the workload at rate requests per second with every class meeting
// its SLO: the minimum-cost fractional assignment of the classes to backends
// within their capacity. It fails (wrapping ErrOverCapacity) when rate > RPS,
// and for a rate that is not positive.
func (c *Capacity) LowerBoundCostPer1k(rate float64) (float64, error) {
	b, err := c.LowerBound(rate)
	if err != nil {
		return 0, err
	}
	return b.CostPer1k, nil
}

// LowerBound is LowerBoundCostPer1k with the assignment that attains it.
func (c *Capacity) LowerBound(rate float64) (*CostBound, error) {
	if c == nil || c.lp == nil {
		return nil, errors.New("capacity: not computed (use FleetCapacity)")
	}
	return c.lp.cost(rate)
}

// ServiceRate is μ for class i on backend j (requests per second when j
// serves only that class; 0 when it cannot meet the class's SLO or does not
// serve it). i indexes Classes and j Backends.
func (c *Capacity) ServiceRate(i, j int) float64 {
	if c == nil || c.lp == nil {
		return 0
	}
	return c.lp.mu[i][j]
}

// classKind is the model kind that serves op.
func classKind(op backends.Op) backends.ModelKind {
	switch op {
	case backends.OpEmbedding:
		return backends.ModelEmbedding
	case backends.OpTensor:
		return backends.ModelTensor
	}
	return backends.ModelLLM
}

// serviceRate is μ of class cl on hardware prof at round trip rtt (see the
// file comment for the formulas).
func serviceRate(prof *backends.Profile, rtt time.Duration, cl *CapacityClass) float64 {
	switch cl.Op {
	case backends.OpEmbedding:
		return batchRate(prof.Embedding, rtt, cl.SLO.E2E, cl.Items, cl.InputTokens)
	case backends.OpTensor:
		return batchRate(prof.Vision, rtt, cl.SLO.E2E, cl.Items, 0)
	}
	return llmRate(prof.LLM, rtt, cl.SLO, cl.Stream, cl.InputTokens, cl.OutputTokens)
}

// llmRate is μ of an LLM class on m: requests per second at the largest
// concurrency the SLO allows.
func llmRate(m *backends.LLMModel, rtt time.Duration, slo backends.SLO, stream bool, prompt, output float64) float64 {
	if m == nil || m.MaxConcurrency < 1 {
		return 0
	}
	r := rtt.Seconds()
	p := m.PrefillMs(prompt) / 1000
	decodes := max(output-1, 0)
	for n := m.MaxConcurrency; n >= 1; n-- {
		d := m.DecodeStepMs(float64(n)) / 1000
		var ok bool
		if stream {
			ok = (slo.TTFT <= 0 || r+p <= slo.TTFT.Seconds()) && (slo.TPOT <= 0 || d <= slo.TPOT.Seconds())
		} else {
			ok = slo.E2E <= 0 || r+p+decodes*d <= slo.E2E.Seconds()
		}
		if ok {
			return float64(n) / (float64(n)*p + decodes*d)
		}
	}
	return 0
}

// batchRate is μ of a batch class on m: requests of items items (mean) with
// tokens tokens each, at the largest batch that meets e2e.
func batchRate(m *backends.BatchModel, rtt, e2e time.Duration, items, tokens float64) float64 {
	if m == nil || m.MaxBatch < 1 || items <= 0 {
		return 0
	}
	budget := math.Inf(1) // ms left for the batch
	if e2e > 0 {
		budget = (e2e - rtt).Seconds() * 1000
	}
	perItem := m.PerItemMs + m.PerKTokensMs*tokens/1000
	batchMs := func(b float64) float64 { return m.BatchMs(b, b*tokens) }
	exec := float64(m.Parallelism())
	maxB := float64(m.MaxBatch)
	if items > maxB {
		k := math.Ceil(items / maxB)
		rounds := math.Ceil(k / exec)
		t := batchMs(items / k)
		if rounds*t > budget || t <= 0 {
			return 0
		}
		return exec / (k * t) * 1000
	}
	b := maxB
	if perItem > 0 {
		b = min(maxB, (budget-m.BaseMs)/perItem)
	} else if m.BaseMs > budget {
		return 0
	}
	if b < items || batchMs(b) <= 0 {
		return 0
	}
	return exec * (b / items) / batchMs(b) * 1000
}

// Shares the standard workloads draw with inline literals in workload.go
// (drawPriority, embeddingsMix, visionMix, mixedMix); capacity_test.go checks
// them against the mixes themselves.
var priorityShares = [backends.NumPriorities]float64{0.2, 0.6, 0.2}

const (
	embMinInputs, embMaxInputs = 1, 16   // inputs per embeddings request (uniform)
	embMinTokens, embMaxTokens = 20, 500 // tokens per input (uniform)
	visionMultiShare           = 0.1     // vision requests with several images
	visionMinMulti             = 2       // images of those (uniform)
	visionMaxMulti             = 8
	mixedLLMShare              = 0.6 // the mixed workload by count
	mixedEmbeddingsShare       = 0.2
	mixedVisionShare           = 0.2
)

// CapacityClasses returns the request classes of the named standard workload
// (see the file comment); their shares sum to 1.
func CapacityClasses(workload string) ([]CapacityClass, error) {
	switch workload {
	case WorkloadLLM:
		return llmClasses(1), nil
	case WorkloadEmbeddings:
		return embeddingsClasses(1), nil
	case WorkloadVision:
		return visionClasses(1), nil
	case WorkloadMixed:
		out := llmClasses(mixedLLMShare)
		out = append(out, embeddingsClasses(mixedEmbeddingsShare)...)
		return append(out, visionClasses(mixedVisionShare)...), nil
	}
	return nil, fmt.Errorf("unknown workload %q (want llm, embeddings, vision or mixed)", workload)
}

func llmClasses(scale float64) []CapacityClass {
	lens := llmMeanLengths()
	out := make([]CapacityClass, 0, 12)
	for k, kind := range []string{"conversation", "code"} {
		kindShare := convShare
		if k == 1 {
			kindShare = 1 - convShare
		}
		for _, stream := range []bool{true, false} {
			streamName, sShare := "stream", streamShare
			if !stream {
				streamName, sShare = "non-stream", 1-streamShare
			}
			for p := range backends.NumPriorities {
				in, o := lens[k][0], lens[k][1]
				slo := StandardSLO(backends.OpChat, stream, p, 0)
				if !stream {
					slo.E2E = sloTTFT[p] + time.Duration(o*float64(sloTPOT))
				}
				out = append(out, CapacityClass{
					Name:  "llm/" + kind + "/" + streamName + "/" + p.String(),
					Model: ModelLLM, Op: backends.OpChat, Stream: stream, Priority: p,
					Share:       scale * kindShare * sShare * priorityShares[p],
					SLO:         slo,
					InputTokens: in, OutputTokens: o, Items: 1,
				})
			}
		}
	}
	return out
}

func embeddingsClasses(scale float64) []CapacityClass {
	out := make([]CapacityClass, 0, backends.NumPriorities)
	for p := range backends.NumPriorities {
		out = append(out, CapacityClass{
			Name:  "embeddings/" + p.String(),
			Model: ModelEmbeddings, Op: backends.OpEmbedding, Priority: p,
			Share:       scale * priorityShares[p],
			SLO:         StandardSLO(backends.OpEmbedding, false, p, 0),
			InputTokens: float64(embMinTokens+embMaxTokens) / 2,
			Items:       float64(embMinInputs+embMaxInputs) / 2,
		})
	}
	return out
}

func visionClasses(scale float64) []CapacityClass {
	images := (1 - visionMultiShare) + visionMultiShare*float64(visionMinMulti+visionMaxMulti)/2
	out := make([]CapacityClass, 0, backends.NumPriorities)
	for p := range backends.NumPriorities {
		out = append(out, CapacityClass{
			Name:  "vision/" + p.String(),
			Model: ModelVision, Op: backends.OpTensor, Priority: p,
			Share: scale * priorityShares[p],
			SLO:   StandardSLO(backends.OpTensor, false, p, 0),
			Items: images,
		})
	}
	return out
}

// llmMeanLengths returns the mean prompt and output tokens of conversation
// ([0]) and code ([1]) requests of the llm workload, single requests and
// session turns together. Computed once.
var llmMeanLengths = sync.OnceValue(func() [2][2]float64 {
	var out [2][2]float64
	for k, d := range [2][2]lengthDist{{convPrompt, convOutput}, {codePrompt, codeOutput}} {
		sp, so := sessionMeans(d[0], d[1], uint64(k+1))
		out[k][0] = (1-sessionShare)*d[0].mean() + sessionShare*sp
		out[k][1] = (1-sessionShare)*d[1].mean() + sessionShare*so
	}
	return out
})

// mean is the mean of the clamped lognormal (the rounding is ignored; it
// changes the mean by far less than a token), by the trapezoidal rule over
// the standard normal on [-10, 10].
func (d lengthDist) mean() float64 {
	const steps, lo, hi = 20000, -10.0, 10.0
	h := (hi - lo) / steps
	var sum float64
	for i := 0; i <= steps; i++ {
		z := lo + float64(i)*h
		x := min(max(d.median*math.Exp(d.sigma*z), float64(d.lo)), float64(d.hi))
		w := math.Exp(-z*z/2) / math.Sqrt(2*math.Pi)
		if i == 0 || i == steps {
			w /= 2
		}
		sum += w * x
	}
	return sum * h
}

// sessionMeans returns the mean prompt and output tokens of the turns of
// multi-turn sessions of one class (prompt and output distributions), by a
// fixed-seed Monte Carlo of sessions drawn as llmMix.start draws them: 2–8
// turns, every turn's user message and output from the class's
// distributions, parts scaled above their floors so the last turn's
// conversation fits maxContext. A turn's prompt is the conversation up to and
// including its user message. The mean is over turns (longer sessions weigh
// more), as a long run of the workload produces them.
func sessionMeans(prompt, output lengthDist, seed uint64) (meanPrompt, meanOutput float64) {
	const sessions = 100_000
	r := rand.New(rand.NewPCG(seed, 0x6361_7061_6369_7479)) // "capacity"
	var user, out [maxTurns]int
	var sumP, sumO, turnsAll float64
	for range sessions {
		turns := minTurns + r.IntN(maxTurns-minTurns+1)
		total := 0
		for k := range turns {
			user[k], out[k] = prompt.draw(r), output.draw(r)
			total += user[k]
			if k < turns-1 {
				total += out[k]
			}
		}
		if total > maxContext {
			floors := minPrompt*turns + (turns - 1)
			f := float64(maxContext-floors) / float64(total-floors)
			for k := range turns {
				user[k] = minPrompt + int(float64(user[k]-minPrompt)*f)
				if k < turns-1 {
					out[k] = 1 + int(float64(out[k]-1)*f)
				}
			}
		}
		conv := 0
		for k := range turns {
			conv += user[k]
			sumP += float64(conv)
			sumO += float64(out[k])
			conv += out[k]
		}
		turnsAll += float64(turns)
	}
	return sumP / turnsAll, sumO / turnsAll
}

// capacityLP is the linear program of a fleet and a workload: class shares,
// service rates mu[class][backend] (requests/s, 0 = cannot serve) and prices
// (USD per second), with the capacity solved.
type capacityLP struct {
	share []float64 // normalised to sum 1
	mu    [][]float64
	price []float64
	rps   float64
}

// lpTol is the simplex's tolerance on reduced costs.
const lpTol = 1e-10

// newCapacityLP checks the data, normalises the shares and solves the
// capacity program. Backends that serve no class with a positive share and
// classes with a zero share take no part.
func newCapacityLP(share []float64, mu [][]float64, price []float64) (*capacityLP, error) {
	if len(share) == 0 || len(mu) != len(share) {
		return nil, fmt.Errorf("capacity: %d shares and %d rows of rates", len(share), len(mu))
	}
	good := func(v float64) bool { return v >= 0 && !math.IsInf(v, 0) }
	var sum float64
	for i, s := range share {
		if !good(s) {
			return nil, fmt.Errorf("capacity: class %d: share %v", i, s)
		}
		sum += s
		if len(mu[i]) != len(price) {
			return nil, fmt.Errorf("capacity: class %d: %d rates for %d backends", i, len(mu[i]), len(price))
		}
		for j, v := range mu[i] {
			if !good(v) {
				return nil, fmt.Errorf("capacity: class %d, backend %d: rate %v", i, j, v)
			}
		}
	}
	if !(sum > 0) {
		return nil, errors.New("capacity: the shares sum to 0")
	}
	for j, p := range price {
		if !good(p) {
			return nil, fmt.Errorf("capacity: backend %d: price %v", j, p)
		}
	}
	l := &capacityLP{share: make([]float64, len(share)), mu: mu, price: price}
	for i, s := range share {
		l.share[i] = s / sum
	}
	if err := l.solveCapacity(); err != nil {
		return nil, err
	}
	return l, nil
}

// capProgram is the common structure of the two programs: the variables
// y[c][b] (fractions of backend time) where class c has a share and b a
// positive rate for it, and one slack per backend that serves any of them.
type capProgram struct {
	classes []int    // classes with a positive share
	ys      [][2]int // variable k is y[ys[k][0]][ys[k][1]]
	rowOf   []int    // backend -> its row after the class rows (-1: none)
	nb      int      // backend rows
}

// structure lays out the variables and rows; ok is false when a class with a
// share has no backend that serves it (the capacity is then 0).
func (l *capacityLP) structure() (p *capProgram, ok bool) {
	p = &capProgram{rowOf: make([]int, len(l.price))}
	for i := range p.rowOf {
		p.rowOf[i] = -1
	}
	for c, s := range l.share {
		if s == 0 {
			continue
		}
		p.classes = append(p.classes, c)
		served := false
		for b, m := range l.mu[c] {
			if m > 0 {
				served = true
				p.ys = append(p.ys, [2]int{c, b})
				if p.rowOf[b] < 0 {
					p.rowOf[b] = p.nb
					p.nb++
				}
			}
		}
		if !served {
			return nil, false
		}
	}
	return p, true
}

// matrix builds the constraint matrix: the class rows (coefficient
// classCoef(c, b) for y[c][b]), then the backend rows (Σ_c y[c][b] + slack),
// with extra zero columns between the y's and the slacks for the caller; it
// returns the matrix and the index of the first slack column.
func (p *capProgram) matrix(l *capacityLP, extra int, classCoef func(c, b int) float64) (*mat.Dense, int) {
	nc := len(p.classes)
	rows := nc + p.nb
	cols := len(p.ys) + extra + p.nb
	a := mat.NewDense(rows, cols, nil)
	row := make(map[int]int, nc)
	for r, c := range p.classes {
		row[c] = r
	}
	for k, cb := range p.ys {
		a.Set(row[cb[0]], k, classCoef(cb[0], cb[1]))
		a.Set(nc+p.rowOf[cb[1]], k, 1)
	}
	slack0 := len(p.ys) + extra
	for r := range p.nb {
		a.Set(nc+r, slack0+r, 1)
	}
	return a, slack0
}

// solveCapacity solves the capacity program for l.rps (0 when a class with a
// share has no backend).
func (l *capacityLP) solveCapacity() error {
	p, ok := l.structure()
	if !ok {
		l.rps = 0
		return nil
	}
	// u bounds λ from above (each class alone on every backend that serves
	// it); the program solves for Λ = λ/u ∈ [0, 1].
	u := math.Inf(1)
	for _, c := range p.classes {
		var s float64
		for _, m := range l.mu[c] {
			s += m
		}
		u = min(u, s/l.share[c])
	}
	// Class row c, divided by share[c]·u: Σ_b μ/(share·u)·y − Λ = 0.
	a, slack0 := p.matrix(l, 1, func(c, b int) float64 { return l.mu[c][b] / (l.share[c] * u) })
	nc := len(p.classes)
	lam := len(p.ys)
	for r := range nc {
		a.Set(r, lam, -1)
	}
	rows, cols := a.Dims()
	obj := make([]float64, cols)
	obj[lam] = -1
	rhs := make([]float64, rows)
	for r := nc; r < rows; r++ {
		rhs[r] = 1
	}
	// A feasible basis: y = 0, Λ = 0 with one y per class row (value 0) and
	// every slack (value 1).
	basic := make([]int, 0, rows)
	for _, c := range p.classes {
		for k, cb := range p.ys {
			if cb[0] == c {
				basic = append(basic, k)
				break
			}
		}
	}
	for r := range p.nb {
		basic = append(basic, slack0+r)
	}
	_, z, err := lp.Simplex(obj, a, rhs, lpTol, basic)
	if err != nil {
		return fmt.Errorf("capacity program: %w", err)
	}
	l.rps = max(z[lam], 0) * u
	return nil
}

// cost solves the cost program at rate.
func (l *capacityLP) cost(rate float64) (*CostBound, error) {
	if !(rate > 0) || math.IsInf(rate, 0) {
		return nil, fmt.Errorf("cost bound: rate %v req/s must be positive", rate)
	}
	if rate > l.rps*(1+1e-9) {
		return nil, fmt.Errorf("cost bound at %.6g req/s: %w (%.6g req/s)", rate, ErrOverCapacity, l.rps)
	}
	p, _ := l.structure()
	pmax := slices.Max(l.price)
	if pmax == 0 {
		pmax = 1
	}
	// Near the capacity the feasible set shrinks to (a face around) the
	// capacity program's optimum and phase I may miss it by rounding: there,
	// retry a hair below the rate.
	tries := []float64{1}
	if rate >= l.rps*(1-1e-6) {
		tries = append(tries, 1-1e-9, 1-1e-7)
	}
	var z []float64
	var err error
	for _, f := range tries {
		at := min(rate, l.rps) * f
		// Class row c, divided by share[c]·at: Σ_b μ/(share·at)·y = 1.
		a, _ := p.matrix(l, 0, func(c, b int) float64 { return l.mu[c][b] / (l.share[c] * at) })
		rows, cols := a.Dims()
		obj := make([]float64, cols)
		for k, cb := range p.ys {
			obj[k] = l.price[cb[1]] / pmax
		}
		rhs := make([]float64, rows)
		for r := range rhs {
			rhs[r] = 1
		}
		if _, z, err = lp.Simplex(obj, a, rhs, lpTol, nil); err == nil {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("cost program at %.6g req/s: %w", rate, err)
	}
	out := &CostBound{Rate: rate, Assign: make([][]float64, len(l.mu)), Busy: make([]float64, len(l.price))}
	for c := range out.Assign {
		out.Assign[c] = make([]float64, len(l.price))
	}
	for k, cb := range p.ys {
		y := max(z[k], 0)
		out.Assign[cb[0]][cb[1]] = y * l.mu[cb[0]][cb[1]]
		out.Busy[cb[1]] += y
		out.CostPerS += y * l.price[cb[1]]
	}
	out.CostPer1k = out.CostPerS / rate * 1000
	return out, nil
}
