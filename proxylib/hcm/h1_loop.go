package hcm

import (
	"cmp"
	"errors"
	"fmt"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nodemesh/nodemesh/proxylib/evloop"
	"github.com/nodemesh/nodemesh/proxylib/http1"
	"github.com/nodemesh/nodemesh/proxylib/sockio"
	"github.com/nodemesh/nodemesh/proxylib/upstream"
	"golang.org/x/sys/unix"
)

// Loops are the event loops plain-TCP HTTP/1.1 connections are served on
// (doc.go, "Event loops"). Runtime.Loops nil: every connection is served
// on a goroutine of its own.
type Loops struct {
	loops  []*hloop
	next   atomic.Uint32
	failed chan error // the first loop that stopped before Close, with why
	closed atomic.Bool
}

// hloop is one loop with the state only its thread touches.
type hloop struct {
	l      *evloop.Loop
	idle   map[*upstream.Pool][]*loopUp
	queued func() // upstream.Pool.OnQueue's function: give back what requests wait for
	sweep  evloop.Timer
}

// StartLoops starts n loops, each on a goroutine of its own. GOMAXPROCS
// must leave a P beside them (evloop.Loop.Run).
func StartLoops(n int) (*Loops, error) {
	ls := &Loops{failed: make(chan error, 1)}
	for range n {
		l, err := evloop.New()
		if err != nil {
			for _, hl := range ls.loops {
				hl.l.Close() // never ran: shut at once
			}
			return nil, err
		}
		hl := &hloop{l: l, idle: map[*upstream.Pool][]*loopUp{}}
		hl.queued = func() { _ = hl.l.Post(hl.giveBackQueued) }
		hl.sweep.F = hl.sweepIdle
		ls.loops = append(ls.loops, hl)
	}
	errc := make(chan error, n)
	for _, hl := range ls.loops {
		go func() { errc <- hl.l.Run() }()
	}
	// A loop that cannot run says so at once; one that runs answers a
	// posted function.
	for _, hl := range ls.loops {
		ran := make(chan struct{})
		if err := hl.l.Post(func() { hl.sweepIdle(); close(ran) }); err != nil {
			ls.Close()
			return nil, err
		}
		select {
		case <-ran:
		case err := <-errc:
			ls.Close()
			return nil, fmt.Errorf("starting event loop: %w", err)
		}
	}
	go func() {
		for range n {
			err := <-errc
			if ls.closed.Load() {
				continue
			}
			select {
			case ls.failed <- cmp.Or(err, errors.New("stopped")):
			default:
			}
		}
	}()
	return ls, nil
}

// Failed delivers why a loop stopped before Close (an error of its
// epoll set or of the runtime's poller): its connections and the ones
// given to it from then on go unserved, so the proxy stops (proxylib's
// Run).
func (ls *Loops) Failed() <-chan error { return ls.failed }

// Close stops the loops; the connections they serve are dropped with
// them (the process is ending).
func (ls *Loops) Close() {
	ls.closed.Store(true)
	for _, hl := range ls.loops {
		// The idle upstream connections first (their slots, their
		// descriptors), then the loop.
		done := make(chan struct{})
		if hl.l.Post(func() { hl.discardIdle(); close(done) }) == nil {
			select {
			case <-done:
			case <-hl.l.Done():
			}
		}
		hl.l.Close()
		<-hl.l.Done()
	}
}

// discardIdle closes every idle upstream connection the loop holds.
func (hl *hloop) discardIdle() {
	for pool, list := range hl.idle {
		for _, lu := range list {
			hl.discard(lu)
		}
		delete(hl.idle, pool)
	}
}

func (ls *Loops) pick() *hloop {
	return ls.loops[int(ls.next.Add(1))%len(ls.loops)]
}

// loopPhase is what a loop-served connection waits for.
type loopPhase uint8

const (
	phIdle     loopPhase = iota // the next request
	phHead                      // the rest of a request head
	phDial                      // an upstream connection (a goroutine gets it)
	phUpWrite                   // room to write the request upstream
	phUpResp                    // the response head
	phWrite                     // room to write the response to the client
	phGone                      // handed to a goroutine or closed
	phStarting                  // adopted, loopStart not yet run
)

// loopUp is an upstream connection a loop owns (detached from the
// runtime's poller): in an exchange of hc, or idle in its loop's list.
type loopUp struct {
	uc   *upstream.Conn
	fd   int
	hl   *hloop
	hc   *h1conn // the connection whose exchange uses it; nil while idle
	reg  bool    // in the loop's epoll set
	idle time.Time
	// parked is the loop's round in which it became idle (putIdle): a
	// later round's wait that reported nothing for it stands for the
	// probe (popIdle).
	parked uint64
	// full: the last read filled its buffer, so the socket may hold
	// bytes whose edge was already reported (putIdle probes).
	full bool
	tm   evloop.Timer // the pool's idle timeout while idle
}

