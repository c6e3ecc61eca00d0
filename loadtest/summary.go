package loadtest

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/accelgate/accelgate/backends"
)

// Number formats shared by the terminal summary, the comparison table and the
// HTML report.
func fmtCount(v float64) string { return fmt.Sprintf("%d", int64(v)) }
func fmtRate(v float64) string  { return fmt.Sprintf("%.2f", v) }
func fmtPct(v float64) string   { return fmt.Sprintf("%.2f%%", v*100) }
func fmtUSD(v float64) string   { return fmt.Sprintf("$%.6f", v) }

func fmtMS(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.1f", v)
	case v >= 10:
		return fmt.Sprintf("%.2f", v)
	}
	return fmt.Sprintf("%.3f", v)
}

// fmtRatio formats v/base as "1.23×", or "-" when it is undefined.
func fmtRatio(v, base float64) string {
	r := ratioOf(v, base)
	if math.IsNaN(v) || math.IsNaN(r) || math.IsInf(r, 0) {
		return "-"
	}
	return fmt.Sprintf("%.2f×", r)
}

// errorsExclShed is the number of outcomes that were not OK and not shed.
func (rep *RunReport) errorsExclShed() int64 {
	var n int64
	for _, c := range rep.Errors {
		n += c
	}
	return n - rep.Shed
}

// notCompleted is the number of offered requests that never got an outcome.
func (rep *RunReport) notCompleted() int64 {
	n := rep.Requests - rep.OK
	for _, c := range rep.Errors {
		n -= c
	}
	return max(n, 0)
}

