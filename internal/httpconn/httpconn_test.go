package httpconn

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
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

// TestNoResendAfterWrite: a server that reads a request on a reused
// connection and then drops the connection without answering may have acted
// on it, so the request is not sent again (inference is not idempotent).
// A reused connection the server had already closed while idle is detected
// before writing and replaced, so that request does go out once.
func TestNoResendAfterWrite(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var seen atomic.Int32
	closeIdle := make(chan struct{}, 4)
	go func() {
		for k := 0; ; k++ {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func(k int, c net.Conn) {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					var req fasthttp.Request
					if req.Read(br) != nil {
						return
					}
					n := seen.Add(1)
					if n == 2 {
						return // read it, then drop the connection unanswered
					}
					fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
					if n == 3 {
						closeIdle <- struct{}{}
						return // an idle timeout: closed after answering
					}
				}
			}(k, c)
		}
	}()
	p := NewPool(ln.Addr().String(), nil, 1, time.Second)
	defer p.Close()
	req := newRequest("/x")
	defer fasthttp.ReleaseRequest(req)
	do := func() error {
		var resp fasthttp.Response
		c, err := p.Exchange(context.Background(), req, &resp, 1<<20)
		if err == nil {
			c.Finish(true)
		}
		return err
	}
	if err := do(); err != nil {
		t.Fatal(err)
	}
	if err := do(); err == nil {
		t.Fatal("the dropped request succeeded")
	}
	if n := seen.Load(); n != 2 {
		t.Fatalf("the server saw %d requests, want 2: the dropped one was sent again", n)
	}
	if err := do(); err != nil { // fresh connection; the server closes it afterwards
		t.Fatal(err)
	}
	<-closeIdle
	// The pooled connection is now closed by the server: detected before
	// the write, replaced, and the request is sent once.
	deadline := time.Now().Add(5 * time.Second)
	for p.IdleCount() == 1 && !peekClosedSoon(p) && time.Now().Before(deadline) {
		runtime.Gosched()
	}
	if err := do(); err != nil {
		t.Fatalf("after an idle close: %v", err)
	}
	if n := seen.Load(); n != 4 {
		t.Fatalf("the server saw %d requests, want 4", n)
	}
}

// peekClosedSoon reports whether the pool's idle connection already shows
// the server's close (the FIN may take a moment on a loaded machine).
func peekClosedSoon(p *Pool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, pc := range p.idle {
		if peekClosed(pc.nc) {
			return true
		}
	}
	return false
}
