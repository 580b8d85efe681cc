package hcm

import (
	"context"
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/nodemesh/nodemesh/proxylib/http1"
	"github.com/nodemesh/nodemesh/proxylib/upstream"
)

// The request path of routes with a retry policy or sampled mirrors:
// every attempt reads the request body through the stream's replay record
// and decides, before relaying anything, whether to try again (retry.go).
// The HTTP/1.1 path without them (h1_forward.go) stays the allocation-free
// one: a route without these features never comes here.

// downstream is the client side of a request served by forwardTries.
type downstream interface {
	// ctx bounds the request's upstream work (the client's stream).
	ctx() context.Context
	// h1Head appends the HTTP/1.1 request head of an upstream attempt.
	h1Head(out []byte) []byte
	// trailer is the request's trailer, for HTTP/2 upstreams.
	trailer() http.Header
	// headWait bounds the wait for a response head given the attempt's
	// timeout (0: none); idle reports that the client's stream idle
	// timeout is the shorter bound.
	headWait(timeout time.Duration) (d time.Duration, idle bool)
	// watch hands an attempt's connection to the client's stream timer,
	// which interrupts its waits when the stream times out (HTTP/2,
	// h2timer.go); false: the stream timed out already.
	watch(uc *upstream.Conn) bool
	// drop discards an attempt's connection after taking it back from
	// watch, so that nothing the client side keeps reaches it.
	drop(uc *upstream.Conn)
	// relayH1 relays the response head parsed in uc.Resp and its body;
	// relayH2 an HTTP/2 upstream response. They report whether the
	// client connection may serve another request.
	relayH1(uc *upstream.Conn, sent time.Time) bool
	relayH2(resp *http.Response, sent time.Time) bool
	// fail answers a request whose last attempt failed without a response.
	fail(ue upstreamErr) bool
	// whole reports that the request body (if any) had all arrived when
	// the request was routed: the request was complete from its start.
	whole() bool
}

// forwardTries serves a request over as many attempts as its retry policy
// allows. rp records the body (nil: the request has none); length is the
// body's length for the upstream (-1: unknown, framed chunked over
// HTTP/1.1).
func (s *stream) forwardTries(d downstream, rp *replay, length int64, head bool) bool {
	f := s.route.Forward
	t := &s.tries
	t.reset(f.Retry, s.cluster.Breaker())
	defer t.end()
	if rp == nil || d.whole() {
		// A request without a body, or whose body came with its head,
		// is complete from its start: the route timeout runs from there,
		// also while the first attempt gets its connection. Otherwise it
		// starts once the first attempt read the body's end.
		t.start(s.start, s.timeout)
	}
	if rp != nil {
		defer rp.release()
		rp.onOver = s.cluster.Breaker().Abandoned
	}
	if len(f.Mirrors) > 0 {
		if len(s.mirrorOn) == 0 {
			s.sampleMirrors()
		}
		s.startMirrors(rp)
	}
	for {
		pool := s.host.Pool
		t.note(s.host)
		var (
			uc      *upstream.Conn
			resp    *http.Response
			release func()
			sent    time.Time
			ue      = upOverflow
		)
		admitted := pool.Admit()
		if admitted {
			pool.Begin()
			if pool.HTTP2 {
				resp, release, sent, ue = s.attemptH2(d, pool, rp, length)
			} else {
				uc, sent, ue = s.attemptH1(d, pool, rp, length, head)
			}
		}
		var would bool
		switch {
		case ue != upOK:
			would = t.retriableErr(ue)
		case uc != nil:
			would = t.retriableResponse(uc.Resp.Status, uc.Resp.Headers)
		default:
			would = t.retriableH2Response(resp)
		}
		if d.ctx().Err() != nil {
			would = false // the client went away, or its stream timed out
		}
		if would && (rp != nil && !rp.replayable() || t.remaining(time.Now(), s.timeout) < 0) {
			// The body outgrew the buffer limit, or the route timeout
			// passed: Envoy gives up its retry state.
			would = false
			t.end()
		}
		if !s.again(would) {
			return s.lastTry(d, pool, admitted, release, uc, resp, sent, ue)
		}
		switch {
		case uc != nil:
			s.reportStatus(uc.Resp.Status)
			d.drop(uc)
		case resp != nil:
			s.reportStatus(resp.StatusCode)
			resp.Body.Close()
		}
		if release != nil {
			release()
		}
		if admitted {
			pool.End()
			pool.Done()
		}
		if !t.backoff(d.ctx(), s) {
			return d.fail(upTimeout) // the route timeout passed during the back-off
		}
		s.repick()
		s.retryHeaders(time.Now())
	}
}