func (rep *RunReport) hardwareTotals() (requests int64, cost float64) {
	for _, h := range rep.ByHardware {
		requests += h.Requests
		cost += h.CostUSD
	}
	return requests, cost
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func shareOf(part, whole float64) float64 {
	if whole == 0 {
		return 0
	}
	return part / whole
}

// writeTable writes rows as aligned columns separated by two spaces, each
// line prefixed by indent. align has one byte per column: 'l' pads on the
// right, 'r' on the left; columns beyond it are left-aligned. Trailing spaces
// are trimmed.
func writeTable(w io.Writer, indent, align string, rows [][]string) {
	var widths []int
	for _, row := range rows {
		for i, c := range row {
			if i >= len(widths) {
				widths = append(widths, 0)
			}
			widths[i] = max(widths[i], utf8.RuneCountInString(c))
		}
	}
	var b strings.Builder
	for _, row := range rows {
		b.Reset()
		b.WriteString(indent)
		for i, c := range row {
			if i > 0 {
				b.WriteString("  ")
			}
			pad := strings.Repeat(" ", widths[i]-utf8.RuneCountInString(c))
			if i < len(align) && align[i] == 'r' {
				b.WriteString(pad + c)
			} else {
				b.WriteString(c + pad)
			}
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
	}
}

// PrintSummary writes rep as an aligned terminal table: counts, rates, SLO
// attainment (overall and per class), latency/TTFT/ITL percentiles, cost and
// the split across hardware profiles.
func PrintSummary(w io.Writer, rep *RunReport) {
	pctOf := func(n int64) string {
		if rep.Requests == 0 {
			return ""
		}
		return "(" + fmtPct(float64(n)/float64(rep.Requests)) + ")"
	}
	count := func(n int64) string { return fmtCount(float64(n)) }

	fmt.Fprintf(w, "run %q: %d requests offered over %.2f s, done after %.2f s\n", rep.Name, rep.Requests, rep.WindowS, rep.DurationS)
	var kinds []string
	for _, k := range sortedKeys(rep.Errors) {
		if k != "shed" {
			kinds = append(kinds, fmt.Sprintf("%s %d", k, rep.Errors[k]))
		}
	}
	errDetail := pctOf(rep.errorsExclShed())
	if len(kinds) > 0 {
		errDetail += "  " + strings.Join(kinds, ", ")
	}
	rows := [][]string{
		{"requests", count(rep.Requests)},
		{"ok", count(rep.OK), pctOf(rep.OK)},
		{"shed", count(rep.Shed), pctOf(rep.Shed)},
		{"errors", count(rep.errorsExclShed()), errDetail},
	}
	if n := rep.notCompleted(); n > 0 {
		rows = append(rows, []string{"not completed", count(n), pctOf(n)})
	}
	var classes []string
	for p := backends.Critical; p < backends.NumPriorities; p++ {
		if v, ok := rep.AttainmentByPriority.Get(p); ok {
			classes = append(classes, fmt.Sprintf("%s %s", p, fmtPct(v)))
		} else {
			classes = append(classes, fmt.Sprintf("%s -", p))
		}
	}
	rows = append(rows,
		[]string{"throughput", fmtRate(rep.ThroughputRPS), "req/s"},
		[]string{"goodput", fmtRate(rep.GoodputRPS), "req/s within SLO, per second offered"},
		[]string{"SLO attainment", fmtPct(rep.SLOAttainment), strings.Join(classes, ", ")},
		[]string{"cost per 1k", fmtUSD(rep.CostUSDPer1K), "per 1,000 OK requests"},
		[]string{"cost per 1M", fmtUSD(rep.CostUSDPer1MTokens), "per 1M tokens (input + output)"},
	)
	writeTable(w, "  ", "lrl", rows)

	fmt.Fprintln(w)
	rows = [][]string{{"ms", "p50", "p90", "p99", "p99.9", "max"}}
	for _, row := range []struct {
		name string
		p    Percentiles
	}{{"latency", rep.LatencyMS}, {"ttft", rep.TTFTMS}, {"itl", rep.ITLMS}} {
		rows = append(rows, []string{row.name, fmtMS(row.p.P50), fmtMS(row.p.P90), fmtMS(row.p.P99), fmtMS(row.p.P999), fmtMS(row.p.Max)})
	}
	writeTable(w, "  ", "lrrrrr", rows)

	if len(rep.ByHardware) > 0 {
		fmt.Fprintln(w)
		totalReq, totalCost := rep.hardwareTotals()
		rows = [][]string{{"hardware", "requests", "share", "cost", "share"}}
		for _, k := range sortedKeys(rep.ByHardware) {
			h := rep.ByHardware[k]
			rows = append(rows, []string{k, count(h.Requests), fmtPct(shareOf(float64(h.Requests), float64(totalReq))),
				fmtUSD(h.CostUSD), fmtPct(shareOf(h.CostUSD, totalCost))})
		}
		writeTable(w, "  ", "lrrrr", rows)
	}
}

// compareRow is one metric across several reports. Missing values are NaN.
type compareRow struct {
	label string
	vals  []float64
	fmt   func(float64) string
}

func (r compareRow) cell(i int) string {
	if math.IsNaN(r.vals[i]) {
		return "-"
	}
	return r.fmt(r.vals[i])
}

// compareRows lays the reports' metrics out as rows, one value per report.
func compareRows(reps []*RunReport) []compareRow {
	row := func(label string, f func(float64) string, get func(*RunReport) float64) compareRow {
		r := compareRow{label: label, fmt: f, vals: make([]float64, len(reps))}
		for i, rep := range reps {
			r.vals[i] = get(rep)
		}
		return r
	}
	rows := []compareRow{
		row("requests", fmtCount, func(r *RunReport) float64 { return float64(r.Requests) }),
		row("ok", fmtCount, func(r *RunReport) float64 { return float64(r.OK) }),
		row("shed", fmtCount, func(r *RunReport) float64 { return float64(r.Shed) }),
		row("errors", fmtCount, func(r *RunReport) float64 { return float64(r.errorsExclShed()) }),
		row("offered window s", fmtRate, func(r *RunReport) float64 { return r.WindowS }),
		row("duration s", fmtRate, func(r *RunReport) float64 { return r.DurationS }),
		row("throughput req/s", fmtRate, func(r *RunReport) float64 { return r.ThroughputRPS }),
		row("goodput req/s", fmtRate, func(r *RunReport) float64 { return r.GoodputRPS }),
		row("  per s of duration", fmtRate, func(r *RunReport) float64 { return r.goodputPerDuration() }),
		row("SLO attainment", fmtPct, func(r *RunReport) float64 { return r.SLOAttainment }),
	}
	for p := backends.Critical; p < backends.NumPriorities; p++ {
		rows = append(rows, row("  "+p.String(), fmtPct, func(r *RunReport) float64 {
			if v, ok := r.AttainmentByPriority.Get(p); ok {
				return v
			}
			return math.NaN()
		}))
	}
	for _, d := range []struct {
		name string
		get  func(*RunReport) Percentiles
	}{
		{"latency", func(r *RunReport) Percentiles { return r.LatencyMS }},
		{"ttft", func(r *RunReport) Percentiles { return r.TTFTMS }},
		{"itl", func(r *RunReport) Percentiles { return r.ITLMS }},
		{"session ttft", func(r *RunReport) Percentiles {
			if r.SessionTTFTMS == nil {
				return Percentiles{}
			}
			return *r.SessionTTFTMS
		}},
	} {
		for _, q := range []struct {
			name string
			get  func(Percentiles) float64
		}{
			{"p50", func(p Percentiles) float64 { return p.P50 }},
			{"p90", func(p Percentiles) float64 { return p.P90 }},
			{"p99", func(p Percentiles) float64 { return p.P99 }},
			{"p99.9", func(p Percentiles) float64 { return p.P999 }},
			{"max", func(p Percentiles) float64 { return p.Max }},
		} {
			rows = append(rows, row(d.name+" "+q.name+" ms", fmtMS, func(r *RunReport) float64 { return q.get(d.get(r)) }))
		}
	}
	rows = append(rows,
		row("cost per 1k requests", fmtUSD, func(r *RunReport) float64 { return r.CostUSDPer1K }),
		row("cost per 1M tokens", fmtUSD, func(r *RunReport) float64 { return r.CostUSDPer1MTokens }),
	)
	hw := map[string]bool{}
	for _, rep := range reps {
		for k := range rep.ByHardware {
			hw[k] = true
		}
	}
	for _, k := range sortedKeys(hw) {
		rows = append(rows, row("share on "+k, fmtPct, func(r *RunReport) float64 {
			total, _ := r.hardwareTotals()
			return shareOf(float64(r.ByHardware[k].Requests), float64(total))
		}))
	}
	return rows
}

// PrintCompare writes several reports side by side: one row per metric, one
// column per report (headed by RunReport.Name), and after every report but the
// first a "×" column with its value divided by the first report's ("-" where
// that is undefined).
func PrintCompare(w io.Writer, reps []*RunReport) {
	if len(reps) == 0 {
		return
	}
	header := []string{"metric"}
	align := "l"
	for i, rep := range reps {
		header = append(header, rep.Name)
		align += "r"
		if i > 0 {
			header = append(header, "×")
			align += "r"
		}
	}
	rows := [][]string{header}
	for _, r := range compareRows(reps) {
		cells := []string{r.label}
		for i := range reps {
			cells = append(cells, r.cell(i))
			if i > 0 {
				cells = append(cells, fmtRatio(r.vals[i], r.vals[0]))
			}
		}
		rows = append(rows, cells)
	}
	writeTable(w, "", align, rows)
}
