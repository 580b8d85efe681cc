package hcm

import (
	"net"
	"os"
	"syscall"
	"time"

	"github.com/nodemesh/nodemesh/proxylib/connbuf"
	"github.com/nodemesh/nodemesh/proxylib/evloop"
	"github.com/nodemesh/nodemesh/proxylib/http1"
	"github.com/nodemesh/nodemesh/proxylib/sockio"
	"github.com/nodemesh/nodemesh/proxylib/upstream"
)

// writeUp writes the rest of the request upstream.
func (hc *h1conn) writeUp() {
	lu := hc.lu
	out := lu.uc.Out
	for hc.uoff < len(out) {
		n, err := evloop.Write(lu.fd, out[hc.uoff:])
		if err == syscall.EAGAIN {
			return // wait for room (Out)
		}
		if err != nil {
			hc.upFailed(upReset)
			return
		}
		hc.uoff += n
	}
	hc.ph = phUpResp
	if hc.lupIn {
		hc.lupIn = false
		hc.readUp()
	}
}

// upReady handles the readiness of the exchange's upstream socket.
func (hc *h1conn) upReady(ev uint32) {
	switch hc.ph {
	case phUpWrite:
		if ev&(evloop.In|evloop.RdHup|evloop.Hup|evloop.Err) != 0 {
			hc.lupIn = true // read once the request is out
		}
		if ev&(evloop.RdHup|evloop.Hup) != 0 {
			hc.lupFin = true
		}
		if ev&(evloop.Out|evloop.Err|evloop.Hup) != 0 {
			hc.writeUp()
		}
	case phUpResp:
		if ev&(evloop.RdHup|evloop.Hup) != 0 {
			// The server's FIN came: a short read does not mean the
			// edge was drained; read on until the end of stream.
			hc.lupFin = true
		}
		hc.readUp()
	}
}

// readUp reads the response, one read at a time, until its head is
// parsed; then the loop relays it if its body came with it, else a
// goroutine does (the body under the route and stream idle timeouts).
// Edge-triggered: it stops reading only on EAGAIN, a short read, or once
// the head is in (the goroutine reads the rest).
func (hc *h1conn) readUp() {
	lu := hc.lu
	uc := lu.uc
	for {
		if uc.R < uc.W {
			ue, done := parseHead(uc, hc.lhead)
			if done && ue != upOK {
				hc.upFailed(ue)
				return
			}
			if done {
				hc.hl.l.Stop(&hc.utm)
				hc.loopRespond()
				return
			}
		}
		if uc.R == uc.W {
			uc.R, uc.W = 0, 0
		}
		if uc.W == len(uc.Buf) {
			if uc.R > 0 {
				uc.W = copy(uc.Buf, uc.Buf[uc.R:uc.W])
				uc.R = 0
			} else {
				if len(uc.Buf) >= h1MaxBuf {
					hc.upFailed(upProtocol) // a head that does not fit
					return
				}
				nb := make([]byte, min(2*len(uc.Buf), h1MaxBuf))
				copy(nb, uc.Buf[:uc.W])
				connbuf.Put(uc.Buf)
				uc.Buf = nb
			}
		}
		room := uc.Buf[uc.W:]
		n, err := evloop.Read(lu.fd, room)
		if err == syscall.EAGAIN {
			return
		}
		if err != nil || n == 0 {
			if hc.lgot {
				hc.upFailed(upProtocol)
			} else {
				hc.upFailed(upReset)
			}
			return
		}
		uc.W += n
		hc.lgot = true
		lu.full = n == len(room)
		if n < len(room) && !hc.lupFin {
			// Drained: parse what came; the next bytes bring an edge.
			if ue, done := parseHead(uc, hc.lhead); done {
				if ue != upOK {
					hc.upFailed(ue)
					return
				}
				hc.hl.l.Stop(&hc.utm)
				hc.loopRespond()
			}
			return
		}
	}
}

// whole reports whether the parsed response in uc can be relayed from
// what is buffered, in one write.
func whole(uc *upstream.Conn) bool {
	resp := &uc.Resp
	switch {
	case resp.Status == 101:
		return false
	case resp.Framing == http1.NoBody:
		return true
	case resp.Framing == http1.Length:
		return int64(uc.W-uc.R-resp.HeadLen) >= resp.ContentLength && resp.ContentLength <= h1BufSize/2
	}
	return false
}

