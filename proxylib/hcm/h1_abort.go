package hcm

import (
	"context"
	"errors"
	"net"

	"github.com/nodemesh/nodemesh/proxylib/sockio"
	"github.com/nodemesh/nodemesh/proxylib/upstream"
)

// A forced close (Handler.Shutdown once its context ended) must not wait
// for the request a connection serves: that request may run inside the
// connection's read session, whose callback holds the socket until it
// returns, so a Close would wait for it, and it may wait on a silent
// upstream for as long as the route allows. abort instead interrupts what
// the request waits on, from the goroutine that forces the close: it shuts
// down (shutdown(2)) the client's socket and the upstream connection the
// request uses, which needs no lock a session holds, and cancels the
// context of the connection's other upstream waits. The serving goroutine
// then sees its reads and writes fail at once and closes the connection
// itself. The cost is three atomic operations for a request served on its
// first upstream connection (forwardH1: useUpstream's load and swap,
// releaseUpstream's swap); each further connection a replay or a retry
// takes adds a load (aborted) and useUpstream's two, and each discarded
// one dropUpstream's swap; no system call.

// abortedUp marks h1conn.up of an aborted connection.
var abortedUp = new(upstream.Conn)

// useUpstream records uc as the upstream connection the current request
// waits on, so that abort can interrupt it. It returns false when the
// connection was aborted: the caller must discard uc and end the request.
func (hc *h1conn) useUpstream(uc *upstream.Conn) bool {
	for {
		old := hc.up.Load()
		if old == abortedUp {
			return false
		}
		if hc.up.CompareAndSwap(old, uc) {
			return true
		}
	}
}

// releaseUpstream takes uc back before it is pooled. It returns false when
// the connection was aborted meanwhile (uc may be shut down): uc must be
// discarded.
func (hc *h1conn) releaseUpstream(uc *upstream.Conn) bool {
	return hc.up.CompareAndSwap(uc, nil)
}

// dropUpstream discards uc, which the current request used, and forgets
// it first: an idle client connection must not keep a closed upstream
// connection (and its buffers) reachable.
func (hc *h1conn) dropUpstream(uc *upstream.Conn) {
	hc.up.CompareAndSwap(uc, nil)
	uc.Discard()
}

// aborted reports that a forced close reached the connection: no further
// upstream connection is taken for it, not even an idle pooled one.
func (hc *h1conn) aborted() bool { return hc.up.Load() == abortedUp }

// upstreamCtx is the context of the connection's upstream waits that take
// one (a dial or a wait for a connection slot, an HTTP/2 upstream
// exchange, a retry back-off): made on first use, since a request served
// by a pooled idle HTTP/1.1 connection waits on none, and cancelled by
// abort.
func (hc *h1conn) upstreamCtx() context.Context {
	hc.ctxMu.Lock()
	defer hc.ctxMu.Unlock()
	if hc.ctx == nil {
		hc.ctx, hc.cancel = context.WithCancel(context.Background())
		if hc.up.Load() == abortedUp {
			hc.cancel()
		}
	}
	return hc.ctx
}

// resetAbort readies a pooled h1conn for its next connection; it runs when
// no Shutdown can reach it (before track, after untrack).
func (hc *h1conn) resetAbort() {
	hc.up.Store(nil)
	if hc.cancel != nil {
		hc.cancel()
	}
	hc.ctx, hc.cancel = nil, nil
}

// abort interrupts whatever the connection's current request waits on, and
// every later read and write of the connection, without blocking; no
// further upstream connection is taken for it. It returns the connection
// to close when its socket cannot be shut down (nil when it was). The
// handler calls it with hc tracked, under h.mu.
func (hc *h1conn) abort() net.Conn {
	if hc.hl != nil {
		// Loop-served: the loop owns the descriptors (a shutdown from
		// here could hit a reused descriptor number); it closes them.
		hc.up.Store(abortedUp)
		hc.cancelCtx()
		hc.postLoop(hc.loopAbort)
		return nil
	}
	if old := hc.up.Swap(abortedUp); old != nil && old != abortedUp {
		old.Abort()
	}
	hc.cancelCtx()
	return interrupt(hc.c)
}

// cancelCtx cancels the context of the connection's upstream waits.
func (hc *h1conn) cancelCtx() {
	hc.ctxMu.Lock()
	if hc.cancel != nil {
		hc.cancel()
	}
	hc.ctxMu.Unlock()
}

// interrupt shuts c's socket down both ways; it returns c when that is not
// possible (no socket), for the caller to close once it holds no lock.
func interrupt(c net.Conn) net.Conn {
	if err := sockio.Shutdown(c); errors.Is(err, errors.ErrUnsupported) {
		return c
	}
	return nil
}
