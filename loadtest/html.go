package loadtest

import (
	_ "embed"
	"fmt"
	"html/template"
	"io"
	"math"

	"github.com/go-echarts/go-echarts/v2/charts"
	"github.com/go-echarts/go-echarts/v2/opts"
	"github.com/go-echarts/go-echarts/v2/render"

	"github.com/accelgate/accelgate/backends"
)

// echartsJS is Apache ECharts 5.4.3 (dist/echarts.min.js from npm; see
// assets/README.md), inlined into every HTML report so that it opens offline.
//
//go:embed assets/echarts.min.js
var echartsJS string

// EChartsVersion is the version of the ECharts library embedded in HTML
// reports.
const EChartsVersion = "5.4.3"

const (
	chartWidth  = "960px"
	chartHeight = "420px"
)

// WriteHTML renders one or more reports as a single self-contained HTML page:
// a comparison table and go-echarts charts — the latency CDF, OK responses
// and p99 latency per second, SLO attainment per class, cost per hardware
// profile and, per report, the share of requests placed on each profile.
// Several reports are overlaid (lines) or grouped (bars). The ECharts library
// is inlined, so the page needs no network; after the charts are initialized
// a script sets the body's data-charts-rendered attribute to the number of
// charts that hold a canvas (data-charts-expected is the number built).
func WriteHTML(w io.Writer, title string, reps []*RunReport) error {
	var chartsHTML []chartHTML
	for _, c := range buildCharts(reps) {
		s := c.RenderSnippet()
		chartsHTML = append(chartsHTML, chartHTML{Element: template.HTML(s.Element), Script: template.HTML(s.Script)})
	}
	var table htmlTable
	for i, rep := range reps {
		table.Header = append(table.Header, rep.Name)
		if i > 0 {
			table.Header = append(table.Header, "×")
		}
	}
	for _, r := range compareRows(reps) {
		row := []string{r.label}
		for i := range reps {
			row = append(row, r.cell(i))
			if i > 0 {
				row = append(row, fmtRatio(r.vals[i], r.vals[0]))
			}
		}
		table.Rows = append(table.Rows, row)
	}
	return pageTemplate.Execute(w, pageData{
		Title:          title,
		EChartsVersion: EChartsVersion,
		EChartsJS:      template.JS(echartsJS),
		Table:          table,
		Charts:         chartsHTML,
	})
}

type chartHTML struct {
	Element, Script template.HTML
}

type htmlTable struct {
	Header []string
	Rows   [][]string
}

type pageData struct {
	Title          string
	EChartsVersion string
	EChartsJS      template.JS
	Table          htmlTable
	Charts         []chartHTML
}