// Ready is the upstream socket's readiness: the exchange's, or, for an
// idle connection, the server closing it or sending what no request asked
// for; either way an idle connection is closed.
func (lu *loopUp) Ready(ev uint32) {
	if lu.hc != nil {
		lu.hc.upReady(ev)
		return
	}
	if ev&(evloop.In|evloop.RdHup|evloop.Hup|evloop.Err) != 0 {
		lu.hl.dropIdle(lu)
	}
}

// clientSide is the client socket's evloop.Handler.
type clientSide struct{ hc *h1conn }

func (c clientSide) Ready(ev uint32) { c.hc.clientReady(ev) }

// loopAdopt hands hc, a plain TCP connection, to an event loop: its socket
// leaves the runtime's poller (dup, then close of the original). It
// reports false when hc stays on the calling goroutine.
func (h *Handler) loopAdopt(hc *h1conn) bool {
	ls := h.rt.Loops
	if ls == nil || h.tls || hc.c != &hc.sock {
		return false
	}
	fd, err := hc.sock.Dup()
	if err != nil {
		return false
	}
	hl := ls.pick()
	h.mu.Lock()
	if h.draining.Load() || hc.aborted() {
		h.mu.Unlock()
		unix.Close(fd)
		return false
	}
	// From here Shutdown reaches hc through the loop: a drain or abort
	// posted before loopStart finds phStarting and leaves the decision
	// to loopStart (which checks aborted; draining is checked per request).
	c := hc.sock.Conn
	hc.hl, hc.fd, hc.c, hc.ph = hl, fd, nil, phStarting
	h.mu.Unlock()
	_ = c.Close()
	hc.sock.Clear()
	hc.rdl, hc.wdl = sockio.LazyDeadline{}, sockio.LazyDeadline{}
	hc.cside.hc = hc
	hc.ctm.F, hc.utm.F = hc.clientTimeout, hc.respTimeout
	if err := hl.l.Post(hc.loopStart); err != nil {
		hc.loopRelease()
	}
	return true
}

// postLoop runs fn on hc's loop unless the loop gave hc up by then
// (loopRelease and toGoroutine bump gen under h.mu); the caller holds h.mu
// (hc.hl is read under it).
func (hc *h1conn) postLoop(fn func()) {
	gen := hc.gen.Load()
	hl := hc.hl
	err := hl.l.Post(func() {
		if hc.gen.Load() == gen {
			fn()
		}
	})
	if err != nil {
		// The loop stopped on its own (Loops.Failed): once its Run has
		// returned nothing touches hc there, and hc ends from here, or
		// a drain would wait for it for ever.
		go func() {
			<-hl.l.Done()
			hc.releaseDead(gen)
		}()
	}
}

// releaseDead ends hc, served by a loop that stopped, from outside it:
// its descriptors close, it leaves the handler's books.
func (hc *h1conn) releaseDead(gen uint64) {
	h := hc.h
	h.mu.Lock()
	if hc.gen.Load() != gen || hc.hl == nil {
		h.mu.Unlock()
		return
	}
	if lu := hc.lu; lu != nil {
		hc.lu = nil
		lu.hc = nil
		lu.uc.Discard()
	}
	unix.Close(hc.fd)
	hc.gen.Add(1)
	hc.hl, hc.fd = nil, -1
	delete(h.conns, hc)
	h.mu.Unlock()
	h.wg.Done()
}

// loopStart registers the client socket and serves what sniffing read.
func (hc *h1conn) loopStart() {
	hc.ph = phIdle
	if hc.aborted() {
		hc.loopClose()
		return
	}
	if err := hc.hl.l.Add(hc.fd, evloop.In|evloop.Out|evloop.RdHup|evloop.ET, hc.cside); err != nil {
		hc.h.rt.Logger.Debug("event loop", "error", err)
		hc.loopRelease()
		return
	}
	hc.loopServe()
}

// loopClose closes a loop-served connection and gives hc back.
func (hc *h1conn) loopClose() {
	hl := hc.hl
	if hc.ph != phGone {
		_ = hl.l.Del(hc.fd)
	}
	hc.ph = phGone
	hc.loopRelease()
}

