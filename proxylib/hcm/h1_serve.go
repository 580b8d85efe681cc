package hcm

import (
	"errors"
	"time"

	"github.com/nodemesh/nodemesh/proxylib/http1"
	"github.com/nodemesh/nodemesh/proxylib/sockio"
)

// pending is what a connection waits for after serving what it buffered.
type pending uint8

const (
	pendIdle  pending = iota // nothing buffered: the next request
	pendHead                 // the rest of a request head
	pendBody                 // a parsed request whose serving reads the connection
	pendClose                // the connection must close
	pendFail                 // reading failed: end of stream, error, timeout or a full buffer
)

// serve serves requests until the connection closes.
func (hc *h1conn) serve() {
	defer hc.close()
	if hc.c == &hc.sock {
		hc.serveSession()
		return
	}
	hc.serveReads()
}

// step serves the complete requests in buf. Inside a read session it stops
// at a request whose serving reads the connection (bodyBuffered).
func (hc *h1conn) step() pending {
	for {
		err := http1.ParseRequestLimits(hc.buf[hc.r:hc.w], &hc.req, hc.h.h1.parse)
		if err != nil {
			if !errors.Is(err, http1.ErrIncomplete) {
				hc.reject(err)
				return pendClose
			}
			if hc.r == hc.w {
				return pendIdle
			}
			if hc.headAt.IsZero() {
				// Bytes arrive and are parsed in one go: the read that
				// brought this head's first bytes happened just now.
				hc.headAt = time.Now()
			}
			return pendHead
		}
		// The request starts with its head's first bytes; a head that
		// came whole is started when its body is first waited for.
		hc.reqAt, hc.headAt = hc.headAt, time.Time{}
		if hc.inSession && !hc.bodyBuffered() {
			return pendBody
		}
		if !hc.handle() {
			return pendClose
		}
	}
}

// bodyBuffered reports whether serving the parsed request reads nothing
// more from the connection: it has no body or all of its Content-Length
// body is buffered, and it is no upgrade (which splices the connection).
func (hc *h1conn) bodyBuffered() bool {
	req := &hc.req
	if req.Upgrade {
		return false
	}
	switch req.Framing {
	case http1.NoBody:
		return true
	case http1.Length:
		return int64(hc.w-hc.r-req.HeadLen) >= req.ContentLength
	}
	return false
}

// enterIdle marks the connection idle before it waits for a request; false
// means it must close (draining).
func (hc *h1conn) enterIdle() bool {
	return hc.state.CompareAndSwap(connActive, connIdle) && !hc.h.draining.Load()
}

// leaveIdle marks it active again; false means a drain closed it meanwhile.
func (hc *h1conn) leaveIdle() bool {
	return hc.state.CompareAndSwap(connIdle, connActive)
}

// failed ends a connection whose read failed: a head that cannot grow is
// answered 431, a head whose deadline passed 408; anything else (the end
// of the stream, an idle connection timing out) closes silently.
func (hc *h1conn) failed() {
	switch {
	case hc.w-hc.r >= hc.h.h1.parse.HeadBytes:
		hc.reject(http1.ErrHeadTooLarge)
	case hc.timedOut && hc.r < hc.w:
		hc.requestTimedOut(true)
	}
}

// serveReads is the serving loop over plain blocking reads (TLS, and any
// connection whose socket is not wrapped).
func (hc *h1conn) serveReads() {
	for {
		switch hc.step() {
		case pendClose:
			return
		case pendIdle:
			if !hc.enterIdle() {
				return
			}
			ok := hc.fill(waitIdle)
			if !hc.leaveIdle() {
				return // closed by a drain
			}
			if !ok {
				hc.failed()
				return
			}
		default: // pendHead
			if !hc.fill(waitHead) {
				hc.failed()
				return
			}
		}
	}
}

// serveSession serves a raw socket inside poller read sessions
// (sockio.Conn.Session), so that between keep-alive requests the proxy
// waits for the next one without first reading until EAGAIN, as an
// event loop would: the read that returned the previous request already
// reported (TCP_INQ) that nothing, not even a FIN, was left. A request
// whose serving reads the connection (a body not yet buffered, an upgrade)
// ends the session and is served outside it; the next session starts with
// a read.
func (hc *h1conn) serveSession() {
	hc.sock.TrackPending()
	for {
		hc.inSession, hc.mustRead, hc.end = true, true, pendFail
		err := hc.sock.Session(hc.onReadable)
		hc.inSession = false
		if hc.waitingIdle {
			// The wait ended without a request: timeout, close or drain.
			hc.waitingIdle = false
			if !hc.leaveIdle() {
				return
			}
		}
		if err != nil {
			hc.eof, hc.timedOut = true, isTimeout(err)
			hc.failed()
			return
		}
		switch hc.end {
		case pendBody:
			if !hc.handle() {
				return
			}
		case pendClose:
			return
		default:
			hc.failed()
			return
		}
	}
}

// sessionStep is the read-session callback: it serves every complete
// buffered request, reads what is available, and returns false to wait for
// readability or true (with hc.end set) to end the session.
func (hc *h1conn) sessionStep() bool {
	hc.clock = time.Time{}
	if hc.waitingIdle {
		hc.waitingIdle = false
		if !hc.leaveIdle() {
			hc.end = pendClose // closed by a drain
			return true
		}
	}
	for {
		switch p := hc.step(); p {
		case pendIdle:
			if !hc.mustRead {
				return hc.waitReadable() // nothing pending: skip the read that would fail
			}
		case pendHead:
			// Read until EAGAIN before waiting in the middle of a head: a
			// reset that arrived with its first part would otherwise go
			// unnoticed until the stream idle timeout.
			hc.mustRead = true
		default:
			hc.end = p
			return true
		}
		if !hc.makeRoom() {
			hc.end = pendFail
			return true
		}
		n, more, err := hc.sock.ReadNow(hc.readRoom())
		if err == sockio.ErrWouldBlock {
			return hc.waitReadable()
		}
		if err != nil {
			hc.eof = true
			hc.end = pendFail
			return true
		}
		hc.w += n
		hc.mustRead = more
	}
}

// waitReadable arms the read deadline for what the connection waits for and
// returns false so that the session waits; it returns true when an idle
// connection must close instead (draining). After a served request the
// deadline counts from that request's end, read once for its metrics.
func (hc *h1conn) waitReadable() bool {
	hc.mustRead = true
	w := waitHead
	if hc.r == hc.w {
		w = waitIdle
		if !hc.enterIdle() {
			hc.end = pendClose
			return true
		}
		hc.waitingIdle = true
		// Nothing is buffered and the session needs no buffer to wait:
		// give them back until the next request arrives (package connbuf
		// says why).
		hc.releaseBufs()
	}
	now := hc.clock
	if now.IsZero() {
		now = time.Now()
	}
	hc.armRead(w, now)
	return false
}
