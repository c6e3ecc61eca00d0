package main

// Helpers of the fault tests (fault_test.go): cmd/emulator processes that can
// be killed and restarted on their port, in-process toxiproxy proxies in
// front of them with a marker-counting toxic, a gateway started in-process
// whose output is kept, and an OpenAI client that reads streams event by
// event. Everything listens and connects on 127.0.0.1 only.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/Shopify/toxiproxy/v2/toxics"
	"github.com/rs/zerolog"

	"github.com/accelgate/accelgate/internal/testutil"
)

const faultModel = "llama-3.1-8b-instruct"

// lockedBuffer is a bytes.Buffer safe for concurrent writers.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// buildEmulatorBinary builds cmd/emulator into dir with the go command from
// PATH and returns the binary's path. A build failure fails the test.
func buildEmulatorBinary(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "emulator")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/accelgate/accelgate/cmd/emulator").CombinedOutput()
	if err != nil {
		t.Fatalf("building cmd/emulator: %v\n%s", err, out)
	}
	return bin
}

// emuProc is one cmd/emulator process serving faultModel over HTTP on
// 127.0.0.1. kill SIGKILLs it; restart starts a new process on the same
// address.
type emuProc struct {
	t    *testing.T
	bin  string
	name string
	seed int
	addr string // HOST:PORT, fixed after the first start

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has been waited for
	stderr *lockedBuffer
}

// startEmu starts an emulator named name (the name it reports in its own
// x-accelgate-backend; the gateway names backends after its fleet file) on a
// free port. It is killed when the test ends; its stderr is logged if the
// test failed.
func startEmu(t *testing.T, bin, name string, seed int) *emuProc {
	t.Helper()
	e := &emuProc{t: t, bin: bin, name: name, seed: seed, addr: "127.0.0.1:0", stderr: &lockedBuffer{}}
	e.start()
	t.Cleanup(func() {
		e.kill()
		if t.Failed() {
			if s := e.stderr.String(); s != "" {
				t.Logf("emulator %s stderr:\n%s", name, s)
			}
		}
	})
	return e
}

func (e *emuProc) start() {
	t := e.t
	t.Helper()
	cmd := exec.Command(e.bin, "-profile", "h100-sxm-80gb", "-models", faultModel, "-http-addr", e.addr,
		"-name", e.name, "-seed", fmt.Sprint(e.seed), "-jitter", "0")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = e.stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting emulator %s: %v", e.name, err)
	}
	exited := make(chan struct{})
	lines := make(chan string, 1)
	go func() {
		br := bufio.NewReader(stdout)
		line, _ := br.ReadString('\n')
		lines <- line
		io.Copy(io.Discard, br)
		cmd.Wait()
		close(exited)
	}()
	e.mu.Lock()
	e.cmd, e.exited = cmd, exited
	e.mu.Unlock()
	select {
	case line := <-lines:
		addr := testutil.ListenAddrs(line)["http"]
		if addr == "" {
			cmd.Process.Kill()
			<-exited
			t.Fatalf("emulator %s (listen %s): first line %q names no http=HOST:PORT; stderr:\n%s", e.name, e.addr, line, e.stderr.String())
		}
		if e.addr != "127.0.0.1:0" && addr != e.addr {
			t.Fatalf("emulator %s restarted on %s, want %s", e.name, addr, e.addr)
		}
		e.addr = addr
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		<-exited
		t.Fatalf("emulator %s did not print its address within 30s", e.name)
	}
}

// kill SIGKILLs the process and waits until it has exited. Idempotent.
func (e *emuProc) kill() {
	e.mu.Lock()
	cmd, exited := e.cmd, e.exited
	e.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Kill()
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		e.t.Errorf("emulator %s did not exit within 10s of SIGKILL", e.name)
	}
}

// restart starts a new emulator process on the killed one's address.
func (e *emuProc) restart() {
	e.t.Helper()
	e.start()
}

// markerToxicType is the toxiproxy toxic type that records, per proxy, which
// request markers (markerPrefix followed by markerDigits digits, written into
// each request's prompt) went through it upstream: a request that reached
// two upstreams was retried.
const (
	markerToxicType = "accelgate_marker"
	markerPrefix    = "fq"
	markerDigits    = 7
	markerLen       = len(markerPrefix) + markerDigits
)

func init() { toxics.Register(markerToxicType, new(markerToxic)) }

// markerSinks maps a markerToxic's Key to where it records.
var markerSinks sync.Map // string -> *markerSink

