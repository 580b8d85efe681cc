package sockio

import (
	"errors"
	"net"
	"syscall"
)

// Shutdown ends both directions of c's socket (shutdown(2) with SHUT_RDWR)
// without closing it: a wait for readability or writability on it, and
// every later read or write, returns at once (end of stream, EPIPE), also
// inside a read Session, whose callback holds the descriptor's read lock
// for as long as it runs. Close waits for that callback to return; the
// socket option call here does not (syscall.RawConn.Control takes only a
// reference), so Shutdown is how another goroutine interrupts whatever a
// session's callback waits on before it closes the connection. The peer
// sees the connection end with a FIN, sent after any bytes already queued
// for it; shutdown(2) sends no reset. Bytes already received stay
// readable here before the end of stream; a reset may follow only when the
// connection is then closed with bytes left unread.
//
// c may be a *Conn, or any connection that exposes its socket through
// NetConn (crypto/tls) down to a syscall.Conn. A closed connection
// yields the poller's error; a connection without a socket
// errors.ErrUnsupported.
func Shutdown(c net.Conn) error {
	for {
		switch x := c.(type) {
		case *Conn:
			if x.rc == nil {
				return errors.ErrUnsupported
			}
			return shutdownRaw(x.rc)
		case syscall.Conn:
			rc, err := x.SyscallConn()
			if err != nil {
				return err
			}
			return shutdownRaw(rc)
		case interface{ NetConn() net.Conn }:
			c = x.NetConn()
		default:
			return errors.ErrUnsupported
		}
	}
}

// ShutdownRaw is Shutdown of the socket behind rc.
func ShutdownRaw(rc syscall.RawConn) error { return shutdownRaw(rc) }

func shutdownRaw(rc syscall.RawConn) error {
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = syscall.Shutdown(int(fd), syscall.SHUT_RDWR)
	}); err != nil {
		return err
	}
	return serr
}
