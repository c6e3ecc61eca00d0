package main

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"testing"

	"github.com/accelgate/accelgate/backends/telemetry"
	"github.com/accelgate/accelgate/internal/testutil"
)

// TestMetricsEndpoint runs the emulator in-process and reads its GET /metrics
// as the gateway's telemetry would: vLLM names, an idle engine.
func TestMetricsEndpoint(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-http-addr", "127.0.0.1:0", "-jitter", "0"}, pw)
		pw.Close()
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("emulator exited with %v", err)
		}
	}()
	br := bufio.NewReader(pr)
	line, err := br.ReadString('\n')
	if err != nil {
		t.Fatalf("emulator output: %v", err)
	}
	go io.Copy(io.Discard, br)
	addr := testutil.ListenAddrs(line)["http"]
	if addr == "" {
		t.Fatalf("first line %q names no http=HOST:PORT", line)
	}
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/plain; version=0.0.4; charset=utf-8" {
		t.Fatalf("GET /metrics: %s, Content-Type %q", resp.Status, resp.Header.Get("Content-Type"))
	}
	snap, err := telemetry.Parse(resp.Body, nil)
	if err != nil {
		t.Fatal(err)
	}
	if snap.Source != telemetry.SourceVLLM || snap.Running != 0 || snap.Waiting != 0 || snap.KVCacheUsage != 0 {
		t.Errorf("idle emulator: %+v", snap)
	}
}