// loopRespond relays the parsed response: in the loop when it came whole,
// else on a goroutine (relayResponse).
func (hc *h1conn) loopRespond() {
	s := hc.s
	lu := hc.lu
	uc := lu.uc
	recv := time.Now()
	if !whole(uc) {
		// The body streams (or the connection is upgraded): relayed on a
		// goroutine, with both sockets back in the runtime's poller.
		hc.lu, lu.hc = nil, nil
		if lu.reg {
			_ = hc.hl.l.Del(lu.fd)
			lu.reg = false
		}
		if err := uc.Attach(); err != nil {
			hc.up.CompareAndSwap(uc, nil)
			if hc.loopFail(upReset, true) {
				hc.afterResponse()
			}
			return
		}
		keep, head := hc.lkeep, hc.lhead
		sent := s.start
		pool := uc.Pool()
		hc.toGoroutine(func() bool {
			ok := hc.relayResponse(uc, keep, head, recv.Sub(sent), recv)
			pool.End()
			pool.Done()
			hc.endRequest()
			return ok
		}, func() {
			hc.dropUpstream(uc)
			pool.End()
			pool.Done()
			hc.endRequest()
		})
		return
	}
	out, keep, _, reusable := hc.encodeResponseHead(uc, hc.lkeep, recv.Sub(s.start))
	if uc.Resp.Framing == http1.Length {
		n := int(uc.Resp.ContentLength)
		out = append(out, uc.Buf[uc.R:uc.R+n]...)
		uc.R += n
	}
	hc.out = out
	released := hc.releaseUpstream(uc)
	lu.hc, hc.lu = nil, nil
	pool := uc.Pool()
	if reusable && !hc.lupFin && uc.R == uc.W && released {
		hc.hl.putIdle(lu, recv)
	} else {
		hc.hl.discard(lu)
	}
	pool.End()
	pool.Done()
	hc.endRequest()
	if hc.sendClient(out, !keep) {
		hc.afterResponse()
	}
}

// afterResponse goes on once a response went out whole: with what is
// buffered, then with what the client sent meanwhile.
func (hc *h1conn) afterResponse() { hc.loopServe() }

// upFailed ends an exchange that failed before the response head: the
// request is replayed once on a fresh connection when a reused one was
// closed by its server, else answered locally.
func (hc *h1conn) upFailed(ue upstreamErr) {
	lu := hc.lu
	hc.lu, lu.hc = nil, nil
	hc.up.CompareAndSwap(lu.uc, nil)
	out := lu.uc.Out
	hc.hl.discard(lu)
	hc.hl.l.Stop(&hc.utm)
	if ue == upReset && hc.lreused {
		if hc.aborted() {
			hc.loopFinishAborted()
			return
		}
		replay := append([]byte(nil), out...)
		pool := hc.s.host.Pool
		// Probed: a server that just closed one connection may be
		// closing its others (a restart, a keep-alive sweep), and the
		// replay is not replayed again.
		if lu := hc.hl.popIdle(pool, time.Now(), true); lu != nil {
			hc.loopSend(lu, false, replay)
			return
		}
		hc.lreplay = replay
		hc.loopDial(pool)
		return
	}
	if hc.loopFail(ue, true) {
		hc.afterResponse()
	}
}

// respTimeout is the response deadline: the head timeout, or
// stream_idle_timeout when that is shorter (responseWait).
func (hc *h1conn) respTimeout() {
	if hc.ph != phUpWrite && hc.ph != phUpResp {
		return
	}
	ue := upTimeout
	if hc.lidle {
		ue = upStreamIdle
	}
	hc.lreused = false // no replay after a timeout
	hc.upFailed(ue)
}

// sendClient writes out to the client. It returns true when all of it went
// out and the connection stays open for the next request; otherwise the
// connection waits for room (phWrite) or was closed.
func (hc *h1conn) sendClient(out []byte, closeAfter bool) bool {
	n, err := evloop.Write(hc.fd, out)
	if err == syscall.EAGAIN {
		n, err = 0, nil
	}
	if err != nil {
		hc.loopClose()
		return false
	}
	if n < len(out) {
		hc.wout, hc.wclose = out[n:], closeAfter
		hc.ph = phWrite
		if idle := hc.h.cfg.StreamIdleTimeout; idle > 0 {
			hc.hl.l.Arm(&hc.ctm, hc.hl.l.Now()+int64(idle))
		}
		return false
	}
	if closeAfter {
		hc.loopClose()
		return false
	}
	return true
}

