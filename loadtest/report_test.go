package loadtest

import (
	"bytes"
	"encoding/json"
	"math"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/accelgate/accelgate/backends"
)

const msec = time.Millisecond

// okOutcome is a successful non-streaming outcome for it.
func recOK(it *Item, lat time.Duration) *Outcome {
	return &Outcome{Item: it, Latency: lat, TTFT: lat, Status: 200, Kind: "ok", OK: true}
}

// near reports whether got is within rel (relative) of want.
func nearRel(got, want, rel float64) bool {
	return math.Abs(got-want) <= rel*math.Abs(want)+1e-9
}

func TestPercentilesUniform(t *testing.T) {
	r := NewRecorder(RecorderOptions{Name: "uniform"})
	it := &Item{}
	for i := 1; i <= 1000; i++ {
		r.Offered()
		o := recOK(it, time.Duration(i)*msec)
		o.TTFT = time.Duration(i) * msec / 10
		r.Record(o)
	}
	rep := r.Report(10 * time.Second)
	// HDR with 3 significant digits: every value is reported within 0.1%.
	for _, c := range []struct {
		name      string
		got, want float64
	}{
		{"p50", rep.LatencyMS.P50, 500},
		{"p90", rep.LatencyMS.P90, 900},
		{"p99", rep.LatencyMS.P99, 990},
		{"p999", rep.LatencyMS.P999, 999},
		{"max", rep.LatencyMS.Max, 1000},
		{"ttft p50", rep.TTFTMS.P50, 50},
		{"ttft p99", rep.TTFTMS.P99, 99},
	} {
		if !nearRel(c.got, c.want, 0.001) {
			t.Errorf("%s = %v ms, want %v ms ±0.1%%", c.name, c.got, c.want)
		}
	}
	if rep.ITLMS != (Percentiles{}) {
		t.Errorf("itl = %+v, want zeros without streams", rep.ITLMS)
	}
	if rep.OK != 1000 || rep.Requests != 1000 || !nearRel(rep.ThroughputRPS, 100, 1e-9) {
		t.Errorf("ok %d requests %d throughput %v", rep.OK, rep.Requests, rep.ThroughputRPS)
	}
	// The CDF comes from the same histogram: monotone, ends at 100%.
	cdfOf := rep.LatencyCDF
	if len(cdfOf) < 10 || len(cdfOf) > 2*cdfMaxPoints {
		t.Fatalf("cdf has %d points", len(cdfOf))
	}
	for i := 1; i < len(cdfOf); i++ {
		if cdfOf[i].LatencyMS < cdfOf[i-1].LatencyMS || cdfOf[i].Fraction < cdfOf[i-1].Fraction {
			t.Fatalf("cdf not monotone at %d: %+v then %+v", i, cdfOf[i-1], cdfOf[i])
		}
	}
	if last := cdfOf[len(cdfOf)-1]; last.Fraction != 1 || !nearRel(last.LatencyMS, 1000, 0.001) {
		t.Errorf("cdf ends at %+v", last)
	}
	for _, p := range cdfOf { // uniform: fraction ≈ latency / 1000
		if !nearRel(p.Fraction, p.LatencyMS/1000, 0.01) && p.Fraction > 0 {
			t.Errorf("cdf point %+v off the uniform distribution", p)
		}
	}
}

func TestITLIsCopiedAndCounted(t *testing.T) {
	r := NewRecorder(RecorderOptions{})
	it := &Item{Stream: true}
	gaps := make([]time.Duration, 100)
	for i := range gaps {
		gaps[i] = time.Duration(i+1) * msec
	}
	o := &Outcome{Item: it, OK: true, Latency: time.Second, TTFT: 200 * msec, ITL: gaps}
	r.Record(o)
	for i := range gaps { // the caller reuses the slice
		gaps[i] = time.Hour
	}
	rep := r.Report(time.Second)
	if !nearRel(rep.ITLMS.P50, 50, 0.001) || !nearRel(rep.ITLMS.P99, 99, 0.001) || !nearRel(rep.ITLMS.Max, 100, 0.001) {
		t.Errorf("itl = %+v, want p50 50, p99 99, max 100", rep.ITLMS)
	}
	if !nearRel(rep.TTFTMS.P50, 200, 0.001) || !nearRel(rep.LatencyMS.P50, 1000, 0.001) {
		t.Errorf("ttft %+v latency %+v", rep.TTFTMS, rep.LatencyMS)
	}
}