type markerSink struct {
	log     *markerLog
	backend string
}

// markerLog records the upstreams every request marker reached.
type markerLog struct {
	mu   sync.Mutex
	seen map[int][]string // marker -> backends, in arrival order
}

func newMarkerLog() *markerLog { return &markerLog{seen: map[int][]string{}} }

func (l *markerLog) add(id int, backend string) {
	l.mu.Lock()
	l.seen[id] = append(l.seen[id], backend)
	l.mu.Unlock()
}

// backends returns the upstreams request id reached, in order.
func (l *markerLog) backends(id int) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.seen[id]...)
}

// markerToxic passes data through unchanged and reports every marker in it
// to the sink registered under Key.
type markerToxic struct {
	Key string `json:"key"`
}

type markerState struct{ tail []byte }

func (t *markerToxic) NewState() interface{} { return new(markerState) }

func (t *markerToxic) Pipe(stub *toxics.ToxicStub) {
	st, _ := stub.State.(*markerState)
	if st == nil {
		st = new(markerState)
	}
	var sink *markerSink
	if v, ok := markerSinks.Load(t.Key); ok {
		sink = v.(*markerSink)
	}
	for {
		select {
		case <-stub.Interrupt:
			return
		case c := <-stub.Input:
			if c == nil {
				stub.Close()
				return
			}
			if sink != nil {
				st.scan(c.Data, sink)
			}
			stub.Output <- c
		}
	}
}

// scan reports the markers that end in data (those split across two reads
// included: the last bytes of the previous read are kept).
func (st *markerState) scan(data []byte, sink *markerSink) {
	old := len(st.tail)
	buf := append(st.tail, data...)
	for i := 0; ; {
		k := bytes.Index(buf[i:], []byte(markerPrefix))
		if k < 0 {
			break
		}
		i += k
		end := i + markerLen
		if end > len(buf) {
			break
		}
		if end > old {
			id, ok := 0, true
			for _, c := range buf[i+len(markerPrefix) : end] {
				if c < '0' || c > '9' {
					ok = false
					break
				}
				id = id*10 + int(c-'0')
			}
			if ok {
				sink.log.add(id, sink.backend)
			}
		}
		i++
	}
	keep := min(len(buf), markerLen-1)
	st.tail = append(st.tail[:0:0], buf[len(buf)-keep:]...)
}

// marker is the prompt prefix that names request id.
func marker(id int) string { return fmt.Sprintf("%s%0*d", markerPrefix, markerDigits, id) }

// toxi is an in-process toxiproxy server (no HTTP API) whose log is read to
// count the connections each proxy could not open to its upstream.
type toxi struct {
	t   *testing.T
	srv *toxiproxy.ApiServer
	log *markerLog

	mu        sync.Mutex
	dialFails map[string]int // proxy name -> upstream dials refused
}

var toxiSeq atomic.Int64

func newToxi(t *testing.T, log *markerLog) *toxi {
	tx := &toxi{t: t, log: log, dialFails: map[string]int{}}
	logger := zerolog.New(toxiLogWriter{tx}).Level(zerolog.WarnLevel)
	tx.srv = toxiproxy.NewServer(toxiproxy.NewMetricsContainer(nil), logger)
	return tx
}

// toxiLogWriter receives toxiproxy's JSON log lines.
type toxiLogWriter struct{ tx *toxi }

func (w toxiLogWriter) Write(p []byte) (int, error) {
	if bytes.Contains(p, []byte("Unable to open connection to upstream")) {
		var ev struct {
			Name string `json:"name"`
		}
		if json.Unmarshal(p, &ev) == nil {
			w.tx.mu.Lock()
			w.tx.dialFails[ev.Name]++
			w.tx.mu.Unlock()
		}
	}
	return len(p), nil
}

// refused returns how many connections proxy name accepted and closed
// because its upstream refused the dial.
func (tx *toxi) refused(name string) int {
	tx.mu.Lock()
	defer tx.mu.Unlock()
	return tx.dialFails[name]
}

