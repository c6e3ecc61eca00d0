package httpconn

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

func TestParseEndpoint(t *testing.T) {
	for _, tc := range []struct {
		url, strip       string
		addr, host, base string
		tls              bool
	}{
		{"http://127.0.0.1:9000", "/v1", "127.0.0.1:9000", "127.0.0.1:9000", "", false},
		{" http://h/v1/ ", "/v1", "h:80", "h", "", false},
		{"https://Example.com/base/v2", "/v2", "Example.com:443", "Example.com", "/base", true},
		{"HTTP://[::1]:8000/a%2Fb//", "/v2", "[::1]:8000", "[::1]:8000", "/a%2Fb", false},
		{"http://h/v1", "/v2", "h:80", "h", "/v1", false},
	} {
		ep, err := ParseEndpoint(tc.url, tc.strip)
		if err != nil {
			t.Fatalf("%q: %v", tc.url, err)
		}
		if ep.Addr != tc.addr || ep.Host != tc.host || ep.BasePath != tc.base || (ep.TLS != nil) != tc.tls {
			t.Errorf("%q: %+v", tc.url, ep)
		}
		if tc.tls && (ep.TLS.ServerName != "Example.com" || ep.TLS.NextProtos[0] != "http/1.1") {
			t.Errorf("%q: tls %+v", tc.url, ep.TLS)
		}
	}
	for url, want := range map[string]string{
		"":                  "missing",
		"  ":                "missing",
		"127.0.0.1:9000":    "first path segment",
		"localhost:9000":    `scheme "localhost" is not http or https`,
		"//h/x":             "no scheme (want http:// or https://)",
		"ftp://h":           `scheme "ftp" is not http or https`,
		"http://":           "no host",
		"http://h/?q=1":     "must not have a query or a fragment",
		"http://h/#f":       "must not have a query or a fragment",
		"http://u:p@h/":     ErrCredentials.Error(),
		"http://h:x/":       "invalid port",
		"http://h\x7f/path": "invalid control character",
	} {
		_, err := ParseEndpoint(url, "/v1")
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", url, err, want)
		}
	}
	if _, err := ParseEndpoint("http://u@h", ""); !errors.Is(err, ErrCredentials) {
		t.Errorf("credentials: %v", err)
	}
}

func newRequest(uri string) *fasthttp.Request {
	req := fasthttp.AcquireRequest()
	req.SetRequestURI(uri)
	req.Header.SetHost("test")
	return req
}

// TestPoolReuseAndClose checks that sequential exchanges share one keep-alive
// connection, that a closed pool refuses new ones, and that at most maxConns
// connections are in use.
func TestPoolReuseAndClose(t *testing.T) {
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok " + r.URL.Path))
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	p := NewPool(srv.Listener.Addr().String(), nil, 1, time.Second)
	req := newRequest("/x")
	defer fasthttp.ReleaseRequest(req)
	for range 3 {
		var resp fasthttp.Response
		c, err := p.Exchange(context.Background(), req, &resp, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		if string(resp.Body()) != "ok /x" {
			t.Fatalf("body %q", resp.Body())
		}
		c.Finish(true)
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("%d connections for 3 sequential exchanges", n)
	}
	if n := p.IdleCount(); n != 1 {
		t.Fatalf("%d idle connections", n)
	}

	// The one slot is taken: a second exchange waits until its context ends.
	var resp fasthttp.Response
	c, err := p.Exchange(context.Background(), req, &resp, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	_, err = p.Exchange(ctx, req, &resp, 1<<20)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("waiting for a slot: %v", err)
	}
	c.Finish(true)

	p.Close()
	if n := p.IdleCount(); n != 0 {
		t.Fatalf("%d idle connections after Close", n)
	}
	if _, err := p.Exchange(context.Background(), req, &resp, 1<<20); err == nil || err.Error() != "backend closed" {
		t.Fatalf("after Close: %v", err)
	}
}

// TestExchangeInterrupted checks that ending the context interrupts an
// exchange blocked on the server, and that the connection is not reused.
func TestExchangeInterrupted(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
	}))
	defer srv.Close()
	defer close(release)
	p := NewPool(srv.Listener.Addr().String(), nil, 4, time.Second)
	defer p.Close()
	req := newRequest("/slow")
	defer fasthttp.ReleaseRequest(req)

	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	var resp fasthttp.Response
	start := time.Now()
	_, err := p.Exchange(ctx, req, &resp, 1<<20)
	if err == nil || time.Since(start) > 5*time.Second {
		t.Fatalf("%v after %v", err, time.Since(start))
	}
	if cerr := ContextError(ctx, time.Time{}, err); !errors.Is(cerr, context.Canceled) {
		t.Fatalf("ContextError(%v) = %v", err, cerr)
	}
	if n := p.IdleCount(); n != 0 {
		t.Fatalf("%d idle connections after an interrupted exchange", n)
	}

	dl := time.Now().Add(50 * time.Millisecond)
	ctx, cancel = context.WithDeadline(context.Background(), dl)
	defer cancel()
	_, err = p.Exchange(ctx, req, &resp, 1<<20)
	if cerr := ContextError(ctx, dl, err); !errors.Is(cerr, context.DeadlineExceeded) {
		t.Fatalf("ContextError(%v) = %v", err, cerr)
	}
	if cerr := ContextError(context.Background(), time.Time{}, errors.New("boom")); cerr != nil {
		t.Fatalf("ContextError(boom) = %v", cerr)
	}
}
