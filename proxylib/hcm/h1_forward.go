package hcm

import (
	"errors"
	"io"
	"net"
	"os"
	"time"

	"github.com/nodemesh/nodemesh/proxylib/connbuf"
	"github.com/nodemesh/nodemesh/proxylib/http1"
	"github.com/nodemesh/nodemesh/proxylib/upstream"
)

// Local reply bodies for upstream failures, as Envoy words them.
var (
	bodyConnectFailure = []byte("upstream connect error or disconnect/reset before headers. reset reason: connection failure")
	bodyReset          = []byte("upstream connect error or disconnect/reset before headers. reset reason: connection termination")
	bodyProtocol       = []byte("upstream connect error or disconnect/reset before headers. reset reason: protocol error")
	bodyTimeout        = []byte("upstream request timeout")
	bodyOverflow       = []byte("upstream connect error or disconnect/reset before headers. reset reason: overflow")
	bodyRefused        = []byte("upstream connect error or disconnect/reset before headers. reset reason: remote refused stream reset")
)

// detailsOverflow is Envoy's response code details of a circuit breaker
// overflow.
const detailsOverflow = "upstream_reset_before_response_started{overflow}"

// upstreamErr classifies a failed exchange before response headers.
type upstreamErr uint8

const (
	upOK upstreamErr = iota
	upConnect
	upReset
	upTimeout
	upProtocol
	upDownstream // the client side failed; nothing to answer
	upBadBody    // the client's body framing is invalid: 400
	upOverflow   // a circuit breaker refused the request: 503 UO
	// upBodyTimeout: the client stopped sending its body (stream idle or
	// request timeout): 408.
	upBodyTimeout
	upStreamIdle // stream_idle_timeout passed before the response head: 504
	upRefused    // an HTTP/2 upstream refused the stream (REFUSED_STREAM): 503 UR
)

// getErr classifies a failure to get an upstream connection.
func getErr(err error) upstreamErr {
	switch {
	case errors.Is(err, upstream.ErrOverflow):
		return upOverflow
	case errors.Is(err, upstream.ErrPendingTimeout):
		return upTimeout
	}
	return upConnect
}

// forwardH1 runs the exchange over a pooled HTTP/1.1 upstream connection.
// Requests whose bytes were all sent from one buffer are retried once on a
// fresh connection when a reused one turns out closed before responding.
func (hc *h1conn) forwardH1(keep bool) bool {
	s := hc.s
	req := &hc.req
	pool := s.host.Pool
	if !pool.Admit() {
		hc.r += req.HeadLen
		return hc.failUpstream(upOverflow, keep && hc.skipBody())
	}
	defer pool.Done()
	// The request started (handle) a routing decision ago: nothing waited
	// since, so that clock reading serves as now.
	now := s.start
	pool.BeginAt(now)
	defer pool.End()
	head := string(req.Method) == "HEAD"

	// An idle pooled connection is taken without a context; a dial or a
	// wait for a connection slot waits on the connection's (upstreamCtx).
	uc, reused, ue := pool.GetIdle(now), true, upOK
	if uc == nil {
		uc, reused, ue = s.getConn(hc.upstreamCtx(), pool, now, s.routeEnd(now))
	}
	if ue != upOK {
		hc.h.rt.Logger.Debug("connecting upstream", "host", pool.Addr, "outcome", ue)
		hc.r += req.HeadLen
		return hc.failUpstream(ue, keep && hc.skipBody())
	}
	if !hc.useUpstream(uc) {
		uc.Discard() // the connection was aborted (Handler.Shutdown)
		return false
	}
	out := hc.encodeRequest(uc.Out[:0])
	hc.r += req.HeadLen
	if req.Expect100 && req.Framing != http1.NoBody && hc.r == hc.w {
		if _, err := hc.write(continue100); err != nil {
			hc.dropUpstream(uc)
			return false
		}
	}
	out, replayable, ue := hc.sendBody(uc, out)
	if ue != upOK {
		hc.dropUpstream(uc)
		// The request body was not fully read: the connection cannot be
		// reused.
		return hc.failUpstream(ue, false)
	}
	// The route timeout runs from the request's end, as Envoy's: its
	// start for a request that came whole (also while a connection was
	// awaited or dialed), after its body for one streamed from the client.
	sent := now
	if !replayable {
		sent = time.Now()
	}
	hc.respArmed = false
	begin := time.Now()
	wait, idle := hc.responseWait(sent, begin)
	ue = hc.exchange(uc, out, head, begin, wait, reused)
	if ue == upReset && reused && replayable {
		// The pooled connection was closed by the server: replay once.
		hc.dropUpstream(uc)
		if hc.aborted() {
			return false // a forced close: no idle pooled connection is taken
		}
		if uc, _, ue = s.getConn(hc.upstreamCtx(), pool, time.Now(), s.routeEnd(sent)); ue != upOK {
			return hc.failUpstream(ue, keep)
		}
		if !hc.useUpstream(uc) {
			uc.Discard()
			return false
		}
		reused = false
		out = append(uc.Out[:0], out...)
		hc.respArmed = false
		begin = time.Now()
		wait, idle = hc.responseWait(sent, begin)
		ue = hc.exchange(uc, out, head, begin, wait, reused)
	}
	uc.Out = out[:0]
	if ue == upTimeout && idle {
		ue = upStreamIdle
	}
	if ue != upOK {
		hc.dropUpstream(uc)
		return hc.failUpstream(ue, keep)
	}
	// The response started: the per-try timeout and the exchange's check
	// deadline no longer apply; the body is read under the route and
	// stream idle timeouts (armResponseRead).
	recv := time.Now()
	return hc.relayResponse(uc, keep, head, recv.Sub(sent), recv)
}

