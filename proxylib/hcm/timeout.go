package hcm

import (
	"cmp"
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/nodemesh/nodemesh/proxylib/upstream"
)

// Upstream timeouts, as Envoy's router applies them: the route timeout
// bounds the whole upstream exchange; the per-try timeout
// (retry_policy.per_try_timeout) bounds an attempt until its response
// starts. No attempt is retried, so the per-try timeout bounds the one
// attempt; its expiry is answered like the route timeout's, 504 "upstream
// request timeout" with response flag UT.

// headTimeout bounds the wait for the upstream response head: the per-try
// timeout when there is one (it is then the shorter), else the route
// timeout. Once the head arrived only the route timeout applies: Envoy
// disarms the per-try timer when the response starts.
func (s *stream) headTimeout() time.Duration { return cmp.Or(s.tryTimeout, s.timeout) }

// errPerTryTimeout cancels an HTTP/2 upstream attempt whose response did
// not start within the per-try timeout.
var errPerTryTimeout = errors.New("upstream per-try timeout")

// tryContext derives the context of one HTTP/2 upstream attempt from ctx:
// it is cancelled with errPerTryTimeout when the per-try timeout passes
// before started is called. Call started as soon as the response head
// arrived; it reports false when the timer fired first (the attempt timed
// out). Call release when the exchange ends.
func (s *stream) tryContext(ctx context.Context) (tctx context.Context, started func() bool, release func()) {
	if s.tryTimeout <= 0 {
		return ctx, func() bool { return true }, func() {}
	}
	tctx, cancel := context.WithCancelCause(ctx)
	t := time.AfterFunc(s.tryTimeout, func() { cancel(errPerTryTimeout) })
	return tctx, t.Stop, func() { cancel(nil) }
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
// connect_timeout.
func (s *stream) getConn(ctx context.Context, pool *upstream.Pool, now, by time.Time) (*upstream.Conn, bool, upstreamErr) {
	if uc := pool.GetIdle(now); uc != nil {
		return uc, true, upOK
	}
	var wait time.Duration
	if !by.IsZero() {
		if wait = by.Sub(now); wait <= 0 {
			return nil, false, upTimeout
		}
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadlineCause(ctx, by, errRouteTimeout)
		defer cancel()
	}
	uc, reused, err := pool.GetAt(ctx, now, wait)
	if err == nil {
		return uc, reused, upOK
	}
	// The dialer ends a connect at the context's deadline by itself,
	// possibly before the context's timer marked it done: a deadline
	// that passed is the route timeout's too.
	cause := context.Cause(ctx)
	if errors.Is(cause, errRouteTimeout) || cause == nil && !by.IsZero() && !time.Now().Before(by) {
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