func TestOutOfRangeValuesAreClamped(t *testing.T) {
	r := NewRecorder(RecorderOptions{})
	r.Record(recOK(&Item{}, -5*msec))
	r.Record(recOK(&Item{At: -time.Second}, 2*time.Hour))
	rep := r.Report(time.Second)
	if rep.LatencyMS.P50 != 0 || !nearRel(rep.LatencyMS.Max, 3600e3, 0.001) {
		t.Errorf("latency = %+v, want min 0 and max clamped to 1 h", rep.LatencyMS)
	}
	if len(rep.Timeseries) != 1 || rep.Timeseries[0].Sent != 2 {
		t.Errorf("timeseries = %+v", rep.Timeseries)
	}
}

// TestGoodputPerOfferedWindow checks that goodput divides the requests that
// met their SLO by the offered window (up to the latest intended send time),
// not by the run's duration with its drain, while throughput keeps the
// duration; and that a run whose items were all due at once falls back to
// the duration.
func TestGoodputPerOfferedWindow(t *testing.T) {
	slo := backends.SLO{E2E: 100 * msec}
	r := NewRecorder(RecorderOptions{})
	for i := range 10 {
		r.Offered()
		lat := 50 * msec
		if i%5 == 4 {
			lat = 150 * msec // misses
		}
		r.Record(recOK(&Item{At: time.Duration(i) * 200 * msec, SLO: slo}, lat))
	}
	// Items due at 0 … 1.8 s; the run lasted 2.5 s with its drain.
	rep := r.Report(2500 * msec)
	if !nearRel(rep.WindowS, 1.8, 1e-12) || !nearRel(rep.DurationS, 2.5, 1e-12) {
		t.Errorf("window %v duration %v, want 1.8 and 2.5", rep.WindowS, rep.DurationS)
	}
	if !nearRel(rep.GoodputRPS, 8/1.8, 1e-12) || !nearRel(rep.ThroughputRPS, 10/2.5, 1e-12) {
		t.Errorf("goodput %v throughput %v, want 8/1.8 and 10/2.5", rep.GoodputRPS, rep.ThroughputRPS)
	}
	// Reported mid-run, before the window's end: the duration bounds it.
	if rep := r.Report(time.Second); !nearRel(rep.WindowS, 1, 1e-12) || !nearRel(rep.GoodputRPS, 8, 1e-12) {
		t.Errorf("mid-run: window %v goodput %v, want 1 and 8", rep.WindowS, rep.GoodputRPS)
	}
	// Everything due at once: per second of the duration.
	r = NewRecorder(RecorderOptions{})
	r.Record(recOK(&Item{SLO: slo}, 50*msec))
	if rep := r.Report(2 * time.Second); rep.WindowS != 2 || !nearRel(rep.GoodputRPS, 0.5, 1e-12) {
		t.Errorf("one item at 0: window %v goodput %v, want 2 and 0.5", rep.WindowS, rep.GoodputRPS)
	}
}

// attainmentFixture offers 13 requests and records 11 of them:
//
//	critical:  3 OK within SLO, 1 timeout                        → 3/4 met
//	standard:  1 OK within its E2E target, 1 OK over it,
//	           1 stream within its TTFT and TPOT targets,
//	           1 stream over its TTFT target, 1 over its TPOT target,
//	           1 HTTP 503 (no Kind), 1 shed                        → 2/7 met
//	sheddable: none                                               → null
//
// The other two offered requests never get an outcome.
func attainmentFixture() *Recorder {
	r := NewRecorder(RecorderOptions{Name: "fixture"})
	crit := &Item{Priority: backends.Critical, SLO: backends.SLO{E2E: 100 * msec}}
	std := &Item{Priority: backends.Standard, SLO: backends.SLO{E2E: 100 * msec}}
	stream := &Item{Priority: backends.Standard, Stream: true, SLO: backends.SLO{TTFT: 50 * msec, TPOT: 10 * msec}}
	for range 13 {
		r.Offered()
	}
	for range 3 {
		r.Record(recOK(crit, 80*msec))
	}
	r.Record(&Outcome{Item: crit, Latency: 500 * msec, Status: 504, Kind: "timeout"})
	r.Record(recOK(std, 100*msec))
	r.Record(recOK(std, 101*msec))
	r.Record(&Outcome{Item: stream, OK: true, Latency: 300 * msec, TTFT: 40 * msec, ITL: []time.Duration{5 * msec, 15 * msec}})
	r.Record(&Outcome{Item: stream, OK: true, Latency: 300 * msec, TTFT: 60 * msec, ITL: []time.Duration{5 * msec}})
	r.Record(&Outcome{Item: stream, OK: true, Latency: 300 * msec, TTFT: 40 * msec, ITL: []time.Duration{20 * msec, 15 * msec}})
	r.Record(&Outcome{Item: std, Latency: 5 * msec, Status: 503})
	r.Record(&Outcome{Item: std, Latency: 1 * msec, Status: 429, Kind: "shed"})
	return r
}