// loopRelease closes the descriptor and ends the connection's tracking.
func (hc *h1conn) loopRelease() {
	hl := hc.hl
	hl.l.Stop(&hc.ctm)
	hl.l.Stop(&hc.utm)
	if lu := hc.lu; lu != nil {
		hc.lu = nil
		hc.up.CompareAndSwap(lu.uc, nil)
		hl.discard(lu)
	}
	unix.Close(hc.fd)
	h := hc.h
	h.mu.Lock()
	hc.gen.Add(1) // functions posted for this connection do nothing
	hc.hl, hc.fd = nil, -1
	delete(h.conns, hc)
	h.mu.Unlock()
	putH1conn(hc)
	h.wg.Done()
}

// clientReady handles the client socket's readiness. What the client
// sent is read when the connection needs it (loopServe): between requests
// and for the rest of a head, not while a request is served, as on a
// goroutine, where the exchange runs inside the client's read session.
func (hc *h1conn) clientReady(ev uint32) {
	if hc.ph == phGone {
		return
	}
	if ev&(evloop.In|evloop.RdHup|evloop.Hup|evloop.Err) != 0 {
		hc.pendIn = true // edge-triggered: read until a read comes short
	}
	if ev&(evloop.RdHup|evloop.Hup) != 0 {
		// The client's FIN came: no edge will tell of it again.
		hc.peerFin = true
	}
	switch hc.ph {
	case phIdle, phHead:
		if hc.pendIn {
			hc.loopServe()
		}
	case phWrite:
		if ev&(evloop.Out|evloop.Err|evloop.Hup) != 0 {
			hc.flushClient()
		}
	}
}

// loopFailed ends a connection whose read failed (as failed does).
func (hc *h1conn) loopFailed() {
	switch {
	case hc.w-hc.r >= hc.h.h1.parse.HeadBytes:
		hc.loopReject(http1.ErrHeadTooLarge)
	case hc.timedOut && hc.r < hc.w:
		hc.loopTimedOut()
	default:
		hc.loopClose()
	}
}

// loopServe serves the buffered requests, reading one read at a time when
// it needs more bytes and the socket has some (pendIn), until the
// connection waits for something.
func (hc *h1conn) loopServe() {
	for turns := 0; ; turns++ {
		if turns == maxTurns {
			// One connection does not keep the loop from the others:
			// it goes on after them (edge-triggered: no edge would say
			// that its socket still holds bytes).
			hc.yield()
			return
		}
		if hc.r < hc.w {
			err := http1.ParseRequestLimits(hc.buf[hc.r:hc.w], &hc.req, hc.h.h1.parse)
			if err == nil {
				if hc.req.Upgrade || !hc.bodyBuffered() {
					// Served on a goroutine: the request's body streams
					// from the client, or the connection is spliced.
					hc.toGoroutine(nil, nil)
					return
				}
				hc.hl.l.Stop(&hc.ctm)
				hc.reqAt, hc.headAt = hc.headAt, time.Time{}
				if !hc.loopRequest() {
					return
				}
				continue
			}
			if !errors.Is(err, http1.ErrIncomplete) {
				hc.loopReject(err)
				return
			}
			if hc.headAt.IsZero() {
				hc.headAt = time.Now()
			}
		}
		if hc.pendIn {
			if !hc.readClient() {
				return
			}
			continue
		}
		hc.loopWait()
		return
	}
}

// maxTurns bounds the reads and locally answered requests of one
// connection per loopServe.
const maxTurns = 16

// yield parks the connection and posts its continuation behind what the
// loop has to do.
func (hc *h1conn) yield() {
	// Not loopWait: buffered requests and unread bytes are still to be
	// served (a FIN seen already must not close the connection before).
	if hc.r == hc.w {
		hc.ph = phIdle
	} else {
		hc.ph = phHead
	}
	gen := hc.gen.Load()
	_ = hc.hl.l.Post(func() {
		if hc.gen.Load() == gen && (hc.ph == phIdle || hc.ph == phHead) {
			hc.loopServe()
		}
	})
}

// readClient reads once from the client. It returns false when the
// connection ended (end of stream, an error, a full buffer).
func (hc *h1conn) readClient() bool {
	if !hc.makeRoom() {
		hc.loopFailed()
		return false
	}
	room := hc.readRoom()
	n, err := evloop.Read(hc.fd, room)
	if err == syscall.EAGAIN {
		hc.pendIn = false
		return true
	}
	if err != nil || n == 0 {
		hc.eof = true
		hc.loopFailed()
		return false
	}
	hc.w += n
	if n < len(room) {
		hc.pendIn = false // drained: the next bytes bring an edge
	}
	return true
}

