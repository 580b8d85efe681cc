package upstream

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/net/http2"
	"golang.org/x/sys/unix"

	"github.com/nodemesh/nodemesh/proxylib/connbuf"
	"github.com/nodemesh/nodemesh/proxylib/http1"
	"github.com/nodemesh/nodemesh/proxylib/resource"
	"github.com/nodemesh/nodemesh/proxylib/sockio"
)

// Buffer sizes of an upstream HTTP/1.1 connection: lent buffers (package
// connbuf), held while the connection is handed out and given back while
// it idles in its pool.
const (
	ReadBufferSize  = connbuf.Size
	WriteBufferSize = connbuf.Size
	maxIdlePerHost  = 1024
)

// Pool holds the connections to one endpoint.
type Pool struct {
	Addr  string
	HTTP2 bool

	connectTimeout atomic.Int64
	idleTimeout    atomic.Int64 // idle pooled connections close after this (0: never)
	bufLimit       atomic.Int64 // per_connection_buffer_limit_bytes (0: no limit)
	active         atomic.Int64
	open           atomic.Int64 // connections dialed and not closed
	opts           dialOptions
	lastUsed       atomic.Int64 // unix nanoseconds of the last Begin
	b              *Breaker

	mu         sync.Mutex
	idle       []*Conn // oldest first
	closed     bool
	sweep      *time.Timer
	sweepArmed bool

	h2 *http2.Transport

	odState // outlier detection (outlier.go)

	// parent is the endpoint's pool when this one binds connections to a
	// client's address (srcbind.go): requests and outcomes count there.
	parent *Pool
	bound  bound // this endpoint's original-source pools

	// reclaimers are called when a request queues for a connection of
	// the pool (OnQueue): event loops holding detached idle connections
	// of it give them back.
	reclaimMu  sync.Mutex
	reclaimers atomic.Pointer[[]reclaimer]
}

type reclaimer struct {
	key any
	fn  func()
}

func newPool(addr string, h2 bool, opts dialOptions, b *Breaker, idle time.Duration) *Pool {
	p := &Pool{Addr: addr, HTTP2: h2, opts: opts, b: b}
	if h2 {
		p.h2 = &http2.Transport{
			AllowHTTP:          true,
			DisableCompression: true,
			DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
				return p.dialSlot(ctx)
			},
			// A response's header list is held to the HTTP/1.1 upstream
			// bound (Envoy's max_response_headers_kb default, 60 KiB)
			// instead of the transport's 10 MiB: HPACK lets a few bytes on
			// the wire decode to that much. Beyond it the request fails
			// (a 503 for the client) and nothing is forwarded.
			MaxHeaderListSize: http1.MaxHeadBytes,
			// Detect dead connections the way Envoy's keepalive would.
			ReadIdleTimeout: 30 * time.Second,
			PingTimeout:     15 * time.Second,
			IdleConnTimeout: idle,
		}
	}
	return p
}

// configure takes the settings of a (new version of the) cluster.
func (p *Pool) configure(cfg *resource.Cluster) {
	p.connectTimeout.Store(int64(cfg.ConnectTimeout))
	p.idleTimeout.Store(int64(cfg.IdleTimeout))
	p.bufLimit.Store(int64(cfg.BufferLimit))
}

// dialSlot dials an h2c connection under max_connections. The transport
// has no pending queue, so beyond the limit the dial fails with
// ErrOverflow (unless the pool has no connection at all).
func (p *Pool) dialSlot(ctx context.Context) (net.Conn, error) {
	if !p.b.reserve(p) {
		return nil, ErrOverflow
	}
	nc, err := p.dial(ctx)
	if err != nil {
		p.b.release(p)
		return nil, err
	}
	return &slotConn{Conn: nc, b: p.b, p: p}, nil
}

// Active is the number of requests in flight to this endpoint.
func (p *Pool) Active() int64 { return p.active.Load() }

// Breaker returns the circuit breakers of the pool's cluster.
func (p *Pool) Breaker() *Breaker { return p.b }

// Admit counts a request against the cluster's max_requests; false means
// overflow (counted as upstream_rq_pending_overflow, as Envoy does). An
// admitted request calls Done when it ends.
func (p *Pool) Admit() bool { return p.b.admit() }

// Done ends a request Admit admitted.
func (p *Pool) Done() { p.b.requests.Add(-1) }

// Begin and End count a request for least-request balancing.
func (p *Pool) Begin() { p.BeginAt(time.Now()) }

// BeginAt is Begin for a request that read the clock already (now).
func (p *Pool) BeginAt(now time.Time) {
	p.active.Add(1)
	p.lastUsed.Store(now.UnixNano())
	if p.parent != nil {
		p.parent.BeginAt(now)
	}
}