func TestAttainmentCountsMisses(t *testing.T) {
	rep := attainmentFixture().Report(2 * time.Second)
	if rep.Requests != 13 || rep.OK != 8 || rep.Shed != 1 {
		t.Errorf("requests %d ok %d shed %d, want 13 8 1", rep.Requests, rep.OK, rep.Shed)
	}
	wantErr := map[string]int64{"timeout": 1, "http_503": 1, "shed": 1}
	if len(rep.Errors) != len(wantErr) {
		t.Errorf("errors = %v, want %v", rep.Errors, wantErr)
	}
	for k, v := range wantErr {
		if rep.Errors[k] != v {
			t.Errorf("errors[%q] = %d, want %d (all: %v)", k, rep.Errors[k], v, rep.Errors)
		}
	}
	// Met: 3 critical + 1 standard E2E + 1 stream = 5 of 13 offered (shed,
	// errors, SLO misses and the unrecorded request are misses).
	if !nearRel(rep.SLOAttainment, 5.0/13, 1e-12) {
		t.Errorf("slo_attainment = %v, want 5/13", rep.SLOAttainment)
	}
	if !nearRel(rep.GoodputRPS, 2.5, 1e-12) || !nearRel(rep.ThroughputRPS, 4, 1e-12) {
		t.Errorf("goodput %v throughput %v, want 2.5 and 4", rep.GoodputRPS, rep.ThroughputRPS)
	}
	if v, ok := rep.AttainmentByPriority.Get(backends.Critical); !ok || !nearRel(v, 0.75, 1e-12) {
		t.Errorf("critical attainment = %v %v, want 0.75", v, ok)
	}
	// standard: 7 recorded (incl. the 503 and the shed one), 2 met.
	if v, ok := rep.AttainmentByPriority.Get(backends.Standard); !ok || !nearRel(v, 2.0/7, 1e-12) {
		t.Errorf("standard attainment = %v %v, want 2/7", v, ok)
	}
	if _, ok := rep.AttainmentByPriority.Get(backends.Sheddable); ok || rep.AttainmentByPriority.Sheddable != nil {
		t.Errorf("sheddable attainment should be null without requests")
	}
}

func TestRequestsWithoutOffered(t *testing.T) {
	// A caller that never calls Offered (a simulator, say): requests = outcomes.
	r := NewRecorder(RecorderOptions{})
	r.Record(recOK(&Item{}, msec))
	r.Record(&Outcome{Item: &Item{}, Kind: "conn_error"})
	r.Record(&Outcome{Item: &Item{}, Status: 1014})
	r.Record(&Outcome{Item: &Item{}})
	rep := r.Report(time.Second)
	if rep.Requests != 4 || !nearRel(rep.SLOAttainment, 0.25, 1e-12) {
		t.Errorf("requests %d attainment %v", rep.Requests, rep.SLOAttainment)
	}
	for _, k := range []string{"conn_error", "grpc_14", "error"} {
		if rep.Errors[k] != 1 {
			t.Errorf("errors = %v, want %s: 1", rep.Errors, k)
		}
	}
}

