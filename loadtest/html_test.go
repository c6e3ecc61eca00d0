package loadtest

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/accelgate/accelgate/backends"
)

// htmlReports returns two recorded reports for the same workload: a live-run
// style one (with a CDF) and one decoded from JSON (without).
func htmlReports(t *testing.T) []*RunReport {
	t.Helper()
	var reps []*RunReport
	for n, name := range []string{"baseline", "cheapest-feasible"} {
		r := NewRecorder(RecorderOptions{Name: name})
		for i := range 3000 {
			r.Offered()
			it := &Item{At: time.Duration(i) * 10 * msec, Priority: backends.Priority(i % 3), SLO: backends.SLO{E2E: 150 * msec}}
			o := recOK(it, time.Duration(20+i%200*(n+1))*msec)
			o.Hardware = []string{"h100-sxm-80gb", "l4", "tpu-v5e"}[(i+n)%3]
			o.CostUSD = 0.0001 * float64(1+i%3)
			o.InputTokens, o.OutputTokens = 100, 20
			if i%40 == 0 {
				o = &Outcome{Item: it, Kind: "shed", Status: 429}
			}
			r.Record(o)
		}
		reps = append(reps, r.Report(30*time.Second))
	}
	// The second as if loaded from a JSON file.
	var buf bytes.Buffer
	if err := WriteJSON(&buf, reps[1]); err != nil {
		t.Fatal(err)
	}
	reps[1] = new(RunReport)
	if err := json.Unmarshal(buf.Bytes(), reps[1]); err != nil {
		t.Fatal(err)
	}
	return reps
}

func renderHTML(t *testing.T, title string, reps []*RunReport) string {
	t.Helper()
	var buf bytes.Buffer
	if err := WriteHTML(&buf, title, reps); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

var scriptSrcRE = regexp.MustCompile(`(?i)<script[^>]*\ssrc\s*=`)

func TestWriteHTMLIsSelfContained(t *testing.T) {
	for _, reps := range [][]*RunReport{htmlReports(t), htmlReports(t)[:1], {NewRecorder(RecorderOptions{Name: "empty"}).Report(0)}} {
		page := renderHTML(t, "accelgate <run> & co", reps)
		if m := scriptSrcRE.FindString(page); m != "" {
			t.Errorf("page loads a script from elsewhere: %q", m)
		}
		for _, bad := range []string{`src="http://`, `src="https://`, `href="http://`, `href="https://`, "go-echarts-assets", "cdn."} {
			if strings.Contains(page, bad) {
				t.Errorf("page refers to %q: it would not open offline", bad)
			}
		}
		if !strings.Contains(page, echartsJS) || len(echartsJS) < 500_000 {
			t.Errorf("page does not inline the embedded echarts (%d bytes)", len(echartsJS))
		}
		if !strings.Contains(page, "<title>accelgate &lt;run&gt; &amp; co</title>") {
			t.Errorf("title not escaped")
		}
		for _, id := range []string{"latency_cdf", "throughput", "p99_over_time", "attainment", "cost_by_hardware"} {
			if !strings.Contains(page, `id="`+id+`"`) {
				t.Errorf("chart %s missing", id)
			}
		}
		for _, rep := range reps {
			if !strings.Contains(page, rep.Name) {
				t.Errorf("report %q not in the page", rep.Name)
			}
		}
		if !strings.Contains(page, "dataset.chartsRendered") {
			t.Errorf("no rendering marker")
		}
	}
	if !strings.Contains(echartsJS[:400], "Licensed to the Apache Software Foundation") {
		t.Errorf("assets/echarts.min.js does not look like Apache ECharts")
	}
	if !strings.Contains(echartsJS, `"`+EChartsVersion+`"`) {
		t.Errorf("assets/echarts.min.js is not version %s", EChartsVersion)
	}
}

func TestWriteHTMLCompareTable(t *testing.T) {
	reps := htmlReports(t)
	page := renderHTML(t, "compare", reps)
	for _, want := range []string{
		"<th>baseline</th><th>cheapest-feasible</th><th>×</th>",
		"<td>throughput req/s</td>",
		"<td>share on l4</td>",
		`data-charts-expected="7"`, // 5 charts + a placement pie per report
	} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
}

// findBrowser returns a headless-capable Chromium, or "".
func findBrowser() string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

var renderedRE = regexp.MustCompile(`<body[^>]*\sdata-charts-rendered="(\d+)"`)

// TestWriteHTMLRendersInBrowser opens the page in headless Chromium, offline,
// and checks that every chart drew a canvas. Without Chromium it skips,
// unless ACCELGATE_REQUIRE_BROWSER=1 (set by .ci/run).
func TestWriteHTMLRendersInBrowser(t *testing.T) {
	browser := findBrowser()
	if browser == "" {
		if os.Getenv("ACCELGATE_REQUIRE_BROWSER") == "1" {
			t.Fatal("ACCELGATE_REQUIRE_BROWSER=1 but no chromium or chromium-browser binary is on PATH (apt-get install chromium)")
		}
		t.Skip("no chromium or chromium-browser binary on PATH: skipping the headless-browser check of the HTML report (install chromium, or set ACCELGATE_REQUIRE_BROWSER=1 to make this a failure)")
	}
	if testing.Short() && os.Getenv("ACCELGATE_REQUIRE_BROWSER") != "1" {
		t.Skip("-short: skipping the headless-browser check")
	}
	for _, tc := range []struct {
		name string
		reps []*RunReport
		want int
	}{
		{"compare", htmlReports(t), 7},
		{"single", htmlReports(t)[:1], 6},
		{"empty", []*RunReport{NewRecorder(RecorderOptions{Name: "empty"}).Report(0)}, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "report.html")
			if err := os.WriteFile(path, []byte(renderHTML(t, "browser test", tc.reps)), 0o644); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
				"--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
				"--disable-dev-shm-usage", "--user-data-dir="+filepath.Join(dir, "profile"),
				"--virtual-time-budget=5000", "--dump-dom", "file://"+path)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			cmd.WaitDelay = 5 * time.Second
			err := cmd.Run()
			if ctx.Err() != nil {
				t.Fatalf("%s did not finish within 60 s; stderr:\n%s", browser, lastN(stderr.String(), 2000))
			}
			if err != nil {
				t.Fatalf("%s: %v; stderr:\n%s", browser, err, lastN(stderr.String(), 2000))
			}
			dom := stdout.String()
			m := renderedRE.FindStringSubmatch(dom)
			if m == nil {
				t.Fatalf("the page's rendering marker was not set (scripts did not run?); dumped DOM starts:\n%s\nstderr:\n%s",
					firstN(dom, 1000), lastN(stderr.String(), 2000))
			}
			if e := regexp.MustCompile(`data-charts-error="([^"]*)"`).FindStringSubmatch(dom); e != nil {
				t.Errorf("a script failed in the browser: %s", e[1])
			}
			if n, _ := strconv.Atoi(m[1]); n != tc.want {
				t.Errorf("%d charts rendered a canvas, want %d", n, tc.want)
			}
			if c := strings.Count(dom, "<canvas"); c < tc.want {
				t.Errorf("%d canvas elements in the DOM, want at least %d", c, tc.want)
			}
		})
	}
}

func firstN(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

func lastN(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
