package upstream

import (
	"net/netip"
	"sync"
	"time"
)

// maxBoundPerHost bounds the client addresses one endpoint keeps
// original-source pools for; beyond it, a request still gets a pool bound
// to its client, it just is not kept for reuse.
const maxBoundPerHost = 4096

type boundKey struct {
	source netip.Addr
	mark   uint32
}

// bound holds an endpoint's pools of connections bound to client
// addresses (original_src on an EDS or STATIC cluster).
type bound struct {
	mu     sync.Mutex
	hosts  map[boundKey]*Host
	timer  *time.Timer
	closed bool
}

// BindSource returns h as seen from source: the same endpoint, whose
// connections bind to the client's address source (IP_TRANSPARENT) and
// carry srcMark (original_src). Each client address gets a pool of its
// own, so a connection is only ever reused for the client it was opened
// for, and the source port is always the kernel's choice: two upstream
// connections for one downstream connection (an HTTP/1.1 pool) never
// share a 5-tuple with each other or with the client's own connection.
// The returned host is the same for the same (h, source, srcMark) while
// it is in use, so retries' previous_hosts compare hosts by identity.
//
// Outlier detection, least-request balancing and circuit breakers count
// the bound pools as their endpoint: a failure seen from one client ejects
// the endpoint for all of them.
//
// source is not bound, and h itself returned, when it is invalid, a
// loopback address (the kernel does not route loopback sources off the
// host) or the endpoint's own address (a client calling a Service that
// picks the client itself: the endpoint would answer itself, never the
// proxy).
func (c *Cluster) BindSource(h *Host, source netip.Addr, srcMark uint32) *Host {
	if h == nil || c.orig != nil || !bindable(h.Addr, source) {
		return h
	}
	source = source.Unmap()
	p := h.Pool
	k := boundKey{source: source, mark: srcMark}
	b := &p.bound
	b.mu.Lock()
	defer b.mu.Unlock()
	if bh := b.hosts[k]; bh != nil {
		bh.Pool.inherit(p)
		return bh
	}
	opts := p.opts
	opts.source, opts.srcMark = source, srcMark
	sp := newPool(p.Addr, p.HTTP2, opts, p.b, time.Duration(p.idleTimeout.Load()))
	sp.parent = p
	sp.inherit(p)
	bh := &Host{Addr: h.Addr, Weight: h.Weight, Health: h.Health, Pool: sp}
	if b.closed || len(b.hosts) >= maxBoundPerHost {
		sp.close() // serves this request, keeps nothing
		return bh
	}
	if b.hosts == nil {
		b.hosts = map[boundKey]*Host{}
	}
	b.hosts[k] = bh
	if b.timer == nil {
		b.timer = time.AfterFunc(OrigDstCleanup, b.sweep)
	}
	return bh
}

// bindable reports whether connections to addr may bind to the client
// address source (see BindSource for when they may not).
func bindable(addr string, source netip.Addr) bool {
	source = source.Unmap()
	if !source.IsValid() || source.IsLoopback() || source.IsUnspecified() {
		return false
	}
	ap, err := netip.ParseAddrPort(addr)
	// A Unix socket (pipe) has no source address; the client itself would
	// answer itself.
	return err == nil && ap.Addr().Unmap() != source
}

// inherit takes the endpoint pool's current settings (a new version of
// the cluster may have changed them).
func (p *Pool) inherit(from *Pool) {
	p.connectTimeout.Store(from.connectTimeout.Load())
	p.idleTimeout.Store(from.idleTimeout.Load())
	p.bufLimit.Store(from.bufLimit.Load())
}

// BoundHosts is how many client addresses the endpoint of h keeps
// original-source pools for.
func (h *Host) BoundHosts() int {
	b := &h.Pool.bound
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.hosts)
}

// sweep closes bound pools without requests in flight that were not used
// for OrigDstCleanup, as ORIGINAL_DST hosts are.
func (b *bound) sweep() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.timer = nil
	if b.closed {
		return
	}
	cutoff := time.Now().Add(-OrigDstCleanup).UnixNano()
	for k, h := range b.hosts {
		if h.Pool.Active() == 0 && h.Pool.lastUsed.Load() < cutoff {
			delete(b.hosts, k)
			h.Pool.close()
		}
	}
	if len(b.hosts) > 0 {
		b.timer = time.AfterFunc(OrigDstCleanup, b.sweep)
	}
}

// close closes every bound pool; the endpoint's pool is closing.
func (b *bound) close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	if b.timer != nil {
		b.timer.Stop()
		b.timer = nil
	}
	for k, h := range b.hosts {
		delete(b.hosts, k)
		h.Pool.close()
	}
}
