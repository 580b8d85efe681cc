package evloop

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Events a handler is registered for and called with (epoll's bits).
const (
	In    = unix.EPOLLIN
	Out   = unix.EPOLLOUT
	RdHup = unix.EPOLLRDHUP
	Hup   = unix.EPOLLHUP
	Err   = unix.EPOLLERR
	ET    = unix.EPOLLET
)

// Handler is called on the loop's goroutine with the events a registered
// descriptor is ready for.
type Handler interface {
	Ready(events uint32)
}

// ErrClosed is returned by Run and Post after Close.
var ErrClosed = errors.New("evloop: loop closed")

// running counts the loops in Run: each keeps a P while it waits, but a
// shared one.
var running atomic.Int32

// Loop is one event loop. New makes it; Run runs it on the calling
// goroutine (locked to its thread unless it runs shared).
type Loop struct {
	epfd, wake int
	handlers   []Handler // by descriptor
	evs        []unix.EpollEvent
	cur, n     int      // the event being dispatched and the round's count
	round      uint64   // waits returned so far (Round)
	complete   bool     // this round's wait collected every ready descriptor
	released   uint64   // waits that released the P (idle spells)
	park       *parked  // shared mode: the epoll set in the runtime's poller
	noHold     bool     // shared mode: epoll_pwait2 refused (an old kernel, seccomp)
	holds      uint64   // shared mode: raw waits before parking
	seen       []uint64 // by descriptor: the last round that reported it
	timers     timerHeap
	base       time.Time // loop clock origin (monotonic)

	mu      sync.Mutex
	posted  []func()
	spare   []func()
	pending bool // a wake is written and not yet read
	closed  bool
	started bool
	shut    bool // descriptors closed

	done chan struct{}
}

// New makes a loop with its epoll set and wake descriptor.
func New() (*Loop, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("evloop: epoll_create1: %w", err)
	}
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("evloop: eventfd: %w", err)
	}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wake, &unix.EpollEvent{Events: In, Fd: int32(wake)}); err != nil {
		unix.Close(epfd)
		unix.Close(wake)
		return nil, fmt.Errorf("evloop: epoll_ctl: %w", err)
	}
	return &Loop{epfd: epfd, wake: wake, evs: make([]unix.EpollEvent, 256), base: time.Now(), done: make(chan struct{})}, nil
}

// Now returns the loop clock: monotonic nanoseconds since New. Timers are
// armed in it.
func (l *Loop) Now() int64 { return l.clock() }

func (l *Loop) clock() int64 { return int64(time.Since(l.base)) }

// Add registers fd for events with h. Loop goroutine only (or before Run).
func (l *Loop) Add(fd int, events uint32, h Handler) error {
	if fd < 0 || h == nil {
		return fmt.Errorf("evloop: add %d: invalid descriptor or handler", fd)
	}
	if fd < len(l.handlers) && l.handlers[fd] != nil {
		return fmt.Errorf("evloop: add %d: already registered", fd)
	}
	if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: events, Fd: int32(fd)}); err != nil {
		return fmt.Errorf("evloop: add %d: %w", fd, err)
	}
	if fd >= len(l.handlers) {
		l.handlers = append(l.handlers, make([]Handler, fd+1-len(l.handlers))...)
		l.seen = append(l.seen, make([]uint64, fd+1-len(l.seen))...)
	}
	// Not covered by this round's wait: not Quiet before the next one.
	l.seen[fd] = l.round
	l.handlers[fd] = h
	return nil
}

// Mod changes the events fd is registered for. Loop goroutine only.
func (l *Loop) Mod(fd int, events uint32) error {
	if fd < 0 || fd >= len(l.handlers) || l.handlers[fd] == nil {
		return fmt.Errorf("evloop: mod %d: not registered", fd)
	}
	if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_MOD, fd, &unix.EpollEvent{Events: events, Fd: int32(fd)}); err != nil {
		return fmt.Errorf("evloop: mod %d: %w", fd, err)
	}
	return nil
}