// lastTry answers the request from the attempt that ends its tries: its
// response, or the failure. The attempt's stream and request counts end
// however that goes, also when a forced close makes an HTTP/2 stream's
// handler panic with http.ErrAbortHandler (writeLocalH2): a count left
// behind would hold one of the cluster's max_requests for good.
func (s *stream) lastTry(d downstream, pool *upstream.Pool, admitted bool, release func(),
	uc *upstream.Conn, resp *http.Response, sent time.Time, ue upstreamErr) bool {
	defer func() {
		if release != nil {
			release()
		}
		if admitted {
			pool.End()
			pool.Done()
		}
	}()
	switch {
	case ue != upOK:
		return d.fail(ue)
	case uc != nil:
		// The response started: only the route timeout left bounds its
		// body.
		now, left := time.Now(), time.Duration(0)
		if s.timeout > 0 {
			left = max(s.tries.remaining(now, s.timeout), time.Nanosecond)
		}
		if dl, arm := uc.Deadline(now, left); arm {
			_ = uc.SetReadDeadline(dl)
		}
		return d.relayH1(uc, sent)
	default:
		return d.relayH2(resp, sent)
	}
}

// attemptTimeout bounds the wait for an attempt's response head sent at
// sent: the per-try timeout, at most the route timeout left (0: none).
func (s *stream) attemptTimeout(sent time.Time) time.Duration {
	left := s.tries.remaining(sent, s.timeout)
	switch {
	case left < 0:
		return time.Nanosecond
	case left == 0:
		return s.tryTimeout
	case s.tryTimeout > 0:
		return min(s.tryTimeout, left)
	}
	return left
}

// attemptH1 sends one attempt over a pooled HTTP/1.1 connection and reads
// its response head into uc.Resp. A reused connection the server closed
// before answering is replaced once, as on the path without retries.
func (s *stream) attemptH1(d downstream, pool *upstream.Pool, rp *replay, length int64, head bool) (*upstream.Conn, time.Time, upstreamErr) {
	t := &s.tries
	now := time.Now()
	wait := t.remaining(now, s.timeout)
	if wait < 0 {
		return nil, now, upTimeout
	}
	var by time.Time
	if wait > 0 {
		by = now.Add(wait)
	}
	// A client side gone or force-closed takes no connection, not even
	// an idle pooled one (getConn takes those without its context).
	ctx := d.ctx()
	if ctx.Err() != nil {
		return nil, now, upDownstream
	}
	uc, reused, ue := s.getConn(ctx, pool, now, by)
	if ue != upOK {
		return nil, now, ue
	}
	for {
		if !d.watch(uc) {
			uc.Discard()
			return nil, now, upDownstream
		}
		var body io.Reader
		if rp != nil {
			v := rp.view()
			if v == nil {
				d.drop(uc)
				return nil, now, upReset
			}
			body = v
		}
		out, ue := s.sendH1(uc, d.h1Head(uc.Out[:0]), body, length, rp)
		uc.Out = out[:0]
		sent := time.Now()
		t.start(sent, s.timeout)
		if ue == upOK {
			wait, idle := d.headWait(s.attemptTimeout(sent))
			if ue = readHead(uc, head, sent, wait); ue == upTimeout && idle {
				ue = upStreamIdle
			}
		}
		if ue == upOK {
			return uc, sent, upOK
		}
		d.drop(uc)
		if ue != upReset || !reused || rp != nil && !rp.replayable() || t.retriableErr(ue) {
			return nil, sent, ue
		}
		// The pooled connection was closed by the server: send again on a
		// fresh one, not counted as a retry (a policy that retries resets
		// decides instead).
		if ctx.Err() != nil {
			return nil, sent, upDownstream
		}
		if uc, _, ue = s.getConn(ctx, pool, time.Now(), t.deadline); ue != upOK {
			return nil, sent, ue
		}
		reused = false
	}
}

// sendH1 writes the head in out and the body read from body (chunked when
// length < 0) to uc, coalescing small writes. It returns the write buffer
// for reuse.
func (s *stream) sendH1(uc *upstream.Conn, out []byte, body io.Reader, length int64, rp *replay) ([]byte, upstreamErr) {
	if body != nil {
		bp := copyBufPool.Get().(*[]byte)
		defer copyBufPool.Put(bp)
		buf := *bp
		for {
			n, err := body.Read(buf)
			if n > 0 {
				if length < 0 {
					out = http1.AppendChunk(out, buf[:n])
				} else {
					out = append(out, buf[:n]...)
				}
				if len(out) >= upstream.WriteBufferSize {
					if _, werr := uc.Write(out); werr != nil {
						return out, upReset
					}
					out = out[:0]
				}
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				return out, bodyErr(rp)
			}
		}
		if length < 0 {
			out = append(out, http1.LastChunk...)
		}
	}
	if len(out) > 0 {
		if _, err := uc.Write(out); err != nil {
			return out, upReset
		}
	}
	return out, upOK
}