// End ends a request begun with Begin.
func (p *Pool) End() {
	p.active.Add(-1)
	if p.parent != nil {
		p.parent.End()
	}
}

// Scheme is the :scheme of HTTP/2 requests to the endpoint: "https" when
// the cluster connects with TLS.
func (p *Pool) Scheme() string {
	if p.opts.tls != nil {
		return "https"
	}
	return "http"
}

// H2 is the endpoint's h2c transport (HTTP/2 pools only).
func (p *Pool) H2() *http2.Transport { return p.h2 }

// dialBy dials with the connect ending at by at the latest (zero: no
// bound but ctx's and the connect timeout).
func (p *Pool) dialBy(ctx context.Context, by time.Time) (net.Conn, error) {
	if by.IsZero() {
		return p.dial(ctx)
	}
	ctx, cancel := context.WithDeadline(ctx, by)
	defer cancel()
	return p.dial(ctx)
}

func (p *Pool) dial(ctx context.Context) (net.Conn, error) {
	c, err := p.opts.dial(ctx, p.Addr, time.Duration(p.connectTimeout.Load()))
	// A dial the client's going away cancelled says nothing about the
	// endpoint.
	if err == nil || ctx.Err() == nil {
		p.reportConnect(err == nil)
	}
	return c, err
}

// Conn is a pooled HTTP/1.1 upstream connection with its buffers.
type Conn struct {
	net.Conn
	pool *Pool
	raw  syscall.RawConn

	Buf  []byte // read buffer; Buf[R:W] holds unread bytes
	R, W int
	Out  []byte // write buffer, reset per request

	Resp http1.Response

	idleSince time.Time
	rdl       sockio.LazyDeadline // the read deadline armed on the connection
	closed    bool

	// Waited reports that the request queued for this connection (at
	// max_connections): a clock reading taken before GetAt is stale.
	Waited bool

	// The reuse probe, built once per connection so probing allocates
	// nothing: probeFn peeks into peek and sets clean.
	probeFn func(fd uintptr)
	peek    [1]byte
	clean   bool
	tls     *tls.Conn // the TLS layer of a TLS connection

	// fd is the socket of a detached connection (detach.go), owned by c
	// until closed (then -1); meaningless unless detached.
	fd       int
	detached bool
}

// Get returns an idle connection (reused=true) or dials a new one; see
// GetAt.
func (p *Pool) Get(ctx context.Context, wait time.Duration) (c *Conn, reused bool, err error) {
	return p.GetAt(ctx, time.Now(), wait)
}

// GetAt is Get at time now (a recent clock reading). Every idle
// connection is probed before reuse: one that has anything to read (bytes
// the server sent after the response it was asked for, or its close) is
// closed, never handed out, because those bytes would be taken for the
// next request's response. Without an idle connection the request is
// pending (max_pending_requests, else ErrOverflow) until it has one: it
// dials, or, at max_connections, waits for one for at most wait (0: until
// ctx ends; then ErrPendingTimeout).
func (p *Pool) GetAt(ctx context.Context, now time.Time, wait time.Duration) (c *Conn, reused bool, err error) {
	return p.GetBy(ctx, now, wait, time.Time{})
}

// GetBy is GetAt whose dial, if it has to dial, ends at by (zero: no
// bound but ctx's). The deadline's context is made only for a dial, so a
// request served by an idle or a released connection allocates nothing
// for it.
func (p *Pool) GetBy(ctx context.Context, now time.Time, wait time.Duration, by time.Time) (c *Conn, reused bool, err error) {
	if c := p.GetIdle(now); c != nil {
		return c, true, nil
	}
	b := p.b
	if !b.startPending() {
		return nil, false, ErrOverflow
	}
	defer b.pending.Add(-1)
	for !b.reserve(p) {
		c, err := b.wait(ctx, p, wait)
		if err != nil {
			return nil, false, err
		}
		if c == nil {
			break // a slot was reserved for this request
		}
		if c.probe() {
			c.Waited = true
			c.takeBufs()
			return c, true, nil
		}
		c.close()
	}
	nc, err := p.dialBy(ctx, by)
	if err != nil {
		b.release(p)
		return nil, false, err
	}
	c = &Conn{pool: p}
	c.takeBufs()
	c.setConn(nc)
	return c, false, nil
}

