package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/accelgate/accelgate/backends/catalog"
)

// reloadFleet is one emulated LLM backend named name.
func reloadFleet(name string) string {
	return `models:
  - name: llama-3.1-8b-instruct
    kind: llm
backends:
  - name: ` + name + `
    hardware: h100-sxm-80gb
    models: [llama-3.1-8b-instruct]
    jitter: 0
`
}

// chatOn sends a chat request and returns the status and the backend that
// served it.
func chatOn(t *testing.T, httpAddr string, maxTokens int) (int, string) {
	t.Helper()
	body := `{"model":"llama-3.1-8b-instruct","max_tokens":` + itoa(maxTokens) + `,"messages":[{"role":"user","content":"Tell me about accelerators."}]}`
	resp, err := http.Post("http://"+httpAddr+"/v1/chat/completions", "application/json", strings.NewReader(body))
	if err != nil {
		t.Error(err)
		return 0, ""
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, resp.Header.Get("x-accelgate-backend")
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

func postReload(t *testing.T, admin string) (int, string) {
	t.Helper()
	resp, err := http.Post("http://"+admin+"/admin/reload", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestReloadWithoutDowntime: the fleet file changes from backend "old" to
// backend "new" while a long request runs on "old". A reload swaps the
// fleet: the request in flight finishes on "old" (it drains), new requests
// go to "new"; a file that does not validate changes nothing; with the file
// watch on, a change of content is picked up without any signal.
func TestReloadWithoutDowntime(t *testing.T) {
	if testing.Short() {
		t.Skip("runs emulated requests in real time")
	}
	path := filepath.Join(t.TempDir(), "fleet.yaml")
	write := func(s string) {
		if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(reloadFleet("old"))
	addrs := startGatewayAt(t, path, "-reload-interval", "0")
	if st, be := chatOn(t, addrs["http"], 4); st != 200 || be != "old" {
		t.Fatalf("before the reload: %d on %q", st, be)
	}
	// A long request (about a second of emulated decoding) in flight.
	type result struct {
		status  int
		backend string
	}
	inflight := make(chan result, 1)
	go func() { st, be := chatOn(t, addrs["http"], 200); inflight <- result{st, be} }()
	write(reloadFleet("new"))
	// The long request is placed before the reload: wait until the old
	// fleet reports it in flight.
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get("http://" + addrs["admin"] + "/admin/backends")
		if err != nil {
			t.Fatal(err)
		}
		var bs []struct {
			Name string `json:"name"`
			Load struct {
				InFlight int `json:"in_flight"`
			} `json:"load"`
		}
		json.NewDecoder(resp.Body).Decode(&bs)
		resp.Body.Close()
		if len(bs) == 1 && bs[0].Name == "old" && bs[0].Load.InFlight == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the long request never showed in flight: %+v", bs)
		}
	}
	if st, body := postReload(t, addrs["admin"]); st != 200 || !strings.Contains(body, `"reloaded": true`) {
		t.Fatalf("reload: %d %s", st, body)
	}
	if st, be := chatOn(t, addrs["http"], 4); st != 200 || be != "new" {
		t.Fatalf("after the reload: %d on %q, want new", st, be)
	}
	if r := <-inflight; r.status != 200 || r.backend != "old" {
		t.Fatalf("the request in flight during the reload: %d on %q, want 200 on old", r.status, r.backend)
	}
	// Reloading an unchanged file does nothing; a bad file changes nothing.
	if st, body := postReload(t, addrs["admin"]); st != 200 || !strings.Contains(body, `"reloaded": false`) {
		t.Fatalf("unchanged reload: %d %s", st, body)
	}
	write("models: [\n")
	if st, body := postReload(t, addrs["admin"]); st != 422 || !strings.Contains(body, "running fleet stays") {
		t.Fatalf("bad file: %d %s", st, body)
	}
	if st, be := chatOn(t, addrs["http"], 4); st != 200 || be != "new" {
		t.Fatalf("after a bad reload: %d on %q", st, be)
	}
}

// TestReloadOnFileChange: with -reload-interval, a change of the file's
// content is applied without a signal.
func TestReloadOnFileChange(t *testing.T) {
	if testing.Short() {
		t.Skip("runs emulated requests in real time")
	}
	path := filepath.Join(t.TempDir(), "fleet.yaml")
	if err := os.WriteFile(path, []byte(reloadFleet("first")), 0o644); err != nil {
		t.Fatal(err)
	}
	addrs := startGatewayAt(t, path, "-reload-interval", "50ms")
	if st, be := chatOn(t, addrs["http"], 2); st != 200 || be != "first" {
		t.Fatalf("before: %d on %q", st, be)
	}
	if err := os.WriteFile(path, []byte(reloadFleet("second")), 0o644); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		st, be := chatOn(t, addrs["http"], 2)
		if st != 200 {
			t.Fatalf("during the change: status %d", st)
		}
		if be == "second" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the file change was never applied")
		}
	}
}

// TestReloadOnSIGHUP: SIGHUP reloads the fleet file (the file watch is off).
func TestReloadOnSIGHUP(t *testing.T) {
	if testing.Short() {
		t.Skip("runs emulated requests in real time")
	}
	path := filepath.Join(t.TempDir(), "fleet.yaml")
	if err := os.WriteFile(path, []byte(reloadFleet("before")), 0o644); err != nil {
		t.Fatal(err)
	}
	addrs := startGatewayAt(t, path, "-reload-interval", "0")
	if st, be := chatOn(t, addrs["http"], 2); st != 200 || be != "before" {
		t.Fatalf("before: %d on %q", st, be)
	}
	if err := os.WriteFile(path, []byte(reloadFleet("after")), 0o644); err != nil {
		t.Fatal(err)
	}
	// The gateway's run has registered for SIGHUP before it printed its
	// addresses, so the signal reaches it rather than ending the process.
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		st, be := chatOn(t, addrs["http"], 2)
		if st != 200 {
			t.Fatalf("during the reload: status %d", st)
		}
		if be == "after" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("SIGHUP did not reload the fleet file")
		}
	}
}

// TestFileWatchReportsOnce: the file watch's tick parses and reports a file
// only when its bytes changed since the last read, so a file that does not
// validate (or a missing file) is reported once, not at every tick.
func TestFileWatchReportsOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fleet.yaml")
	var logged []string
	r := &reloader{path: path, cat: catalog.Default(), logf: func(format string, a ...any) {
		logged = append(logged, fmt.Sprintf(format, a...))
	}}
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tick := func(n int, want int, what string) {
		t.Helper()
		for range n {
			r.checkFile()
		}
		if len(logged) != want {
			t.Fatalf("%s: %d reports, want %d: %q", what, len(logged), want, logged)
		}
	}
	write("models: [")
	tick(3, 1, "a file that does not parse, three ticks")
	if !strings.Contains(logged[0], "the running fleet stays") {
		t.Errorf("report %q does not say the running fleet stays", logged[0])
	}
	write(strings.Replace(reloadFleet("a"), "h100-sxm-80gb", "no-such-gpu", 1))
	tick(3, 2, "changed to a file that does not validate")
	if !strings.Contains(logged[1], "no-such-gpu") {
		t.Errorf("report %q does not name the bad hardware", logged[1])
	}
	os.Remove(path)
	tick(3, 3, "the file removed")
	// SIGHUP and the admin API always try again, and report again.
	if _, err := r.reload(false); err == nil {
		t.Error("a reload of a missing file succeeded")
	}
}