// bodyErr classifies a failed read of the request body: a malformed
// chunked body is the client's protocol error (400), anything else the
// client going away or stalling.
func bodyErr(rp *replay) upstreamErr {
	switch err := rp.failed(); {
	case errors.Is(err, http1.ErrBadChunk), errors.Is(err, http1.ErrChunkTooLarge), errors.Is(err, http1.ErrTrailerTooLong):
		return upBadBody
	}
	return upDownstream
}

// attemptH2 sends one attempt to an HTTP/2 endpoint. release ends the
// attempt's context once its response was relayed or dropped.
func (s *stream) attemptH2(d downstream, pool *upstream.Pool, rp *replay, length int64) (*http.Response, func(), time.Time, upstreamErr) {
	t := &s.tries
	now := time.Now()
	// The route timer runs once the request is complete (forwardTries,
	// or the end of the body an earlier attempt read); until then
	// h2Attempt bounds the attempt and sees the body's end.
	complete := t.started
	if complete && !t.deadline.IsZero() && !now.Before(t.deadline) {
		return nil, nil, now, upTimeout
	}
	var body io.Reader
	if rp != nil {
		v := rp.view()
		if v == nil {
			return nil, nil, now, upReset
		}
		body = v
	}
	req, ht := s.h2Attempt(d.ctx(), t.deadline, complete, body, length)
	req.Trailer = d.trailer()
	resp, err := roundTripH2(pool, req)
	if !ht.started() {
		err = timedOut(resp, err)
	}
	if end := ht.bodyEnded(); !end.IsZero() {
		t.start(end, s.timeout)
	}
	if err != nil {
		ht.release()
		if rp != nil && rp.failed() != nil {
			return nil, nil, now, bodyErr(rp)
		}
		return nil, nil, now, s.classify(ht.failed(req.Context(), err))
	}
	return resp, ht.release, now, upOK
}

// h1down is an HTTP/1.1 client's request served by forwardTries.
type h1down struct {
	hc   *h1conn
	rp   *replay
	keep bool
	head bool
	// all: the body was in the read buffer with the head.
	all bool
}

func (d *h1down) ctx() context.Context         { return d.hc.upstreamCtx() }
func (d *h1down) h1Head(out []byte) []byte     { return d.hc.encodeRequest(out) }
func (d *h1down) trailer() http.Header         { return nil }
func (d *h1down) bodyDone() bool               { return d.rp == nil || d.rp.complete() }
func (d *h1down) watch(uc *upstream.Conn) bool { return d.hc.useUpstream(uc) }
func (d *h1down) drop(uc *upstream.Conn)       { d.hc.dropUpstream(uc) }
func (d *h1down) whole() bool                  { return d.all }

// headWait is the HTTP/1.1 path's: Envoy's stream idle timer also runs
// while the upstream is silent (see responseWait).
func (d *h1down) headWait(timeout time.Duration) (time.Duration, bool) {
	if idle := d.hc.h.cfg.StreamIdleTimeout; idle > 0 && (timeout <= 0 || idle < timeout) {
		return idle, true
	}
	return timeout, false
}

func (d *h1down) fail(ue upstreamErr) bool {
	if ue == upDownstream {
		ue = d.hc.bodyFailed() // a stalled client is answered 408
	}
	keep := d.keep
	if d.rp != nil && !d.rp.complete() {
		// A body no attempt began to read may still be skipped whole.
		keep = keep && d.rp.untouched() && d.hc.skipBody()
	}
	return d.hc.failUpstream(ue, keep)
}

func (d *h1down) relayH1(uc *upstream.Conn, sent time.Time) bool {
	// The body is read under the route timeout left and the stream idle
	// timeout (armResponseRead).
	d.hc.respBy, d.hc.respArmed = d.hc.s.tries.deadline, false
	recv := time.Now()
	return d.hc.relayResponse(uc, d.keep && d.bodyDone(), d.head, recv.Sub(sent), recv)
}

func (d *h1down) relayH2(resp *http.Response, sent time.Time) bool {
	return d.hc.relayH2(resp, d.keep && d.bodyDone(), d.head, sent)
}

