package sockio

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"unsafe"
)

// ErrWouldBlock is returned by ReadNow when no byte is available yet.
var ErrWouldBlock = errors.New("sockio: no data available yet")

var errNoSession = errors.New("sockio: ReadNow outside a Session")

// tcpCMInq is TCP_INQ, both the socket option and the control message type.
const tcpCMInq = 0x24

// session is the per-Conn state of Session, kept beside the read state.
type session struct {
	fn    func() bool
	fd    int // the descriptor while a session runs, else -1
	sfunc func(fd uintptr) bool
	inq   int8 // TCP_INQ: 0 not tried, 1 on, -1 unavailable

	msg  syscall.Msghdr
	iov  syscall.Iovec
	cmsg [32]byte
}

// Session reads the socket through fn inside one poller read session: fn
// is called at once, and after each time it returns false it is called
// again when the socket has become readable (or at once if it became
// readable since fn last read it), until fn returns true or the read
// deadline passes or the socket is closed, which end the session with the
// poller's error. Inside fn, ReadNow reads without waiting; Read must not be
// called (it would wait for the session). Writes may be, and other sockets
// may be used freely.
//
// Unlike a sequence of Reads, a session never loses a readiness edge
// between fn's last read and its wait, so fn may return false without
// first reading until EAGAIN when ReadNow reported nothing more pending:
// that saves the read that would fail.
func (sc *Conn) Session(fn func() bool) error {
	if sc.s.sfunc == nil {
		sc.s.sfunc = sc.sessionFD
		sc.s.fd = -1
	}
	sc.s.fn = fn
	err := sc.rc.Read(sc.s.sfunc)
	sc.s.fn, sc.s.fd = nil, -1
	if err != nil {
		return renameOp(err, "read")
	}
	return nil
}

// TrackPending makes ReadNow report whether more is pending after each
// read, where the kernel can tell (TCP_INQ on TCP sockets; one system
// call). It reports whether it can; without it ReadNow always reports
// that more may be pending, and reads cost a little less.
func (sc *Conn) TrackPending() bool {
	if sc.s.inq == 0 {
		sc.s.inq = -1
		if _, ok := sc.Conn.(*net.TCPConn); ok {
			_ = sc.rc.Control(func(fd uintptr) {
				if syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, tcpCMInq, 1) == nil {
					sc.s.inq = 1
				}
			})
		}
	}
	return sc.s.inq == 1
}

func (sc *Conn) sessionFD(fd uintptr) bool {
	sc.s.fd = int(fd)
	return sc.s.fn()
}

// ReadNow reads up to len(p) bytes without waiting; it may only be called
// from the function running in Session. more reports whether anything
// (bytes or the end of the stream) may still be pending after the read:
// it is false only when the kernel says the receive queue is empty and no
// FIN arrived (TCP_INQ), and always true where the kernel cannot tell. err
// is ErrWouldBlock when nothing is available, io.EOF at the end of the
// stream, or the read's error.
func (sc *Conn) ReadNow(p []byte) (n int, more bool, err error) {
	if sc.s.fd < 0 || sc.s.fn == nil {
		return 0, true, errNoSession
	}
	if len(p) == 0 {
		return 0, true, nil
	}
	if len(p) > maxRW {
		p = p[:maxRW]
	}
	fd := uintptr(sc.s.fd)
	for {
		var errno syscall.Errno
		if sc.s.inq == 1 {
			n, more, errno = sc.recvInq(fd, p)
		} else {
			n, errno = rawRead(fd, p)
			more = true
		}
		switch {
		case errno == 0 && n > 0:
			return n, more, nil
		case errno == 0:
			return 0, true, io.EOF
		case errno == syscall.EINTR:
			continue
		case errno == syscall.EAGAIN:
			return 0, true, ErrWouldBlock
		default:
			return 0, true, sc.opError("read", os.NewSyscallError("read", errno))
		}
	}
}

// recvInq is recvmsg(2) asking for TCP_CM_INQ, the bytes left in the
// receive queue after this read (non-zero after a FIN).
func (sc *Conn) recvInq(fd uintptr, p []byte) (int, bool, syscall.Errno) {
	s := &sc.s
	s.iov.Base = unsafe.SliceData(p)
	s.iov.SetLen(len(p))
	s.msg = syscall.Msghdr{Iov: &s.iov, Iovlen: 1, Control: &s.cmsg[0]}
	s.msg.SetControllen(len(s.cmsg))
	n, _, errno := syscall.RawSyscall(syscall.SYS_RECVMSG, fd, uintptr(unsafe.Pointer(&s.msg)), 0)
	s.iov.Base = nil
	if errno != 0 {
		return 0, true, errno
	}
	more := true
	if int(s.msg.Controllen) >= syscall.SizeofCmsghdr+4 {
		h := (*syscall.Cmsghdr)(unsafe.Pointer(&s.cmsg[0]))
		if h.Level == syscall.IPPROTO_TCP && h.Type == tcpCMInq {
			more = binary.NativeEndian.Uint32(s.cmsg[syscall.SizeofCmsghdr:]) != 0
		}
	}
	return int(n), more, 0
}