// proxy starts a proxy named name on 127.0.0.1 in front of upstream, with the
// marker toxic on its upstream stream, and returns it; it stops with the
// test.
func (tx *toxi) proxy(name, upstream string) *toxiproxy.Proxy {
	t := tx.t
	t.Helper()
	p := toxiproxy.NewProxy(tx.srv, name, "127.0.0.1:0", upstream)
	if err := p.Start(); err != nil {
		t.Fatalf("toxiproxy %s: %v", name, err)
	}
	t.Cleanup(p.Stop)
	key := fmt.Sprintf("%s#%d", name, toxiSeq.Add(1))
	markerSinks.Store(key, &markerSink{log: tx.log, backend: name})
	t.Cleanup(func() { markerSinks.Delete(key) })
	addToxic(t, p, fmt.Sprintf(`{"name":"markers","type":%q,"stream":"upstream","attributes":{"key":%q}}`, markerToxicType, key))
	return p
}

func addToxic(t *testing.T, p *toxiproxy.Proxy, spec string) {
	t.Helper()
	if _, err := p.Toxics.AddToxicJson(strings.NewReader(spec)); err != nil {
		t.Fatalf("toxiproxy %s: adding %s: %v", p.Name, spec, err)
	}
}

func removeToxic(t *testing.T, p *toxiproxy.Proxy, name string) {
	t.Helper()
	if err := p.Toxics.RemoveToxic(context.Background(), name); err != nil {
		t.Fatalf("toxiproxy %s: removing %s: %v", p.Name, name, err)
	}
}

// faultGateway is a gateway run in-process (the real main wiring) on a fleet
// file, with its output kept.
type faultGateway struct {
	http, admin string
	out         *lockedBuffer
}

func startFaultGateway(t *testing.T, fleetYAML string) *faultGateway {
	t.Helper()
	fleetFile := filepath.Join(t.TempDir(), "fleet.yaml")
	if err := os.WriteFile(fleetFile, []byte(fleetYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		args := []string{"-config", fleetFile, "-http-addr", "127.0.0.1:0", "-grpc-addr", "127.0.0.1:0", "-admin-addr", "127.0.0.1:0"}
		done <- run(ctx, args, func(string) string { return "" }, pw)
		pw.Close()
	}()
	g := &faultGateway{out: &lockedBuffer{}}
	drained := make(chan struct{})
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("gateway exited with %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("gateway did not stop within 30s")
		}
		<-drained
		if t.Failed() {
			t.Logf("gateway output:\n%s", g.out.String())
		}
	})
	br := bufio.NewReader(pr)
	lines := make(chan string, 1)
	go func() {
		defer close(drained)
		line, err := br.ReadString('\n')
		if err != nil {
			line = "ERROR " + err.Error()
		}
		lines <- line
		io.Copy(g.out, br)
	}()
	var line string
	select {
	case line = <-lines:
	case <-time.After(30 * time.Second):
		t.Fatal("the gateway printed no address within 30s")
	}
	addrs := testutil.ListenAddrs(line)
	g.http, g.admin = addrs["http"], addrs["admin"]
	if g.http == "" || g.admin == "" {
		t.Fatalf("gateway first line %q does not name http= and admin=", line)
	}
	return g
}

// backendState returns GET /admin/backends by backend name.
func (g *faultGateway) backendState(ctx context.Context, c *http.Client) (map[string]adminBackend, error) {
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+g.admin+"/admin/backends", nil)
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var list []adminBackend
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		return nil, err
	}
	out := make(map[string]adminBackend, len(list))
	for _, b := range list {
		out[b.Name] = b
	}
	return out, nil
}

// fleetYAML is a fleet of openai upstreams (name -> proxy address), in order,
// with the extra top-level sections appended.
func fleetYAML(names, addrs []string, extra string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "models:\n  - name: %s\n    kind: llm\nbackends:\n", faultModel)
	for i, n := range names {
		fmt.Fprintf(&b, "  - name: %s\n    hardware: h100-sxm-80gb\n    transport: openai\n    url: http://%s\n    models: [%s]\n", n, addrs[i], faultModel)
	}
	b.WriteString(extra)
	return b.String()
}

// newFaultClient is an HTTP client for the gateway (127.0.0.1 only), with a
// connection pool large enough for the load generators.
func newFaultClient() *http.Client {
	return &http.Client{Transport: &http.Transport{
		MaxIdleConns: 128, MaxIdleConnsPerHost: 128, IdleConnTimeout: 30 * time.Second,
		DisableCompression: true, ResponseHeaderTimeout: 30 * time.Second,
	}}
}

// chatBody is a chat completion request whose prompt starts with the marker
// of id.
func chatBody(id, maxTokens, n int, stream bool) []byte {
	return fmt.Appendf(nil, `{"model":%q,"messages":[{"role":"user","content":"%s Say hi."}],"max_tokens":%d,"n":%d,"stream":%t}`,
		faultModel, marker(id), maxTokens, n, stream)
}