// loopWait arms the wait for the next request or the rest of a head.
func (hc *h1conn) loopWait() {
	if hc.r == hc.w {
		hc.ph = phIdle
		if hc.h.draining.Load() || hc.peerFin {
			hc.loopClose()
			return
		}
		hc.releaseBufs()
		if d := hc.h.cfg.IdleTimeout; d > 0 {
			hc.hl.l.Arm(&hc.ctm, hc.hl.l.Now()+int64(d))
		} else {
			hc.hl.l.Stop(&hc.ctm)
		}
		return
	}
	if hc.peerFin {
		hc.loopClose() // a head the client will never finish
		return
	}
	hc.ph = phHead
	hc.armHead(time.Now())
}

// armHead arms the client timer for the rest of a head (armRead's
// waitHead deadlines, exact).
func (hc *h1conn) armHead(now time.Time) {
	cfg := hc.h.cfg
	var end time.Time
	end = earliest(end, hc.headAt, cfg.RequestHeadersTimeout)
	end = earliest(end, hc.headAt, cfg.RequestTimeout)
	if idle := cfg.StreamIdleTimeout; idle > 0 && (end.IsZero() || now.Add(idle).Before(end)) {
		end = now.Add(idle)
	}
	if end.IsZero() {
		hc.hl.l.Stop(&hc.ctm)
		return
	}
	hc.hl.l.Arm(&hc.ctm, hc.hl.l.Now()+int64(end.Sub(now)))
}

// clientTimeout is the client timer: the idle timeout between requests,
// a head's deadline, or a client that stopped reading its response.
func (hc *h1conn) clientTimeout() {
	switch hc.ph {
	case phHead:
		hc.timedOut = true
		hc.loopTimedOut()
	case phIdle, phWrite:
		hc.loopClose()
	}
}

// loopReject answers an unparsable request and closes.
func (hc *h1conn) loopReject(err error) {
	code := rejectCode(err)
	s := hc.s
	s.route, s.wc, s.grpc = nil, nil, false
	hc.sendClient(hc.encodeLocal(code, []byte(http1.StatusText(code)), nil, false, false), true)
}

// loopTimedOut answers a request head that did not complete in time.
func (hc *h1conn) loopTimedOut() {
	cfg := hc.h.cfg
	body := bodyStreamTimeout
	now := time.Now()
	switch {
	case cfg.RequestHeadersTimeout > 0 && !now.Before(hc.headAt.Add(cfg.RequestHeadersTimeout)):
		body = bodyHeaderTimeout
	case cfg.RequestTimeout > 0 && !hc.headAt.IsZero() && !now.Before(hc.headAt.Add(cfg.RequestTimeout)):
		body = bodyRequestTimeout
	}
	s := hc.s
	s.route, s.wc, s.grpc = nil, nil, false
	hc.sendClient(hc.encodeLocal(408, body, nil, false, false), true)
}

// loopRequest serves one parsed request whose body is buffered. It
// returns true when the next buffered request may be served at once
// (a local reply went out whole), false when the connection now waits
// (or is gone).
func (hc *h1conn) loopRequest() bool {
	s := hc.s
	s.begin(false)
	keep, lr := hc.prepare()
	if lr.code != 0 {
		out := hc.encodeLocal(lr.code, lr.body, lr.loc, lr.keep, lr.head)
		hc.endRequest()
		return hc.sendClient(out, !lr.keep)
	}
	pool := s.host.Pool
	f := s.route.Forward
	if s.upgrade || f.Retry != nil || len(f.Mirrors) > 0 || pool.HTTP2 || pool.Scheme() != "http" ||
		len(hc.h.logs) > 0 && hc.req.Framing != http1.NoBody {
		// Retries, mirrors, HTTP/2 and TLS upstreams, and a logged
		// request with a body take the goroutine's path (forward).
		hc.toGoroutine(func() bool {
			ok := hc.forward(keep)
			hc.endRequest()
			return ok
		}, hc.endRequest)
		return false
	}
	if !pool.Admit() {
		hc.r += hc.req.HeadLen
		hc.lkeep = keep && hc.skipBody()
		return hc.loopFail(upOverflow, false)
	}
	pool.BeginAt(s.start)
	hc.lkeep, hc.lhead = keep, string(hc.req.Method) == "HEAD"
	if lu := hc.hl.popIdle(pool, s.start, false); lu != nil {
		hc.loopSend(lu, true, nil)
		return false
	}
	hc.loopDial(pool)
	return false
}

// endRequest closes the request's books: stats and the access log.
func (hc *h1conn) endRequest() {
	s := hc.s
	s.finish()
	hc.clock = s.end
	if len(hc.h.logs) > 0 {
		s.logHTTP(methods[string(hc.req.Method)], s.rreq.Path, false)
	}
}

