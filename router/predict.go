package router

import (
	"time"

	"github.com/accelgate/accelgate/backends"
)

// DefaultExpectedOutputTokens is the output length placement plans for when
// neither the request (max_tokens) nor the model config says otherwise.
const DefaultExpectedOutputTokens = 256

// Prediction is what placing a request on one backend is expected to cost.
type Prediction struct {
	Wait    time.Duration // queueing before the request's first step
	TTFT    time.Duration // time to first token (LLM) or to the result
	TPOT    time.Duration // mean time per output token after the first (LLM)
	E2E     time.Duration // end to end, including the network round trip
	Busy    time.Duration // accelerator time attributed to this request
	CostUSD float64       // Busy × the backend's price per second
	// TPOTExpected is the expected time per output token (LLM), where TPOT
	// is a bound: TPOT counts every other sequence's replacement prefill
	// as stalling this request once, TPOTExpected only the share of them
	// that falls within its own output (O / Ō of them, Ō the others' mean
	// planned output). A sheddable request is refused only when even the
	// expected latencies miss its SLO.
	TPOTExpected time.Duration
	// Output is the output tokens the prediction planned for (LLM; 0
	// otherwise): what the request adds to the books' OutputTokens.
	Output int
	// TTFT95, TPOT95 and E2E95 are the latencies at the request class's
	// quantile (Config.Quantiles) that the router compares
	// with SLOs: the Router fills them from its online model (a Predictor
	// leaves them zero).
	TTFT95, TPOT95, E2E95 time.Duration
}

// Load is the work the gateway has placed on a backend and not yet seen
// finish: the router's own books, updated by Place and Done.
type Load struct {
	Seqs         int           // LLM sequences (running or queued in the backend)
	PromptTokens int           // prompt tokens of those LLM requests
	OutputTokens int           // planned output tokens of those LLM requests
	BatchWork    time.Duration // predicted service time of placed batch requests
	InFlight     int           // requests of any kind
	// PrefillBacklog is how long the backend's prefill pipeline is still
	// busy with prompts placed earlier (set by the router at decision time
	// from its books; a continuous-batching server prefills new prompts one
	// step at a time, so a new prompt waits for those ahead of it).
	PrefillBacklog time.Duration
	// CachedTokens is how many of this request's prompt tokens the backend
	// likely holds in its prefix cache (prefix affinity): they are not
	// prefilled again.
	CachedTokens int
	// RTT, when positive, is the measured network round trip to the
	// backend (health checks), used instead of the descriptor's.
	RTT time.Duration
	// BatchRows is the expected rows of the batch a vision or embeddings
	// request will run in on this backend (the router's EWMA of the batches
	// it saw; 1 or less: alone).
	BatchRows float64
}

// Predictor estimates a request's latency and cost on one backend under its
// current load. It must be pure and must not allocate: Place calls it once per
// candidate on every request. The router issue replaces the profile-based
// predictor with a learned one behind this interface.
type Predictor interface {
	Predict(req *backends.Request, m *backends.Model, d *backends.Descriptor, l Load) Prediction
}

// ProfilePredictor predicts from the hardware profile alone: the latency
// models in backends.Profile plus the router's books plus the round trip.
//
// LLM (continuous batching, s = the request's sequences, n = Seqs + s active
// after admission, capped at MaxConcurrency; O = planned output tokens):
//
//	wait  = PrefillBacklog + (0 while n fits the slots, else (excess / MaxConcurrency) × O × DecodeStep(max))
//	TTFT  = RTT + wait + PrefillTime(prompt tokens)
//	stall = PrefillTime(PromptTokens of the others): every replacement of one
//	        of the n − s other sequences prefills a prompt, and that step
//	        stalls all decodes (without Ō in the books, Ō is taken as O)
//	TPOTExpected = DecodeStep(n) + stall / Ō, Ō the others' mean planned
//	        output (OutputTokens / Seqs): each other sequence is replaced once
//	        per Ō tokens, so a request of O tokens sees O / Ō replacements of
//	        each (the stall per token is the backend's, whatever O)
//	TPOT  = DecodeStep(n) + stall / min(O, Ō): the basis of the SLO margin, a
//	        bound for a request shorter than the others (every replacement
//	        counted once, however short it is) and the expectation otherwise
//	E2E   = TTFT + (O − 1) × TPOT
//	Busy  = PrefillTime(prompt) + s × O × DecodeStep(n) / n
//
// Batch classes (vision, embeddings), with n = the expected batch rows
// (Load.BatchRows, at least the request's own rows, at most MaxBatch):
// wait = BatchWork / executors, service = BatchTime(n, tokens per row × n),
// E2E = RTT + wait + service, Busy = service × rows / n (the request's share
// of the batch; the whole service when it runs alone). A request with more
// rows than MaxBatch runs as several batches one after another.
type ProfilePredictor struct{}

var _ Predictor = ProfilePredictor{}