// Del unregisters fd; events already collected for it in this round are
// not delivered. Loop goroutine only.
func (l *Loop) Del(fd int) error {
	if fd < 0 || fd >= len(l.handlers) || l.handlers[fd] == nil {
		return fmt.Errorf("evloop: del %d: not registered", fd)
	}
	l.handlers[fd] = nil
	// The round's later events for fd are dropped: the number may be
	// reused (and registered again) before they are dispatched.
	for j := l.cur + 1; j < l.n; j++ {
		if int(l.evs[j].Fd) == fd {
			l.evs[j].Events = 0
		}
	}
	if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_DEL, fd, nil); err != nil {
		return fmt.Errorf("evloop: del %d: %w", fd, err)
	}
	return nil
}

// Round returns the number of the current round: how many times the
// loop's wait has returned. Loop goroutine only.
func (l *Loop) Round() uint64 { return l.round }

// Quiet reports whether the kernel has had nothing to report for fd, a
// descriptor registered edge-triggered (ET), since the end of round since:
// the current round's wait came later, collected every ready descriptor (it
// was not cut short by the size of its array or by a signal, and was not an
// idle loop's wait that gave its P away, after which the round may start
// late), and reported no event for fd, nor did any wait after round since.
// It means nothing arrived on fd from round since up to this round's wait,
// provided that its owner had read fd to a short read or EAGAIN by the end
// of round since (bytes that were already there bring no new edge). Then it
// tells what a one-byte non-blocking peek would have told at the wait,
// without the system call. Loop goroutine only.
func (l *Loop) Quiet(fd int, since uint64) bool {
	return l.complete && since < l.round && fd >= 0 && fd < len(l.handlers) &&
		l.handlers[fd] != nil && l.seen[fd] <= since
}

// Post queues fn to run on the loop's goroutine and wakes the loop. It may be
// called from any goroutine; functions run in the order posted. After
// Close it returns ErrClosed and fn never runs.
func (l *Loop) Post(fn func()) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrClosed
	}
	l.posted = append(l.posted, fn)
	if !l.pending {
		// Under the lock: the descriptor is closed under it too. An
		// eventfd write of 1 fails only with EAGAIN (the counter near its
		// maximum: the loop is woken anyway), so fn is queued either way.
		l.pending = true
		_ = l.signal()
	}
	return nil
}

// signal writes the wake descriptor; l.mu is held and the loop not shut.
func (l *Loop) signal() error {
	one := [8]byte{1}
	if _, err := Write(l.wake, one[:]); err != nil && err != syscall.EAGAIN {
		return fmt.Errorf("evloop: wake: %w", err)
	}
	return nil
}

// Close ends Run (at once when it waits, else after the current round)
// and, when Run never started, closes the loop's descriptors. Posted
// functions not yet run are dropped. Wait for Done to know Run returned.
func (l *Loop) Close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	l.closed = true
	l.posted = nil
	if !l.started {
		l.shutLocked()
		return
	}
	_ = l.signal()
}

// Done is closed once the loop's descriptors are closed: when Run returned,
// or at Close when Run never started.
func (l *Loop) Done() <-chan struct{} { return l.done }