// loopFail answers a failed exchange locally; admitted says whether the
// pool's counters were taken (pool.Admit, BeginAt). It returns true when
// the answer went out and the next request may be served.
func (hc *h1conn) loopFail(ue upstreamErr, admitted bool) bool {
	s := hc.s
	hc.lreplay = nil
	s.flags |= ue.flag()
	code, body := s.upstreamReply(ue)
	out := hc.encodeLocal(code, body, nil, hc.lkeep, false)
	if admitted {
		pool := s.host.Pool
		pool.End()
		pool.Done()
	}
	hc.endRequest()
	return hc.sendClient(out, !hc.lkeep)
}

// loopDial gets an upstream connection on a goroutine (a dial, or a wait
// for a connection slot, under the route timeout), detaches it and posts
// it back.
func (hc *h1conn) loopDial(pool *upstream.Pool) {
	hc.ph = phDial
	s := hc.s
	hl := hc.hl
	ctx, by := hc.upstreamCtx(), s.routeEnd(s.start)
	// Counted while it dials, so a shared loop does not hold the P
	// from it (evloop.ServingOffLoop).
	evloop.ServingOffLoop(1)
	go func() {
		defer evloop.ServingOffLoop(-1)
		uc, reused, ue := s.getConn(ctx, pool, time.Now(), by)
		var lu *loopUp
		if ue == upOK {
			fd, err := uc.Detach()
			if err != nil {
				uc.Discard()
				ue = upConnect
			} else {
				lu = newLoopUp(uc, fd, hl)
			}
		}
		if hl.l.Post(func() { hc.loopDialed(lu, reused, ue) }) != nil && lu != nil {
			lu.uc.Discard()
		}
	}()
}

// loopDialed continues a request once loopDial got its connection.
func (hc *h1conn) loopDialed(lu *loopUp, reused bool, ue upstreamErr) {
	if hc.aborted() {
		if lu != nil {
			hc.hl.discard(lu)
		}
		hc.loopFinishAborted()
		return
	}
	if ue != upOK {
		if hc.lreplay == nil {
			hc.r += hc.req.HeadLen
			hc.lkeep = hc.lkeep && hc.skipBody()
		}
		if hc.loopFail(ue, true) {
			hc.afterResponse()
		}
		return
	}
	if hc.lreplay != nil {
		reused = false // a replay is not replayed again
	}
	hc.loopSend(lu, reused, hc.lreplay)
}

// loopFinishAborted ends a connection a forced close reached while a
// goroutine worked for it.
func (hc *h1conn) loopFinishAborted() {
	pool := hc.s.host.Pool
	pool.End()
	pool.Done()
	hc.endRequest()
	hc.loopClose()
}

// loopSend starts writing the request on lu: encoded from the client's
// buffer (consuming it), or, for a replay, the bytes sent before.
func (hc *h1conn) loopSend(lu *loopUp, reused bool, replay []byte) {
	s := hc.s
	req := &hc.req
	uc := lu.uc
	if !hc.useUpstream(uc) {
		hc.hl.discard(lu)
		hc.loopFinishAborted()
		return
	}
	if !lu.reg {
		if err := hc.hl.l.Add(lu.fd, evloop.In|evloop.Out|evloop.RdHup|evloop.ET, lu); err != nil {
			hc.up.CompareAndSwap(uc, nil)
			hc.hl.discard(lu)
			if replay == nil {
				hc.r += req.HeadLen
				hc.lkeep = hc.lkeep && hc.skipBody()
			}
			if hc.loopFail(upConnect, true) {
				hc.afterResponse()
			}
			return
		}
		lu.reg = true
	}
	lu.hc, hc.lu = hc, lu
	var out []byte
	if replay == nil {
		out = hc.encodeRequest(uc.Out[:0])
		hc.r += req.HeadLen
		if req.Framing == http1.Length {
			n := int(req.ContentLength)
			out = append(out, hc.buf[hc.r:hc.r+n]...)
			hc.r += n
		}
	} else {
		out = append(uc.Out[:0], replay...)
	}
	uc.Out = out
	hc.lreused, hc.uoff, hc.lgot, hc.lupIn, hc.lupFin, hc.lreplay = reused, 0, false, false, false, nil
	lu.full = false
	begin := time.Now()
	hc.respArmed = false
	wait, idle := hc.responseWait(s.start, begin)
	hc.lidle = idle
	if wait > 0 {
		hc.hl.l.Arm(&hc.utm, hc.hl.l.Now()+int64(wait))
	}
	hc.ph = phUpWrite
	hc.writeUp()
}
