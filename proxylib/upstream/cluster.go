package upstream

import (
	"math/rand/v2"
	"sync/atomic"

	"github.com/nodemesh/nodemesh/proxylib/resource"
)

// panicThreshold is Envoy's default healthy_panic_threshold (percent).
const panicThreshold = 50

// maxSchedule bounds the precomputed weighted round-robin sequence.
const maxSchedule = 4096

// Host is one endpoint of a cluster.
type Host struct {
	Addr   string
	Weight uint32
	Health resource.Health
	Pool   *Pool
}

// Cluster is a built cluster: its configuration, hosts and balancer.
type Cluster struct {
	Config *resource.Cluster
	Hosts  []*Host

	lb       []*Host // hosts balancing draws from
	weighted bool
	cum      []uint64 // cumulative weights of lb (weighted random)
	total    uint64
	sched    []uint32 // weighted round-robin order over lb
	rr       atomic.Uint64

	orig    *origDst // ORIGINAL_DST clusters
	breaker *Breaker
	od      *detector // outlier detection, nil without
}

// Breaker returns the cluster's circuit breakers.
func (c *Cluster) Breaker() *Breaker { return c.breaker }

func newCluster(cfg *resource.Cluster, hosts []*Host) *Cluster {
	c := &Cluster{Config: cfg, Hosts: hosts}
	var healthy, degraded []*Host
	for _, h := range hosts {
		switch h.Health {
		case resource.Healthy:
			healthy = append(healthy, h)
		case resource.Degraded:
			degraded = append(degraded, h)
		}
	}
	switch {
	case len(hosts) == 0:
	case (len(healthy)+len(degraded))*100 < panicThreshold*len(hosts):
		c.lb = hosts // panic mode: ignore health
	case len(healthy) > 0:
		c.lb = healthy
	default:
		c.lb = degraded
	}
	for i, h := range c.lb {
		if i > 0 && h.Weight != c.lb[0].Weight {
			c.weighted = true
		}
		c.total += uint64(h.Weight)
		c.cum = append(c.cum, c.total)
	}
	if c.weighted && cfg.LB == resource.RoundRobin {
		c.sched = schedule(c.lb)
	}
	// Start each cluster version at a random position, as Envoy seeds its
	// round-robin index, so that restarts do not all hit the first host.
	c.rr.Store(rand.Uint64())
	return c
}

// schedule builds a smooth weighted round-robin order, or nil when its
// period would exceed maxSchedule (weighted random is used then).
func schedule(hosts []*Host) []uint32 {
	g := uint64(0)
	for _, h := range hosts {
		g = gcd(g, uint64(h.Weight))
	}
	var period uint64
	for _, h := range hosts {
		period += uint64(h.Weight) / g
	}
	if period > maxSchedule {
		return nil
	}
	cur := make([]int64, len(hosts))
	out := make([]uint32, 0, period)
	for len(out) < int(period) {
		best := 0
		for i, h := range hosts {
			cur[i] += int64(h.Weight / uint32(g))
			if cur[i] > cur[best] {
				best = i
			}
		}
		cur[best] -= int64(period)
		out = append(out, uint32(best))
	}
	return out
}

func gcd(a, b uint64) uint64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// Pick chooses a host, or nil when the cluster has none. rnd is the
// caller's (per-connection) random source. Hosts outlier detection
// ejected are skipped while another is left (when every host is
// ejected, balancing ignores ejection, as Envoy's panic mode does).
func (c *Cluster) Pick(rnd *rand.Rand) *Host {
	h := c.pick(rnd)
	if c.od == nil || h == nil || !h.Pool.Ejected() {
		return h
	}
	// Draw again a bounded number of times; the balancer's own order
	// (round robin's counter, random draws) moves on each time.
	for range 2 * len(c.lb) {
		if h = c.pick(rnd); !h.Pool.Ejected() {
			return h
		}
	}
	for _, x := range c.lb {
		if !x.Pool.Ejected() {
			return x
		}
	}
	return h
}

func (c *Cluster) pick(rnd *rand.Rand) *Host {
	n := len(c.lb)
	switch n {
	case 0:
		return nil
	case 1:
		return c.lb[0]
	}
	switch c.Config.LB {
	case resource.RoundRobin:
		i := c.rr.Add(1)
		if !c.weighted {
			return c.lb[i%uint64(n)]
		}
		if c.sched != nil {
			return c.lb[c.sched[i%uint64(len(c.sched))]]
		}
		return c.weightedRandom(rnd)
	case resource.Random:
		if !c.weighted {
			return c.lb[rnd.IntN(n)]
		}
		return c.weightedRandom(rnd)
	default: // LeastRequest: power of two choices.
		a := c.lb[rnd.IntN(n)]
		b := c.lb[rnd.IntN(n)]
		for b == a {
			b = c.lb[rnd.IntN(n)]
		}
		if c.weighted {
			// Compare active/weight without division.
			if b.Pool.active.Load()*int64(a.Weight) < a.Pool.active.Load()*int64(b.Weight) {
				return b
			}
			return a
		}
		if b.Pool.active.Load() < a.Pool.active.Load() {
			return b
		}
		return a
	}
}

func (c *Cluster) weightedRandom(rnd *rand.Rand) *Host {
	if c.total == 0 {
		return c.lb[rnd.IntN(len(c.lb))]
	}
	x := rnd.Uint64N(c.total)
	lo, hi := 0, len(c.cum)-1
	for lo < hi {
		mid := (lo + hi) / 2
		if c.cum[mid] > x {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return c.lb[lo]
}
