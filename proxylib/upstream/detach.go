package upstream

import (
	"time"

	"errors"
	"fmt"
	"net"
	"os"

	"golang.org/x/sys/unix"
)

// Errors of Detach and Attach.
var (
	// ErrNotDetachable: the connection is not a plain socket the proxy
	// reads and writes itself (TLS, or no raw descriptor); it is left as
	// it was.
	ErrNotDetachable = errors.New("upstream connection cannot be detached")
	// ErrNotDetached: Attach of a connection that is not detached, or
	// closed.
	ErrNotDetached = errors.New("upstream connection is not detached")
	errDetached    = errors.New("upstream connection is detached already")
	errConnClosed  = errors.New("upstream connection is closed")
)

// Detach takes c's socket out of the Go runtime's network poller and
// returns its descriptor, for an event loop that waits on its own epoll
// set and reads and writes the socket itself. The descriptor is a
// close-on-exec, non-blocking duplicate; the net.Conn is closed, which
// removes the original descriptor from the runtime's poller (the
// duplicate keeps the socket open). c keeps its connection slot, its
// pool, its buffers (Buf[R:W] stays unread) and its parsed response.
//
// After Detach c.Conn is nil: the net.Conn methods promoted from it, and
// anything that sets a deadline on it, must not be called until Attach.
// The methods valid on a detached connection are FD, Detached,
// ProbeDetached, PeerClosed, Attach, Abort, Discard, ReadLimit, Pool,
// ReleaseBuffers and TakeBuffers;
// PutAt closes a detached connection instead of pooling it. The
// descriptor belongs to c: the loop must not close it itself.
//
// A TLS connection, or one without a raw descriptor, yields
// ErrNotDetachable; that, or a failed dup, leaves c usable as before.
// Detach must not run concurrently with Abort.
func (c *Conn) Detach() (int, error) {
	switch {
	case c.closed:
		return -1, errConnClosed
	case c.detached:
		return -1, errDetached
	case c.tls != nil || c.raw == nil:
		return -1, ErrNotDetachable
	}
	fd := -1
	var derr error
	if err := c.raw.Control(func(s uintptr) {
		fd, derr = dupNonblock(int(s))
	}); err != nil {
		return -1, fmt.Errorf("detaching an upstream connection: %w", err)
	}
	if derr != nil {
		return -1, fmt.Errorf("detaching an upstream connection: %w", derr)
	}
	// Closing evicts the descriptor from the runtime's epoll set
	// explicitly (EPOLL_CTL_DEL): an epoll registration lives as long as
	// the open file, which the duplicate keeps.
	_ = c.Conn.Close()
	c.Conn, c.raw = nil, nil
	c.fd, c.detached = fd, true
	// The deadline armed on the closed net.Conn went with it.
	c.rdl.Forget()
	return fd, nil
}

// dupNonblock duplicates fd close-on-exec. O_NONBLOCK belongs to the open
// file both descriptors share, so it is only checked, and set should
// something have cleared it: a blocking read in an event loop would stall
// every connection it serves.
func dupNonblock(fd int) (int, error) {
	d, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return -1, os.NewSyscallError("fcntl", err)
	}
	fl, err := unix.FcntlInt(uintptr(d), unix.F_GETFL, 0)
	if err == nil && fl&unix.O_NONBLOCK == 0 {
		_, err = unix.FcntlInt(uintptr(d), unix.F_SETFL, fl|unix.O_NONBLOCK)
	}
	if err != nil {
		unix.Close(d)
		return -1, os.NewSyscallError("fcntl", err)
	}
	return d, nil
}

// FD is the descriptor of a detached connection, -1 when c is attached
// or closed.
func (c *Conn) FD() int {
	if !c.detached || c.closed {
		return -1
	}
	return c.fd
}

// Detached reports whether c was detached and not attached again.
func (c *Conn) Detached() bool { return c.detached }

