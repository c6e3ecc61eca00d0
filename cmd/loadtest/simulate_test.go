package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSimulateFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string // in stderr
	}{
		{[]string{"-batching", "eager"}, `-batching: unknown batching mode "eager" (want off, fixed, adaptive or all)`},
		{[]string{"-batching", "off,off"}, `-batching: "off" is listed twice`},
		{[]string{"-batching", ","}, "-batching: name at least one mode"},
		{[]string{"-max-queue-delay-us", "-5"}, "-max-queue-delay-us must not be negative"},
		{[]string{"-load", "0"}, `-load: "0" is not a positive number`},
		{[]string{"-load", "half"}, `-load: "half" is not a positive number`},
		{[]string{"-rate", "-5"}, `-rate: "-5" is not a positive number`},
		{[]string{"-load", "0.5", "-rate", "10"}, "-load and -rate cannot be combined"},
		{[]string{"-policies", "priciest"}, `unknown policy "priciest"`},
		{[]string{"-policies", ","}, "name at least one policy"},
		{[]string{"-policies", "fastest,fastest"}, "listed twice"},
		{[]string{"-scenario", "meteor"}, `unknown scenario "meteor"`},
		{[]string{"-scenario", "drift", "-scenario-backend", "nope"}, `no backend named "nope"`},
		{[]string{"-scenario-backend", "h100-0"}, "affects no backend"},
		{[]string{"-workload", "chess"}, `unknown workload "chess"`},
		{[]string{"-workload", "trace:x.csv", "-load", "0.5"}, "a trace replays at its own timestamps"},
		{[]string{"-workload", "trace:x.csv", "-find-max"}, "-find-max varies the rate"},
		{[]string{"-requests", "-1"}, "-requests must not be negative"},
		{[]string{"-nope"}, "flag provided but not defined"},
		{[]string{"extra"}, `unexpected argument "extra"`},
	} {
		var out, errb bytes.Buffer
		if rc := run(append([]string{"simulate"}, tc.args...), &out, &errb); rc != 2 {
			t.Errorf("%v: exit %d, want 2 (%s)", tc.args, rc, errb.String())
		}
		if !strings.Contains(errb.String(), tc.want) {
			t.Errorf("%v: stderr %q does not say %q", tc.args, errb.String(), tc.want)
		}
	}
	var out, errb bytes.Buffer
	if rc := run([]string{"simulate", "-config", filepath.Join(t.TempDir(), "none.yaml")}, &out, &errb); rc != 1 {
		t.Errorf("missing config: exit %d", rc)
	}
	errb.Reset()
	if rc := run([]string{"simulate", "-h"}, &out, &errb); rc != 0 || !strings.Contains(errb.String(), "-find-max") ||
		!strings.Contains(errb.String(), "edge-failure") {
		t.Errorf("-h: exit %d, usage %q", rc, errb.String())
	}
}

func TestSimulateWritesReports(t *testing.T) {
	dir := t.TempDir()
	jsonPath, htmlPath := filepath.Join(dir, "sim.json"), filepath.Join(dir, "sim.html")
	var out, errb bytes.Buffer
	rc := run([]string{"simulate", "-workload", "mixed", "-requests", "2000", "-policies", "all", "-load", "0.2,0.4",
		"-scenario", "edge-failure", "-json", jsonPath, "-html", htmlPath}, &out, &errb)
	if rc != 0 {
		t.Fatalf("exit %d: %s", rc, errb.String())
	}
	for _, want := range []string{"capacity: ", "lower bound on cost per 1k requests at ", "scenario edge-failure: edge-0 stops answering",
		"note: ", "accelgate@0.2", "round-robin@0.2", "fastest@0.4", "SLO attainment"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("stdout lacks %q:\n%s", want, out.String())
		}
	}
	if !strings.Contains(errb.String(), "simulated fastest@0.4: 2000 requests") {
		t.Errorf("no progress lines: %q", errb.String())
	}
	var env struct {
		Fleet    string `json:"fleet"`
		Scenario string `json:"scenario"`
		Runs     []struct {
			Policy   string  `json:"policy"`
			Load     float64 `json:"load"`
			Requests int64   `json:"requests"`
		} `json:"runs"`
	}
	readJSON(t, jsonPath, &env)
	if env.Fleet != "default" || env.Scenario != "edge-failure" || len(env.Runs) != 16 || env.Runs[0].Policy != "accelgate" ||
		env.Runs[8].Load != 0.4 || env.Runs[15].Requests != 2000 {
		t.Errorf("envelope %+v", env)
	}
	if h, err := os.ReadFile(htmlPath); err != nil || !bytes.Contains(h, []byte("fastest@0.4")) {
		t.Errorf("html: %v, %d bytes", err, len(h))
	}
}

func TestSimulateBatching(t *testing.T) {
	dir := t.TempDir()
	jsonPath := filepath.Join(dir, "sim.json")
	var out, errb bytes.Buffer
	rc := run([]string{"simulate", "-workload", "vision", "-requests", "2000", "-rate", "5000", "-batching", "off,fixed,adaptive",
		"-max-queue-delay-us", "1000", "-json", jsonPath}, &out, &errb)
	if rc != 0 {
		t.Fatalf("exit %d: %s", rc, errb.String())
	}
	for _, want := range []string{"accelgate/off@5000rps", "accelgate/fixed@5000rps", "accelgate/adaptive@5000rps",
		"accelgate/fixed@5000rps: max_queue_delay_us 1000"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("stdout lacks %q:\n%s", want, out.String())
		}
	}
	var env struct {
		Runs []struct {
			Batching        string  `json:"batching"`
			MeanBatchSize   float64 `json:"mean_batch_size"`
			MaxQueueDelayUs *int64  `json:"max_queue_delay_us"`
		} `json:"runs"`
	}
	readJSON(t, jsonPath, &env)
	if len(env.Runs) != 3 || env.Runs[0].Batching != "off" || env.Runs[2].Batching != "adaptive" ||
		env.Runs[1].MaxQueueDelayUs == nil || *env.Runs[1].MaxQueueDelayUs != 1000 || env.Runs[2].MaxQueueDelayUs != nil ||
		!(env.Runs[2].MeanBatchSize > env.Runs[0].MeanBatchSize) {
		t.Errorf("runs %+v", env.Runs)
	}
}
