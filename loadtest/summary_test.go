package loadtest

import (
	"bytes"
	"strings"
	"testing"
)

func ptrF64(v float64) *float64 { return &v }

// fixedReport is a hand-made report with distinct, easily recognised numbers.
func fixedReport(name string, scale float64) *RunReport {
	return &RunReport{
		Name:          name,
		Requests:      1000,
		OK:            950,
		Shed:          20,
		Errors:        map[string]int64{"shed": 20, "timeout": 25, "http_503": 5},
		DurationS:     10,
		WindowS:       9,
		ThroughputRPS: 95,
		GoodputRPS:    100 * scale,
		SLOAttainment: 0.9 * scale,
		AttainmentByPriority: PriorityAttainment{
			Critical: ptrF64(0.99), Standard: ptrF64(0.875 * scale),
		},
		LatencyMS:          Percentiles{P50: 12.5 * scale, P90: 40, P99: 123.4 * scale, P999: 456.7, Max: 789},
		TTFTMS:             Percentiles{P50: 3.25, P90: 8, P99: 21.5, P999: 30, Max: 31},
		ITLMS:              Percentiles{P50: 1.125, P90: 2, P99: 4.5, P999: 6, Max: 7},
		CostUSDPer1K:       0.123456 * scale,
		CostUSDPer1MTokens: 2.5 * scale,
		ByHardware: map[string]HardwareShare{
			"h100-sxm-80gb": {Requests: 300, CostUSD: 0.09},
			"l4":            {Requests: 680, CostUSD: 0.03},
		},
	}
}

func TestPrintSummary(t *testing.T) {
	var buf bytes.Buffer
	PrintSummary(&buf, fixedReport("gw-a", 1))
	out := buf.String()
	t.Logf("\n%s", out)
	// Compare with runs of spaces collapsed; alignment is checked below.
	var norm []string
	lineLen := map[string]int{}
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		norm = append(norm, strings.Join(f, " "))
		if len(f) > 0 {
			lineLen[f[0]] = len([]rune(l))
		}
	}
	flat := strings.Join(norm, "\n")
	for _, want := range []string{
		`run "gw-a": 1000 requests offered over 9.00 s, done after 10.00 s`,
		"requests 1000\n",
		"ok 950 (95.00%)\n",
		"shed 20 (2.00%)\n",
		"errors 30 (3.00%) http_503 5, timeout 25\n",
		"throughput 95.00 req/s\n",
		"goodput 100.00 req/s within SLO, per second offered\n",
		"SLO attainment 90.00% critical 99.00%, standard 87.50%, sheddable -\n",
		"cost per 1k $0.123456 per 1,000 OK requests\n",
		"cost per 1M $2.500000 per 1M tokens",
		"ms p50 p90 p99 p99.9 max\n",
		"latency 12.50 40.00 123.4 456.7 789.0\n",
		"ttft 3.250 8.000 21.50 30.00 31.00\n",
		"itl 1.125 2.000 4.500 6.000 7.000\n",
		"hardware requests share cost share\n",
		"h100-sxm-80gb 300 30.61% $0.090000 75.00%\n",
		"l4 680 69.39% $0.030000 25.00%\n",
	} {
		if !strings.Contains(flat, want) {
			t.Errorf("summary lacks %q", want)
		}
	}
	// Right-aligned numbers: every row of a table has the same width.
	for _, group := range [][]string{{"ms", "latency", "ttft", "itl"}, {"hardware", "h100-sxm-80gb", "l4"}} {
		for _, k := range group[1:] {
			if lineLen[k] != lineLen[group[0]] {
				t.Errorf("row %q is %d wide, row %q %d", k, lineLen[k], group[0], lineLen[group[0]])
			}
		}
	}
	if strings.Contains(out, "not completed") {
		t.Errorf("no request is unaccounted for, but the summary says some are")
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.HasSuffix(line, " ") {
			t.Errorf("trailing space in %q", line)
		}
	}
}

func TestPrintCompare(t *testing.T) {
	a, b, c := fixedReport("base", 1), fixedReport("policy-b", 2), fixedReport("policy-c", 0.5)
	b.ByHardware = map[string]HardwareShare{"tpu-v5e": {Requests: 10, CostUSD: 1}}
	c.AttainmentByPriority.Critical = nil
	var buf bytes.Buffer
	PrintCompare(&buf, []*RunReport{a, b, c})
	out := buf.String()
	t.Logf("\n%s", out)
	lines := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) > 0 {
			lines[strings.Join(f[:len(f)-5], " ")] = strings.Join(f[len(f)-5:], " ")
		}
	}
	for label, want := range map[string]string{
		"metric":                 "base policy-b × policy-c ×",
		"requests":               "1000 1000 1.00× 1000 1.00×",
		"goodput req/s":          "100.00 200.00 2.00× 50.00 0.50×",
		"per s of duration":      "90.00 180.00 2.00× 45.00 0.50×",
		"offered window s":       "9.00 9.00 1.00× 9.00 1.00×",
		"SLO attainment":         "90.00% 180.00% 2.00× 45.00% 0.50×",
		"critical":               "99.00% 99.00% 1.00× - -",
		"sheddable":              "- - - - -",
		"latency p50 ms":         "12.50 25.00 2.00× 6.250 0.50×",
		"latency p99 ms":         "123.4 246.8 2.00× 61.70 0.50×",
		"cost per 1k requests":   "$0.123456 $0.246912 2.00× $0.061728 0.50×",
		"cost per 1M tokens":     "$2.500000 $5.000000 2.00× $1.250000 0.50×",
		"share on h100-sxm-80gb": "30.61% 0.00% 0.00× 30.61% 1.00×",
		"share on tpu-v5e":       "0.00% 100.00% - 0.00% -",
	} {
		if got, ok := lines[label]; !ok || got != want {
			t.Errorf("row %q = %q, want %q", label, got, want)
		}
	}
	if !strings.HasPrefix(out, "metric ") {
		t.Errorf("header should come first:\n%s", out)
	}
	buf.Reset()
	PrintCompare(&buf, nil)
	if buf.Len() != 0 {
		t.Errorf("PrintCompare(nil) wrote %q", buf.String())
	}
}
