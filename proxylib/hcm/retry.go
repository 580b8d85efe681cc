package hcm

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/http2"

	"github.com/nodemesh/nodemesh/proxylib/header"
	"github.com/nodemesh/nodemesh/proxylib/resource"
	"github.com/nodemesh/nodemesh/proxylib/upstream"
)

// Router retries (route retry_policy), as Envoy's router makes them:
//
//   - After every attempt the policy decides: a response head by its status
//     (and grpc-status, x-envoy-ratelimited), an attempt that ended without
//     a head by why (connect failure, reset or per-try timeout, refused
//     stream; a circuit breaker overflow is never retried). The decision is
//     made before any response byte goes downstream, so a response that
//     was relayed is never retried.
//   - A retry needs one of num_retries left and a max_retries slot of the
//     route's cluster, held from the decision to the next one
//     (upstream_rq_retry, _overflow, _success, _limit_exceeded). It waits
//     Envoy's jittered exponential back-off, picks a host again (avoiding
//     earlier ones with previous_hosts) and sends the recorded request
//     body (replay.go).
//   - The route timeout bounds all attempts and back-offs together, from
//     when the request body was complete; the per-try timeout bounds each
//     attempt until its response starts. A retry carries
//     x-envoy-expected-rq-timeout-ms lowered to the time left.
//   - When the last attempt fails without a response, the local reply
//     says "retried and the latest reset reason" as Envoy's does.

// tries is the retry state of one request; the stream keeps it between
// requests.
type tries struct {
	policy  *resource.RetryPolicy
	breaker *upstream.Breaker
	left    uint32
	n       int  // retries made
	holding bool // a max_retries slot is held
	// deadline is when the route timeout expires for all attempts (zero:
	// not started yet, or no route timeout).
	deadline time.Time
	started  bool
	hosts    []*upstream.Host // attempted, for previous_hosts
}

func (t *tries) reset(p *resource.RetryPolicy, b *upstream.Breaker) {
	t.policy, t.breaker, t.n, t.holding, t.started, t.deadline = p, b, 0, false, false, time.Time{}
	t.left = 0
	if p != nil {
		t.left = p.NumRetries
	}
	clear(t.hosts)
	t.hosts = t.hosts[:0]
}

// start starts the route timeout at now (the request body is complete),
// once.
func (t *tries) start(now time.Time, timeout time.Duration) {
	if t.started {
		return
	}
	t.started = true
	if timeout > 0 {
		t.deadline = now.Add(timeout)
	}
}

// remaining is the route timeout left at now: 0 when there is none,
// negative when it passed.
func (t *tries) remaining(now time.Time, timeout time.Duration) time.Duration {
	if timeout <= 0 {
		return 0
	}
	if t.deadline.IsZero() {
		return timeout
	}
	if d := t.deadline.Sub(now); d > 0 {
		return d
	}
	return -1
}

// again decides whether to retry after an attempt whose outcome the
// policy would (or would not) retry, and takes a max_retries slot if so.
// Running out of retries marks the request URX.
func (s *stream) again(would bool) bool {
	t := &s.tries
	if t.holding {
		t.holding = false
		t.breaker.EndRetry(!would)
	}
	if !would || t.policy == nil {
		return false
	}
	if t.left == 0 {
		t.breaker.RetryLimitExceeded()
		s.flags |= flagURX
		return false
	}
	t.left--
	if !t.breaker.StartRetry() {
		return false
	}
	t.holding = true
	t.n++
	return true
}

// end releases a slot still held when the request ends otherwise (route
// timeout, downstream failure).
func (t *tries) end() {
	if t.holding {
		t.holding = false
		t.breaker.EndRetry(false)
	}
	t.policy = nil
}

// resetKind maps a failed attempt to the reset reasons retries know.
func resetKind(ue upstreamErr) resource.ResetKind {
	switch ue {
	case upConnect:
		return resource.ResetConnectFailure
	case upOverflow:
		return resource.ResetOverflow
	case upRefused:
		return resource.ResetRefusedStream
	}
	return resource.ResetStream
}

// retriableErr reports whether the policy retries an attempt that failed
// with ue. Failures of the downstream side are never retried.
func (t *tries) retriableErr(ue upstreamErr) bool {
	switch ue {
	case upDownstream, upBadBody, upBodyTimeout, upStreamIdle:
		return false // the client's side, or the whole stream, timed out
	}
	return t.policy != nil && t.policy.RetriableReset(resetKind(ue))
}

// retriableResponse reports whether the policy retries this response head.
func (t *tries) retriableResponse(status int, l header.List) bool {
	if t.policy == nil {
		return false
	}
	grpc := -1
	if t.policy.On&resource.RetryGRPC != 0 {
		if v, ok := l.Get("grpc-status"); ok {
			if n, err := strconv.Atoi(string(v)); err == nil {
				grpc = n
			}
		}
	}
	return t.policy.RetriableStatus(status, grpc, l.Has("x-envoy-ratelimited"))
}

// retriableH2Response is retriableResponse for an HTTP/2 response.
func (t *tries) retriableH2Response(resp *http.Response) bool {
	if t.policy == nil {
		return false
	}
	grpc := -1
	if v := resp.Header.Get("grpc-status"); v != "" {
		if n, err := strconv.Atoi(v); err == nil {
			grpc = n
		}
	}
	return t.policy.RetriableStatus(resp.StatusCode, grpc, resp.Header.Get("x-envoy-ratelimited") != "")
}

