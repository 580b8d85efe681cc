package hcm

import (
	"context"
	"errors"
	"io"
	"math"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nodemesh/nodemesh/proxylib/upstream"
)

// The stream timeouts of an HTTP/2 stream, as Envoy applies them per
// stream once its headers are complete (the header block itself is bounded
// by the guard, h2deadline.go):
//   - request_timeout from the stream's start until the request ended
//     (END_STREAM read) or the response started: 408 "request timeout".
//   - stream_idle_timeout from the stream's last activity — request body
//     bytes read, response bytes written to the client — in either
//     direction: before the response started, 408 "stream timeout" while
//     the request is incomplete and 504 "stream timeout" once it is
//     complete (response flag SI in both cases); after it started, the
//     stream is reset.
//
// One runtime timer per stream, armed when the stream starts and re-armed
// only when it fires: activity is an atomic store of a clock reading, so a
// busy stream costs one timer operation per idle period, not per frame.
// When the timer finds the stream expired it records why and interrupts
// whatever the stream waits on (the upstream context, the request body, a
// pooled HTTP/1.1 upstream connection's deadlines, and once the response
// started the response writer); the handler, seeing its wait fail, answers
// with the timeout's local reply (writeLocalH2 substitutes it for any
// other answer) or resets the stream.

// expiry is why a stream's timer ended it.
type expiry uint8

const (
	expNone expiry = iota
	expRequest
	expIdleRequest  // stream idle while the request was incomplete
	expIdleUpstream // stream idle after the request ended
)

// errStreamTimeout cancels the upstream work of a stream that timed out.
var errStreamTimeout = errors.New("stream timeout")

// Local reply details of the stream timeouts, as Envoy names them.
const (
	detailsStreamIdle     = "stream_idle_timeout"
	detailsRequestTimeout = "request_overall_timeout"
)

// monoBase anchors mono: durations since it use the monotonic clock.
var monoBase = time.Now()

// mono returns the monotonic time in nanoseconds since monoBase.
func mono() int64 { return int64(time.Since(monoBase)) }

// aLongTimeAgo is a deadline that has passed: it interrupts a wait at once.
var aLongTimeAgo = time.Unix(1, 0)

// h2Timer is the stream timer of one HTTP/2 stream. It lives in the
// stream (pooled with it); begin arms it, finish disarms it. Activity
// (touch, requestDone) may be noted from any goroutine.
type h2Timer struct {
	last    atomic.Int64 // mono time of the last activity
	reqDone atomic.Bool  // the whole request was read

	mu      sync.Mutex
	alarm   *h2Alarm
	idle    time.Duration
	reqBy   int64 // mono deadline of request_timeout; 0: none
	reason  expiry
	started bool // the response (or a local reply) began
	reset   bool // the stream was reset
	done    bool // the handler returned

	// What an expiry interrupts; set while the handler runs.
	w      http.ResponseWriter
	body   io.Closer
	cancel context.CancelCauseFunc
	uc     *upstream.Conn

	// parent is the server's context of the stream; ctx the one its
	// upstream work runs under, derived from parent on first use
	// (context): most streams never wait on a context (an idle pooled
	// HTTP/1.1 connection is taken without one), and deriving one at
	// every stream's start cost five heap allocations (the context, its
	// cancel function, the parent's child set and done channel).
	armed  bool // stream timeouts apply: ctx must be cancellable
	parent context.Context
	ctx    context.Context
}

// h2Alarm is the runtime timer of an h2Timer. A timer whose callback may
// still run when its stream ends is dropped with its alarm, never reused,
// so a late callback finds another alarm in place and does nothing.
type h2Alarm struct {
	t  *h2Timer
	tm *time.Timer
}

// begin starts the stream's timers; context returns the context its
// upstream work runs under.
func (t *h2Timer) begin(w http.ResponseWriter, r *http.Request, idle, request time.Duration) {
	now := mono()
	t.last.Store(now)
	// A request that ended with its HEADERS frame has no body: the server
	// gives it a length of 0 without a content-length field (an open
	// stream gets -1, or the field's value).
	done := r.ContentLength == 0 && r.Header["Content-Length"] == nil
	t.reqDone.Store(done)
	t.mu.Lock()
	defer t.mu.Unlock()
	t.idle, t.reason, t.started, t.reset, t.done = max(idle, 0), expNone, false, false, false
	t.reqBy = 0
	if request > 0 && !done {
		t.reqBy = now + int64(request)
	}
	t.parent, t.ctx, t.cancel = r.Context(), nil, nil
	due := t.due(now)
	t.armed = due != math.MaxInt64
	if !t.armed {
		t.w, t.body = nil, nil
		return
	}
	t.w, t.body = w, r.Body
	t.arm(time.Duration(due - now))
}

// context returns the context of the stream's upstream work, which an
// expiry cancels (with cause errStreamTimeout); it is made on the first
// call, already cancelled if the stream timed out before. Without stream
// timeouts it is the server's context of the stream. Only the handler's
// goroutine calls it, between begin and finish.
func (t *h2Timer) context() context.Context {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ctx != nil {
		return t.ctx
	}
	if !t.armed {
		t.ctx = t.parent
		return t.ctx
	}
	t.ctx, t.cancel = context.WithCancelCause(t.parent)
	if t.reason != expNone || t.reset {
		t.cancel(errStreamTimeout)
	}
	return t.ctx
}

