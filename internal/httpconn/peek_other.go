//go:build !unix

package httpconn

import "net"

// peekClosed cannot look at the socket without blocking here: connections
// are assumed open (a closed one fails the exchange, and the dispatcher
// retries elsewhere).
func peekClosed(net.Conn) bool { return false }