// flushClient writes more of a response the client socket had no room for.
func (hc *h1conn) flushClient() {
	for len(hc.wout) > 0 {
		n, err := evloop.Write(hc.fd, hc.wout)
		if err == syscall.EAGAIN {
			if idle := hc.h.cfg.StreamIdleTimeout; idle > 0 {
				hc.hl.l.Arm(&hc.ctm, hc.hl.l.Now()+int64(idle))
			}
			return
		}
		if err != nil {
			hc.loopClose()
			return
		}
		hc.wout = hc.wout[n:]
	}
	hc.wout = nil
	hc.hl.l.Stop(&hc.ctm)
	if hc.wclose {
		hc.loopClose()
		return
	}
	hc.afterResponse()
}

// newLoopUp makes the loop's record of a detached connection.
func newLoopUp(uc *upstream.Conn, fd int, hl *hloop) *loopUp {
	lu := &loopUp{uc: uc, fd: fd, hl: hl}
	lu.tm.F = func() { hl.dropIdle(lu) }
	return lu
}

// popIdle takes the newest idle connection of pool the loop holds;
// probe makes it peek at the socket even when the loop's wait can stand
// for that (Quiet).
func (hl *hloop) popIdle(pool *upstream.Pool, now time.Time, probe bool) *loopUp {
	list := hl.idle[pool]
	for len(list) > 0 {
		lu := list[len(list)-1]
		list[len(list)-1] = nil
		list = list[:len(list)-1]
		hl.setIdle(pool, list)
		hl.l.Stop(&lu.tm)
		// A FIN or stray bytes must not meet a request. The socket is in
		// the loop's epoll set, edge-triggered, and was drained when it
		// was parked (putIdle); its handler closes it on either: when
		// this round's wait came after the parking, collected every ready
		// descriptor, and neither it nor a wait before it had anything
		// for the connection since, it told what the pool's probe (a
		// one-byte non-blocking peek) would have, without the system
		// call. Otherwise, the probe.
		quiet := !probe && lu.reg && hl.l.Quiet(lu.fd, lu.parked)
		if pool.Closed() || !pool.IdleFresh(lu.idle, now) || !quiet && !lu.uc.ProbeDetached() {
			hl.discard(lu)
			continue
		}
		lu.uc.TakeBuffers()
		return lu
	}
	return nil
}

// maxLoopIdle bounds the idle connections of one pool a loop keeps.
const maxLoopIdle = 1024

// setIdle stores pool's idle list. An emptied list keeps its place (and
// its storage, so a pool that empties and refills its list with every
// request allocates nothing); sweepIdle drops the empty ones, so a pool
// gone from the configuration is not kept reachable for long.
func (hl *hloop) setIdle(pool *upstream.Pool, list []*loopUp) {
	hl.idle[pool] = list
}

// sweepEvery is how often a loop forgets pools it holds no idle
// connection of and closes the idle connections of pools that left the
// configuration.
const sweepEvery = time.Minute

// sweepIdle forgets the pools with an empty idle list and closes the
// idle connections of pools that left the configuration, then re-arms.
func (hl *hloop) sweepIdle() {
	for pool, list := range hl.idle {
		if len(list) > 0 && pool.Closed() {
			for _, lu := range list {
				hl.discard(lu)
			}
			list = nil
		}
		if len(list) == 0 {
			delete(hl.idle, pool)
		}
	}
	hl.l.Arm(&hl.sweep, hl.l.Now()+int64(sweepEvery))
}

// putIdle keeps lu for the next request of its pool, or gives it back to
// the pool when requests queue there for a connection; a closed pool
// keeps nothing.
func (hl *hloop) putIdle(lu *loopUp, now time.Time) {
	pool := lu.uc.Pool()
	lu.uc.R, lu.uc.W = 0, 0
	lu.idle, lu.parked = now, hl.l.Round()
	if lu.full && !lu.uc.ProbeDetached() {
		// Bytes were left behind the response (their edge is spent: no
		// later wait reports them): a server that sent more than was
		// asked for is not reused.
		hl.discard(lu)
		return
	}
	// Registered before Queued is read: a request that queues after the
	// read calls the loop back (giveBackQueued).
	pool.OnQueue(hl, hl.queued)
	switch {
	case pool.Closed():
		hl.discard(lu)
	case pool.Queued():
		hl.giveBack(lu, now)
	case len(hl.idle[pool]) >= maxLoopIdle:
		hl.discard(lu)
	default:
		// Nothing is buffered and an idle connection needs no buffer:
		// given back until the next request takes it (as the pool does).
		lu.uc.ReleaseBuffers()
		hl.idle[pool] = append(hl.idle[pool], lu)
		if d := pool.IdleTimeout(); d > 0 {
			hl.l.Arm(&lu.tm, hl.l.Now()+int64(d))
		}
	}
}

