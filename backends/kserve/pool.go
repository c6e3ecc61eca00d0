package kserve

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"net"
	"sync"
	"time"
)

// The connection pool follows backends/upstream's (see there for the design).

// idleTimeout is how long an idle connection is kept for reuse. It stays below
// the usual 5 s keep-alive timeouts of HTTP servers, so the pool rarely hands
// out a connection the server has already closed; when it does, the request
// is retried on another connection (see HTTPBackend.exchange).
const idleTimeout = 4 * time.Second

const connBufSize = 16 << 10

var errPoolClosed = errors.New("backend closed")

// pconn is one pooled connection with its buffers.
type pconn struct {
	nc        net.Conn
	br        *bufio.Reader
	bw        *bufio.Writer
	idleSince time.Time
}

// connPool holds the connections of one HTTPBackend. A slot is taken for every
// request in flight; a request uses an idle connection when there is one and
// dials otherwise, so the number of connections, idle or busy, never exceeds
// the number of slots.
type connPool struct {
	addr      string // host:port
	tlsConfig *tls.Config
	dialer    net.Dialer
	slots     chan struct{}
	mu        sync.Mutex
	idle      []*pconn // oldest first; reused from the end
	closed    bool
}

func newConnPool(addr string, tlsConfig *tls.Config, maxConns int, dialTimeout time.Duration) *connPool {
	return &connPool{
		addr:      addr,
		tlsConfig: tlsConfig,
		dialer:    net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second},
		slots:     make(chan struct{}, maxConns),
	}
}

// get takes a slot and returns a connection for it, reporting whether it was
// reused from the idle list. It waits for a free slot until ctx ends.
func (p *connPool) get(ctx context.Context) (*pconn, bool, error) {
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
	var stale []*pconn
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		<-p.slots
		return nil, false, errPoolClosed
	}
	stale = p.expireLocked(now)
	var pc *pconn
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
func (p *connPool) expireLocked(now time.Time) []*pconn {
	i := 0
	for i < len(p.idle) && now.Sub(p.idle[i].idleSince) > idleTimeout {
		i++
	}
	if i == 0 {
		return nil
	}
	stale := append([]*pconn(nil), p.idle[:i]...)
	n := copy(p.idle, p.idle[i:])
	clear(p.idle[n:])
	p.idle = p.idle[:n]
	return stale
}

func (p *connPool) dial(ctx context.Context) (*pconn, error) {
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
	return &pconn{
		nc: nc,
		br: bufio.NewReaderSize(nc, connBufSize),
		bw: bufio.NewWriterSize(nc, connBufSize),
	}, nil
}

// put gives back the slot of a request and its connection: to the idle list
// when reuse is true (the response was read completely and the connection is
// still good), closed otherwise.
func (p *connPool) put(pc *pconn, reuse bool) {
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

// close closes the idle connections and makes the pool refuse new requests;
// connections still in use are closed when they are given back.
func (p *connPool) close() {
	p.mu.Lock()
	p.closed = true
	idle := p.idle
	p.idle = nil
	p.mu.Unlock()
	closeAll(idle)
}

// idleCount is the number of idle connections (for tests).
func (p *connPool) idleCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.idle)
}

func closeAll(pcs []*pconn) {
	for _, pc := range pcs {
		_ = pc.nc.Close()
	}
}
