package gateway

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/accelgate/accelgate/backends"
	"github.com/accelgate/accelgate/router"
)

// failingLLM fails every request with a backend failure before producing
// anything.
type failingLLM struct {
	desc  *backends.Descriptor
	calls int
}

func (f *failingLLM) Descriptor() *backends.Descriptor { return f.desc }
func (f *failingLLM) Close() error                     { return nil }
func (f *failingLLM) Do(context.Context, *backends.Request, *backends.Model, backends.StreamFunc) (*backends.Result, error) {
	f.calls++
	return nil, fmt.Errorf("%w: connection refused", backends.ErrUnavailable)
}

// TestStreamRetriedBeforeFirstEvent: a stream whose backend fails before any
// event reached the client (only the headers did) is run again on another
// backend and completes normally, with no error event.
func TestStreamRetriedBeforeFirstEvent(t *testing.T) {
	bad := &failingLLM{desc: &backends.Descriptor{Name: "bad", Profile: ksProfile(), PricePerHour: 0.1, Models: []string{"llm"}}}
	good := newBatchFake(false)
	good.desc.PricePerHour = 100 // the failing one is cheaper: it is tried first
	d, err := NewDispatcher([]backends.Backend{bad, good}, ksModels(), router.Config{}, backends.RealClock)
	if err != nil {
		t.Fatal(err)
	}
	e := serveInmemory(t, Config{}, d, backends.RealClock)
	a := <-e.post("/v1/chat/completions", `{"model":"llm","stream":true,"messages":[{"role":"user","content":"hi"}]}`)
	if a.status != 200 || strings.Contains(string(a.body), `"error"`) || !strings.Contains(string(a.body), "data: [DONE]") {
		t.Fatalf("stream: %d %s", a.status, a.body)
	}
	if bad.calls != 1 {
		t.Fatalf("the failing backend saw %d calls, want 1 (then the retry elsewhere)", bad.calls)
	}
}

// silentLLM never answers: it waits until the request's context ends.
type silentLLM struct{ desc *backends.Descriptor }

func (s *silentLLM) Descriptor() *backends.Descriptor { return s.desc }
func (s *silentLLM) Close() error                     { return nil }
func (s *silentLLM) Do(ctx context.Context, _ *backends.Request, _ *backends.Model, _ backends.StreamFunc) (*backends.Result, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

// TestStreamFailureBeforeFirstEventIsAnHTTPError: the status of a stream
// waits for its first event, so a backend that fails before it (and no other
// takes over) or one that never answers within the hard timeout gives the
// client a plain HTTP error in the OpenAI format (502 / 504), not a 200
// followed by an error event.
func TestStreamFailureBeforeFirstEventIsAnHTTPError(t *testing.T) {
	chat := `{"model":"llm","stream":true,"messages":[{"role":"user","content":"hi"}]}`
	for _, tc := range []struct {
		name    string
		backend backends.Backend
		status  int
		code    string
	}{
		{"unavailable", &failingLLM{desc: &backends.Descriptor{Name: "bad", Profile: ksProfile(), PricePerHour: 0.1, Models: []string{"llm"}}}, 502, "backend_unavailable"},
		{"silent", &silentLLM{desc: &backends.Descriptor{Name: "silent", Profile: ksProfile(), PricePerHour: 0.1, Models: []string{"llm"}}}, 504, "timeout"},
	} {
		d, err := NewDispatcher([]backends.Backend{tc.backend}, ksModels(), router.Config{}, backends.RealClock)
		if err != nil {
			t.Fatal(err)
		}
		e := serveInmemory(t, Config{}, d, backends.RealClock)
		a := <-e.post("/v1/chat/completions", chat, "x-accelgate-timeout-ms", "100")
		body := string(a.body)
		if a.status != tc.status || strings.Contains(body, "data:") || !strings.Contains(body, `"code":"`+tc.code+`"`) {
			t.Errorf("%s: status %d body %s, want %d with an OpenAI error body (code %s) and no events", tc.name, a.status, body, tc.status, tc.code)
		}
	}
}

// endlessLLM streams one token after another until the gateway's StreamFunc
// refuses one (the client went away) or the request's context ends; stopped
// receives the reason.
type endlessLLM struct {
	desc    *backends.Descriptor
	stopped chan error
}

func (e *endlessLLM) Descriptor() *backends.Descriptor { return e.desc }
func (e *endlessLLM) Close() error                     { return nil }
func (e *endlessLLM) Do(ctx context.Context, _ *backends.Request, _ *backends.Model, emit backends.StreamFunc) (*backends.Result, error) {
	for {
		if err := ctx.Err(); err != nil {
			e.stopped <- err
			return nil, err
		}
		if err := emit(backends.Chunk{Text: "tok"}); err != nil {
			e.stopped <- err
			return nil, err
		}
	}
}

// TestStreamClientGoneStopsTheBackend: once the events flow through the
// response body's pipe, a client that disconnects makes the next write fail,
// and the backend is told to stop (its StreamFunc returns the error) long
// before the request's hard timeout.
func TestStreamClientGoneStopsTheBackend(t *testing.T) {
	b := &endlessLLM{desc: &backends.Descriptor{Name: "endless", Profile: ksProfile(), PricePerHour: 0.1, Models: []string{"llm"}}, stopped: make(chan error, 1)}
	d, err := NewDispatcher([]backends.Backend{b}, ksModels(), router.Config{}, backends.RealClock)
	if err != nil {
		t.Fatal(err)
	}
	e := serveInmemory(t, Config{}, d, backends.RealClock)
	conn, err := e.ln.Dial()
	if err != nil {
		t.Fatal(err)
	}
	body := `{"model":"llm","stream":true,"messages":[{"role":"user","content":"hi"}]}`
	fmt.Fprintf(conn, "POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\nx-accelgate-timeout-ms: 60000\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	buf := make([]byte, 4096)
	var got strings.Builder
	for !strings.Contains(got.String(), "data: ") {
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("reading the stream: %v (so far %q)", err, got.String())
		}
		got.Write(buf[:n])
	}
	if !strings.HasPrefix(got.String(), "HTTP/1.1 200") {
		t.Fatalf("stream response: %q", got.String())
	}
	conn.Close()
	if err := <-b.stopped; err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("the backend stopped with %v, want the client's write error", err)
	}
}