// Predict implements Predictor.
func (ProfilePredictor) Predict(req *backends.Request, m *backends.Model, d *backends.Descriptor, l Load) Prediction {
	var p Prediction
	profilePredict(req, m, d, &l, &p)
	return p
}

// profilePredict is ProfilePredictor.Predict writing into p, without
// copying the load and the prediction (the router calls it directly for
// the default predictor: it runs once per candidate on every request).
func profilePredict(req *backends.Request, m *backends.Model, d *backends.Descriptor, l *Load, p *Prediction) {
	*p = Prediction{}
	rtt := d.RTT
	if l.RTT > 0 {
		rtt = l.RTT
	}
	switch req.Op {
	case backends.OpChat, backends.OpCompletion:
		lm := d.Profile.LLM
		if lm == nil {
			*p = infeasible()
			return
		}
		def := m.ExpectedOutputTokens
		if def <= 0 {
			def = DefaultExpectedOutputTokens
		}
		o := req.ExpectedOutputTokens(def)
		if o < 1 {
			o = 1
		}
		s := req.Sequences()
		n := l.Seqs + s
		if n > lm.MaxConcurrency {
			excess := n - lm.MaxConcurrency
			life := time.Duration(o) * lm.DecodeStep(lm.MaxConcurrency)
			p.Wait = time.Duration(float64(life) * float64(excess) / float64(lm.MaxConcurrency))
			n = lm.MaxConcurrency
		}
		prefill := lm.PrefillTime(max(req.EstInputTokens-l.CachedTokens, 1))
		step := lm.DecodeStep(n)
		p.Wait += l.PrefillBacklog
		p.TTFT = rtt + p.Wait + prefill
		var stall time.Duration
		if others := min(l.Seqs, lm.MaxConcurrency); others > 0 {
			// The others' prompts, scaled to those that are running.
			tokens := l.PromptTokens * others / l.Seqs
			stall = lm.PrefillTime(tokens) + time.Duration(others-1)*time.Duration(lm.PrefillBaseMs*float64(time.Millisecond))
		}
		p.TPOT = step + stall/time.Duration(o)
		p.TPOTExpected = p.TPOT
		if l.OutputTokens > 0 && l.Seqs > 0 {
			mean := float64(l.OutputTokens) / float64(l.Seqs)
			p.TPOTExpected = step + time.Duration(float64(stall)/mean)
			if float64(o) > mean {
				p.TPOT = p.TPOTExpected // a long request sees the others replaced o/mean times
			}
		}
		p.E2E = p.TTFT + time.Duration(o-1)*p.TPOT
		p.Busy = prefill + time.Duration(float64(s)*float64(o)*float64(step)/float64(n))
		p.Output = s * o
	default:
		var bm *backends.BatchModel
		if req.Op == backends.OpEmbedding {
			bm = d.Profile.Embedding
		} else {
			bm = d.Profile.Vision
		}
		if bm == nil {
			*p = infeasible()
			return
		}
		items := max(req.Rows, 1)
		tokens := req.EstInputTokens
		var service time.Duration
		if n := min(max(l.BatchRows, float64(items)), float64(bm.MaxBatch)); items <= bm.MaxBatch && n > float64(items) {
			// It joins a batch of n rows (fractional: an expectation) and
			// bears its share of that batch's time.
			perRow := float64(tokens) / float64(items)
			service = time.Duration(bm.BatchMs(n, perRow*n) * float64(time.Millisecond))
			p.Busy = time.Duration(float64(service) * float64(items) / n)
		} else {
			service = bm.SplitTime(items, tokens)
			p.Busy = service
		}
		p.Wait = l.BatchWork / time.Duration(bm.Parallelism())
		p.TTFT = rtt + p.Wait + service
		p.E2E = p.TTFT
	}
	// Busy × the price per nanosecond; a multiplication where
	// Busy.Seconds() × PricePerSecond() took two divisions and was a sixth
	// of a placement's time.
	p.CostUSD = float64(p.Busy) * (d.PricePerHour * perHourToPerNs)
}

// perHourToPerNs turns a price per hour into a price per nanosecond.
const perHourToPerNs = 1 / (3600 * 1e9)

// never marks an infeasible prediction's durations.
const never = time.Duration(1<<62 - 1)

// infeasible is the prediction for hardware that cannot run the request.
func infeasible() Prediction {
	return Prediction{Wait: never, TTFT: never, TPOT: never, E2E: never, Busy: never, CostUSD: 1e300,
		TTFT95: never, TPOT95: never, E2E95: never}
}

// Feasible reports whether the hardware can run the request at all (a
// Predictor returns an infeasible prediction when the profile lacks the
// workload class).
func (p *Prediction) Feasible() bool { return p.Busy != never }

// charge is the work a placed request adds to a backend's books.
func charge(req *backends.Request, p *Prediction) Load {
	if req.Op == backends.OpChat || req.Op == backends.OpCompletion {
		return Load{Seqs: req.Sequences(), PromptTokens: req.EstInputTokens, OutputTokens: p.Output, InFlight: 1}
	}
	return Load{BatchWork: p.Busy, InFlight: 1}
}
