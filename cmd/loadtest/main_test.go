package main

import (
	"bytes"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

// fakeTarget answers every request 200 with a cost, on 127.0.0.1.
func fakeTarget(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		ctx.Response.Header.Set("x-accelgate-backend", "l4-0")
		ctx.Response.Header.Set("x-accelgate-hardware", "l4")
		ctx.Response.Header.Set("x-accelgate-cost-usd", "0.000001")
		ctx.WriteString(`{"object":"list","data":[],"usage":{"prompt_tokens":5,"total_tokens":5}}`)
	}}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Shutdown() })
	return "http://" + ln.Addr().String()
}

func TestHelpAndBadFlags(t *testing.T) {
	var out, errb bytes.Buffer
	if rc := run([]string{"-h"}, &out, &errb); rc != 0 {
		t.Errorf("-h: exit %d", rc)
	}
	if !strings.Contains(errb.String(), "-schedule") {
		t.Errorf("usage does not list -schedule:\n%s", errb.String())
	}
	for _, args := range [][]string{{"-nope"}, {"extra"}, {"-schedule", "sine:1"}, {"-compare", "http://127.0.0.1:1"}} {
		if rc := run(args, &out, &errb); rc != 2 {
			t.Errorf("%v: exit %d, want 2", args, rc)
		}
	}
	for _, args := range [][]string{{"-rate", "0"}, {"-workload", "nope", "-requests", "1"}, {"-users", "2", "-schedule", "step:1s@1"}} {
		if rc := run(append(args, "-quiet"), &out, &errb); rc != 1 {
			t.Errorf("%v: exit %d, want 1", args, rc)
		}
	}
}

func TestRunWritesReports(t *testing.T) {
	target := fakeTarget(t)
	dir := t.TempDir()
	jsonPath, htmlPath := filepath.Join(dir, "run.json"), filepath.Join(dir, "run.html")
	var out, errb bytes.Buffer
	rc := run([]string{"-target", target, "-workload", "embeddings", "-rate", "500", "-requests", "20",
		"-json", jsonPath, "-html", htmlPath, "-timeout", "5s", "-connections", "4"}, &out, &errb)
	if rc != 0 {
		t.Fatalf("exit %d: %s", rc, errb.String())
	}
	var rep struct {
		Name     string `json:"name"`
		Requests int64  `json:"requests"`
		OK       int64  `json:"ok"`
	}
	readJSON(t, jsonPath, &rep)
	if rep.Requests != 20 || rep.OK != 20 || rep.Name != target {
		t.Errorf("report %+v", rep)
	}
	if h, err := os.ReadFile(htmlPath); err != nil || !bytes.Contains(h, []byte("<html")) {
		t.Errorf("html: %v, %d bytes", err, len(h))
	}
	if out.Len() == 0 {
		t.Error("no summary on stdout")
	}
	if !strings.Contains(errb.String(), "sent 20") {
		t.Errorf("no progress line on stderr: %q", errb.String())
	}
}

func TestCompareAndClosedLoopAndSchedule(t *testing.T) {
	a, b := fakeTarget(t), fakeTarget(t)
	dir := t.TempDir()
	jsonPath := filepath.Join(dir, "cmp.json")
	var out, errb bytes.Buffer
	rc := run([]string{"-compare", a + "," + b, "-workload", "embeddings", "-rate", "500", "-requests", "10",
		"-quiet", "-json", jsonPath}, &out, &errb)
	if rc != 0 {
		t.Fatalf("compare: exit %d: %s", rc, errb.String())
	}
	var reps []struct {
		Name     string `json:"name"`
		Requests int64  `json:"requests"`
	}
	data, _ := os.ReadFile(jsonPath)
	if err := json.Unmarshal(data, &reps); err != nil || len(reps) != 2 || reps[0].Name != a || reps[1].Name != b ||
		reps[0].Requests != 10 || reps[1].Requests != 10 {
		t.Errorf("compare reports %s (%v)", data, err)
	}

	out.Reset()
	if rc := run([]string{"-target", a, "-workload", "embeddings", "-users", "3", "-requests", "12", "-quiet",
		"-json", jsonPath}, &out, &errb); rc != 0 {
		t.Fatalf("closed loop: exit %d: %s", rc, errb.String())
	}
	data, _ = os.ReadFile(jsonPath)
	if !bytes.Contains(data, []byte(`"requests": 12`)) {
		t.Errorf("closed loop report %s", data)
	}

	if rc := run([]string{"-target", a, "-workload", "embeddings", "-schedule", "step:100ms@100,100ms@200", "-quiet",
		"-json", jsonPath}, &out, &errb); rc != 0 {
		t.Fatalf("schedule: exit %d: %s", rc, errb.String())
	}
	data, _ = os.ReadFile(jsonPath)
	var rep struct {
		Requests int64 `json:"requests"`
	}
	if err := json.Unmarshal(data, &rep); err != nil || rep.Requests < 5 || rep.Requests > 80 {
		t.Errorf("schedule of ~30 requests sent %d (%v)", rep.Requests, err)
	}
}

// readJSON decodes the JSON file at path into v.
func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
}