// Attach makes a detached connection a pooled net.Conn again, wrapped as
// a freshly dialed one is (sockio's raw reads and writes, the reuse
// probe), with the same pool, slot and buffers. The caller must have
// removed the descriptor from its epoll set first, and must not use the
// number afterwards: Attach duplicates the socket into the runtime's
// poller and closes the loop's descriptor. On an error c is closed and
// its slot released (it cannot be trusted half-attached).
func (c *Conn) Attach() error {
	if !c.detached || c.closed {
		return ErrNotDetached
	}
	f := os.NewFile(uintptr(c.fd), "")
	nc, err := net.FileConn(f)
	// FileConn made its own duplicate, non-blocking as every socket in
	// the runtime's poller (sockio's raw reads depend on it): the loop's
	// descriptor goes.
	_ = f.Close()
	c.fd, c.detached = -1, false
	if err != nil {
		c.closed = true
		c.pool.b.release(c.pool)
		return fmt.Errorf("attaching an upstream connection: %w", err)
	}
	c.setConn(nc)
	c.rdl.Forget()
	return nil
}

// ProbeDetached is the reuse probe of a detached connection: true only
// when the socket has nothing to read, no bytes, no end of stream, no
// error (a non-blocking peek answers EAGAIN). One system call, no
// allocation.
func (c *Conn) ProbeDetached() bool {
	if !c.detached || c.closed {
		return false
	}
	c.probeFD(uintptr(c.fd))
	return c.clean
}

// closeFD closes a detached connection's descriptor once.
func (c *Conn) closeFD() {
	if c.fd >= 0 {
		_ = unix.Close(c.fd)
		c.fd = -1
	}
}

// abortDetached ends both directions of a detached socket; a closed one
// has nothing left to end.
func (c *Conn) abortDetached() {
	if c.fd >= 0 {
		_ = unix.Shutdown(c.fd, unix.SHUT_RDWR)
	}
}

// Closed reports whether the pool left the configuration: it keeps no
// idle connection, so an event loop must not keep its connections idle
// either.
func (p *Pool) Closed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}

// Queued reports whether requests wait for a connection under the pool's
// circuit breakers (max_connections): an event loop then returns an idle
// connection through Attach and PutAt, which hands it to a request queued
// for this pool, or pools it as any released connection, instead of
// keeping it where no queued request can get it.
func (p *Pool) Queued() bool { return p.b.nwait.Load() > 0 }

// IdleFresh reports whether a connection idle since since may still be
// reused at now under the pool's idle timeout (a loop keeping detached
// connections checks it as popIdle does).
func (p *Pool) IdleFresh(since, now time.Time) bool {
	idle := time.Duration(p.idleTimeout.Load())
	return idle <= 0 || now.Sub(since) < idle
}

// IdleTimeout is how long an idle connection of the pool may wait for
// reuse (0: no bound).
func (p *Pool) IdleTimeout() time.Duration { return time.Duration(p.idleTimeout.Load()) }

// OnQueue registers fn, under key (one per event loop), to be called,
// without locks held, whenever a request queues for a connection of p
// (max_connections reached): a loop keeping detached idle connections of
// p gives them back then (Attach, PutAt), so a queued request never waits
// while a loop holds an idle connection it could use. Registering a key
// again changes nothing; the check costs no lock.
func (p *Pool) OnQueue(key any, fn func()) {
	if rs := p.reclaimers.Load(); rs != nil {
		for _, r := range *rs {
			if r.key == key {
				return
			}
		}
	}
	p.reclaimMu.Lock()
	defer p.reclaimMu.Unlock()
	var next []reclaimer
	if rs := p.reclaimers.Load(); rs != nil {
		for _, r := range *rs {
			if r.key == key {
				return
			}
		}
		next = append(next, *rs...)
	}
	next = append(next, reclaimer{key, fn})
	p.reclaimers.Store(&next)
}

// reclaim calls the OnQueue functions.
func (p *Pool) reclaim() {
	if rs := p.reclaimers.Load(); rs != nil {
		for _, r := range *rs {
			r.fn()
		}
	}
}

// ReleaseBuffers gives an idle connection's read and write buffers back
// (nothing may be buffered), as PutAt does for the pool's idle
// connections; TakeBuffers borrows them again before reuse.
func (c *Conn) ReleaseBuffers() { c.releaseBufs() }

// TakeBuffers borrows the buffers of a connection that holds none.
func (c *Conn) TakeBuffers() { c.takeBufs() }
