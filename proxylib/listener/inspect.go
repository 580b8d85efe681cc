package listener

import (
	"errors"
	"net"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nodemesh/nodemesh/proxylib/resource"
)

// inspectOutcome is what the listener filter phase decided.
type inspectOutcome uint8

const (
	inspectTLS     inspectOutcome = iota // a ClientHello: SNI known
	inspectPlain                         // not TLS: plain text
	inspectTimeout                       // listener_filters_timeout expired, continue_on_listener_filters_timeout set
	inspectClose                         // close the connection
)

var errPeerClosed = errors.New("peer closed during the ClientHello")

// inspect runs the TLS inspector on c: it peeks at the first bytes without
// consuming them, so whichever chain is picked reads the ClientHello
// itself (the TLS terminator) or forwards it unchanged (tcp_proxy
// passthrough). It reads at most cfg.MaxClientHello bytes, within the
// listener filters timeout. A connection whose first bytes are not a
// well-formed ClientHello is plain text (or closed with
// CloseOnParseError); one whose ClientHello does not fit, or that closes
// or fails before it is complete, is closed, as Envoy's inspector does.
func inspect(c net.Conn, cfg resource.TLSInspector, timeout time.Duration, continueOnTimeout bool) (inspectOutcome, string) {
	if timeout > 0 {
		_ = c.SetReadDeadline(time.Now().Add(timeout))
		defer func() { _ = c.SetReadDeadline(time.Time{}) }()
	}
	max := int(cfg.MaxClientHello)
	if max <= 0 {
		max = resource.DefaultMaxClientHello
	}
	size := int(cfg.InitialRead)
	if size <= 0 || size > max {
		size = max
	}
	buf := make([]byte, size)
	var st helloState
	var info helloInfo
	err := peekUntil(c, func(read func([]byte) (int, error)) (bool, error) {
		for {
			n, err := read(buf)
			if err != nil {
				return false, err
			}
			st, info = parseClientHello(buf[:n])
			switch {
			case st != helloMore:
				return true, nil
			case n < len(buf):
				return false, nil // wait for more bytes
			case len(buf) < max:
				buf = make([]byte, min(2*len(buf), max)) // Envoy doubles its buffer
			default:
				return true, nil // a ClientHello larger than max_client_hello_size
			}
		}
	})
	switch {
	case err != nil && errors.Is(err, os.ErrDeadlineExceeded):
		if continueOnTimeout {
			return inspectTimeout, ""
		}
		return inspectClose, ""
	case err != nil:
		return inspectClose, ""
	}
	switch st {
	case helloDone:
		return inspectTLS, info.SNI
	case helloNotTLS:
		if cfg.CloseOnParseError {
			return inspectClose, ""
		}
		return inspectPlain, ""
	}
	return inspectClose, "" // too large
}

// peekUntil calls step with a peek function until it reports done. Each
// peek sees the connection's unread bytes from the start; between steps
// that want more it waits until more arrive. Conns that are not sockets
// (tests wrap listeners) are not supported: only net.TCPConn reaches it.
func peekUntil(c net.Conn, step func(read func([]byte) (int, error)) (bool, error)) error {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return errors.New("TLS inspector: connection is not a socket")
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return err
	}
	last := -1
	var stepErr error
	err = rc.Read(func(fd uintptr) bool {
		peek := func(b []byte) (int, error) {
			for {
				n, _, err := unix.Recvfrom(int(fd), b, unix.MSG_PEEK|unix.MSG_DONTWAIT)
				switch {
				case err == unix.EINTR:
					continue
				case err == unix.EAGAIN:
					return max(last, 0), nil
				case err != nil:
					return 0, err
				case n == 0:
					return 0, errPeerClosed
				}
				return n, nil
			}
		}
		probe := func(b []byte) (int, error) {
			n, err := peek(b)
			if err != nil {
				return n, err
			}
			if n == last && n < len(b) && peerShutdown(fd) {
				// No new bytes since the last wake-up and the peer
				// half-closed: the hello will never complete.
				return 0, errPeerClosed
			}
			last = n
			return n, nil
		}
		done, err := step(probe)
		if err != nil {
			stepErr = err
			return true
		}
		return done
	})
	if err != nil {
		return err
	}
	return stepErr
}

// peerShutdown reports whether the peer shut its sending side down.
func peerShutdown(fd uintptr) bool {
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLRDHUP}}
	n, err := unix.Poll(fds, 0)
	return err == nil && n > 0 && fds[0].Revents&(unix.POLLRDHUP|unix.POLLHUP|unix.POLLERR) != 0
}
