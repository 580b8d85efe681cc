package sockio

import (
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Conn is a stream socket with raw non-blocking Read and Write. Create it
// with Wrap or Reset; the zero value is not usable.
type Conn struct {
	net.Conn // the wrapped socket: addresses, deadlines, Close
	rc       syscall.RawConn

	rbuf  []byte
	rn    int
	rerr  error
	rfunc func(fd uintptr) bool

	wbuf  []byte
	wn    int
	werr  error
	wfunc func(fd uintptr) bool

	s session
}

var _ net.Conn = (*Conn)(nil)

// Wrap returns c with raw Read and Write when c is a TCP or Unix stream
// socket, and c itself otherwise.
func Wrap(c net.Conn) net.Conn {
	sc := new(Conn)
	if !sc.Reset(c) {
		return c
	}
	return sc
}

// Reset makes sc wrap c, reusing sc's callbacks. It reports false (and
// leaves sc unusable) when c is not a TCP or Unix stream socket.
func (sc *Conn) Reset(c net.Conn) bool {
	sc.Conn, sc.rc = nil, nil
	switch c.(type) {
	case *net.TCPConn, *net.UnixConn:
	default:
		return false
	}
	rc, err := c.(syscall.Conn).SyscallConn()
	if err != nil || !isStream(rc) {
		return false // datagram and seqpacket sockets keep message boundaries
	}
	sc.Conn, sc.rc = c, rc
	sc.s.inq = 0
	if sc.rfunc == nil {
		sc.rfunc, sc.wfunc = sc.readFD, sc.writeFD
	}
	return true
}

// NetConn returns the wrapped connection.
func (sc *Conn) NetConn() net.Conn { return sc.Conn }

// CloseWrite shuts down the writing side when the wrapped socket can.
func (sc *Conn) CloseWrite() error {
	if cw, ok := sc.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}

// Read reads up to len(p) bytes, waiting for readability through the
// poller when none are available.
func (sc *Conn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	sc.rbuf, sc.rn, sc.rerr = p, 0, nil
	err := sc.rc.Read(sc.rfunc)
	n, rerr := sc.rn, sc.rerr
	sc.rbuf = nil
	if err != nil {
		return 0, renameOp(err, "read")
	}
	if rerr != nil {
		if rerr == io.EOF {
			return 0, io.EOF
		}
		return n, sc.opError("read", rerr)
	}
	return n, nil
}

// readFD is the poller callback of Read: false asks it to wait for
// readability and call again.
func (sc *Conn) readFD(fd uintptr) bool {
	for {
		n, errno := rawRead(fd, sc.rbuf)
		switch {
		case errno == 0 && n > 0:
			sc.rn = n
			return true
		case errno == 0:
			sc.rerr = io.EOF
			return true
		case errno == syscall.EINTR:
			continue
		case errno == syscall.EAGAIN:
			return false
		default:
			sc.rerr = os.NewSyscallError("read", errno)
			return true
		}
	}
}

// Write writes all of p, waiting for writability through the poller when
// the socket's send buffer is full.
func (sc *Conn) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	sc.wbuf, sc.wn, sc.werr = p, 0, nil
	err := sc.rc.Write(sc.wfunc)
	n, werr := sc.wn, sc.werr
	sc.wbuf = nil
	if err != nil {
		return n, renameOp(err, "write")
	}
	if werr != nil {
		return n, sc.opError("write", werr)
	}
	return n, nil
}

// writeFD is the poller callback of Write.
func (sc *Conn) writeFD(fd uintptr) bool {
	for sc.wn < len(sc.wbuf) {
		n, errno := rawWrite(fd, sc.wbuf[sc.wn:])
		switch {
		case errno == 0:
			sc.wn += n
		case errno == syscall.EINTR:
		case errno == syscall.EAGAIN:
			return false
		default:
			sc.werr = os.NewSyscallError("write", errno)
			return true
		}
	}
	return true
}

func (sc *Conn) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: sc.Conn.LocalAddr().Network(), Source: sc.Conn.LocalAddr(), Addr: sc.Conn.RemoteAddr(), Err: err}
}

// renameOp names the operation of a poller error (closed, deadline) as a
// net.Conn would, instead of "raw-read"/"raw-write".
func renameOp(err error, op string) error {
	var oe *net.OpError
	if errors.As(err, &oe) {
		oe.Op = op
	}
	return err
}

// isStream reports whether the socket is SOCK_STREAM.
func isStream(rc syscall.RawConn) bool {
	typ := -1
	err := rc.Control(func(fd uintptr) {
		typ, _ = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_TYPE)
	})
	return err == nil && typ == syscall.SOCK_STREAM
}

// maxRW caps one system call as the runtime's poller does (Linux returns
// at most about 2 GiB per read or write anyway).
const maxRW = 1 << 30

// rawRead and rawWrite bypass entersyscall: the descriptor is
// non-blocking, so the call returns without waiting.
func rawRead(fd uintptr, p []byte) (int, syscall.Errno) {
	if len(p) > maxRW {
		p = p[:maxRW]
	}
	n, _, errno := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)))
	return int(n), errno
}

func rawWrite(fd uintptr, p []byte) (int, syscall.Errno) {
	if len(p) > maxRW {
		p = p[:maxRW]
	}
	n, _, errno := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)))
	return int(n), errno
}

// Clear drops sc's references to its socket (before pooling sc); it keeps
// the callbacks for the next Reset.
func (sc *Conn) Clear() {
	sc.Conn, sc.rc, sc.rbuf, sc.wbuf, sc.rerr, sc.werr = nil, nil, nil, nil, nil, nil
	sc.s.inq = 0
}

// Unwrap returns the connection inside c when c is a *Conn, else c.
func Unwrap(c net.Conn) net.Conn {
	if sc, ok := c.(*Conn); ok {
		return sc.Conn
	}
	return c
}

// Dup returns a duplicate of the socket's descriptor (close-on-exec,
// sharing the original's non-blocking mode), for a caller that closes the
// Conn to take the socket out of the runtime's poller and serves it on a
// loop of its own.
func (sc *Conn) Dup() (int, error) {
	if sc.rc == nil {
		return -1, errors.ErrUnsupported
	}
	nfd := -1
	var derr error
	if err := sc.rc.Control(func(fd uintptr) {
		nfd, derr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		return -1, err
	}
	return nfd, derr
}
