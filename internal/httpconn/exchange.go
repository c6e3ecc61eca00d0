package httpconn

import (
	"context"
	"errors"
	"io"
	"net"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
)

// aLongTimeAgo is a deadline in the past: setting it interrupts blocked I/O.
var aLongTimeAgo = time.Unix(1, 0)

// Call is one request's hold on a pooled connection, from the request's write
// to the end of its response. Finish ends it.
type Call struct {
	pool *Pool
	pc   *conn
	stop func() bool // stops the context watcher
}

// Exchange writes hreq on a pooled connection and reads the response header
// into resp, and the body too (at most maxBody bytes) unless resp.StreamBody is
// set. The connection carries ctx's deadline, and when ctx ends whatever I/O
// is blocked on it is interrupted; the connection is then closed rather than
// reused. A reused connection is checked before the request is written: one
// the server closed while it sat idle (end of file pending) is discarded and
// another taken. Once the request is written it is never sent again — the
// server may have received it, and inference is not idempotent (a retry
// elsewhere is the dispatcher's decision) — except when writing itself
// failed on a reused connection the server had closed.
//
// The error is the transport's own (callers classify it with ContextError).
// On success the caller reads what is left of the response and then calls
// Finish once.
func (p *Pool) Exchange(ctx context.Context, hreq *fasthttp.Request, resp *fasthttp.Response, maxBody int) (Call, error) {
	deadline, _ := ctx.Deadline()
	for {
		pc, reused, err := p.get(ctx)
		if err != nil {
			return Call{}, err
		}
		if reused && closedByPeer(pc) {
			p.put(pc, false)
			continue
		}
		if !deadline.IsZero() {
			_ = pc.nc.SetDeadline(deadline)
		}
		// When ctx ends, interrupt whatever I/O is blocked on the connection;
		// the connection is then closed rather than reused (Call.Finish).
		stop := context.AfterFunc(ctx, func() { _ = pc.nc.SetDeadline(aLongTimeAgo) })
		c := Call{pool: p, pc: pc, stop: stop}

		err = hreq.Write(pc.bw)
		if err == nil {
			err = pc.bw.Flush()
		}
		if err != nil {
			c.Finish(false)
			if reused && ctx.Err() == nil && isStale(err) {
				continue // the server closed it: it never read this request
			}
			return Call{}, err
		}
		if _, err = pc.br.Peek(1); err != nil {
			c.Finish(false)
			return Call{}, err
		}
		if err := resp.ReadLimitBody(pc.br, maxBody); err != nil {
			c.Finish(false)
			return Call{}, err
		}
		return c, nil
	}
}

// closedByPeer reports whether an idle connection was closed by the server
// or has unexpected bytes pending (an idle HTTP/1.1 connection has nothing
// to read), without blocking (peekClosed).
func closedByPeer(pc *conn) bool {
	if pc.br.Buffered() > 0 {
		return true
	}
	return peekClosed(pc.nc)
}

// Finish ends the call: the connection goes back to the pool when reuse is
// true and the context did not interrupt it, and is closed otherwise.
func (c Call) Finish(reuse bool) {
	if !c.stop() {
		reuse = false // the watcher ran (or runs): the connection is interrupted
	}
	c.pool.put(c.pc, reuse)
}

// SetReadDeadline sets the read deadline of the call's connection (to bound
// reading what is left of a streamed body).
func (c Call) SetReadDeadline(t time.Time) error {
	return c.pc.nc.SetReadDeadline(t)
}

// ContextError returns the context's own error when a transport error is the
// context's doing: ctx ended, or the connection hit ctx's deadline (deadline,
// zero when ctx has none). It returns nil for any other error, which means the
// server is unavailable.
func ContextError(ctx context.Context, deadline time.Time, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return cerr
	}
	if !deadline.IsZero() && !time.Now().Before(deadline) && isTimeout(err) {
		return context.DeadlineExceeded
	}
	return nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, fasthttp.ErrTimeout) ||
		(errors.As(err, &ne) && ne.Timeout())
}

// isStale reports whether err is what a connection the server closed while it
// sat idle produces on the first write or read.
func isStale(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, syscall.ECONNABORTED)
}
