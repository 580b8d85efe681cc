package upstream

import (
	"context"
	"crypto/tls"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/net/http2"
	"golang.org/x/sys/unix"

	"github.com/nodemesh/nodemesh/proxylib/http1"
	"github.com/nodemesh/nodemesh/proxylib/resource"
	"github.com/nodemesh/nodemesh/proxylib/sockio"
)

// Buffer sizes of an upstream HTTP/1.1 connection.
const (
	ReadBufferSize  = 16 << 10
	WriteBufferSize = 16 << 10
	maxIdlePerHost  = 1024
)

// Manager owns every endpoint pool and builds clusters over them.
type Manager struct {
	mu    sync.Mutex
	pools map[poolKey]*Pool
	mark  func(fd uintptr) error
	origs map[*origDst]bool
}

type poolKey struct {
	addr  string
	http2 bool
	bind  string // fingerprint of the cluster's bind options
}

// NewManager returns an empty manager. mark, when non-nil, is applied to
// every upstream socket before it connects (e.g. SO_MARK).
func NewManager(mark func(fd uintptr) error) *Manager {
	return &Manager{pools: map[poolKey]*Pool{}, mark: mark, origs: map[*origDst]bool{}}
}

// Build makes a cluster from its configuration and endpoints (nil endpoints
// make an empty cluster).
func (m *Manager) Build(cfg *resource.Cluster, eps *resource.Endpoints) *Cluster {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch cfg.Kind {
	case resource.ClusterOriginalDst:
		c := newCluster(cfg, nil)
		c.orig = newOrigDst(cfg, m.mark)
		m.origs[c.orig] = true
		return c
	case resource.ClusterStatic:
		eps = cfg.Static
	}
	var hosts []*Host
	if eps != nil {
		for _, e := range eps.Endpoints {
			k := poolKey{e.Address, cfg.HTTP2, bindKey(cfg.Bind)}
			p := m.pools[k]
			if p == nil {
				p = newPool(e.Address, cfg.HTTP2, dialOptions{mark: m.mark, bind: cfg.Bind})
				m.pools[k] = p
			}
			p.connectTimeout.Store(int64(cfg.ConnectTimeout))
			hosts = append(hosts, &Host{Addr: e.Address, Weight: e.Weight, Health: e.Health, Pool: p})
		}
	}
	return newCluster(cfg, hosts)
}

// Retain closes the pools no cluster in live uses.
func (m *Manager) Retain(live map[string]*Cluster) {
	used := map[*Pool]bool{}
	liveOrig := map[*origDst]bool{}
	for _, c := range live {
		for _, h := range c.Hosts {
			used[h.Pool] = true
		}
		if c.orig != nil {
			liveOrig[c.orig] = true
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for o := range m.origs {
		if !liveOrig[o] {
			delete(m.origs, o)
			o.close()
		}
	}
	for k, p := range m.pools {
		if !used[p] {
			delete(m.pools, k)
			p.close()
		}
	}
}

// Close closes every pool.
func (m *Manager) Close() { m.Retain(nil) }

// Pool holds the connections to one endpoint.
type Pool struct {
	Addr  string
	HTTP2 bool

	connectTimeout atomic.Int64
	active         atomic.Int64
	opts           dialOptions
	lastUsed       atomic.Int64 // unix nanoseconds of the last Begin

	mu     sync.Mutex
	idle   []*Conn
	closed bool

	h2 *http2.Transport
}

func newPool(addr string, h2 bool, opts dialOptions) *Pool {
	p := &Pool{Addr: addr, HTTP2: h2, opts: opts}
	if h2 {
		p.h2 = &http2.Transport{
			AllowHTTP:          true,
			DisableCompression: true,
			DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
				return p.dial(ctx)
			},
			// Detect dead connections the way Envoy's keepalive would.
			ReadIdleTimeout: 30 * time.Second,
			PingTimeout:     15 * time.Second,
		}
	}
	return p
}

// Active is the number of requests in flight to this endpoint.
func (p *Pool) Active() int64 { return p.active.Load() }

// Begin and End count a request for least-request balancing.
func (p *Pool) Begin() { p.BeginAt(time.Now()) }

// BeginAt is Begin for a request that read the clock already (now).
func (p *Pool) BeginAt(now time.Time) {
	p.active.Add(1)
	p.lastUsed.Store(now.UnixNano())
}

// End ends a request begun with Begin.
func (p *Pool) End() { p.active.Add(-1) }

// H2 is the endpoint's h2c transport (HTTP/2 pools only).
func (p *Pool) H2() *http2.Transport { return p.h2 }

func (p *Pool) dial(ctx context.Context) (net.Conn, error) {
	return p.opts.dial(ctx, p.Addr, time.Duration(p.connectTimeout.Load()))
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
	armed     time.Time
	armedFor  time.Duration

	// The reuse probe, built once per connection so probing allocates
	// nothing: probeFn peeks into peek and sets clean.
	probeFn func(fd uintptr)
	peek    [1]byte
	clean   bool
}

// Get returns an idle connection (reused=true) or dials a new one.
func (p *Pool) Get(ctx context.Context) (c *Conn, reused bool, err error) {
	return p.GetAt(ctx, time.Now())
}

// GetAt is Get at time now (a recent clock reading). Every idle
// connection is probed before reuse: one that has anything to read (bytes
// the server sent after the response it was asked for, or its close) is
// closed, never handed out, because those bytes would be taken for the
// next request's response.
func (p *Pool) GetAt(ctx context.Context, now time.Time) (c *Conn, reused bool, err error) {
	for {
		p.mu.Lock()
		// A closed pool still serves requests routed to it before its
		// endpoint left the configuration: it dials, it just keeps nothing.
		n := len(p.idle)
		if n == 0 {
			p.mu.Unlock()
			break
		}
		c = p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		if c.probe() {
			return c, true, nil
		}
		c.Conn.Close()
	}
	nc, err := p.dial(ctx)
	if err != nil {
		return nil, false, err
	}
	c = &Conn{Conn: sockio.Wrap(nc), pool: p, Buf: make([]byte, ReadBufferSize), Out: make([]byte, 0, WriteBufferSize)}
	if sc, ok := nc.(syscall.Conn); ok {
		c.raw, _ = sc.SyscallConn()
	}
	c.probeFn = c.probeFD
	return c, false, nil
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
	return c.clean
}

func (c *Conn) probeFD(fd uintptr) {
	_, _, errno := syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&c.peek[0])), 1,
		uintptr(unix.MSG_PEEK|unix.MSG_DONTWAIT), 0, 0)
	c.clean = errno == syscall.EAGAIN
}

