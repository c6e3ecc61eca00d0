//go:build unix

package httpconn

import (
	"net"
	"syscall"
)

// peekClosed asks the kernel, without blocking and without consuming
// anything, whether the socket has end of file, an error or data pending.
// Connections that are not sockets are assumed open.
func peekClosed(nc net.Conn) bool {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	closed := false
	var buf [1]byte
	err = rc.Read(func(fd uintptr) bool {
		n, _, rerr := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case rerr == syscall.EAGAIN || rerr == syscall.EWOULDBLOCK || rerr == syscall.EINTR:
			closed = false // nothing pending: open and idle
		default:
			_ = n
			closed = true // an error, end of file (n == 0), or unexpected bytes
		}
		return true // never wait for readiness
	})
	return closed || err != nil
}