func TestCostAndHardware(t *testing.T) {
	r := NewRecorder(RecorderOptions{})
	it := &Item{}
	add := func(hw string, cost float64, in, out int) {
		o := recOK(it, 10*msec)
		o.Hardware, o.CostUSD, o.InputTokens, o.OutputTokens = hw, cost, in, out
		r.Record(o)
	}
	add("h100-sxm-80gb", 0.002, 100, 50)
	add("h100-sxm-80gb", 0.002, 100, 50)
	add("l4", 0.0005, 100, 50)
	add("l4", 0.0005, 100, 50)
	// A timed-out request still cost something; its tokens were not served.
	r.Record(&Outcome{Item: it, Kind: "timeout", Hardware: "l4", CostUSD: 0.001, InputTokens: 100})
	// A shed request has no hardware.
	r.Record(&Outcome{Item: it, Kind: "shed", Status: 429})
	rep := r.Report(time.Second)

	const total = 0.002*2 + 0.0005*2 + 0.001
	if want := total / 4 * 1000; !nearRel(rep.CostUSDPer1K, want, 1e-9) {
		t.Errorf("cost_usd_per_1k = %v, want %v", rep.CostUSDPer1K, want)
	}
	if want := total / 600 * 1e6; !nearRel(rep.CostUSDPer1MTokens, want, 1e-9) {
		t.Errorf("cost_usd_per_1m_tokens = %v, want %v", rep.CostUSDPer1MTokens, want)
	}
	if len(rep.ByHardware) != 2 {
		t.Fatalf("by_hardware = %v", rep.ByHardware)
	}
	if h := rep.ByHardware["h100-sxm-80gb"]; h.Requests != 2 || !nearRel(h.CostUSD, 0.004, 1e-9) {
		t.Errorf("h100 = %+v", h)
	}
	if h := rep.ByHardware["l4"]; h.Requests != 3 || !nearRel(h.CostUSD, 0.002, 1e-9) {
		t.Errorf("l4 = %+v", h)
	}
}

func TestTimeseriesBuckets(t *testing.T) {
	r := NewRecorder(RecorderOptions{})
	rec := func(at time.Duration, ok bool, lat time.Duration) {
		it := &Item{At: at}
		if ok {
			r.Record(recOK(it, lat))
		} else {
			r.Record(&Outcome{Item: it, Kind: "timeout", Latency: lat})
		}
	}
	rec(100*msec, true, 10*msec)
	rec(900*msec, true, 30*msec)
	rec(999*msec, false, 5*time.Second)
	rec(1500*msec, true, 7*msec)
	rec(3200*msec, false, msec)
	rep := r.Report(4 * time.Second)
	want := []TimePoint{
		{T: 0, Sent: 3, OK: 2, Errors: 1, P99MS: 30},
		{T: 1, Sent: 1, OK: 1, P99MS: 7},
		{T: 2},
		{T: 3, Sent: 1, Errors: 1},
	}
	if len(rep.Timeseries) != len(want) {
		t.Fatalf("timeseries = %+v, want %+v", rep.Timeseries, want)
	}
	for i, w := range want {
		g := rep.Timeseries[i]
		if g.T != w.T || g.Sent != w.Sent || g.OK != w.OK || g.Errors != w.Errors || !nearRel(g.P99MS, w.P99MS, 0.01) {
			t.Errorf("second %d = %+v, want %+v", i, g, w)
		}
	}
}

func TestTimeseriesLongRun(t *testing.T) {
	// 300 s, longer than the window of live per-second histograms, with
	// outcomes arriving a little out of order: every second's p99 is kept.
	r := NewRecorder(RecorderOptions{})
	const secs = 300
	for s := range secs {
		for i := range 100 {
			at := time.Duration(s)*time.Second + time.Duration(i)*10*msec
			lat := time.Duration(s+1)*msec + time.Duration(i)*time.Microsecond
			r.Record(recOK(&Item{At: at}, lat))
		}
		if s >= 2 { // a straggler for two seconds ago
			r.Record(recOK(&Item{At: time.Duration(s-2) * time.Second}, time.Duration(s-1)*msec))
		}
	}
	rep := r.Report(secs * time.Second)
	if len(rep.Timeseries) != secs {
		t.Fatalf("%d points, want %d", len(rep.Timeseries), secs)
	}
	for s, p := range rep.Timeseries {
		want := float64(s+1) + 0.098 // the 99th of 100 (or 101) samples
		if !nearRel(p.P99MS, want, 0.01) {
			t.Errorf("second %d p99 = %v ms, want ≈ %v", s, p.P99MS, want)
		}
		if p.T != int64(s) {
			t.Fatalf("second %d has t = %d", s, p.T)
		}
	}
	// Report is read-only: a second call gives the same series.
	rep2 := r.Report(secs * time.Second)
	for i := range rep.Timeseries {
		if rep.Timeseries[i] != rep2.Timeseries[i] {
			t.Fatalf("second Report differs at %d: %+v vs %+v", i, rep.Timeseries[i], rep2.Timeseries[i])
		}
	}
}

