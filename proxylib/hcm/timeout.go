package hcm

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptrace"
	"sync"
	"time"

	"github.com/nodemesh/nodemesh/proxylib/upstream"
)

// Upstream timeouts, as Envoy's router applies them: the route timeout
// runs from the request's end (its start when it came whole, else the
// read of its body's end) through the wait for a connection, the dial and
// the response, over all attempts; before a streamed body's end it bounds
// the wait for the connection on its own. The per-try timeout
// (retry_policy.per_try_timeout) runs from when an attempt has its
// connection and the request is complete until its response starts. Both
// are answered 504 "upstream request timeout" with response flag UT.

// headWait bounds the wait for the upstream response head of an HTTP/1.1
// attempt written at begin (it had its connection and the request was
// complete), the route timer having started at sent: the per-try timeout
// from begin, no later than the route deadline (at least a nanosecond:
// a wait that is over fails at once); 0: none. Once the head arrived only
// the route timeout applies: Envoy disarms the per-try timer when the
// response starts.
func (s *stream) headWait(sent, begin time.Time) time.Duration {
	d := s.tryTimeout
	if s.timeout > 0 {
		left := max(sent.Add(s.timeout).Sub(begin), time.Nanosecond)
		if d <= 0 || left < d {
			d = left
		}
	}
	return d
}

// errPerTryTimeout cancels an HTTP/2 upstream attempt whose response did
// not start within the per-try timeout.
var errPerTryTimeout = errors.New("upstream per-try timeout")

// h2Timers are the timers of one HTTP/2 upstream attempt, cancelling its
// context with the cause of the first to fire:
//   - the route timer, with errRouteTimeout. When the request was complete
//     as the attempt began it ends at the route deadline already running;
//     otherwise it bounds the attempt by the route timeout from its start
//     (as an HTTP/1.1 attempt's connect is bounded) until the body's end
//     was read, and is restarted then: the route timeout proper runs from
//     the request's end.
//   - the per-try timer, with errPerTryTimeout: it starts once the attempt
//     has a connection and the request is complete (the later of the two,
//     as Envoy's), and stops when the response head arrived.
//
// The stream keeps one, reset per attempt; gen tells a late callback of an
// earlier attempt (the transport's body reader) from the current one's.
type h2Timers struct {
	mu       sync.Mutex
	gen      uint64
	cancel   context.CancelCauseFunc // with timers
	cancelDL context.CancelFunc      // with at most a fixed deadline
	timeout  time.Duration
	try      time.Duration
	route    *time.Timer
	per      *time.Timer
	complete bool      // the request body had all been read
	conn     bool      // the attempt has a connection
	headSeen bool      // the response head arrived
	ended    time.Time // when the body's end was read during the attempt
}

// h2Attempt derives the context of an HTTP/2 attempt from ctx. by is the
// route deadline when the route timer runs already (the request is
// complete; zero when there is no route timeout); otherwise the request
// body is still to be read through body, which h2Attempt wraps to see its
// end. It returns the request to send and the attempt's timers, which
// the caller releases.
func (s *stream) h2Attempt(ctx context.Context, by time.Time, complete bool, body io.Reader, length int64) (*http.Request, *h2Timers) {
	ht := &s.h2tm
	ht.mu.Lock()
	defer ht.mu.Unlock()
	ht.gen++
	gen := ht.gen
	ht.timeout, ht.try, ht.complete = s.timeout, s.tryTimeout, complete
	ht.route, ht.per, ht.conn, ht.headSeen, ht.ended = nil, nil, false, false, time.Time{}
	ht.cancel, ht.cancelDL = nil, nil
	switch {
	case complete && ht.try <= 0:
		// Only a fixed deadline, if any: the common case costs what a
		// context with a deadline costs.
		if !by.IsZero() {
			ctx, ht.cancelDL = context.WithDeadlineCause(ctx, by, errRouteTimeout)
		}
		return s.upstreamRequest(ctx, body, length), ht
	}
	ctx, cancel := context.WithCancelCause(ctx)
	ht.cancel = cancel
	fire := func() { cancel(errRouteTimeout) }
	switch {
	case complete && !by.IsZero():
		ht.route = time.AfterFunc(time.Until(by), fire)
	case !complete && s.timeout > 0:
		ht.route = time.AfterFunc(s.timeout, fire)
	}
	if body != nil && !complete {
		body = &endReader{r: body, end: func() { ht.bodyEnd(gen) }}
	}
	if ht.try > 0 {
		ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{GotConn: func(httptrace.GotConnInfo) { ht.gotConn(gen) }})
	}
	return s.upstreamRequest(ctx, body, length), ht
}