var pageTemplate = template.Must(template.New("report").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{{.Title}}</title>
<style>
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; margin-bottom: 2em; }
th, td { padding: 2px 10px; text-align: right; border-bottom: 1px solid #eee; }
th:first-child, td:first-child { text-align: left; white-space: pre; }
.container { display: flex; justify-content: center; margin-bottom: 1.5em; }
.item { margin: auto; }
</style>
<script>/* Apache ECharts {{.EChartsVersion}}, Apache License 2.0 (see loadtest/assets/LICENSE in accelgate) */
{{.EChartsJS}}
</script>
</head>
<body data-charts-expected="{{len .Charts}}">
<script>window.addEventListener("error", function (e) { document.body.dataset.chartsError = String(e.message); });</script>
<h1>{{.Title}}</h1>
<table>
<thead><tr><th>metric</th>{{range .Table.Header}}<th>{{.}}</th>{{end}}</tr></thead>
<tbody>
{{- range .Table.Rows}}
<tr>{{range .}}<td>{{.}}</td>{{end}}</tr>
{{- end}}
</tbody>
</table>
{{range .Charts}}{{.Element}}
{{.Script}}
{{end}}
<script>
(function () {
  var n = 0;
  document.querySelectorAll("[_echarts_instance_]").forEach(function (el) { if (el.querySelector("canvas")) n++; });
  document.body.dataset.chartsRendered = String(n);
})();
</script>
</body>
</html>
`))

// snippetChart is what WriteHTML needs from a go-echarts chart.
type snippetChart interface {
	RenderSnippet() render.ChartSnippet
}

func globalOpts(id, title, subtitle string) []charts.GlobalOpts {
	return []charts.GlobalOpts{
		charts.WithInitializationOpts(opts.Initialization{ChartID: id, Width: chartWidth, Height: chartHeight}),
		charts.WithTitleOpts(opts.Title{Title: title, Subtitle: subtitle}),
		charts.WithLegendOpts(opts.Legend{Show: opts.Bool(true), Top: "bottom"}),
		charts.WithAnimation(false),
	}
}

func lineChart(id, title, subtitle, xName, yName string) *charts.Line {
	c := charts.NewLine()
	c.SetGlobalOptions(globalOpts(id, title, subtitle)...)
	c.SetGlobalOptions(
		charts.WithTooltipOpts(opts.Tooltip{Show: opts.Bool(true), Trigger: "axis"}),
		charts.WithXAxisOpts(opts.XAxis{Type: "value", Name: xName}),
		charts.WithYAxisOpts(opts.YAxis{Type: "value", Name: yName}),
	)
	return c
}

func buildCharts(reps []*RunReport) []snippetChart {
	var out []snippetChart

	// Latency CDF.
	cdfChart := lineChart("latency_cdf", "Latency CDF", "OK responses, from the intended send time", "latency (ms)", "% of responses")
	for _, rep := range reps {
		pts := rep.LatencyCDF
		if len(pts) == 0 { // a report decoded from JSON: its percentiles
			p := rep.LatencyMS
			pts = []CDFPoint{{0, 0}, {p.P50, 0.5}, {p.P90, 0.9}, {p.P99, 0.99}, {p.P999, 0.999}, {p.Max, 1}}
		}
		data := make([]opts.LineData, len(pts))
		for i, p := range pts {
			data[i] = opts.LineData{Value: []float64{p.LatencyMS, roundTo(p.Fraction*100, 4)}}
		}
		cdfChart.AddSeries(rep.Name, data, charts.WithLineChartOpts(opts.LineChart{ShowSymbol: opts.Bool(false), Step: "end"}))
	}
	out = append(out, cdfChart)

	// Throughput and p99 over time.
	tput := lineChart("throughput", "Throughput", "per second of intended send time", "t (s)", "requests/s")
	p99 := lineChart("p99_over_time", "p99 latency over time", "OK responses, by second of intended send time", "t (s)", "p99 (ms)")
	for _, rep := range reps {
		ok := make([]opts.LineData, len(rep.Timeseries))
		lat := make([]opts.LineData, 0, len(rep.Timeseries))
		for i, tp := range rep.Timeseries {
			ok[i] = opts.LineData{Value: []float64{float64(tp.T), float64(tp.OK)}}
			if tp.OK > 0 {
				lat = append(lat, opts.LineData{Value: []float64{float64(tp.T), tp.P99MS}})
			}
		}
		name := rep.Name
		if len(reps) == 1 {
			name = "ok"
		}
		tput.AddSeries(name, ok, charts.WithLineChartOpts(opts.LineChart{ShowSymbol: opts.Bool(false)}))
		if len(reps) == 1 {
			sent := make([]opts.LineData, len(rep.Timeseries))
			errs := make([]opts.LineData, len(rep.Timeseries))
			for i, tp := range rep.Timeseries {
				sent[i] = opts.LineData{Value: []float64{float64(tp.T), float64(tp.Sent)}}
				errs[i] = opts.LineData{Value: []float64{float64(tp.T), float64(tp.Errors)}}
			}
			tput.AddSeries("sent", sent, charts.WithLineChartOpts(opts.LineChart{ShowSymbol: opts.Bool(false)}))
			tput.AddSeries("not ok", errs, charts.WithLineChartOpts(opts.LineChart{ShowSymbol: opts.Bool(false)}))
		}
		p99.AddSeries(rep.Name, lat, charts.WithLineChartOpts(opts.LineChart{ShowSymbol: opts.Bool(false)}))
	}
	out = append(out, tput, p99)

	// SLO attainment per class.
	att := charts.NewBar()
	att.SetGlobalOptions(globalOpts("attainment", "SLO attainment", "requests that met their SLO ÷ requests (shed, failed and unfinished ones are misses)")...)
	att.SetGlobalOptions(
		charts.WithTooltipOpts(opts.Tooltip{Show: opts.Bool(true), Trigger: "axis"}),
		charts.WithYAxisOpts(opts.YAxis{Type: "value", Name: "%", Max: 100}),
	)
	classes := []string{"overall"}
	for p := backends.Critical; p < backends.NumPriorities; p++ {
		classes = append(classes, p.String())
	}
	att.SetXAxis(classes)
	for _, rep := range reps {
		data := []opts.BarData{{Value: roundTo(rep.SLOAttainment*100, 2)}}
		for p := backends.Critical; p < backends.NumPriorities; p++ {
			if v, ok := rep.AttainmentByPriority.Get(p); ok {
				data = append(data, opts.BarData{Value: roundTo(v*100, 2)})
			} else {
				data = append(data, opts.BarData{Value: "-"})
			}
		}
		att.AddSeries(rep.Name, data)
	}
	out = append(out, att)

	// Cost and placement by hardware.
	hwSet := map[string]bool{}
	for _, rep := range reps {
		for k := range rep.ByHardware {
			hwSet[k] = true
		}
	}
	hw := sortedKeys(hwSet)
	cost := charts.NewBar()
	cost.SetGlobalOptions(globalOpts("cost_by_hardware", "Attributed cost by hardware", "USD over the run")...)
	cost.SetGlobalOptions(
		charts.WithTooltipOpts(opts.Tooltip{Show: opts.Bool(true), Trigger: "axis"}),
		charts.WithYAxisOpts(opts.YAxis{Type: "value", Name: "USD"}),
	)
	cost.SetXAxis(hw)
	for _, rep := range reps {
		data := make([]opts.BarData, len(hw))
		for i, k := range hw {
			data[i] = opts.BarData{Value: rep.ByHardware[k].CostUSD}
		}
		cost.AddSeries(rep.Name, data)
	}
	out = append(out, cost)

	for i, rep := range reps {
		if len(rep.ByHardware) == 0 {
			continue
		}
		pie := charts.NewPie()
		pie.SetGlobalOptions(globalOpts(fmt.Sprintf("placement_%d", i), "Placement: "+rep.Name, "share of requests per hardware profile")...)
		pie.SetGlobalOptions(charts.WithTooltipOpts(opts.Tooltip{Show: opts.Bool(true), Trigger: "item"}))
		var data []opts.PieData
		for _, k := range sortedKeys(rep.ByHardware) {
			data = append(data, opts.PieData{Name: k, Value: rep.ByHardware[k].Requests})
		}
		pie.AddSeries("requests", data, charts.WithLabelOpts(opts.Label{Show: opts.Bool(true), Formatter: "{b}: {d}%"}))
		out = append(out, pie)
	}
	return out
}

func roundTo(v float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(v*p) / p
}
