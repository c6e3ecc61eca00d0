package kservegrpc_test

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/accelgate/accelgate/backends"
	"github.com/accelgate/accelgate/backends/catalog"
	"github.com/accelgate/accelgate/backends/kservegrpc"
)

// startEmulator builds cmd/emulator and runs it as a separate process serving
// resnet-50 on an L4 over HTTP and gRPC; it returns the gRPC address from the
// first output line ("http=HOST:PORT grpc=HOST:PORT").
func startEmulator(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "emulator")
	build := exec.Command("go", "build", "-o", bin, "github.com/accelgate/accelgate/cmd/emulator")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the emulator: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "-profile", "l4", "-models", "resnet-50", "-http-addr", "127.0.0.1:0", "-grpc-addr", "127.0.0.1:0", "-jitter", "0")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("reading the emulator's first line: %v", err)
	}
	addrs := map[string]string{}
	for _, w := range strings.Fields(line) {
		if k, v, ok := strings.Cut(w, "="); ok {
			addrs[k] = v
		}
	}
	if addrs["http"] == "" || addrs["grpc"] == "" {
		t.Fatalf("first line %q does not name http=HOST:PORT grpc=HOST:PORT", line)
	}
	return addrs["grpc"]
}

// TestEmulatorProcessOverGRPC drives a separate cmd/emulator process through
// the kserve-grpc transport: metadata, a batch of two, and errors.
func TestEmulatorProcessOverGRPC(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts a process")
	}
	addr := startEmulator(t)
	prof, _ := catalog.Default().Get("l4")
	desc := &backends.Descriptor{Name: "remote-l4", Profile: prof, Models: []string{"resnet-50"}, Transport: "kserve-grpc", PricePerHour: prof.PricePerHour}
	b, err := kservegrpc.New(desc, kservegrpc.Config{Target: addr})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := ctxT(t)
	m := resnetModel(t)

	md, err := b.ModelMetadata(ctx, "resnet-50", "")
	if err != nil {
		t.Fatal(err)
	}
	if md.Name != "resnet-50" || len(md.Inputs) != 1 || md.Inputs[0].Name != m.Inputs[0].Name || md.Inputs[0].Datatype != "FP32" ||
		len(md.Outputs) != 1 || md.Outputs[0].Name != "output" {
		t.Fatalf("metadata %+v", md)
	}

	res, err := b.Do(ctx, tensorReq(2), m, nil)
	if err != nil {
		t.Fatal(err)
	}
	checkLogits(t, res, 2)
	if res.CostUSD <= 0 || res.Timing.Total <= 0 {
		t.Fatalf("cost %v timing %+v", res.CostUSD, res.Timing)
	}

	bad := tensorReq(1)
	bad.Tensors[0].Data = bad.Tensors[0].Data[:100]
	var ue *backends.UpstreamError
	if _, err := b.Do(ctx, bad, m, nil); !errors.As(err, &ue) || ue.Status != 400 {
		t.Fatalf("short raw data: %v, want an UpstreamError 400", err)
	}
	unknown := tensorReq(1)
	unknown.Model = "llama-3.1-8b-instruct"
	if _, err := b.Do(ctx, unknown, m, nil); !errors.As(err, &ue) || ue.Status != 404 {
		t.Fatalf("a model the emulator does not serve: %v, want an UpstreamError 404", err)
	}
}
