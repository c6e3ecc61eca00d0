package httpconn

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"net"
	"sync"
	"time"
)

// Defaults for NewPool's zero or negative arguments.
const (
	DefaultMaxConns    = 512
	DefaultDialTimeout = 3 * time.Second
)

// idleTimeout is how long an idle connection is kept for reuse. It stays below
// the usual 5 s keep-alive timeouts of HTTP servers (uvicorn for vLLM and
// SGLang, cpp-httplib for llama.cpp), so the pool rarely hands out a
// connection the server has already closed; when it does, the request is
// retried on another connection (see Pool.Exchange).
const idleTimeout = 4 * time.Second

const connBufSize = 16 << 10

var errPoolClosed = errors.New("backend closed")

// conn is one pooled connection with its buffers.
type conn struct {
	nc        net.Conn
	br        *bufio.Reader
	bw        *bufio.Writer
	idleSince time.Time
}

// Pool holds the connections of one backend. A slot is taken for every
// request in flight; a request uses an idle connection when there is one and
// dials otherwise, so the number of connections, idle or busy, never exceeds
// the number of slots. It is safe for concurrent use.
type Pool struct {
	addr      string // host:port
	tlsConfig *tls.Config
	dialer    net.Dialer
	slots     chan struct{}
	mu        sync.Mutex
	idle      []*conn // oldest first; reused from the end
	closed    bool
}

// NewPool returns a pool of at most maxConns connections to addr (host:port),
// over TLS when tlsConfig is not nil; dialTimeout bounds connecting and the
// TLS handshake. Zero or negative values stand for DefaultMaxConns and
// DefaultDialTimeout.
func NewPool(addr string, tlsConfig *tls.Config, maxConns int, dialTimeout time.Duration) *Pool {
	if maxConns <= 0 {
		maxConns = DefaultMaxConns
	}
	if dialTimeout <= 0 {
		dialTimeout = DefaultDialTimeout
	}
	return &Pool{
		addr:      addr,
		tlsConfig: tlsConfig,
		dialer:    net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second},
		slots:     make(chan struct{}, maxConns),
	}
}

// get takes a slot and returns a connection for it, reporting whether it was
// reused from the idle list. It waits for a free slot until ctx ends.
func (p *Pool) get(ctx context.Context) (*conn, bool, error) {
	select {
	case p.slots <- struct{}{}:
	default:
		select {
		case p.slots <- struct{}{}:
		case <-ctx.Done():
			return nil, false, ctx.Err()
		}
	}
	now := time.Now()
	var stale []*conn
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		<-p.slots
		return nil, false, errPoolClosed
	}
	stale = p.expireLocked(now)
	var pc *conn
	if n := len(p.idle); n > 0 {
		pc = p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
	}
	p.mu.Unlock()
	closeAll(stale)
	if pc != nil {
		return pc, true, nil
	}
	pc, err := p.dial(ctx)
	if err != nil {
		<-p.slots
		return nil, false, err
	}
	return pc, false, nil
}

// expireLocked removes the idle connections older than idleTimeout and returns
// them for closing outside the lock.
func (p *Pool) expireLocked(now time.Time) []*conn {
	i := 0
	for i < len(p.idle) && now.Sub(p.idle[i].idleSince) > idleTimeout {
		i++
	}
	if i == 0 {
		return nil
	}
	stale := append([]*conn(nil), p.idle[:i]...)
	n := copy(p.idle, p.idle[i:])
	clear(p.idle[n:])
	p.idle = p.idle[:n]
	return stale
}

func (p *Pool) dial(ctx context.Context) (*conn, error) {
	nc, err := p.dialer.DialContext(ctx, "tcp", p.addr)
	if err != nil {
		return nil, err
	}
	if p.tlsConfig != nil {
		tc := tls.Client(nc, p.tlsConfig)
		if err := tc.HandshakeContext(ctx); err != nil {
			_ = nc.Close()
			return nil, err
		}
		nc = tc
	}
	return &conn{
		nc: nc,
		br: bufio.NewReaderSize(nc, connBufSize),
		bw: bufio.NewWriterSize(nc, connBufSize),
	}, nil
}

// put gives back the slot of a request and its connection: to the idle list
// when reuse is true (the response was read completely and the connection is
// still good), closed otherwise.
func (p *Pool) put(pc *conn, reuse bool) {
	defer func() { <-p.slots }()
	if reuse && pc.nc.SetDeadline(time.Time{}) == nil {
		now := time.Now()
		p.mu.Lock()
		if !p.closed {
			pc.idleSince = now
			p.idle = append(p.idle, pc)
			stale := p.expireLocked(now)
			p.mu.Unlock()
			closeAll(stale)
			return
		}
		p.mu.Unlock()
	}
	_ = pc.nc.Close()
}

// Close closes the idle connections and makes the pool refuse new requests
// (their error says "backend closed"); connections still in use are closed
// when they are given back.
func (p *Pool) Close() {
	p.mu.Lock()
	p.closed = true
	idle := p.idle
	p.idle = nil
	p.mu.Unlock()
	closeAll(idle)
}

// IdleCount is the number of idle connections (for tests).
func (p *Pool) IdleCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.idle)
}

func closeAll(pcs []*conn) {
	for _, pc := range pcs {
		_ = pc.nc.Close()
	}
}
