package upstream

import (
	"net/netip"
	"sync"
	"time"

	"github.com/nodemesh/nodemesh/proxylib/resource"
)

// OrigDstCleanup is how long an ORIGINAL_DST host may stay unused before
// its pool is closed (Envoy's default cleanup_interval).
const OrigDstCleanup = 5 * time.Second

// maxOrigDstHosts bounds the hosts one ORIGINAL_DST cluster keeps; beyond
// it, requests still get a host, it just is not kept for reuse.
const maxOrigDstHosts = 16384

type origKey struct {
	dst    netip.AddrPort
	http2  bool
	source netip.Addr // original_src binding, or invalid
}

// origDst holds the hosts an ORIGINAL_DST cluster created on demand.
type origDst struct {
	cfg     *resource.Cluster
	mark    func(fd uintptr) error
	b       *Breaker
	secrets Secrets

	mu     sync.Mutex
	hosts  map[origKey]*Host
	timer  *time.Timer
	closed bool
}

func newOrigDst(cfg *resource.Cluster, mark func(fd uintptr) error, b *Breaker, secrets Secrets) *origDst {
	return &origDst{cfg: cfg, mark: mark, b: b, secrets: secrets, hosts: map[origKey]*Host{}}
}

// IsOriginalDst reports whether hosts are picked by original destination.
func (c *Cluster) IsOriginalDst() bool { return c.orig != nil }

// PickOriginal returns the host for an original destination: the
// connection's own (restored) local address. http2 selects an h2c pool
// (use_downstream_protocol_config on an HTTP/2 stream, or an HTTP/2
// cluster). source, when valid, binds upstream sockets to the client's
// address with srcMark (original_src).
func (c *Cluster) PickOriginal(dst netip.AddrPort, http2 bool, source netip.Addr, srcMark uint32) *Host {
	if c.orig == nil || !dst.IsValid() {
		return nil
	}
	if !c.Config.DownstreamProtocol {
		http2 = c.Config.HTTP2
	}
	return c.orig.host(origKey{dst: netip.AddrPortFrom(dst.Addr().Unmap(), dst.Port()), http2: http2, source: source}, srcMark)
}

func (o *origDst) host(k origKey, srcMark uint32) *Host {
	o.mu.Lock()
	defer o.mu.Unlock()
	if h := o.hosts[k]; h != nil {
		return h
	}
	addr := addrString(k.dst)
	p := newPool(addr, k.http2, dialOptions{mark: o.mark, bind: o.cfg.Bind, source: k.source, srcMark: srcMark,
		tls: newClientTLS(o.cfg, o.secrets, k.http2)}, o.b, o.cfg.IdleTimeout)
	p.configure(o.cfg)
	h := &Host{Addr: addr, Weight: 1, Pool: p}
	if o.closed || len(o.hosts) >= maxOrigDstHosts {
		p.close() // serves this request, keeps nothing
		return h
	}
	o.hosts[k] = h
	if o.timer == nil {
		o.timer = time.AfterFunc(OrigDstCleanup, o.sweep)
	}
	return h
}

// sweep closes hosts without requests in flight that were not used for a
// cleanup interval.
func (o *origDst) sweep() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.timer = nil
	if o.closed {
		return
	}
	cutoff := time.Now().Add(-OrigDstCleanup).UnixNano()
	for k, h := range o.hosts {
		if h.Pool.Active() == 0 && h.Pool.lastUsed.Load() < cutoff {
			delete(o.hosts, k)
			h.Pool.close()
		}
	}
	if len(o.hosts) > 0 {
		o.timer = time.AfterFunc(OrigDstCleanup, o.sweep)
	}
}

func (o *origDst) close() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.closed = true
	if o.timer != nil {
		o.timer.Stop()
		o.timer = nil
	}
	for k, h := range o.hosts {
		delete(o.hosts, k)
		h.Pool.close()
	}
}

// Hosts returns how many original destinations the cluster keeps pools for.
func (c *Cluster) OrigHosts() int {
	if c.orig == nil {
		return 0
	}
	c.orig.mu.Lock()
	defer c.orig.mu.Unlock()
	return len(c.orig.hosts)
}