// encodeRequest appends the upstream request head.
func (hc *h1conn) encodeRequest(out []byte) []byte {
	s := hc.s
	req := &hc.req
	out = http1.AppendRequestLine(out, req.Method, s.rreq.Path)
	out = http1.AppendField(out, hHost, s.rreq.Authority)
	l := *s.headers
	for i := range l {
		if string(l[i].Name) == "host" {
			continue
		}
		out = http1.AppendField(out, l[i].Name, l[i].Value)
	}
	if req.Framing == http1.Chunked {
		out = append(out, "transfer-encoding: chunked\r\n"...)
	}
	return append(out, '\r', '\n')
}

// sendBody appends the buffered request body to out and streams the rest to
// uc. It returns the bytes still to write and whether out holds the whole
// request (so it can be replayed).
func (hc *h1conn) sendBody(uc *upstream.Conn, out []byte) ([]byte, bool, upstreamErr) {
	req := &hc.req
	switch req.Framing {
	case http1.NoBody:
		return out, true, upOK
	case http1.Length:
		remaining := req.ContentLength
		n := min(int64(hc.w-hc.r), remaining)
		if len(out)+int(n) <= cap(out) || n == remaining && n <= int64(len(hc.buf)) {
			out = append(out, hc.buf[hc.r:hc.r+int(n)]...)
			hc.r += int(n)
			remaining -= n
		}
		if remaining == 0 {
			return out, true, upOK
		}
		if _, err := uc.Write(out); err != nil {
			return out[:0], false, upReset
		}
		out = out[:0]
		for remaining > 0 {
			if hc.r == hc.w && !hc.fillBody() {
				return out, false, hc.bodyFailed()
			}
			n := min(int64(hc.w-hc.r), remaining)
			if _, err := uc.Write(hc.buf[hc.r : hc.r+int(n)]); err != nil {
				return out, false, upReset
			}
			hc.r += int(n)
			remaining -= n
		}
		return out, false, upOK
	default: // Chunked: re-frame chunk by chunk.
		hc.chunk.Reset()
		replayable := true
		for !hc.chunk.Done() {
			if hc.r == hc.w {
				if len(out) > 0 {
					if _, err := uc.Write(out); err != nil {
						return out[:0], false, upReset
					}
					out = out[:0]
					replayable = false
				}
				if !hc.fillBody() {
					return out, false, hc.bodyFailed()
				}
			}
			n, data, err := hc.chunk.Decode(hc.buf[hc.r:hc.w])
			hc.r += n
			if err != nil {
				return out, false, upBadBody
			}
			out = http1.AppendChunk(out, data)
			if len(out) >= upstream.WriteBufferSize {
				if _, err := uc.Write(out); err != nil {
					return out[:0], false, upReset
				}
				out = out[:0]
				replayable = false
			}
		}
		return append(out, http1.LastChunk...), replayable, upOK
	}
}

// bodyFailed classifies a failed read of the request body.
func (hc *h1conn) bodyFailed() upstreamErr {
	if hc.timedOut {
		return upBodyTimeout
	}
	return upDownstream
}

// readHead reads until a final response head is parsed into uc.Resp,
// skipping 1xx responses other than 101, within timeout of sent.
func readHead(uc *upstream.Conn, head bool, sent time.Time, timeout time.Duration) upstreamErr {
	if t, ok := uc.Deadline(sent, timeout); ok {
		_ = uc.SetReadDeadline(t)
	}
	return readHeadFrom(uc, head, false)
}