// giveBack returns lu to its pool's idle list (a queued request gets it).
func (hl *hloop) giveBack(lu *loopUp, idleSince time.Time) {
	hl.l.Stop(&lu.tm)
	if lu.reg {
		_ = hl.l.Del(lu.fd)
		lu.reg = false
	}
	if err := lu.uc.Attach(); err != nil {
		return // closed, its slot released
	}
	lu.uc.Pool().PutAt(lu.uc, idleSince)
}

// giveBackQueued gives every idle connection of a pool requests queue for
// back to that pool.
func (hl *hloop) giveBackQueued() {
	for pool, list := range hl.idle {
		if !pool.Queued() && !pool.Closed() {
			continue
		}
		delete(hl.idle, pool)
		for _, lu := range list {
			if pool.Closed() {
				hl.discard(lu)
			} else {
				hl.giveBack(lu, lu.idle)
			}
		}
	}
}

// dropIdle closes an idle connection whose socket became ready or whose
// idle timeout passed.
func (hl *hloop) dropIdle(lu *loopUp) {
	pool := lu.uc.Pool()
	list := hl.idle[pool]
	for i, x := range list {
		if x == lu {
			copy(list[i:], list[i+1:])
			list[len(list)-1] = nil
			hl.setIdle(pool, list[:len(list)-1])
			break
		}
	}
	hl.discard(lu)
}

// discard closes lu (its descriptor leaves the epoll set first).
func (hl *hloop) discard(lu *loopUp) {
	hl.l.Stop(&lu.tm)
	if lu.reg {
		_ = hl.l.Del(lu.fd)
		lu.reg = false
	}
	lu.hc = nil
	lu.uc.Discard()
}

// toGoroutine hands the connection to a goroutine: cont continues what
// the loop started (nil: nothing), then the goroutine serves the
// connection as any other (serve) and ends it as ServeConn does. The
// client's socket goes back to the runtime's poller; when that fails,
// fail (if any) closes the books of what cont would have continued and
// the connection is closed.
func (hc *h1conn) toGoroutine(cont func() bool, fail func()) {
	hl := hc.hl
	_ = hl.l.Del(hc.fd)
	hl.l.Stop(&hc.ctm)
	hl.l.Stop(&hc.utm)
	hc.ph = phGone
	f := os.NewFile(uintptr(hc.fd), "")
	c, err := net.FileConn(f)
	_ = f.Close()
	h := hc.h
	h.mu.Lock()
	hc.gen.Add(1) // functions posted for the loop-served connection do nothing
	hc.hl, hc.fd = nil, -1
	if err == nil {
		hc.c = c
		if hc.sock.Reset(c) {
			hc.c = &hc.sock
		}
	}
	aborted := h.forced
	h.mu.Unlock()
	hc.rdl, hc.wdl = sockio.LazyDeadline{}, sockio.LazyDeadline{}
	if err != nil {
		h.rt.Logger.Debug("event loop handoff", "error", err)
		if fail != nil {
			fail()
		}
		h.untrack(hc)
		putH1conn(hc)
		h.wg.Done()
		return
	}
	// Served off the loops from here (evloop.ServingOffLoop).
	evloop.ServingOffLoop(1)
	go func() {
		defer evloop.ServingOffLoop(-1)
		if aborted {
			_ = interrupt(hc.c)
		}
		ok := true
		if cont != nil {
			ok = cont()
		}
		if ok {
			hc.serve()
		} else {
			hc.close()
		}
		h.untrack(hc)
		putH1conn(hc)
		h.wg.Done()
	}()
}

// loopDrain runs on the loop when the handler drains: an idle connection
// closes now, a busy one after its response (loopServe checks).
func (hc *h1conn) loopDrain() {
	if hc.ph == phIdle {
		hc.loopClose()
	}
}

// loopAbort runs on the loop for a forced close: the connection closes now,
// or, while a goroutine gets its upstream connection, when that returns
// (its context is cancelled).
func (hc *h1conn) loopAbort() {
	switch hc.ph {
	case phGone, phDial, phStarting:
		// Gone; or a goroutine gets the upstream connection (its context
		// is cancelled: loopDialed ends it); or loopStart, yet to run,
		// checks aborted.
		return
	}
	switch hc.ph {
	case phUpWrite, phUpResp:
		pool := hc.s.host.Pool
		pool.End()
		pool.Done()
		hc.endRequest()
	}
	hc.loopClose()
}