// forwardTries serves the parsed HTTP/1.1 request through forwardTries.
func (hc *h1conn) forwardTries(keep bool) bool {
	s := hc.s
	req := &hc.req
	hc.r += req.HeadLen
	d := &h1down{hc: hc, keep: keep, head: string(req.Method) == "HEAD"}
	d.all = req.Framing == http1.NoBody || req.Framing == http1.Length && int64(hc.w-hc.r) >= req.ContentLength
	length := int64(0)
	if req.Framing != http1.NoBody {
		if req.Expect100 && hc.r == hc.w {
			if _, err := hc.write(continue100); err != nil {
				return false
			}
		}
		// Reading the body may compact the read buffer the request head
		// views, and a retry encodes the head again: give the head its own
		// bytes first.
		s.detachHead()
		req.Method = s.rreq.Method
		s.attemptRd = bodyReader{src: hc, framing: req.Framing, remaining: req.ContentLength}
		d.rp = &s.replay
		d.rp.reset(&s.attemptRd, s.h.replayLimit())
		length = req.ContentLength
		if req.Framing == http1.Chunked {
			length = -1
		}
	}
	return s.forwardTries(d, d.rp, length, d.head)
}

// detachHead copies the request line and header fields, which view the
// connection's read buffer, into the stream's own buffer.
func (s *stream) detachHead() {
	r := &s.rreq
	n := len(r.Method) + len(r.Path) + len(r.Authority)
	for _, f := range *s.headers {
		n += len(f.Name) + len(f.Value)
	}
	b := s.headBuf[:0]
	if cap(b) < n {
		b = make([]byte, 0, n)
	}
	own := func(v []byte) []byte {
		b = append(b, v...)
		return b[len(b)-len(v) : len(b) : len(b)]
	}
	r.Method, r.Path, r.Authority = own(r.Method), own(r.Path), own(r.Authority)
	l := *s.headers
	for i := range l {
		l[i].Name, l[i].Value = own(l[i].Name), own(l[i].Value)
	}
	s.headBuf = b
}

// h2down is an HTTP/2 stream's request served by forwardTries. c is the
// stream timer's context (h2timer.go).
type h2down struct {
	s *stream
	w http.ResponseWriter
	r *http.Request
	c context.Context
}

func (d *h2down) ctx() context.Context         { return d.c }
func (d *h2down) watch(uc *upstream.Conn) bool { return d.s.h2t.attach(uc) }
func (d *h2down) drop(uc *upstream.Conn) {
	d.s.h2t.detach()
	uc.Discard()
}
func (d *h2down) h1Head(out []byte) []byte {
	s := d.s
	length := d.r.ContentLength
	if d.r.Body == nil || d.r.Body == http.NoBody {
		length = 0
	}
	return appendH1Head(out, s.rreq.Method, s.rreq.Path, s.rreq.Authority, *s.headers, length)
}
func (d *h2down) trailer() http.Header { return d.r.Trailer }

// whole: the server library does not tell whether a body's END_STREAM
// arrived before the stream was routed; only a request without a body
// (forwardTries' rp == nil) is known complete from its start.
func (d *h2down) whole() bool { return false }

// headWait: the stream timer bounds an HTTP/2 stream's waits.
func (d *h2down) headWait(timeout time.Duration) (time.Duration, bool) { return timeout, false }

func (d *h2down) relayH1(uc *upstream.Conn, sent time.Time) bool {
	d.s.relayH1ToH2(d.w, uc, sent)
	return true
}

func (d *h2down) relayH2(resp *http.Response, sent time.Time) bool {
	d.s.relayH2ToH2(d.w, resp, sent)
	return true
}

func (d *h2down) fail(ue upstreamErr) bool {
	if ue == upDownstream || ue == upBadBody {
		d.s.bodyFailed(d.w, d.r)
		return false
	}
	code, b := d.s.failBody(ue)
	d.s.writeLocalH2(d.w, code, b, nil)
	return true
}

// forwardTriesH2 serves an HTTP/2 stream through forwardTries; ctx is its
// stream timer's.
func (s *stream) forwardTriesH2(ctx context.Context, w http.ResponseWriter, r *http.Request) {
	d := &h2down{s: s, w: w, r: r, c: ctx}
	var rp *replay
	length := int64(0)
	// A request with "content-length: 0" may still be open: its body is
	// read (to its END_STREAM) so the stream timer knows when it ended.
	if r.Body != nil && r.Body != http.NoBody && (r.ContentLength != 0 || !s.h2t.reqDone.Load()) {
		b := &h2Body{r: r.Body, t: &s.h2t}
		defer b.detach()
		rp = &s.replay
		rp.reset(b, s.h.replayLimit())
		length = r.ContentLength
	}
	s.forwardTries(d, rp, length, string(s.rreq.Method) == "HEAD")
}
