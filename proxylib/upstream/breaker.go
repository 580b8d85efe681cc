package upstream

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nodemesh/nodemesh/proxylib/resource"
)

// Errors of a request the cluster's circuit breakers refused or made wait.
var (
	// ErrOverflow: max_requests or max_pending_requests was reached, or
	// (h2c and tcp_proxy, which do not queue) max_connections.
	ErrOverflow = errors.New("upstream circuit breaker overflow")
	// ErrPendingTimeout: the request waited for a connection longer than
	// it may wait (its route timeout).
	ErrPendingTimeout = errors.New("waiting for an upstream connection timed out")
)

// Breaker is one cluster's circuit breakers (Envoy's thresholds of
// priority DEFAULT) and the counters Envoy keeps for them. Every version
// of a cluster, and every pool of it, shares one Breaker, so an update
// neither resets the counts nor lets a burst through.
//
// Connections count from dial to close, idle ones included, as in
// Envoy. A request that finds no idle connection is pending until it has
// one, while it dials too; when max_connections is reached it waits in a
// FIFO queue for a connection its pool releases, or for a slot another
// pool's close frees. As in Envoy, a pool with no connection at all may
// always dial one (counted as a connection overflow), so one endpoint's
// idle connections never starve another's requests.
type Breaker struct {
	maxConns, maxPending, maxRequests, maxRetries atomic.Int64

	conns    atomic.Int64 // open connections
	requests atomic.Int64 // requests in flight
	pending  atomic.Int64 // requests without a connection yet
	retries  atomic.Int64 // retries scheduled or in flight
	nwait    atomic.Int64 // len(waiters), read without the lock

	cxOverflow        atomic.Uint64
	rqPendingOverflow atomic.Uint64

	rqRetry                atomic.Uint64
	rqRetryOverflow        atomic.Uint64
	rqRetrySuccess         atomic.Uint64
	rqRetryLimitExceeded   atomic.Uint64
	retryOrShadowAbandoned atomic.Uint64

	mu      sync.Mutex
	waiters []*waiter
}

// waiter is a request queued for a connection: it receives an idle
// connection of its pool, or nil when a connection slot was reserved for
// it.
type waiter struct {
	pool *Pool
	ch   chan *Conn
}

func newBreaker(t resource.Thresholds) *Breaker {
	b := &Breaker{}
	b.set(t)
	return b
}

func (b *Breaker) set(t resource.Thresholds) {
	b.maxConns.Store(int64(t.MaxConnections))
	b.maxPending.Store(int64(t.MaxPendingRequests))
	b.maxRequests.Store(int64(t.MaxRequests))
	b.maxRetries.Store(int64(t.MaxRetries))
	// A raised limit may admit queued requests now.
	b.grant(nil)
}

// BreakerStats are a cluster's circuit breaker counters and gauges, named
// after Envoy's cluster statistics.
type BreakerStats struct {
	UpstreamCxOverflow        uint64 `json:"upstream_cx_overflow"`
	UpstreamRqPendingOverflow uint64 `json:"upstream_rq_pending_overflow"`
	UpstreamCxActive          int64  `json:"upstream_cx_active"`
	UpstreamRqActive          int64  `json:"upstream_rq_active"`
	UpstreamRqPendingActive   int64  `json:"upstream_rq_pending_active"`
	// Router retries and mirrors (Envoy's cluster statistics of the same
	// names).
	UpstreamRqRetry              uint64 `json:"upstream_rq_retry"`
	UpstreamRqRetryOverflow      uint64 `json:"upstream_rq_retry_overflow"`
	UpstreamRqRetrySuccess       uint64 `json:"upstream_rq_retry_success"`
	UpstreamRqRetryLimitExceeded uint64 `json:"upstream_rq_retry_limit_exceeded"`
	RetryOrShadowAbandoned       uint64 `json:"retry_or_shadow_abandoned"`
}

// Stats returns the current counters.
func (b *Breaker) Stats() BreakerStats {
	return BreakerStats{
		UpstreamCxOverflow:           b.cxOverflow.Load(),
		UpstreamRqPendingOverflow:    b.rqPendingOverflow.Load(),
		UpstreamCxActive:             b.conns.Load(),
		UpstreamRqActive:             b.requests.Load(),
		UpstreamRqPendingActive:      b.pending.Load(),
		UpstreamRqRetry:              b.rqRetry.Load(),
		UpstreamRqRetryOverflow:      b.rqRetryOverflow.Load(),
		UpstreamRqRetrySuccess:       b.rqRetrySuccess.Load(),
		UpstreamRqRetryLimitExceeded: b.rqRetryLimitExceeded.Load(),
		RetryOrShadowAbandoned:       b.retryOrShadowAbandoned.Load(),
	}
}

// StartRetry takes a max_retries slot for a retry the router decided on,
// counting upstream_rq_retry; false (counted as upstream_rq_retry_overflow)
// when max_retries retries are already scheduled or in flight. As in
// Envoy, a retry holds its slot from the decision until the router's next
// retry decision for the request, or the request's end: EndRetry.
func (b *Breaker) StartRetry() bool {
	if b.retries.Add(1) > b.maxRetries.Load() {
		b.retries.Add(-1)
		b.rqRetryOverflow.Add(1)
		return false
	}
	b.rqRetry.Add(1)
	return true
}

// EndRetry releases the slot of a retry StartRetry admitted; success says
// the retry's outcome needed no further retry (upstream_rq_retry_success).
func (b *Breaker) EndRetry(success bool) {
	b.retries.Add(-1)
	if success {
		b.rqRetrySuccess.Add(1)
	}
}

