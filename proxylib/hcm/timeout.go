package hcm

import (
	"cmp"
	"context"
	"errors"
	"net/http"
	"time"
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