// unaryResult is one non-streaming request's outcome.
type unaryResult struct {
	id      int
	status  int    // 0 when the request failed in transport
	backend string // x-accelgate-backend
	errType string // the OpenAI error body's type and code, for errors
	errCode string
	body    string
	err     error
	start   time.Time
	dur     time.Duration
}

// chat sends one non-streaming chat completion with the extra headers.
func chat(ctx context.Context, c *http.Client, gw string, id, maxTokens int, hdr map[string]string) (r unaryResult) {
	r = unaryResult{id: id, start: time.Now()}
	defer func() { r.dur = time.Since(r.start) }()
	req, _ := http.NewRequestWithContext(ctx, "POST", "http://"+gw+"/v1/chat/completions", bytes.NewReader(chatBody(id, maxTokens, 1, false)))
	req.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		r.err = err
		return r
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	r.status, r.backend, r.body, r.err = resp.StatusCode, resp.Header.Get("x-accelgate-backend"), string(b), err
	if r.err == nil && resp.StatusCode != http.StatusOK {
		var e struct {
			Error struct {
				Type string `json:"type"`
				Code string `json:"code"`
			} `json:"error"`
		}
		if json.Unmarshal(b, &e) == nil {
			r.errType, r.errCode = e.Error.Type, e.Error.Code
		}
	} else if r.err == nil {
		var ok struct {
			Choices []json.RawMessage `json:"choices"`
		}
		if json.Unmarshal(b, &ok) != nil || len(ok.Choices) != 1 {
			r.err = fmt.Errorf("200 with an unexpected body %q", b)
		}
	}
	return r
}

// streamResult is one streaming request's outcome.
type streamResult struct {
	id       int
	status   int
	backend  string
	events   int    // data events before [DONE], errors excluded
	errEvent string // the error event's payload, "" when none
	errCode  string
	done     bool // [DONE] was received
	err      error
	start    time.Time
	end      time.Time
}

// openedStream is a streaming request whose response headers arrived.
type openedStream struct {
	res  streamResult
	resp *http.Response
}

// openStream sends a streaming chat completion (n choices) and returns once
// the response headers arrived (or the request failed); read reads the rest.
func openStream(ctx context.Context, c *http.Client, gw string, id, maxTokens, n int, hdr map[string]string) *openedStream {
	s := &openedStream{res: streamResult{id: id, start: time.Now()}}
	req, _ := http.NewRequestWithContext(ctx, "POST", "http://"+gw+"/v1/chat/completions", bytes.NewReader(chatBody(id, maxTokens, n, true)))
	req.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		s.res.err, s.res.end = err, time.Now()
		return s
	}
	s.resp = resp
	s.res.status, s.res.backend = resp.StatusCode, resp.Header.Get("x-accelgate-backend")
	return s
}

// read reads the stream to its end and returns its outcome; first (nil: none)
// is closed at the first data event.
func (s *openedStream) read(first chan<- struct{}) streamResult {
	r := s.res
	if s.resp == nil {
		if first != nil {
			close(first)
		}
		return r
	}
	defer s.resp.Body.Close()
	closeFirst := func() {
		if first != nil {
			close(first)
			first = nil
		}
	}
	defer closeFirst()
	if r.status != http.StatusOK {
		b, _ := io.ReadAll(s.resp.Body)
		r.errEvent, r.end = string(b), time.Now()
		var e struct {
			Error struct {
				Code string `json:"code"`
			} `json:"error"`
		}
		if json.Unmarshal(b, &e) == nil {
			r.errCode = e.Error.Code
		}
		return r
	}
	sc := bufio.NewScanner(s.resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		closeFirst()
		switch {
		case data == "[DONE]":
			r.done = true
		case strings.HasPrefix(data, `{"error":`):
			r.errEvent = data
			var e struct {
				Error struct {
					Code string `json:"code"`
				} `json:"error"`
			}
			if json.Unmarshal([]byte(data), &e) == nil {
				r.errCode = e.Error.Code
			}
		default:
			r.events++
		}
	}
	r.err, r.end = sc.Err(), time.Now()
	return r
}

// pollerTime waits up to bound for the time an admin poller reports on ch.
func pollerTime(t *testing.T, ch <-chan time.Time, bound time.Duration) time.Time {
	t.Helper()
	select {
	case at := <-ch:
		return at
	case <-time.After(bound):
		t.Fatal("the admin poller did not return")
		return time.Time{}
	}
}