// due returns when the timer must next look at the stream (mono time;
// MaxInt64: never). t.mu is held.
func (t *h2Timer) due(now int64) int64 {
	due := int64(math.MaxInt64)
	if t.idle > 0 {
		due = t.last.Load() + int64(t.idle)
	}
	if t.reqBy != 0 && t.reason == expNone && !t.started && !t.reqDone.Load() {
		due = min(due, t.reqBy)
	}
	return due
}

// arm (re)starts the runtime timer; t.mu is held.
func (t *h2Timer) arm(d time.Duration) {
	if t.alarm == nil {
		a := &h2Alarm{t: t}
		a.tm = time.AfterFunc(d, a.fire)
		t.alarm = a
		return
	}
	t.alarm.tm.Reset(d)
}

// touch notes activity on the stream.
func (t *h2Timer) touch() { t.last.Store(mono()) }

// requestDone notes that the request's END_STREAM was read.
func (t *h2Timer) requestDone() {
	t.reqDone.Store(true)
	t.touch()
}

// fire runs on the runtime timer's goroutine.
func (a *h2Alarm) fire() {
	t := a.t
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.alarm != a || t.done || t.reset {
		return
	}
	now := mono()
	due := t.due(now)
	if now < due {
		if due != math.MaxInt64 {
			a.tm.Reset(time.Duration(due - now))
		}
		return
	}
	if t.started || t.reason != expNone {
		// The response (or the timeout's own reply) stalled for the
		// stream idle timeout: reset the stream.
		t.resetStream()
		return
	}
	switch {
	case t.reqBy != 0 && !t.reqDone.Load() && now >= t.reqBy:
		t.reason = expRequest
	case t.reqDone.Load():
		t.reason = expIdleUpstream
	default:
		t.reason = expIdleRequest
	}
	t.interrupt()
	// The handler answers now; its reply is bounded like any response.
	t.last.Store(now)
	if t.idle > 0 {
		a.tm.Reset(t.idle)
	}
}

// interrupt ends every wait of the stream's handler; t.mu is held.
func (t *h2Timer) interrupt() {
	if t.cancel != nil {
		t.cancel(errStreamTimeout)
	}
	if t.body != nil {
		// Unblocks a read of the request body (the handler's, or the h2c
		// transport's) and returns its flow-control credit.
		_ = t.body.Close()
	}
	if t.uc != nil {
		_ = t.uc.SetDeadline(aLongTimeAgo)
	}
	if t.started {
		t.resetStream()
	}
}

// resetStream resets the stream (RST_STREAM) through the server's write
// deadline, which also fails a write waiting for flow-control window;
// t.mu is held, so the handler has not returned and w is valid.
func (t *h2Timer) resetStream() {
	t.reset = true
	if t.cancel != nil {
		t.cancel(errStreamTimeout)
	}
	if t.uc != nil {
		_ = t.uc.SetDeadline(aLongTimeAgo)
	}
	if wd, ok := t.w.(interface{ SetWriteDeadline(time.Time) error }); ok {
		_ = wd.SetWriteDeadline(aLongTimeAgo)
	}
}

// respond marks the response as started before its head is written. It
// returns false when the stream timed out first: the caller must answer
// with the timeout's reply (writeLocalH2) instead.
func (t *h2Timer) respond() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.reason != expNone {
		return false
	}
	t.started = true
	t.last.Store(mono())
	return true
}

// local marks a local reply as started and returns why the stream timed
// out, if it did: that reply replaces the one the caller meant.
func (t *h2Timer) local() expiry {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.started = true
	t.last.Store(mono())
	return t.reason
}

// attach makes an expiry interrupt uc's reads and writes. It returns false
// when the stream timed out already.
func (t *h2Timer) attach(uc *upstream.Conn) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.reason != expNone || t.reset {
		return false
	}
	t.uc = uc
	return true
}

// detach takes uc back before it is pooled. It returns false when an
// expiry may have changed uc's deadlines: uc must then be discarded.
func (t *h2Timer) detach() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.uc = nil
	return t.reason == expNone && !t.reset
}

// finish stops the timer when the handler returns.
func (t *h2Timer) finish() {
	t.mu.Lock()
	t.done = true
	if t.cancel != nil {
		t.cancel(nil)
	}
	t.w, t.body, t.cancel, t.uc = nil, nil, nil, nil
	t.parent, t.ctx = nil, nil
	if t.alarm != nil && !t.alarm.tm.Stop() {
		// Expired, or its callback is under way: a new stream gets a
		// new alarm.
		t.alarm = nil
	}
	t.mu.Unlock()
}

// timeoutReply is the local reply of a stream that timed out. An upstream
// failure the expiry caused (a cancelled exchange) is not reported.
func (s *stream) timeoutReply(why expiry) (int, []byte) {
	s.flags &^= flagUF | flagUC | flagUT | flagUPE | flagDPE
	switch why {
	case expRequest:
		s.details = detailsRequestTimeout
		return 408, bodyRequestTimeout
	case expIdleUpstream:
		s.flags |= flagSI
		s.details = detailsStreamIdle
		return 504, bodyStreamTimeout
	}
	s.flags |= flagSI
	s.details = detailsStreamIdle
	return 408, bodyStreamTimeout
}
