package hcm

import (
	"time"

	"github.com/nodemesh/nodemesh/proxylib/http1"
	"github.com/nodemesh/nodemesh/proxylib/resource"
	"github.com/nodemesh/nodemesh/proxylib/upstream"
)

// h1Limits are the HTTP/1.1 bounds of one connection manager, derived once
// from its configuration.
type h1Limits struct {
	parse http1.Limits
	// maxBuf bounds a connection's read buffer: a whole head plus room
	// for what follows it.
	maxBuf int
	// readCap bounds one read from the client (the listener's
	// per_connection_buffer_limit_bytes); 0: the buffer's free space.
	readCap int
}

func newH1Limits(cfg *resource.HCM) h1Limits {
	l := h1Limits{parse: http1.Limits{HeadBytes: cfg.MaxRequestHeadersBytes, Headers: cfg.MaxHeadersCount}}
	head := cfg.MaxRequestHeadersBytes
	if head <= 0 {
		head = http1.MaxHeadBytes
	}
	l.parse.HeadBytes = head
	l.maxBuf = head + h1BufSize
	if cfg.BufferLimit > 0 && int64(cfg.BufferLimit) < int64(l.maxBuf) {
		l.readCap = int(cfg.BufferLimit)
	}
	return l
}

// readRoom is where the next read from the client goes: the free space
// of the buffer, at most readCap bytes. Every read is taken off the buffer
// (parsed, forwarded) before the next one, so apart from the head being
// parsed the connection holds at most one read.
func (hc *h1conn) readRoom() []byte {
	room := hc.buf[hc.w:]
	if c := hc.h.h1.readCap; c > 0 && len(room) > c {
		room = room[:c]
	}
	return room
}

// wait is what a read from the client waits for.
type wait uint8

const (
	waitIdle wait = iota // the first byte of the next request
	waitHead             // the rest of a request head
	waitBody             // request body bytes
)

// armRead sets the read deadline for w. Between requests the connection
// may idle for idle_timeout. Inside a request every read must come within
// stream_idle_timeout, and the head must be complete within
// request_headers_timeout of its first byte, the whole request within
// request_timeout. The idle and stream idle timeouts are re-armed lazily;
// the fixed deadlines exactly.
func (hc *h1conn) armRead(w wait, now time.Time) {
	cfg := hc.h.cfg
	var t time.Time
	var ok bool
	switch w {
	case waitIdle:
		t, ok = hc.rdl.Need(now, cfg.IdleTimeout)
	default:
		var end time.Time
		if w == waitHead {
			end = earliest(end, hc.headAt, cfg.RequestHeadersTimeout)
			end = earliest(end, hc.headAt, cfg.RequestTimeout)
		} else {
			if cfg.RequestTimeout > 0 && hc.reqAt.IsZero() {
				hc.reqAt = now // a head that came whole: the request starts now
			}
			end = earliest(end, hc.reqAt, cfg.RequestTimeout)
		}
		idle := cfg.StreamIdleTimeout
		if !end.IsZero() && (idle <= 0 || end.Before(now.Add(idle))) {
			t, ok = hc.rdl.Set(end)
		} else {
			t, ok = hc.rdl.Need(now, idle)
		}
	}
	if ok {
		_ = hc.c.SetReadDeadline(t)
	}
}

// earliest returns the earlier of t and from+d; a zero t or d is none.
func earliest(t, from time.Time, d time.Duration) time.Time {
	if d <= 0 || from.IsZero() {
		return t
	}
	if e := from.Add(d); t.IsZero() || e.Before(t) {
		return e
	}
	return t
}

// Local reply bodies of the request timeouts, as Envoy words them.
var (
	bodyHeaderTimeout  = []byte("request header timeout")
	bodyRequestTimeout = []byte("request timeout")
	bodyStreamTimeout  = []byte("stream timeout")
)

// requestTimedOut answers a request whose client stopped sending before
// it was complete: 408 and close, as Envoy answers a stream it timed out
// before the request ended (the connection cannot be reused: the rest of
// the request may still come).
func (hc *h1conn) requestTimedOut(head bool) {
	cfg := hc.h.cfg
	now := time.Now()
	start := hc.reqAt
	if head {
		start = hc.headAt
	}
	body := bodyStreamTimeout
	switch {
	case head && cfg.RequestHeadersTimeout > 0 && !now.Before(start.Add(cfg.RequestHeadersTimeout)):
		body = bodyHeaderTimeout
	case cfg.RequestTimeout > 0 && !start.IsZero() && !now.Before(start.Add(cfg.RequestTimeout)):
		body = bodyRequestTimeout
	}
	hc.localError(408, body)
}

// write writes b to the client within stream_idle_timeout: a client that
// stops reading its response is cut off like one that stops sending.
func (hc *h1conn) write(b []byte) (int, error) {
	return hc.writeAt(b, time.Now())
}

// writeAt is write for a caller that read the clock (now) with nothing
// waited on since.
func (hc *h1conn) writeAt(b []byte, now time.Time) (int, error) {
	if t, ok := hc.wdl.Need(now, hc.h.cfg.StreamIdleTimeout); ok {
		_ = hc.c.SetWriteDeadline(t)
	}
	return hc.c.Write(b)
}

// responseWait returns how long to wait for the response head from begin
// (the request complete and written on its connection), the route timer
// having started at sent: the head timeout (headWait), or
// stream_idle_timeout when that is shorter or there is no timeout (Envoy's
// stream idle timer runs while the upstream is silent); idle reports the
// latter. It also records when the route timeout ends the whole response.
func (hc *h1conn) responseWait(sent, begin time.Time) (d time.Duration, idle bool) {
	head, streamIdle := hc.s.headWait(sent, begin), hc.h.cfg.StreamIdleTimeout
	hc.respBy = time.Time{}
	if route := hc.s.timeout; route > 0 {
		hc.respBy = sent.Add(route)
	}
	if streamIdle > 0 && (head <= 0 || streamIdle < head) {
		return streamIdle, true
	}
	return head, false
}

// armResponseRead arms the read deadline for more of a response body:
// stream_idle_timeout from now, but no later than the route timeout. The
// deadline the head was awaited under may be a short check deadline
// (h1_exchange.go), so the first body read always arms; a fixed route
// deadline is then kept, an idle one re-armed lazily.
func (hc *h1conn) armResponseRead(uc *upstream.Conn) {
	now := time.Now()
	idle := hc.h.cfg.StreamIdleTimeout
	if !hc.respBy.IsZero() {
		if left := hc.respBy.Sub(now); idle <= 0 || left < idle {
			if !hc.respArmed {
				hc.respArmed = true
				// Over already: the read fails at once.
				if t, ok := uc.Deadline(now, max(left, time.Nanosecond)); ok {
					_ = uc.SetReadDeadline(t)
				}
			}
			return
		}
	}
	hc.respArmed = false
	if t, ok := uc.Deadline(now, idle); ok {
		_ = uc.SetReadDeadline(t)
	}
}
