package evloop

import (
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// epollWait waits without the runtime's blocking-syscall bookkeeping (see
// the package comment).
func epollWait(epfd int, evs []unix.EpollEvent, msec int) (int, syscall.Errno) {
	r, _, e := syscall.RawSyscall6(syscall.SYS_EPOLL_WAIT, uintptr(epfd), uintptr(unsafe.Pointer(&evs[0])),
		uintptr(len(evs)), uintptr(msec), 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(r), 0
}

// idleMsec bounds a wait without the bookkeeping: a loop that got nothing
// in that long waits next with it (see the package comment).
const idleMsec = 5

// rawWait is the timeout of a wait without the runtime's bookkeeping: the
// loop's own (its next timer, -1 for none) up to idleMsec.
func rawWait(msec int) int {
	if msec < 0 || msec > idleMsec {
		return idleMsec
	}
	return msec
}

// epollWaitReleasing waits as an ordinary blocking system call: the
// runtime may hand the loop's P to other goroutines meanwhile and does not
// signal the loop to preempt it; the wake-up may have to take a P back.
func epollWaitReleasing(epfd int, evs []unix.EpollEvent, msec int) (int, syscall.Errno) {
	r, _, e := syscall.Syscall6(syscall.SYS_EPOLL_WAIT, uintptr(epfd), uintptr(unsafe.Pointer(&evs[0])),
		uintptr(len(evs)), uintptr(msec), 0, 0)
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