// setConn makes nc, just dialed or attached again, c's connection: plain
// sockets read and write through sockio, TLS through crypto/tls, and the
// socket under either is what the reuse probe peeks.
func (c *Conn) setConn(nc net.Conn) {
	c.tls = nil
	if tc, ok := nc.(*tls.Conn); ok {
		// TLS reads and writes go through crypto/tls; the raw socket is
		// only probed.
		c.Conn, c.tls = tc, tc
		nc = tc.NetConn()
	} else {
		c.Conn = sockio.Wrap(nc)
	}
	c.raw = nil
	if sc, ok := nc.(syscall.Conn); ok {
		c.raw, _ = sc.SyscallConn()
	}
	if c.probeFn == nil {
		c.probeFn = c.probeFD
	}
}

// GetIdle returns an idle connection that passed GetAt's probe, or nil
// when there is none: GetAt without the wait, for callers that make the
// context of a wait only when they have to.
func (p *Pool) GetIdle(now time.Time) *Conn {
	c := p.popIdle(now)
	if c != nil {
		c.Waited = false
		c.takeBufs()
	}
	return c
}

// popIdle returns the newest idle connection that passes the probe and
// is within the idle timeout, closing those that fail.
func (p *Pool) popIdle(now time.Time) *Conn {
	for {
		p.mu.Lock()
		// A closed pool still serves requests routed to it before its
		// endpoint left the configuration: it dials, it just keeps nothing.
		n := len(p.idle)
		if n == 0 {
			p.mu.Unlock()
			return nil
		}
		c := p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		if p.IdleFresh(c.idleSince, now) && c.probe() {
			return c
		}
		c.close()
	}
}

// probe reports whether an idle connection has nothing to read: no
// bytes, no end of stream, no error. It costs one non-blocking peek per
// reuse, made without the runtime's blocking-syscall bookkeeping; the
// runtime poller cannot answer instead, because every read session resets
// the readiness an idle connection may have collected. A connection that
// cannot be probed is never reused.
func (c *Conn) probe() bool {
	if c.raw == nil {
		return false
	}
	c.clean = false
	if err := c.raw.Control(c.probeFn); err != nil {
		return false
	}
	if c.clean && c.tls != nil {
		return c.probeTLS()
	}
	return c.clean
}

// probeTLS reports whether the TLS layer holds nothing read ahead of the
// socket: a read that cannot wait (its deadline passed) may still return
// a record crypto/tls buffered, which makes the connection unusable.
func (c *Conn) probeTLS() bool {
	_ = c.tls.SetReadDeadline(time.Unix(1, 0))
	n, err := c.tls.Read(c.peek[:])
	_ = c.tls.SetReadDeadline(time.Time{})
	c.rdl.Forget()
	var ne net.Error
	return n == 0 && errors.As(err, &ne) && ne.Timeout()
}

func (c *Conn) probeFD(fd uintptr) {
	_, _, errno := syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&c.peek[0])), 1,
		uintptr(unix.MSG_PEEK|unix.MSG_DONTWAIT), 0, 0)
	c.clean = errno == syscall.EAGAIN
}

// Put returns a connection whose exchange completed cleanly.
func (p *Pool) Put(c *Conn) { p.PutAt(c, time.Now()) }

// PutAt is Put with the time the connection became idle (a time read
// earlier in the exchange only makes it expire earlier). A request queued
// for a connection of this pool gets it at once. A detached connection is
// closed, never pooled: Attach it first.
func (p *Pool) PutAt(c *Conn, idleSince time.Time) {
	c.R, c.W = 0, 0
	c.Out = c.Out[:0]
	c.idleSince = idleSince
	if c.raw == nil {
		c.close() // cannot be probed before reuse
		return
	}
	p.mu.Lock()
	if p.b.nwait.Load() > 0 && p.b.handoff(c) {
		p.mu.Unlock()
		return
	}
	if p.closed || len(p.idle) >= maxIdlePerHost {
		p.mu.Unlock()
		c.close()
		return
	}
	c.releaseBufs()
	p.idle = append(p.idle, c)
	if d := time.Duration(p.idleTimeout.Load()); d > 0 && !p.sweepArmed {
		p.armSweep(d)
	}
	p.mu.Unlock()
}

// armSweep schedules sweepIdle after d; p.mu is held.
func (p *Pool) armSweep(d time.Duration) {
	p.sweepArmed = true
	if p.sweep == nil {
		p.sweep = time.AfterFunc(d, p.sweepIdle)
	} else {
		p.sweep.Reset(d)
	}
}

