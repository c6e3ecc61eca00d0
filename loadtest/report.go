package loadtest

import (
	"encoding/json"
	"io"
	"math"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/accelgate/accelgate/backends"
)

// Histogram geometry. Values are recorded in microseconds; anything outside
// [0, histMaxUS] is clamped, so recording never fails (and never allocates).
const (
	histMaxUS       = int64(time.Hour / time.Microsecond)
	histSigFigs     = 3 // whole-run histograms: 0.1% relative precision
	windowSigFigs   = 2 // per-second and recent-window histograms: 1%
	seriesWindow    = 128
	recentWindow    = 5 * time.Second
	maxSeriesSecond = 7 * 24 * 3600 // clamp for absurd Item.At values (bounds the series at ~24 MB)
	cdfMaxPoints    = 400
)

// RecorderOptions configures a Recorder.
type RecorderOptions struct {
	// Name labels the report: the target (a URL or fleet name) or, for
	// simulations, the placement policy. It becomes RunReport.Name.
	Name string
	// Observe, when set, sees every outcome as it is recorded (under the
	// Recorder's lock, one at a time): per-request analyses such as
	// comparing two runs of the same workload request by request. It must
	// not keep o or o.ITL past the call.
	Observe func(o *Outcome)
}

// Progress is a cheap snapshot of a running Recorder, for a live progress
// line.
type Progress struct {
	Sent    int64         // requests offered so far (Offered calls, or outcomes recorded if more)
	OK      int64         // successful outcomes recorded
	Errors  int64         // outcomes that were not OK, shed ones included
	P99     time.Duration // p99 latency of OK responses completed in the last 5–10 s of run time (0 when none)
	Elapsed time.Duration // wall-clock time since the first Offered or Record call
}

// Recorder folds Outcomes into bounded-memory statistics (HDR histograms,
// counters and a per-second series) and produces a RunReport. All methods are
// safe for concurrent use. Record takes a single short mutex-protected
// critical section and does not allocate in steady state; memory does not
// grow with the number of requests (only the per-second series grows, by a few
// words per second of run time).
type Recorder struct {
	name    string
	observe func(*Outcome)
	created time.Time
	offered atomic.Int64
	started atomic.Int64 // nanoseconds after created of the first Offered/Record, +1; 0 = not yet

	mu sync.Mutex

	recorded int64
	ok       int64
	shed     int64
	notOK    int64
	met      int64
	lastAt   time.Duration // the latest intended send time (Item.At) recorded
	byPrio   [backends.NumPriorities]struct{ n, met int64 }
	errors   map[string]int64
	hardware map[string]*hwAcc

	costUSD float64 // attributed cost of every outcome
	tokens  int64   // input + output tokens of OK outcomes

	latency *hdrhistogram.Histogram
	ttft    *hdrhistogram.Histogram
	itl     *hdrhistogram.Histogram
	// turnTTFT is the TTFT of streamed later turns of multi-turn sessions (Turn ≥ 2,
	// whose prompts share a prefix with an earlier turn): where prefix
	// affinity shows.
	turnTTFT *hdrhistogram.Histogram

	series []seriesPoint
	ring   [seriesWindow]ringSlot

	recentIdx  int64 // completion-time window index of recent[0]
	recent     [2]*hdrhistogram.Histogram
	recentTemp *hdrhistogram.Histogram
}

type hwAcc struct {
	requests int64
	costUSD  float64
}

type seriesPoint struct {
	sent, ok, errors int64
	p99US            int64
	hasP99           bool
}

// ringSlot holds the latency histogram of one second of the series while
// outcomes for it may still arrive.
type ringSlot struct {
	sec  int64 // -1 when unused
	hist *hdrhistogram.Histogram
}

// NewRecorder returns an empty Recorder.
func NewRecorder(opts RecorderOptions) *Recorder {
	r := &Recorder{
		name:       opts.Name,
		observe:    opts.Observe,
		created:    time.Now(),
		errors:     make(map[string]int64),
		hardware:   make(map[string]*hwAcc),
		latency:    newHist(histSigFigs),
		ttft:       newHist(histSigFigs),
		turnTTFT:   newHist(histSigFigs),
		itl:        newHist(histSigFigs),
		recent:     [2]*hdrhistogram.Histogram{newHist(windowSigFigs), newHist(windowSigFigs)},
		recentTemp: newHist(windowSigFigs),
	}
	for i := range r.ring {
		r.ring[i].sec = -1
	}
	return r
}

func newHist(sigFigs int) *hdrhistogram.Histogram {
	return hdrhistogram.New(1, histMaxUS, sigFigs)
}