// backoff waits before retry t.n, bounded by the route deadline and by
// ctx (the client's stream); false when either ended first.
func (t *tries) backoff(ctx context.Context, s *stream) bool {
	d := t.policy.Backoff(t.n, s.rnd.Uint64N)
	expired := false
	if !t.deadline.IsZero() {
		if left := time.Until(t.deadline); left <= d {
			d, expired = max(left, 0), true
		}
	}
	if d > 0 {
		tm := time.NewTimer(d)
		defer tm.Stop()
		select {
		case <-tm.C:
		case <-ctx.Done():
			return false
		}
	}
	return !expired
}

// repick chooses the host of a retry: the load balancer's pick, picked
// again up to host_selection_retry_max_attempts times while it is one an
// earlier attempt used (previous_hosts).
func (s *stream) repick() {
	c := s.cluster
	if c.IsOriginalDst() {
		return // the original destination is the only host
	}
	t := &s.tries
	h := s.pick(c)
	if t.policy.PreviousHosts {
		for i := 0; i < t.policy.HostSelectionAttempts && h != nil && t.attempted(h); i++ {
			h = s.pick(c)
		}
	}
	if h != nil {
		s.host = h
	}
}

func (t *tries) attempted(h *upstream.Host) bool {
	for _, a := range t.hosts {
		if a == h {
			return true
		}
	}
	return false
}

// note records the host of an attempt.
func (t *tries) note(h *upstream.Host) {
	if t.policy != nil && t.policy.PreviousHosts {
		t.hosts = append(t.hosts, h)
	}
}

// retryHeaders updates x-envoy-expected-rq-timeout-ms for a retry: the
// per-try timeout or the route timeout, at most the time left (1 ms when
// none is: 0 would mean no timeout).
func (s *stream) retryHeaders(now time.Time) {
	f := s.route.Forward
	if f.TimeoutMS == nil {
		return
	}
	expected := s.tryTimeout
	if expected == 0 {
		expected = s.timeout
	}
	if s.timeout > 0 {
		left := s.tries.remaining(now, s.timeout)
		if left <= 0 {
			expected = time.Millisecond
		} else {
			expected = min(expected, left)
		}
	}
	s.expBuf = strconv.AppendInt(s.expBuf[:0], max(expected.Milliseconds(), 1), 10)
	s.headers.Set(hExpectedRQ, s.expBuf)
}

// Local reply bodies after retries: Envoy says the reset reason is the
// latest one.
var retriedBodies = func() map[string][]byte {
	const plain = "before headers. reset reason: "
	m := map[string][]byte{}
	for _, b := range [][]byte{bodyConnectFailure, bodyReset, bodyProtocol, bodyOverflow, bodyRefused} {
		i := bytes.Index(b, []byte(plain))
		m[string(b)] = []byte(string(b[:i]) + "before headers. retried and the latest reset reason: " + string(b[i+len(plain):]))
	}
	return m
}()

// resetBody returns the local reply body for an upstream failure: after a
// retry, the "retried and the latest reset reason" variant.
func (s *stream) resetBody(b []byte) []byte {
	if s.tries.n > 0 {
		if r, ok := retriedBodies[string(b)]; ok {
			return r
		}
	}
	return b
}

// connErr classifies a failure to get an upstream connection, keeping the
// transport failure reason of a failed TLS handshake for the reply.
func (s *stream) connErr(err error) upstreamErr {
	s.tlsFail = upstream.TransportFailure(err)
	return getErr(err)
}

// classify is connErr for an HTTP/2 upstream attempt's error.
func (s *stream) classify(err error) upstreamErr {
	if s.tlsFail = upstream.TransportFailure(err); s.tlsFail != "" {
		return upConnect
	}
	return classify(err)
}

// connectFailureBody is the local reply body of a connection failure:
// after a failed TLS handshake it carries Envoy's transport failure
// reason, which also goes into the response code details.
func (s *stream) connectFailureBody() []byte {
	if s.tlsFail == "" {
		return s.resetBody(bodyConnectFailure)
	}
	retried := ""
	if s.tries.n > 0 {
		retried = "retried and the latest "
	}
	s.details = "upstream_reset_before_response_started{connection_failure," + strings.ReplaceAll(s.tlsFail, " ", "_") + "}"
	return []byte("upstream connect error or disconnect/reset before headers. " + retried +
		"reset reason: connection failure, transport failure reason: " + s.tlsFail)
}

// isRefusedStream reports an HTTP/2 upstream's REFUSED_STREAM reset. The
// transport retries a refused request without a body itself; for one with
// a body it reports the reset only in its error's text.
func isRefusedStream(err error) bool {
	var se http2.StreamError
	if errors.As(err, &se) {
		return se.Code == http2.ErrCodeRefusedStream
	}
	return strings.Contains(err.Error(), "stream error: stream ID") && strings.Contains(err.Error(), "REFUSED_STREAM")
}

// reportStatus tells the current host's outlier detection the status of
// its response (each attempt's: a retried one counts too).
func (s *stream) reportStatus(code int) {
	if s.host != nil {
		s.host.Pool.ReportStatus(code)
	}
}
