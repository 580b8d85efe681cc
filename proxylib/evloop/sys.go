package evloop

import (
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// idleMsec bounds a raw wait: a loop that got nothing in that long waits
// next as an ordinary blocking system call (see the package comment).
const idleMsec = 5

// rawWait is the timeout of a raw wait: the loop's own (its next timer, -1
// for none) up to idleMsec.
func rawWait(msec int) int {
	if msec < 0 || msec > idleMsec {
		return idleMsec
	}
	return msec
}

// epollWait waits for events, raw (without the runtime's blocking-syscall
// bookkeeping: the loop keeps its P and the monitor never hands it off) or
// as an ordinary blocking system call (the runtime may lend the P to other
// goroutines meanwhile and sends no preemption signal; the wake-up may
// have to take a P back). epoll_pwait with no signal mask is epoll_wait,
// and every Linux architecture has it.
func epollWait(epfd int, evs []unix.EpollEvent, msec int, raw bool) (int, syscall.Errno) {
	var r uintptr
	var e syscall.Errno
	// Direct calls each, so the pointer stays live through the call.
	if raw {
		r, _, e = syscall.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(unsafe.Pointer(&evs[0])),
			uintptr(len(evs)), uintptr(msec), 0, 0)
	} else {
		r, _, e = syscall.Syscall6(unix.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(unsafe.Pointer(&evs[0])),
			uintptr(len(evs)), uintptr(msec), 0, 0)
	}
	if e != 0 {
		return 0, e
	}
	return int(r), 0
}

// epollWaitNs waits raw for events up to ns nanoseconds (epoll_pwait2,
// Linux 5.11; epoll_pwait counts whole milliseconds). ENOSYS on older
// kernels.
func epollWaitNs(epfd int, evs []unix.EpollEvent, ns int64) (int, syscall.Errno) {
	ts := unix.NsecToTimespec(ns)
	r, _, e := syscall.RawSyscall6(unix.SYS_EPOLL_PWAIT2, uintptr(epfd), uintptr(unsafe.Pointer(&evs[0])),
		uintptr(len(evs)), uintptr(unsafe.Pointer(&ts)), 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(r), 0
}

// Read reads from a non-blocking descriptor with a raw system call. It
// returns syscall.EAGAIN when nothing is available.
func Read(fd int, p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	r, _, e := syscall.RawSyscall(syscall.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}

// Write writes to a non-blocking descriptor with a raw system call; it may
// write less than p (then the socket's buffer is full) or return
// syscall.EAGAIN.
func Write(fd int, p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	r, _, e := syscall.RawSyscall(syscall.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}