// The JSON schema, exactly.
var (
	topKeys    = []string{"name", "requests", "ok", "shed", "errors", "duration_s", "window_s", "throughput_rps", "goodput_rps", "slo_attainment", "attainment_by_priority", "latency_ms", "ttft_ms", "itl_ms", "cost_usd_per_1k", "cost_usd_per_1m_tokens", "by_hardware", "timeseries"}
	prioKeys   = []string{"critical", "standard", "sheddable"}
	pctKeys    = []string{"p50", "p90", "p99", "p999", "max"}
	hwKeys     = []string{"requests", "cost_usd"}
	seriesKeys = []string{"t", "sent", "ok", "errors", "p99_ms"}
)

func checkKeys(t *testing.T, what string, m map[string]any, want []string) {
	t.Helper()
	var got []string
	for k := range m {
		got = append(got, k)
	}
	sort.Strings(got)
	w := append([]string(nil), want...)
	sort.Strings(w)
	if len(got) != len(w) {
		t.Errorf("%s keys = %v, want %v", what, got, w)
		return
	}
	for i := range got {
		if got[i] != w[i] {
			t.Errorf("%s keys = %v, want %v", what, got, w)
			return
		}
	}
}

func TestJSONSchema(t *testing.T) {
	r := attainmentFixture()
	o := recOK(&Item{At: 1500 * msec}, 10*msec)
	o.Hardware, o.CostUSD = "l4", 0.001
	r.Record(o)
	var buf bytes.Buffer
	if err := WriteJSON(&buf, r.Report(2*time.Second)); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(buf.Bytes(), []byte("\n  \"name\": \"fixture\",\n")) {
		t.Errorf("not indented:\n%s", buf.String())
	}
	var m map[string]any
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	checkKeys(t, "top level", m, topKeys)
	checkKeys(t, "attainment_by_priority", m["attainment_by_priority"].(map[string]any), prioKeys)
	if m["attainment_by_priority"].(map[string]any)["sheddable"] != nil {
		t.Errorf("sheddable attainment should be null")
	}
	for _, k := range []string{"latency_ms", "ttft_ms", "itl_ms"} {
		checkKeys(t, k, m[k].(map[string]any), pctKeys)
	}
	hw := m["by_hardware"].(map[string]any)
	checkKeys(t, "by_hardware", hw, []string{"l4"})
	checkKeys(t, "by_hardware.l4", hw["l4"].(map[string]any), hwKeys)
	ts := m["timeseries"].([]any)
	if len(ts) != 2 {
		t.Fatalf("timeseries has %d points", len(ts))
	}
	for _, p := range ts {
		checkKeys(t, "timeseries[]", p.(map[string]any), seriesKeys)
	}
	if _, ok := m["errors"].(map[string]any)["timeout"]; !ok {
		t.Errorf("errors = %v", m["errors"])
	}

	// An empty report still has every key, with {} and [] rather than null.
	buf.Reset()
	if err := WriteJSON(&buf, NewRecorder(RecorderOptions{}).Report(0)); err != nil {
		t.Fatal(err)
	}
	m = nil
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	checkKeys(t, "empty report", m, topKeys)
	for _, k := range []string{"errors", "by_hardware"} {
		if _, ok := m[k].(map[string]any); !ok {
			t.Errorf("%s = %v, want {}", k, m[k])
		}
	}
	if _, ok := m["timeseries"].([]any); !ok {
		t.Errorf("timeseries = %v, want []", m["timeseries"])
	}

	// And it round-trips.
	var back RunReport
	if err := json.Unmarshal(buf.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
}

func TestProgress(t *testing.T) {
	r := NewRecorder(RecorderOptions{})
	if p := r.Progress(); p != (Progress{}) {
		t.Errorf("fresh progress = %+v", p)
	}
	for i := range 1500 {
		r.Offered()
		at := time.Duration(i) * 10 * msec // 15 s of send time
		lat := 5 * msec
		if i < 500 {
			lat = 50 * msec // slow, but more than 5 s ago
		}
		if i%100 == 0 {
			r.Record(&Outcome{Item: &Item{At: at}, Kind: "timeout"})
			continue
		}
		r.Record(recOK(&Item{At: at}, lat))
	}
	r.Offered()
	p := r.Progress()
	if p.Sent != 1501 || p.OK != 1485 || p.Errors != 15 {
		t.Errorf("progress = %+v", p)
	}
	if p.P99 < 4900*time.Microsecond || p.P99 > 5100*time.Microsecond { // the slow first 5 s have rolled out
		t.Errorf("recent p99 = %v, want ≈ 5ms", p.P99)
	}
	if p.Elapsed <= 0 {
		t.Errorf("elapsed = %v", p.Elapsed)
	}
}

func TestRecordConcurrent(t *testing.T) {
	r := NewRecorder(RecorderOptions{})
	var wg sync.WaitGroup
	const workers, each = 8, 2000
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			itl := make([]time.Duration, 4)
			for i := range each {
				r.Offered()
				for j := range itl {
					itl[j] = time.Duration(j+1) * msec
				}
				o := &Outcome{Item: &Item{At: time.Duration(i) * msec, Priority: backends.Priority(w % 3), Stream: true},
					OK: i%10 != 0, Latency: 20 * msec, TTFT: 5 * msec, ITL: itl, Hardware: "l4", CostUSD: 0.001}
				if !o.OK {
					o.Kind = "timeout"
				}
				r.Record(o)
				if i%500 == 0 {
					r.Progress()
					r.Report(time.Second)
				}
			}
		}()
	}
	wg.Wait()
	rep := r.Report(time.Second)
	if rep.Requests != workers*each || rep.OK != workers*each*9/10 || rep.Errors["timeout"] != workers*each/10 {
		t.Errorf("requests %d ok %d errors %v", rep.Requests, rep.OK, rep.Errors)
	}
	if rep.ByHardware["l4"].Requests != workers*each {
		t.Errorf("by_hardware = %v", rep.ByHardware)
	}
	var sent int64
	for _, p := range rep.Timeseries {
		sent += p.Sent
	}
	if sent != workers*each {
		t.Errorf("timeseries sent %d", sent)
	}
}