// toUS converts a duration to whole microseconds, clamped to the histograms'
// range.
func toUS(d time.Duration) int64 {
	v := int64(d / time.Microsecond)
	if v < 0 {
		return 0
	}
	if v > histMaxUS {
		return histMaxUS
	}
	return v
}

func (r *Recorder) markStarted() {
	if r.started.Load() == 0 {
		r.started.CompareAndSwap(0, int64(time.Since(r.created))+1)
	}
}

// Offered counts a request the generator intended to send. Call it once per
// Item, before its Outcome is recorded; offered requests that never get an
// Outcome count as SLO misses.
func (r *Recorder) Offered() {
	r.markStarted()
	r.offered.Add(1)
}

// Record folds one Outcome into the statistics. It keeps nothing that o points
// to (o.ITL may be reused by the caller; strings used as map keys are copied
// the first time they are seen).
func (r *Recorder) Record(o *Outcome) {
	r.markStarted()
	var (
		prio  = -1
		at    time.Duration
		metOK bool
	)
	if o.Item != nil {
		prio = int(o.Item.Priority)
		at = o.Item.At
		metOK = o.MetSLO()
	}
	sec := int64(at / time.Second)
	if sec < 0 {
		sec = 0
	} else if sec > maxSeriesSecond {
		sec = maxSeriesSecond
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	if r.observe != nil {
		r.observe(o)
	}

	r.recorded++
	if at > r.lastAt {
		r.lastAt = at
	}
	if prio >= 0 && prio < len(r.byPrio) {
		r.byPrio[prio].n++
		if metOK {
			r.byPrio[prio].met++
		}
	}
	if metOK {
		r.met++
	}
	r.costUSD += o.CostUSD
	if o.Hardware != "" {
		h := r.hardware[o.Hardware]
		if h == nil {
			h = &hwAcc{}
			r.hardware[strings.Clone(o.Hardware)] = h
		}
		h.requests++
		h.costUSD += o.CostUSD
	}

	for int64(len(r.series)) <= sec {
		r.series = append(r.series, seriesPoint{})
	}
	p := &r.series[sec]
	p.sent++

	if !o.OK {
		r.notOK++
		p.errors++
		if o.Kind == "shed" {
			r.shed++
		}
		r.countError(o)
		return
	}

	r.ok++
	p.ok++
	r.tokens += int64(o.InputTokens) + int64(o.OutputTokens)
	lat := toUS(o.Latency)
	r.latency.RecordValue(lat)
	r.ttft.RecordValue(toUS(o.TTFT))
	if o.Item != nil && o.Item.Turn >= 2 && o.Item.Stream {
		r.turnTTFT.RecordValue(toUS(o.TTFT))
	}
	for _, g := range o.ITL {
		r.itl.RecordValue(toUS(g))
	}
	r.recordSecond(sec, lat)
	r.recordRecent(at+o.Latency, lat)
}

// countError counts a non-OK outcome under its Kind, or a kind derived from
// its status when the Kind is empty.
func (r *Recorder) countError(o *Outcome) {
	if o.Kind != "" {
		if _, ok := r.errors[o.Kind]; ok {
			r.errors[o.Kind]++
			return
		}
		r.errors[strings.Clone(o.Kind)] = 1
		return
	}
	var k string
	switch {
	case o.Status >= 1000:
		k = "grpc_" + strconv.Itoa(o.Status-1000)
	case o.Status > 0:
		k = "http_" + strconv.Itoa(o.Status)
	default:
		k = "error"
	}
	r.errors[k]++
}

// recordSecond adds an OK latency to the histogram of the second its item was
// meant to be sent in. Only the last seriesWindow seconds have live
// histograms; when a newer second needs a slot, the older second it held is
// finalized (its p99 stored in the series).
func (r *Recorder) recordSecond(sec, lat int64) {
	s := &r.ring[sec%seriesWindow]
	switch {
	case s.sec == sec:
	case s.sec < sec:
		if s.sec >= 0 {
			r.series[s.sec].p99US = s.hist.ValueAtQuantile(99)
			r.series[s.sec].hasP99 = true
			s.hist.Reset()
		} else if s.hist == nil {
			s.hist = newHist(windowSigFigs)
		}
		s.sec = sec
	default: // too late: the second's p99 is already final
		return
	}
	s.hist.RecordValue(lat)
}

// recordRecent adds an OK latency to the completion-time windows behind
// Progress.P99.
func (r *Recorder) recordRecent(done time.Duration, lat int64) {
	w := int64(done / recentWindow)
	switch d := w - r.recentIdx; {
	case d == 0:
		r.recent[0].RecordValue(lat)
	case d == -1:
		r.recent[1].RecordValue(lat)
	case d == 1:
		r.recent[0], r.recent[1] = r.recent[1], r.recent[0]
		r.recent[0].Reset()
		r.recentIdx = w
		r.recent[0].RecordValue(lat)
	case d > 1:
		r.recent[0].Reset()
		r.recent[1].Reset()
		r.recentIdx = w
		r.recent[0].RecordValue(lat)
	}
}

// Progress returns a snapshot for a live progress line. It is cheap enough to
// call every second.
func (r *Recorder) Progress() Progress {
	var p Progress
	if s := r.started.Load(); s > 0 {
		p.Elapsed = time.Since(r.created) - time.Duration(s-1)
	}
	offered := r.offered.Load()
	r.mu.Lock()
	defer r.mu.Unlock()
	p.Sent = max(offered, r.recorded)
	p.OK = r.ok
	p.Errors = r.notOK
	t := r.recentTemp
	t.Reset()
	t.Merge(r.recent[0])
	t.Merge(r.recent[1])
	p.P99 = time.Duration(t.ValueAtQuantile(99)) * time.Microsecond
	return p
}

// Percentiles is a latency distribution summary in milliseconds (microsecond
// resolution; HDR histogram values, accurate to 3 significant digits).
type Percentiles struct {
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p999"`
	Max  float64 `json:"max"`
}

// PriorityAttainment is the SLO attainment of each request class; a class
// with no recorded requests is nil (JSON null).
type PriorityAttainment struct {
	Critical  *float64 `json:"critical"`
	Standard  *float64 `json:"standard"`
	Sheddable *float64 `json:"sheddable"`
}

// Get returns the attainment of class p and whether the class had requests.
func (a PriorityAttainment) Get(p backends.Priority) (float64, bool) {
	var v *float64
	switch p {
	case backends.Critical:
		v = a.Critical
	case backends.Standard:
		v = a.Standard
	case backends.Sheddable:
		v = a.Sheddable
	}
	if v == nil {
		return 0, false
	}
	return *v, true
}

// HardwareShare is what one hardware profile served.
type HardwareShare struct {
	Requests int64   `json:"requests"` // outcomes that reported this profile (x-accelgate-hardware)
	CostUSD  float64 `json:"cost_usd"` // their attributed cost, summed
}

// TimePoint is one second of the run, by intended send time.
type TimePoint struct {
	T      int64   `json:"t"`      // second index from the run start (Item.At / 1 s)
	Sent   int64   `json:"sent"`   // outcomes recorded for items meant to be sent in this second
	OK     int64   `json:"ok"`     // of which OK
	Errors int64   `json:"errors"` // of which not OK (shed included)
	P99MS  float64 `json:"p99_ms"` // p99 latency of the OK ones, ms (0 when none)
}

// CDFPoint is one point of a latency CDF: Fraction of OK responses completed
// within LatencyMS.
type CDFPoint struct {
	LatencyMS float64
	Fraction  float64
}

// RunReport is the result of one load-test run or simulation. Live runs and
// simulations share this schema; it is written as JSON with WriteJSON. Fields:
//
//   - name: the run's label (RecorderOptions.Name: the target, or the
//     simulated placement policy).
//   - requests: requests offered, i.e. Items the generator intended to send
//     (Recorder.Offered calls; at least the number of outcomes recorded).
//   - ok: successful responses.
//   - shed: requests refused up front by the gateway (Outcome.Kind "shed",
//     HTTP 429).
//   - errors: every outcome that was not OK, counted by Outcome.Kind
//     ("shed", "timeout", "no_backend", "http_503", "conn_error", …; when the
//     kind is empty, "http_<status>", "grpc_<code>" or "error"). Shed
//     requests appear here too, so ok + the sum of errors = outcomes
//     recorded; requests − that sum = offered requests that never completed.
//   - duration_s: the run's duration in seconds, as passed to Report
//     (wall-clock for live runs, virtual time for simulations).
//   - window_s: the offered window in seconds, from the run's start to the
//     latest intended send time (Item.At) of a recorded outcome: how long
//     the workload offered load. duration_s when that is 0 (every item due
//     at once), or when it exceeds duration_s.
//   - throughput_rps: ok / duration_s.
//   - goodput_rps: requests that met their SLO (Outcome.MetSLO) per second
//     of the offered window: met / window_s, the steady-state rate at which
//     offered requests are served within their SLO. The window, not
//     duration_s, because duration_s includes the drain after the last
//     arrival, which in a short run decides the figure: a policy that
//     serves every request within its SLO but uses the latency the SLO
//     allows (a cheap, queued backend) drains longer than one that runs
//     everything on the fastest hardware. met / duration_s (vLLM's
//     benchmark calls that goodput) is slo_attainment × requests /
//     duration_s.
//   - slo_attainment: requests that met their SLO ÷ requests offered, in
//     [0, 1]. Shed, failed, timed-out and never-completed requests are
//     misses.
//   - attainment_by_priority: the same per request class ("critical",
//     "standard", "sheddable"), over the outcomes recorded for that class
//     (offered requests that never completed have no known class and only
//     lower the overall figure); null for a class with no requests.
//   - latency_ms: end-to-end latency of OK responses, in milliseconds,
//     measured from the intended send time (so queueing in the generator or
//     server is not hidden): "p50", "p90", "p99", "p999" (99.9th
//     percentile) and "max". From an HDR histogram with microsecond
//     resolution and 3 significant digits (values above 1 h are clamped).
//   - ttft_ms: time to first token of OK responses, same keys and
//     precision; for non-streaming responses it equals their latency.
//   - itl_ms: inter-token latency (gaps between consecutive content tokens)
//     of OK streams, same keys and precision; zeros when there were no
//     streams.
//   - cost_usd_per_1k: attributed cost (the gateway's x-accelgate-cost-usd,
//     summed over all outcomes) per 1,000 OK responses.
//   - cost_usd_per_1m_tokens: the same cost per million tokens served
//     (input + output tokens of OK responses).
//   - by_hardware: per hardware profile (x-accelgate-hardware), the
//     outcomes placed there ("requests") and their summed attributed cost
//     ("cost_usd"); outcomes with no profile (shed, connection errors) are
//     not listed. Shares are each entry ÷ the sum over entries.
//   - timeseries: one entry per second of intended send time, from 0 to the
//     last second with an outcome: "t" (second index), "sent" (outcomes of
//     items meant to be sent in that second), "ok", "errors" (not OK, shed
//     included) and "p99_ms" (p99 latency of that second's OK responses, 0
//     when none; responses arriving more than 128 s of send time after
//     their second are counted but left out of its p99).
type RunReport struct {
	Name                 string             `json:"name"`
	Requests             int64              `json:"requests"`
	OK                   int64              `json:"ok"`
	Shed                 int64              `json:"shed"`
	Errors               map[string]int64   `json:"errors"`
	DurationS            float64            `json:"duration_s"`
	WindowS              float64            `json:"window_s"`
	ThroughputRPS        float64            `json:"throughput_rps"`
	GoodputRPS           float64            `json:"goodput_rps"`
	SLOAttainment        float64            `json:"slo_attainment"`
	AttainmentByPriority PriorityAttainment `json:"attainment_by_priority"`
	LatencyMS            Percentiles        `json:"latency_ms"`
	TTFTMS               Percentiles        `json:"ttft_ms"`
	// SessionTTFTMS is ttft_ms over streamed later turns of multi-turn sessions
	// (turn 2 on), which share a prompt prefix with an earlier turn; absent
	// when there were none.
	SessionTTFTMS      *Percentiles             `json:"session_ttft_ms,omitempty"`
	ITLMS              Percentiles              `json:"itl_ms"`
	CostUSDPer1K       float64                  `json:"cost_usd_per_1k"`
	CostUSDPer1MTokens float64                  `json:"cost_usd_per_1m_tokens"`
	ByHardware         map[string]HardwareShare `json:"by_hardware"`
	Timeseries         []TimePoint              `json:"timeseries"`

	// LatencyCDF is the latency distribution of OK responses, downsampled
	// from the HDR histogram, for WriteHTML's CDF chart. It is not part of
	// the JSON schema: reports decoded from JSON have none, and WriteHTML
	// then plots the percentiles in LatencyMS instead.
	LatencyCDF []CDFPoint `json:"-"`
}

// goodputPerDuration is the requests that met their SLO per second of the
// whole run, drain included (what vLLM's benchmark calls goodput); 0 for a
// run of no duration.
func (rep *RunReport) goodputPerDuration() float64 {
	if rep.DurationS <= 0 {
		return 0
	}
	return rep.SLOAttainment * float64(rep.Requests) / rep.DurationS
}

// Report summarizes everything recorded so far. duration is the run's length
// (wall-clock for live runs, virtual for simulations); rates are per second
// of it. Report does not reset the Recorder and may be called while outcomes
// are still being recorded.
func (r *Recorder) Report(duration time.Duration) *RunReport {
	offered := r.offered.Load()
	r.mu.Lock()
	defer r.mu.Unlock()

	rep := &RunReport{
		Name:      r.name,
		Requests:  max(offered, r.recorded),
		OK:        r.ok,
		Shed:      r.shed,
		Errors:    make(map[string]int64, len(r.errors)),
		DurationS: duration.Seconds(),
		LatencyMS: percentilesOf(r.latency),
		TTFTMS:    percentilesOf(r.ttft),
		SessionTTFTMS: func() *Percentiles {
			if r.turnTTFT.TotalCount() == 0 {
				return nil
			}
			p := percentilesOf(r.turnTTFT)
			return &p
		}(),
		ITLMS:      percentilesOf(r.itl),
		ByHardware: make(map[string]HardwareShare, len(r.hardware)),
		Timeseries: make([]TimePoint, len(r.series)),
		LatencyCDF: cdfOf(r.latency),
	}
	for k, v := range r.errors {
		rep.Errors[k] = v
	}
	if rep.DurationS > 0 {
		rep.ThroughputRPS = float64(r.ok) / rep.DurationS
		rep.WindowS = rep.DurationS
		if w := r.lastAt.Seconds(); w > 0 && w < rep.DurationS {
			rep.WindowS = w
		}
		rep.GoodputRPS = float64(r.met) / rep.WindowS
	}
	if rep.Requests > 0 {
		rep.SLOAttainment = float64(r.met) / float64(rep.Requests)
	}
	att := [...]**float64{&rep.AttainmentByPriority.Critical, &rep.AttainmentByPriority.Standard, &rep.AttainmentByPriority.Sheddable}
	for i, dst := range att {
		if c := r.byPrio[i]; c.n > 0 {
			v := float64(c.met) / float64(c.n)
			*dst = &v
		}
	}
	if r.ok > 0 {
		rep.CostUSDPer1K = r.costUSD / float64(r.ok) * 1000
	}
	if r.tokens > 0 {
		rep.CostUSDPer1MTokens = r.costUSD / float64(r.tokens) * 1e6
	}
	for k, h := range r.hardware {
		rep.ByHardware[k] = HardwareShare{Requests: h.requests, CostUSD: h.costUSD}
	}
	for i, p := range r.series {
		tp := TimePoint{T: int64(i), Sent: p.sent, OK: p.ok, Errors: p.errors}
		if p.hasP99 {
			tp.P99MS = msOf(p.p99US)
		}
		rep.Timeseries[i] = tp
	}
	for _, s := range r.ring { // seconds still open: not finalized, so Report stays read-only
		if s.sec >= 0 && s.sec < int64(len(rep.Timeseries)) {
			rep.Timeseries[s.sec].P99MS = msOf(s.hist.ValueAtQuantile(99))
		}
	}
	return rep
}

func msOf(us int64) float64 { return float64(us) / 1000 }

func percentilesOf(h *hdrhistogram.Histogram) Percentiles {
	if h.TotalCount() == 0 {
		return Percentiles{}
	}
	return Percentiles{
		P50:  msOf(h.ValueAtQuantile(50)),
		P90:  msOf(h.ValueAtQuantile(90)),
		P99:  msOf(h.ValueAtQuantile(99)),
		P999: msOf(h.ValueAtQuantile(99.9)),
		Max:  msOf(h.Max()),
	}
}

// cdfOf downsamples a histogram to at most about cdfMaxPoints points: a point
// whenever the cumulative fraction has grown by 1/cdfMaxPoints, or the value
// by 5%, since the last one, plus the last bucket.
func cdfOf(h *hdrhistogram.Histogram) []CDFPoint {
	total := h.TotalCount()
	if total == 0 {
		return nil
	}
	var (
		pts       []CDFPoint
		cum       int64
		lastFrac  = -1.0
		lastValue = int64(-1)
	)
	bars := h.Distribution()
	lastBar := -1
	for i, b := range bars {
		if b.Count > 0 {
			lastBar = i
		}
	}
	for i, b := range bars {
		if b.Count == 0 {
			continue
		}
		cum += b.Count
		f := float64(cum) / float64(total)
		if i == lastBar || f-lastFrac >= 1.0/cdfMaxPoints || float64(b.To) > float64(lastValue)*1.05 {
			if len(pts) == 0 && b.From > 0 {
				pts = append(pts, CDFPoint{LatencyMS: msOf(b.From), Fraction: 0})
			}
			pts = append(pts, CDFPoint{LatencyMS: msOf(b.To), Fraction: f})
			lastFrac, lastValue = f, b.To
		}
	}
	return pts
}

// WriteJSON writes v as indented JSON followed by a newline.
func WriteJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// ratioOf returns a/b, or NaN when b is 0.
func ratioOf(a, b float64) float64 {
	if b == 0 {
		return math.NaN()
	}
	return a / b
}
