package testutil

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// StartEmulator builds cmd/emulator and runs it as a separate process with
// args (which choose the listen addresses: "-http-addr", "127.0.0.1:0" and,
// for gRPC, "-grpc-addr", "127.0.0.1:0"). It returns the addresses its first
// output line names ("http=HOST:PORT", then " grpc=HOST:PORT" when it serves
// gRPC; grpcAddr is "" otherwise). The process is killed when the test ends.
func StartEmulator(t testing.TB, args ...string) (httpAddr, grpcAddr string) {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "emulator")
	build := exec.Command("go", "build", "-o", bin, "github.com/accelgate/accelgate/cmd/emulator")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the emulator: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, args...)
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
	addrs := ListenAddrs(line)
	if addrs["http"] == "" {
		t.Fatalf("first line %q does not name http=HOST:PORT", line)
	}
	return addrs["http"], addrs["grpc"]
}

// ListenAddrs parses the first output line of the gateway or the emulator,
// such as "accelgate listening on http=HOST:PORT grpc=HOST:PORT", into its
// key=value words.
func ListenAddrs(line string) map[string]string {
	addrs := map[string]string{}
	for _, w := range strings.Fields(line) {
		if k, v, ok := strings.Cut(w, "="); ok {
			addrs[k] = v
		}
	}
	return addrs
}