func TestRecordAllocs(t *testing.T) {
	if reportRaceEnabled {
		t.Skip("testing.AllocsPerRun is unreliable under -race")
	}
	r := NewRecorder(RecorderOptions{})
	outs := benchOutcomes()
	for _, o := range outs { // warm up: map keys, series slots
		r.Record(o)
	}
	i := 0
	allocs := testing.AllocsPerRun(1000, func() {
		r.Offered()
		r.Record(outs[i%len(outs)])
		i++
	})
	if allocs != 0 {
		t.Errorf("Record allocates %v times per call in steady state, want 0", allocs)
	}
}

// benchOutcomes is a mix of what a 30k rps run records: non-streaming and
// streaming successes on two profiles, and a few errors, all in one second of
// send time.
func benchOutcomes() []*Outcome {
	itl := make([]time.Duration, 16)
	for i := range itl {
		itl[i] = time.Duration(8+i%5) * msec
	}
	var outs []*Outcome
	for i := range 64 {
		it := &Item{Seq: int64(i), At: 500 * msec, Priority: backends.Priority(i % 3), SLO: backends.SLO{E2E: 200 * msec, TTFT: 100 * msec, TPOT: 20 * msec}}
		o := &Outcome{Item: it, OK: true, Status: 200, Kind: "ok", Latency: time.Duration(50+i) * msec, TTFT: time.Duration(50+i) * msec,
			CostUSD: 0.0001, Backend: "b0", Hardware: "h100-sxm-80gb", InputTokens: 120, OutputTokens: 40}
		switch {
		case i%16 == 0:
			o.OK, o.Status, o.Kind, o.Hardware = false, 429, "shed", ""
		case i%16 == 1:
			o.OK, o.Status, o.Kind = false, 504, "timeout"
		case i%2 == 0:
			it.Stream = true
			o.TTFT = 30 * msec
			o.ITL = itl
			o.Hardware = "l4"
		}
		outs = append(outs, o)
	}
	return outs
}

func BenchmarkRecord(b *testing.B) {
	r := NewRecorder(RecorderOptions{})
	outs := benchOutcomes()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		r.Offered()
		r.Record(outs[i%len(outs)])
	}
}

func BenchmarkRecordNonStream(b *testing.B) {
	r := NewRecorder(RecorderOptions{})
	o := recOK(&Item{At: time.Second, SLO: backends.SLO{E2E: 100 * msec}}, 42*msec)
	o.Hardware, o.CostUSD = "h100-sxm-80gb", 0.0001
	b.ReportAllocs()
	for b.Loop() {
		r.Offered()
		r.Record(o)
	}
}

func BenchmarkRecordParallel(b *testing.B) {
	r := NewRecorder(RecorderOptions{})
	outs := benchOutcomes()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			r.Offered()
			r.Record(outs[i%len(outs)])
			i++
		}
	})
}