// sweepIdle closes the connections idle for the idle timeout, as Envoy's
// idle timer does, so an unused pool does not hold them open.
func (p *Pool) sweepIdle() {
	now := time.Now()
	d := time.Duration(p.idleTimeout.Load())
	p.mu.Lock()
	p.sweepArmed = false
	n := 0
	if d > 0 {
		for n < len(p.idle) && now.Sub(p.idle[n].idleSince) >= d {
			n++
		}
	}
	expired := make([]*Conn, n)
	copy(expired, p.idle[:n])
	rest := copy(p.idle, p.idle[n:])
	for i := rest; i < len(p.idle); i++ {
		p.idle[i] = nil
	}
	p.idle = p.idle[:rest]
	if d > 0 && rest > 0 && !p.closed {
		p.armSweep(p.idle[0].idleSince.Add(d).Sub(now))
	}
	p.mu.Unlock()
	for _, c := range expired {
		c.close()
	}
}

// takeBufs borrows the read and write buffers if c holds none.
func (c *Conn) takeBufs() {
	if c.Buf == nil {
		c.Buf, c.Out = connbuf.Get(), connbuf.Get()[:0]
	}
}

// releaseBufs gives the buffers of an idle connection back (nothing is
// buffered: R == W == 0) and drops the parsed response's views of them.
// A request queued for a connection is handed one with its buffers
// (handoff), so they are released only when it joins the idle list.
func (c *Conn) releaseBufs() {
	connbuf.Put(c.Buf)
	connbuf.Put(c.Out)
	c.Buf, c.Out = nil, nil
	c.Resp.Reason, c.Resp.Headers = nil, nil
}

// Discard closes a connection that cannot be reused.
func (c *Conn) Discard() { c.close() }

// Abort ends c's socket both ways (sockio.Shutdown) so that the goroutine
// using c, whatever it waits on (a read session's callback included),
// sees the connection fail at once; that goroutine still discards c. It
// may be called from any goroutine, also after c was closed, and never
// blocks; a connection aborted must never be returned to its pool.
//
// A detached connection's Abort is shutdown(2) of its descriptor, which
// only its owner may call, never concurrently with Discard or Attach: a
// descriptor number closed meanwhile may already name another file.
func (c *Conn) Abort() {
	if c.detached {
		c.abortDetached()
		return
	}
	if c.raw != nil {
		_ = sockio.ShutdownRaw(c.raw)
		return
	}
	_ = sockio.Shutdown(c.Conn)
}

// close closes the connection once and frees its connection slot.
func (c *Conn) close() {
	if c.closed {
		return
	}
	c.closed = true
	if c.detached {
		c.closeFD()
	} else {
		c.Conn.Close()
	}
	c.pool.b.release(c.pool)
}

// ReadLimit bounds one read of response body bytes: the cluster's
// per_connection_buffer_limit_bytes when it is below the read buffer.
// The relays write what they read before reading again, so the proxy
// never holds more body bytes of a connection than this.
func (c *Conn) ReadLimit() int {
	if l := c.pool.bufLimit.Load(); l > 0 && l < int64(len(c.Buf)) {
		return int(l)
	}
	return len(c.Buf)
}

// Pool returns the pool c belongs to.
func (c *Conn) Pool() *Pool { return c.pool }

func (p *Pool) close() {
	p.bound.close()
	p.mu.Lock()
	p.closed = true
	idle := p.idle
	p.idle = nil
	if p.sweep != nil {
		p.sweep.Stop()
	}
	p.mu.Unlock()
	for _, c := range idle {
		c.close()
	}
	// Event loops close the idle connections of the pool they hold (their
	// OnQueue functions look at Closed as well as Queued).
	p.reclaim()
	if p.h2 != nil {
		p.h2.CloseIdleConnections()
	}
}

// Deadline returns the read deadline for a response expected within d of
// now, and false when the armed deadline serves already (see
// sockio.LazyDeadline: it never ends the wait early, and at most
// sockio.Slack(d) late; re-arming a runtime timer per request is avoided).
// d <= 0 clears the deadline.
func (c *Conn) Deadline(now time.Time, d time.Duration) (time.Time, bool) {
	return c.rdl.Need(now, d)
}

// DeadlineWithin returns a read deadline max after now, and false when the
// armed deadline already lies between min and max after now: a busy
// connection re-arms its timer at most once per max-min.
func (c *Conn) DeadlineWithin(now time.Time, min, max time.Duration) (time.Time, bool) {
	return c.rdl.Within(now, min, max)
}

// PeerClosed reports, without blocking, whether the upstream closed or
// reset the connection (a read would return end of stream or an error).
func (c *Conn) PeerClosed() bool {
	closed := false
	peek := func(fd uintptr) {
		var b [1]byte
		n, _, err := unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
		closed = (err == nil && n == 0) || (err != nil && err != unix.EAGAIN && err != unix.EWOULDBLOCK)
	}
	switch {
	case c.detached:
		if c.fd >= 0 {
			peek(uintptr(c.fd))
		}
	case c.raw != nil:
		_ = c.raw.Control(peek)
	}
	return closed
}