// parseHead parses the buffered response: done with upOK when a final head
// is in uc.Resp, done with upProtocol when the bytes are no response,
// not done when the head is incomplete. 1xx heads other than 101 are
// skipped.
func parseHead(uc *upstream.Conn, head bool) (ue upstreamErr, done bool) {
	for uc.R < uc.W {
		err := http1.ParseResponse(uc.Buf[uc.R:uc.W], head, &uc.Resp)
		if err == nil {
			if uc.Resp.Status < 200 && uc.Resp.Status != 101 {
				uc.R += uc.Resp.HeadLen
				continue
			}
			return upOK, true
		}
		if !errors.Is(err, http1.ErrIncomplete) {
			return upProtocol, true
		}
		break
	}
	return upOK, false
}

// readHeadFrom parses and reads under the armed deadline; got says whether
// response bytes were read already.
func readHeadFrom(uc *upstream.Conn, head, got bool) upstreamErr {
	for {
		if ue, done := parseHead(uc, head); done {
			return ue
		}
		if uc.R == uc.W {
			uc.R, uc.W = 0, 0
		}
		if uc.W == len(uc.Buf) {
			if uc.R == 0 {
				if len(uc.Buf) >= h1MaxBuf {
					return upProtocol
				}
				nb := make([]byte, min(2*len(uc.Buf), h1MaxBuf))
				copy(nb, uc.Buf[:uc.W])
				connbuf.Put(uc.Buf)
				uc.Buf = nb
			} else {
				uc.W = copy(uc.Buf, uc.Buf[uc.R:uc.W])
				uc.R = 0
			}
		}
		n, err := uc.Read(uc.Buf[uc.W:])
		uc.W += n
		if n > 0 {
			got = true
		}
		if err != nil && n == 0 {
			if isTimeout(err) {
				return upTimeout
			}
			if got {
				return upProtocol
			}
			return upReset
		}
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

// failUpstream answers a failed exchange locally. keep must already account
// for whether the request body was consumed.
func (hc *h1conn) failUpstream(ue upstreamErr, keep bool) bool {
	s := hc.s
	s.flags |= ue.flag()
	switch ue {
	case upBadBody:
		hc.writeLocal(400, nil, nil, false, false)
		return false
	case upBodyTimeout:
		hc.requestTimedOut(false)
		return false
	}
	code, body := s.upstreamReply(ue)
	if code == 0 {
		return false
	}
	return hc.writeLocal(code, body, nil, keep, false) && keep
}

// upstreamReply is the local reply to an upstream failure ue, code 0 when
// there is none to give (the client side failed).
func (s *stream) upstreamReply(ue upstreamErr) (code int, body []byte) {
	switch ue {
	case upConnect:
		return 503, s.connectFailureBody()
	case upTimeout:
		return 504, bodyTimeout
	case upProtocol:
		return 503, s.resetBody(bodyProtocol)
	case upReset:
		return 503, s.resetBody(bodyReset)
	case upRefused:
		return 503, s.resetBody(bodyRefused)
	case upOverflow:
		s.details = detailsOverflow
		return 503, s.resetBody(bodyOverflow)
	case upStreamIdle:
		return 504, bodyStreamTimeout
	}
	return 0, nil
}

// relayResponse writes the parsed response head and streams its body.
// recv is when the head arrived; a connection returned to its pool counts
// as idle from then.
func (hc *h1conn) relayResponse(uc *upstream.Conn, keep, head bool, serviceTime time.Duration, recv time.Time) bool {
	resp := &uc.Resp
	out, keep, upgrade, reusable := hc.encodeResponseHead(uc, keep, serviceTime)

	if upgrade {
		hc.out = out
		if _, err := hc.write(out); err != nil {
			hc.dropUpstream(uc)
			return false
		}
		hc.tunnel(uc)
		return false
	}

	// A body already read whole and small enough to go out in the one
	// write with the head is relayed without waiting on anything, so recv
	// still reads as now when the response is written.
	whole := resp.Framing == http1.NoBody || resp.Framing == http1.Length &&
		int64(uc.W-uc.R) >= resp.ContentLength && int64(len(out))+resp.ContentLength < h1BufSize
	ok := true
	switch resp.Framing {
	case http1.Length:
		out, ok = hc.relayLength(uc, out, resp.ContentLength)
	case http1.Chunked:
		out, ok = hc.relayChunked(uc, out)
	case http1.UntilClose:
		out, ok = hc.relayUntilClose(uc, out)
	}
	hc.out = out
	if ok && len(out) > 0 {
		now := recv
		if !whole {
			now = time.Now()
		}
		if _, err := hc.writeAt(out, now); err != nil {
			ok = false
		}
	}
	// Released first, whatever the outcome: a discarded connection must
	// not stay reachable from the idle client connection either.
	released := hc.releaseUpstream(uc)
	if ok && reusable && uc.R == uc.W && released {
		uc.Pool().PutAt(uc, recv)
	} else {
		uc.Discard()
	}
	_ = head
	return ok && keep
}

// encodeResponseHead builds the client's response head from the parsed
// upstream head in uc.Resp into hc.out's storage and consumes it from uc's
// buffer. It reports the status to the host's outlier detection and
// returns the head, whether the client connection is kept, whether the
// response completes an upgrade, and whether uc may be reused once its
// body is read.
func (hc *h1conn) encodeResponseHead(uc *upstream.Conn, keep bool, serviceTime time.Duration) (out []byte, kept, upgrade, reusable bool) {
	s := hc.s
	resp := &uc.Resp
	s.respCode = resp.Status
	s.reportStatus(resp.Status)
	upgrade = s.upgrade && resp.Status == 101
	keep = keep && !hc.h.draining.Load()
	l := resp.Headers
	s.finishResponseHeaders(&l, upgrade, serviceTime)
	out = http1.AppendStatusLine(hc.out[:0], resp.Status)
	out = http1.AppendFields(out, l)
	switch resp.Framing {
	case http1.Chunked, http1.UntilClose:
		out = append(out, "transfer-encoding: chunked\r\n"...)
	}
	if !keep && !upgrade {
		out = append(out, "connection: close\r\n"...)
	}
	out = append(out, '\r', '\n')
	uc.R += resp.HeadLen
	reusable = !resp.Close && resp.Framing != http1.UntilClose && !upgrade
	return out, keep, upgrade, reusable
}

// flushOut writes the pending response bytes to the client; false if that
// failed. It returns out emptied.
func (hc *h1conn) flushOut(out []byte) ([]byte, bool) {
	if len(out) == 0 {
		return out, true
	}
	if _, err := hc.write(out); err != nil {
		return out[:0], false
	}
	return out[:0], true
}

// refill flushes the pending output, then reads more of the upstream
// response into the start of its buffer; false if the write failed or
// the read returned nothing but an error.
func (hc *h1conn) refill(uc *upstream.Conn, out []byte) ([]byte, bool) {
	out, ok := hc.flushOut(out)
	if !ok {
		return out, false
	}
	uc.R, uc.W = 0, 0
	hc.armResponseRead(uc)
	m, err := uc.Read(uc.Buf[:uc.ReadLimit()])
	uc.W = m
	return out, m > 0 || err == nil
}

// relayLength forwards exactly n body bytes. It returns output not yet
// written and false if either side failed.
func (hc *h1conn) relayLength(uc *upstream.Conn, out []byte, n int64) ([]byte, bool) {
	for n > 0 {
		if uc.R == uc.W {
			var ok bool
			if out, ok = hc.refill(uc, out); !ok {
				return out, false
			}
		}
		take := min(int64(uc.W-uc.R), n)
		out = append(out, uc.Buf[uc.R:uc.R+int(take)]...)
		uc.R += int(take)
		n -= take
		if len(out) >= h1BufSize {
			var ok bool
			if out, ok = hc.flushOut(out); !ok {
				return out, false
			}
		}
	}
	return out, true
}

// relayChunked decodes the upstream chunked body and re-frames it.
func (hc *h1conn) relayChunked(uc *upstream.Conn, out []byte) ([]byte, bool) {
	d := &hc.chunk
	d.Reset()
	for !d.Done() {
		if uc.R == uc.W {
			var ok bool
			if out, ok = hc.refill(uc, out); !ok {
				return out, false
			}
		}
		n, data, err := d.Decode(uc.Buf[uc.R:uc.W])
		uc.R += n
		if err != nil {
			return out, false
		}
		out = http1.AppendChunk(out, data)
		if len(out) >= h1BufSize {
			var ok bool
			if out, ok = hc.flushOut(out); !ok {
				return out, false
			}
		}
	}
	return append(out, http1.LastChunk...), true
}

// relayUntilClose forwards a close-delimited body as chunks.
func (hc *h1conn) relayUntilClose(uc *upstream.Conn, out []byte) ([]byte, bool) {
	for {
		if uc.R < uc.W {
			out = http1.AppendChunk(out, uc.Buf[uc.R:uc.W])
			uc.R = uc.W
		}
		var ok bool
		if out, ok = hc.flushOut(out); !ok {
			return out, false
		}
		uc.R, uc.W = 0, 0
		hc.armResponseRead(uc)
		m, err := uc.Read(uc.Buf[:uc.ReadLimit()])
		uc.W = m
		if m == 0 && err != nil {
			if err == io.EOF {
				return append(out, http1.LastChunk...), true
			}
			return out, false
		}
	}
}

// flag is the response flag of an upstream failure.
func (ue upstreamErr) flag() uint32 {
	switch ue {
	case upConnect:
		return flagUF
	case upTimeout:
		return flagUT
	case upProtocol:
		return flagUPE
	case upReset:
		return flagUC
	case upBadBody:
		return flagDPE
	case upOverflow:
		return flagUO
	case upStreamIdle:
		return flagSI
	case upRefused:
		return flagUR
	}
	return 0
}
