package upstream

import (
	"sync"
	"time"

	"github.com/nodemesh/nodemesh/proxylib/resource"
)

// Manager owns every endpoint pool and builds clusters over them.
type Manager struct {
	mu       sync.Mutex
	pools    map[poolKey]*Pool
	mark     func(fd uintptr) error
	secrets  Secrets
	origs    map[*origDst]bool
	breakers map[string]*Breaker // by cluster name
	// detectors are the outlier detections of the clusters that have one.
	detectors map[string]*detector
}

// Option configures a Manager.
type Option func(*Manager)

// WithSecrets sets where clusters originating TLS look their SDS Secrets
// up (client certificates, validation contexts).
func WithSecrets(s Secrets) Option { return func(m *Manager) { m.secrets = s } }

// poolKey: pools belong to one cluster (its circuit breakers count their
// connections) and are shared by the cluster's versions.
type poolKey struct {
	cluster string
	addr    string
	http2   bool
	bind    string        // fingerprint of the cluster's bind options
	idle    time.Duration // h2c transports take their idle timeout at creation
	tls     string        // fingerprint of the cluster's UpstreamTlsContext
}

// NewManager returns an empty manager. mark, when non-nil, is applied to
// every upstream socket before it connects (e.g. SO_MARK).
func NewManager(mark func(fd uintptr) error, opts ...Option) *Manager {
	m := &Manager{pools: map[poolKey]*Pool{}, mark: mark, origs: map[*origDst]bool{}, breakers: map[string]*Breaker{},
		detectors: map[string]*detector{},
		secrets:   func(string) *resource.Secret { return nil }}
	for _, o := range opts {
		o(m)
	}
	return m
}

// Build makes a cluster from its configuration and endpoints (nil endpoints
// make an empty cluster).
func (m *Manager) Build(cfg *resource.Cluster, eps *resource.Endpoints) *Cluster {
	m.mu.Lock()
	defer m.mu.Unlock()
	b := m.breakers[cfg.Name]
	if b == nil {
		b = newBreaker(cfg.Limits)
		m.breakers[cfg.Name] = b
	} else {
		b.set(cfg.Limits)
	}
	switch cfg.Kind {
	case resource.ClusterOriginalDst:
		c := newCluster(cfg, nil)
		c.breaker = b
		c.orig = newOrigDst(cfg, m.mark, b, m.secrets)
		m.origs[c.orig] = true
		return c
	case resource.ClusterStatic:
		eps = cfg.Static
	}
	var hosts []*Host
	if eps != nil {
		for _, e := range eps.Endpoints {
			k := poolKey{cluster: cfg.Name, addr: e.Address, http2: cfg.HTTP2, bind: bindKey(cfg.Bind)}
			if cfg.HTTP2 {
				k.idle = cfg.IdleTimeout
			}
			if cfg.TLS != nil {
				k.tls = cfg.TLS.Key
			}
			p := m.pools[k]
			if p == nil {
				p = newPool(e.Address, cfg.HTTP2, dialOptions{mark: m.mark, bind: cfg.Bind, tls: newClientTLS(cfg, m.secrets, cfg.HTTP2)}, b, cfg.IdleTimeout)
				m.pools[k] = p
			}
			p.configure(cfg)
			hosts = append(hosts, &Host{Addr: e.Address, Weight: e.Weight, Health: e.Health, Pool: p})
		}
	}
	c := newCluster(cfg, hosts)
	c.breaker = b
	pools := make([]*Pool, len(hosts))
	for i, h := range hosts {
		pools[i] = h.Pool
	}
	if cfg.Outlier != nil {
		d := m.detectors[cfg.Name]
		if d == nil {
			d = newDetector()
			m.detectors[cfg.Name] = d
		}
		d.configure(*cfg.Outlier, pools)
		c.od = d
	} else {
		delete(m.detectors, cfg.Name)
		for _, p := range pools {
			p.od.Store(nil)
			p.ejected.Store(false)
		}
	}
	return c
}

// Stats returns the circuit breaker counters of every cluster, by name.
func (m *Manager) Stats() map[string]BreakerStats {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]BreakerStats, len(m.breakers))
	for n, b := range m.breakers {
		out[n] = b.Stats()
	}
	return out
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
	for n := range m.breakers {
		if live[n] == nil {
			delete(m.breakers, n)
		}
	}
	for n := range m.detectors {
		if live[n] == nil {
			delete(m.detectors, n)
		}
	}
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
