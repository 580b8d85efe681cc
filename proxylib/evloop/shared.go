package evloop

import (
	"errors"
	"os"
	"runtime"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// parked is a shared loop's epoll set as the runtime's poller sees it: a
// descriptor the loop's goroutine parks on (package comment, "Shared
// mode").
type parked struct {
	f  *os.File
	rc syscall.RawConn
	// at is the deadline set on f, in loop clock, or noDeadline or
	// unknownDeadline.
	at int64
	// look is rc.Read's function, made once: it looks (raw, not
	// blocking) and reports whether anything is ready. It looks on its
	// first call too: rc.Read forgets a readiness the runtime's poller
	// recorded before it (an edge that comes once).
	look  func(uintptr) bool
	n     int
	errno syscall.Errno
	err   error // what ended the loop's parking, other than a deadline
}

// What parked.at holds besides a deadline: none set, or not known (set
// it again).
const (
	noDeadline      = -1
	unknownDeadline = -2
)

// share puts the epoll set in the runtime's poller. From then on the
// descriptor is closed through the os.File that holds it, even when
// share fails.
func (l *Loop) share() error {
	if err := unix.SetNonblock(l.epfd, true); err != nil {
		return err
	}
	p := &parked{f: os.NewFile(uintptr(l.epfd), "evloop-epoll"), at: noDeadline}
	l.mu.Lock()
	l.park = p
	l.mu.Unlock()
	rc, err := p.f.SyscallConn()
	if err != nil {
		return err
	}
	// Reading is polled (not a blocking read on a thread) only if the
	// runtime's poller took the descriptor; a deadline is refused
	// otherwise.
	if err := p.f.SetReadDeadline(time.Time{}); err != nil {
		return errors.New("evloop: the runtime's poller does not take an epoll descriptor")
	}
	p.rc = rc
	p.look = func(uintptr) bool {
		p.n, p.errno = epollWait(l.epfd, l.evs, 0, true)
		return p.errno != 0 || p.n > 0
	}
	return nil
}

// offLoop counts the goroutines carrying traffic off the loops
// (ServingOffLoop).
var offLoop atomic.Int64

// ServingOffLoop counts a goroutine that carries traffic off the loops (a
// connection served on a goroutine of its own, a dial for a loop, a UDP
// session): 1 when it starts, -1 when it ends (or hands its connection to
// a loop). While any is counted, a shared loop that finds nothing
// parks at once, leaving the P to them; while none is, it first waits raw
// for up to holdNs.
func ServingOffLoop(delta int) { offLoop.Add(int64(delta)) }

// holdNs bounds a shared loop's raw wait before it parks: long enough to
// cover the turn of an upstream exchange or a client's next request on a
// fast path (tens of microseconds), short enough that the goroutines it
// holds the P from (accepting, dialling, the control plane) barely notice.
const holdNs = 200_000

// waitParked is a shared loop's wait: a raw look that does not block;
// when nothing is ready, the next timer is not due and no connection is
// served off the loops, a yield to the goroutines ready to run, a second
// look and a raw wait of up to holdNs (or to that timer);
// then the goroutine parks in the runtime's poller until the epoll set is
// readable or that timer is due. A round ended by that deadline looks
// once more (raw) and the timers fire after it.
func (l *Loop) waitParked() (int, syscall.Errno) {
	n, errno := epollWait(l.epfd, l.evs, 0, true)
	if errno != 0 || n > 0 {
		return n, errno
	}
	at := int64(noDeadline)
	if len(l.timers) > 0 {
		at = l.timers[0].at
	}
	if !l.noHold && offLoop.Load() == 0 {
		// What the loop started (a dial, a handed-off exchange) runs
		// first: the raw wait would hold it up.
		runtime.Gosched()
		if n, errno = epollWait(l.epfd, l.evs, 0, true); errno != 0 || n > 0 {
			return n, errno
		}
		ns := int64(holdNs)
		if at != noDeadline {
			ns = min(ns, at-l.clock())
		}
		if ns > 0 {
			n, errno = epollWaitNs(l.epfd, l.evs, ns)
			l.holds++
			switch {
			case errno == 0 && n > 0, errno == syscall.EINTR:
				return n, errno
			case errno != 0:
				// ENOSYS (a kernel before 5.11) or EPERM (a seccomp
				// filter that predates the call): park at once from
				// now on.
				l.noHold = true
			}
		}
		if at != noDeadline && at <= l.clock() {
			return 0, 0 // the timer is due
		}
	}
	p := l.park
	if at != p.at {
		var d time.Time
		if at != noDeadline {
			d = l.base.Add(time.Duration(at))
		}
		if err := p.f.SetReadDeadline(d); err != nil {
			p.err = err
			return 0, syscall.EBADF
		}
		p.at = at
	}
	p.n, p.errno = 0, 0
	err := p.rc.Read(p.look)
	switch {
	case err == nil:
		return p.n, p.errno
	case errors.Is(err, os.ErrDeadlineExceeded):
		// Set again next time: a deadline the timers did not yet count
		// as due would otherwise end every park at once. What became
		// ready just before it is looked for, so the round is whole.
		p.at = unknownDeadline
		return epollWait(l.epfd, l.evs, 0, true)
	default:
		p.err = err
		return 0, syscall.EBADF
	}
}