// Put returns a connection whose exchange completed cleanly.
func (p *Pool) Put(c *Conn) { p.PutAt(c, time.Now()) }

// PutAt is Put with the time the connection became idle; a time read
// earlier in the exchange only makes an earlier probe more likely.
func (p *Pool) PutAt(c *Conn, idleSince time.Time) {
	c.R, c.W = 0, 0
	c.Out = c.Out[:0]
	c.idleSince = idleSince
	p.mu.Lock()
	if p.closed || len(p.idle) >= maxIdlePerHost || c.raw == nil {
		p.mu.Unlock()
		c.Conn.Close()
		return
	}
	p.idle = append(p.idle, c)
	p.mu.Unlock()
}

// Discard closes a connection that cannot be reused.
func (c *Conn) Discard() { c.Conn.Close() }

// Pool returns the pool c belongs to.
func (c *Conn) Pool() *Pool { return c.pool }

func (p *Pool) close() {
	p.mu.Lock()
	p.closed = true
	idle := p.idle
	p.idle = nil
	p.mu.Unlock()
	for _, c := range idle {
		c.Conn.Close()
	}
	if p.h2 != nil {
		p.h2.CloseIdleConnections()
	}
}

// Deadline returns the read deadline for a response expected within d of
// now, and false when the armed deadline is within 1% of it (re-arming a
// runtime timer per request is avoided). d <= 0 clears the deadline.
func (c *Conn) Deadline(now time.Time, d time.Duration) (time.Time, bool) {
	if d <= 0 {
		if c.armed.IsZero() {
			return time.Time{}, false
		}
		c.armed, c.armedFor = time.Time{}, 0
		return time.Time{}, true
	}
	want := now.Add(d)
	if c.armedFor == d && !c.armed.IsZero() && want.Sub(c.armed) < d/100 {
		return time.Time{}, false
	}
	c.armed, c.armedFor = want, d
	return want, true
}

// DeadlineWithin returns a read deadline max after now, and false when the
// armed deadline already lies between min and max after now: a busy
// connection re-arms its timer at most once per max-min.
func (c *Conn) DeadlineWithin(now time.Time, min, max time.Duration) (time.Time, bool) {
	if !c.armed.IsZero() {
		if left := c.armed.Sub(now); left >= min && left <= max {
			return time.Time{}, false
		}
	}
	c.armed, c.armedFor = now.Add(max), max
	return c.armed, true
}

// PeerClosed reports, without blocking, whether the upstream closed or
// reset the connection (a read would return end of stream or an error).
func (c *Conn) PeerClosed() bool {
	if c.raw == nil {
		return false
	}
	closed := false
	var b [1]byte
	_ = c.raw.Control(func(fd uintptr) {
		n, _, err := unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
		closed = (err == nil && n == 0) || (err != nil && err != unix.EAGAIN && err != unix.EWOULDBLOCK)
	})
	return closed
}