func (ht *h2Timers) gotConn(gen uint64) {
	ht.mu.Lock()
	defer ht.mu.Unlock()
	if gen == ht.gen {
		ht.conn = true
		ht.armTry()
	}
}

// bodyEnd notes that the request body's end was read (by the transport,
// which reads it only once it has a connection).
func (ht *h2Timers) bodyEnd(gen uint64) {
	now := time.Now()
	ht.mu.Lock()
	defer ht.mu.Unlock()
	if gen != ht.gen {
		return
	}
	ht.complete, ht.conn, ht.ended = true, true, now
	if ht.route != nil {
		ht.route.Reset(ht.timeout)
	}
	ht.armTry()
}

func (ht *h2Timers) armTry() {
	if ht.try > 0 && ht.per == nil && ht.complete && ht.conn && !ht.headSeen {
		cancel := ht.cancel
		ht.per = time.AfterFunc(ht.try, func() { cancel(errPerTryTimeout) })
	}
}

// started notes the response head; false: the per-try timer fired first.
func (ht *h2Timers) started() bool {
	ht.mu.Lock()
	defer ht.mu.Unlock()
	ht.headSeen = true
	return ht.per == nil || ht.per.Stop()
}

// bodyEnded is when the body's end was read (zero: not yet).
func (ht *h2Timers) bodyEnded() time.Time {
	ht.mu.Lock()
	defer ht.mu.Unlock()
	return ht.ended
}

// release ends the attempt's context once its exchange ended.
func (ht *h2Timers) release() {
	ht.mu.Lock()
	if ht.route != nil {
		ht.route.Stop()
	}
	if ht.per != nil {
		ht.per.Stop()
	}
	cancel, cancelDL := ht.cancel, ht.cancelDL
	ht.cancel, ht.cancelDL = nil, nil
	ht.gen++ // late callbacks of this attempt are ignored
	ht.mu.Unlock()
	if cancel != nil {
		cancel(nil)
	}
	if cancelDL != nil {
		cancelDL()
	}
}

// failed is the error of an attempt whose round trip failed with err: the
// timer that cancelled its context, if one did.
func (ht *h2Timers) failed(ctx context.Context, err error) error {
	if c := context.Cause(ctx); c == errRouteTimeout || c == errPerTryTimeout {
		return c
	}
	return err
}

// endReader calls end when r reports its end.
type endReader struct {
	r   io.Reader
	end func()
}

func (e *endReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err == io.EOF && e.end != nil {
		e.end()
		e.end = nil
	}
	return n, err
}

// timedOut ends an HTTP/2 attempt whose per-try timer fired before its
// response head was seen: a response that raced the timer is dropped (its
// context is cancelled, so its body could not be relayed anyway).
func timedOut(resp *http.Response, err error) error {
	if err == nil {
		resp.Body.Close()
	}
	return errPerTryTimeout
}

// errRouteTimeout ends the wait for an upstream connection (queued at
// max_connections, or dialing) when the route timeout passes first.
var errRouteTimeout = errors.New("route timeout")

// getConn gets an HTTP/1.1 upstream connection from pool (at time now)
// under ctx, waiting at most until by (zero: no bound). As in Envoy, the
// route timer runs while the request waits for a connection and while one
// is dialed, so a slow connect (an endpoint whose accept queue is full
// drops the SYN) ends in 504 "upstream request timeout" when the route
// timeout passes, not in a connection failure after the longer
// connect_timeout. A connection obtained once by passed is not used: no
// byte of the request leaves after its timeout.
func (s *stream) getConn(ctx context.Context, pool *upstream.Pool, now, by time.Time) (*upstream.Conn, bool, upstreamErr) {
	if uc := pool.GetIdle(now); uc != nil {
		return uc, true, upOK
	}
	var wait time.Duration
	if !by.IsZero() {
		if wait = by.Sub(now); wait <= 0 {
			return nil, false, upTimeout
		}
	}
	uc, reused, err := pool.GetBy(ctx, now, wait, by)
	if err == nil {
		if !by.IsZero() && !time.Now().Before(by) {
			// The connect completed as the route timeout passed: the
			// request is answered 504 and never written upstream. The
			// connection is unused and stays pooled.
			pool.Put(uc)
			return nil, false, upTimeout
		}
		return uc, reused, upOK
	}
	// The wait and the dial both end at by: a failure once it passed is
	// the route timeout's.
	if !by.IsZero() && !time.Now().Before(by) {
		return nil, false, upTimeout
	}
	return nil, false, s.connErr(err)
}

// routeEnd is when the route timeout started at start ends (zero: no
// route timeout).
func (s *stream) routeEnd(start time.Time) time.Time {
	if s.timeout <= 0 {
		return time.Time{}
	}
	return start.Add(s.timeout)
}
