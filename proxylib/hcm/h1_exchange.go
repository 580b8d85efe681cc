package hcm

import (
	"time"

	"github.com/nodemesh/nodemesh/proxylib/sockio"
	"github.com/nodemesh/nodemesh/proxylib/upstream"
)

// While waiting for a response on a raw upstream socket the proxy skips
// the read that would fail right after the request is written. A FIN that
// reached a pooled connection while it was idle (a server closing it)
// could then go unseen until a read: the wait is therefore bounded by a
// check deadline between finCheckMin and finCheckMax after the request
// (loose, so a busy connection re-arms its timer about once a second).
// When it passes with no response byte, the connection is read as before:
// a closed one counts as reset (and the request is replayed like any
// request on a reused connection the server closed), an open one keeps
// waiting for the head timeout (the per-try timeout, else the route
// timeout). The pool probes every idle connection before reuse, so this
// only matters for a FIN that arrives between that probe and the request.
// Once the head is parsed, forwardH1 re-arms the deadline for the body:
// the route timeout, or none.
const (
	finCheckMin = 500 * time.Millisecond
	finCheckMax = time.Second
)

// exchangeState is the upstream read session of one exchange.
type exchangeState struct {
	sc    *sockio.Conn
	uc    *upstream.Conn
	out   []byte
	wrote bool
	werr  bool // writing the request failed
	got   bool // the first read returned bytes
}

// exchange writes the request in out to uc and reads until a final
// response head is parsed into uc.Resp, within timeout of sent. On a raw
// socket the write and the first read happen in one read session, so the
// proxy waits for the response without first reading until EAGAIN.
//
// The reads are plain reads: whether a FIN or stray bytes are queued
// behind the response is not asked of the kernel (TCP_INQ, a recvmsg with
// a control message, costs more than a read), because the pool's probe
// finds either before the connection is handed out again, and it would
// have to anyway for whatever arrives while the connection idles.
func (hc *h1conn) exchange(uc *upstream.Conn, out []byte, head bool, sent time.Time, timeout time.Duration, reused bool) upstreamErr {
	sc, ok := uc.Conn.(*sockio.Conn)
	if !ok || uc.R != uc.W {
		if _, err := uc.Write(out); err != nil {
			return upReset
		}
		return readHead(uc, head, sent, timeout)
	}
	check := timeout <= 0 || timeout > finCheckMax
	if check {
		if t, ok := uc.DeadlineWithin(sent, finCheckMin, finCheckMax); ok {
			_ = uc.SetReadDeadline(t)
		}
	} else if t, ok := uc.Deadline(sent, timeout); ok {
		_ = uc.SetReadDeadline(t)
	}
	x := &hc.x
	*x = exchangeState{sc: sc, uc: uc, out: out}
	err := sc.Session(hc.exchangeFn)
	got, werr, wrote := x.got, x.werr, x.wrote
	*x = exchangeState{}
	switch {
	case werr:
		return upReset
	case !wrote:
		// The session ended before its first call (a deadline armed
		// earlier had passed): send the request the ordinary way.
		if _, err := uc.Write(out); err != nil {
			return upReset
		}
		return readHead(uc, head, sent, timeout)
	case got:
		if ue, done := parseHead(uc, head); done {
			return ue
		}
		// The head continues: read on under the head timeout proper.
		if t, ok := uc.Deadline(sent, timeout); ok {
			_ = uc.SetReadDeadline(t)
		}
		return readHeadFrom(uc, head, true)
	case err != nil && isTimeout(err):
		if check {
			// Nothing within the check interval: read as before, which
			// sees a close, then wait for the route timeout.
			return readHead(uc, head, sent, timeout)
		}
		if reused && uc.PeerClosed() {
			return upReset
		}
		return upTimeout
	default: // closed, or end of stream or an error before any byte
		return upReset
	}
}

// exchangeStep is the upstream session callback: first write the request,
// then wait, then read once.
func (hc *h1conn) exchangeStep() bool {
	x := &hc.x
	if !x.wrote {
		x.wrote = true
		if _, err := x.sc.Write(x.out); err != nil {
			x.werr = true
			return true
		}
		return false // nothing can have arrived before the request: wait
	}
	uc := x.uc
	n, _, err := x.sc.ReadNow(uc.Buf[uc.W:])
	if err == sockio.ErrWouldBlock {
		return false
	}
	if err != nil {
		return true // end of stream or an error before any byte
	}
	uc.W += n
	x.got = true
	return true
}