// RetryLimitExceeded counts a retriable outcome with no retry left
// (upstream_rq_retry_limit_exceeded).
func (b *Breaker) RetryLimitExceeded() { b.rqRetryLimitExceeded.Add(1) }

// Abandoned counts a request whose body outgrew the buffer limit, so it
// can be neither retried nor mirrored (retry_or_shadow_abandoned).
func (b *Breaker) Abandoned() { b.retryOrShadowAbandoned.Add(1) }

// admit counts a request against max_requests.
func (b *Breaker) admit() bool {
	if b.requests.Add(1) > b.maxRequests.Load() {
		b.requests.Add(-1)
		b.rqPendingOverflow.Add(1)
		return false
	}
	return true
}

// startPending counts a request without a connection against
// max_pending_requests.
func (b *Breaker) startPending() bool {
	if b.pending.Add(1) > b.maxPending.Load() {
		b.pending.Add(-1)
		b.rqPendingOverflow.Add(1)
		return false
	}
	return true
}

// reserve takes a connection slot for a dial from p; false when
// max_connections is reached and p already has connections.
func (b *Breaker) reserve(p *Pool) bool {
	if b.conns.Add(1) <= b.maxConns.Load() {
		p.open.Add(1)
		return true
	}
	b.cxOverflow.Add(1)
	if p.open.Load() == 0 {
		p.open.Add(1)
		return true
	}
	b.conns.Add(-1)
	return false
}

// release frees the slot of a closed connection of p and hands it to the
// first queued request if one waits.
func (b *Breaker) release(p *Pool) {
	p.open.Add(-1)
	b.conns.Add(-1)
	if b.nwait.Load() > 0 {
		b.grant(p)
	}
}

// grant reserves slots for queued requests while max_connections allows.
// When emptied is a pool left without connections, its first queued
// request gets a slot regardless (the pool-without-connections rule), so
// it does not wait for other pools' idle connections.
func (b *Breaker) grant(emptied *Pool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for len(b.waiters) > 0 {
		if b.conns.Add(1) > b.maxConns.Load() {
			b.conns.Add(-1)
			break
		}
		w := b.waiters[0]
		b.removeAt(0)
		w.pool.open.Add(1)
		w.ch <- nil
	}
	if emptied == nil || emptied.open.Load() != 0 {
		return
	}
	for i, w := range b.waiters {
		if w.pool == emptied {
			b.removeAt(i)
			b.conns.Add(1)
			b.cxOverflow.Add(1)
			emptied.open.Add(1)
			w.ch <- nil
			return
		}
	}
}

// handoff gives c, just released by its exchange, to the first request
// queued on c's pool; false when none waits.
func (b *Breaker) handoff(c *Conn) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	for i, w := range b.waiters {
		if w.pool == c.pool {
			b.removeAt(i)
			w.ch <- c
			return true
		}
	}
	return false
}

func (b *Breaker) removeAt(i int) {
	copy(b.waiters[i:], b.waiters[i+1:])
	b.waiters[len(b.waiters)-1] = nil
	b.waiters = b.waiters[:len(b.waiters)-1]
	b.nwait.Store(int64(len(b.waiters)))
}

// wait queues a request of p until it gets an idle connection (returned)
// or a reserved slot (nil, nil), or until ctx ends or wait passes (wait
// <= 0: no bound but ctx).
//
// Lock order is p.mu, then b.mu. Checking p's idle list and queueing under
// p.mu, as PutAt hands off or pools under it, means a connection released
// meanwhile is either seen here or handed to this request, never left
// idle while it waits.
func (b *Breaker) wait(ctx context.Context, p *Pool, wait time.Duration) (*Conn, error) {
	w := &waiter{pool: p, ch: make(chan *Conn, 1)}
	p.mu.Lock()
	if n := len(p.idle); n > 0 {
		c := p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		return c, nil
	}
	b.mu.Lock()
	b.waiters = append(b.waiters, w)
	b.nwait.Store(int64(len(b.waiters)))
	b.mu.Unlock()
	p.mu.Unlock()
	// A slot may have been freed between the failed reservation and the
	// queueing, or p's last connection closed: grant re-checks under the
	// lock.
	b.grant(p)
	// Idle connections an event loop holds (detached) are not in p's
	// list: their loops give them back, to this request first.
	p.reclaim()
	var timeout <-chan time.Time
	if wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		timeout = t.C
	}
	var err error
	select {
	case c := <-w.ch:
		return c, nil
	case <-ctx.Done():
		err = ctx.Err()
	case <-timeout:
		err = ErrPendingTimeout
	}
	b.mu.Lock()
	for i, x := range b.waiters {
		if x == w {
			b.removeAt(i)
			b.mu.Unlock()
			return nil, err
		}
	}
	b.mu.Unlock()
	// Granted while giving up: the grant is in the channel; use it.
	return <-w.ch, nil
}

// slotConn releases its connection slot once, when closed (h2c and
// tcp_proxy connections, which the pool does not close itself).
type slotConn struct {
	net.Conn
	b    *Breaker
	p    *Pool
	done atomic.Bool
}

func (c *slotConn) Close() error {
	err := c.Conn.Close()
	if c.done.CompareAndSwap(false, true) {
		c.b.release(c.p)
	}
	return err
}

// NetConn returns the wrapped connection (for splice and CloseWrite).
func (c *slotConn) NetConn() net.Conn { return c.Conn }

// CloseWrite half-closes the wrapped connection where it can.
func (c *slotConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}