// Run runs the loop on the calling goroutine until Close; then it closes
// the epoll and wake descriptors. On GOMAXPROCS=1 a loop alone runs
// shared (package comment); otherwise the goroutine is locked to its
// thread, and Run refuses to run unless GOMAXPROCS leaves a P for the
// rest of the process beside every running loop, or when Usable says no.
// It runs at most once.
func (l *Loop) Run() error {
	l.mu.Lock()
	if l.closed || l.started {
		l.mu.Unlock()
		return ErrClosed
	}
	l.started = true
	l.mu.Unlock()
	defer l.shutDown()
	n := running.Add(1)
	defer running.Add(-1)
	if procs := runtime.GOMAXPROCS(0); procs == 1 && n == 1 {
		// Shared mode: the loop parks in the runtime's poller.
		if err := l.share(); err != nil {
			return err
		}
	} else {
		if err := Usable(); err != nil {
			return err
		}
		if int(n) >= procs {
			return fmt.Errorf("evloop: %d loops need GOMAXPROCS of at least %d (or one loop alone on GOMAXPROCS=1), have %d", n, n+1, procs)
		}
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
	}
	wait := l.fire(l.clock())
	idle := false // the last raw wait timed out with nothing: release the P
	for {
		var n int
		var errno syscall.Errno
		released := idle
		if l.park != nil {
			n, errno = l.waitParked() // the next timer is the deadline
		} else if released {
			n, errno = epollWait(l.epfd, l.evs, wait, false)
			idle = false
			l.released++
		} else {
			w := rawWait(wait)
			n, errno = epollWait(l.epfd, l.evs, w, true)
			// Only a wait that ran its whole idle bound: one cut short
			// for a timer leaves the loop busy.
			idle = errno == 0 && n == 0 && w == idleMsec
		}
		switch errno {
		case 0:
		case syscall.EINTR:
			// A signal: most often the runtime asking this goroutine to
			// stop (see the package comment). Yield.
			runtime.Gosched()
			n = 0
		default:
			if l.park != nil && l.park.err != nil {
				return fmt.Errorf("evloop: parked on the runtime's poller: %w", l.park.err)
			}
			return fmt.Errorf("evloop: epoll_wait: %w", errno)
		}
		l.n = n
		l.round++
		// After a releasing wait the round may start late (the thread
		// waited for a P), widening what Quiet would miss: not complete.
		l.complete = errno == 0 && n < len(l.evs) && !released
		for i := range n {
			if fd := int(l.evs[i].Fd); fd < len(l.seen) {
				l.seen[fd] = l.round
			}
		}
		for i := range n {
			l.cur = i
			ev := &l.evs[i]
			if ev.Events == 0 {
				continue // its descriptor was unregistered this round
			}
			fd := int(ev.Fd)
			if fd == l.wake {
				if l.drainPosted() {
					return ErrClosed
				}
				continue
			}
			if fd < len(l.handlers) {
				if h := l.handlers[fd]; h != nil {
					h.Ready(ev.Events)
				}
			}
		}
		l.cur, l.n = 0, 0
		wait = l.fire(l.clock())
	}
}

// drainPosted reads the wake descriptor and runs the posted functions; it
// reports whether the loop was closed.
func (l *Loop) drainPosted() bool {
	var buf [8]byte
	_, _ = Read(l.wake, buf[:])
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return true
	}
	fns := l.posted
	l.posted, l.spare = l.spare, nil
	l.pending = false
	l.mu.Unlock()
	for i, fn := range fns {
		fns[i] = nil
		fn()
	}
	l.mu.Lock()
	l.spare = fns[:0]
	l.mu.Unlock()
	return false
}

// shutDown marks the loop closed and closes its descriptors, once.
func (l *Loop) shutDown() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	l.posted = nil
	l.shutLocked()
}

func (l *Loop) shutLocked() {
	if l.shut {
		return
	}
	l.shut = true
	if l.park != nil {
		l.park.f.Close() // the runtime's poller lets go of it first
	} else {
		unix.Close(l.epfd)
	}
	unix.Close(l.wake)
	close(l.done)
}

// Usable reports why loops keeping their P (not a shared one) cannot run
// in this process, or nil: a raw wait is ended for a stop-the-world by
// the runtime's preemption signal, which GODEBUG asyncpreemptoff (or
// gccheckmark, which implies it) turns off; every stop-the-world would
// then wait for each loop's raw wait to run out (up to 5 ms).
func Usable() error {
	if asyncPreemptOff(os.Getenv("GODEBUG")) {
		return errors.New("evloop: with GODEBUG asyncpreemptoff (or gccheckmark) every garbage collection pause would wait for the loops' waits")
	}
	return nil
}

// asyncPreemptOff reports whether godebug turns the runtime's signal-based
// preemption off, read as the runtime reads it: comma-separated key=value
// settings, the last of a key winning, a value that is a non-zero integer
// setting it; gccheckmark on turns it off too.
func asyncPreemptOff(godebug string) bool {
	var off, checkmark bool
	for _, kv := range strings.Split(godebug, ",") {
		key, value, ok := strings.Cut(kv, "=")
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(value, 10, 32)
		if err != nil {
			continue
		}
		switch key {
		case "asyncpreemptoff":
			off = n != 0
		case "gccheckmark":
			checkmark = n > 0
		}
	}
	return off || checkmark
}
