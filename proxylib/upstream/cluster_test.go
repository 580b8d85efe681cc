package upstream

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/nodemesh/nodemesh/proxylib/resource"
)

func build(lb resource.LBPolicy, eps ...resource.Endpoint) *Cluster {
	m := NewManager(nil)
	return m.Build(&resource.Cluster{Name: "c", LB: lb, ConnectTimeout: time.Second}, &resource.Endpoints{ClusterName: "c", Endpoints: eps})
}

func count(c *Cluster, n int) map[string]int {
	rnd := rand.New(rand.NewPCG(1, 2))
	out := map[string]int{}
	for i := 0; i < n; i++ {
		if h := c.Pick(rnd); h != nil {
			out[h.Addr]++
		}
	}
	return out
}

func TestWeightedRoundRobinIsExact(t *testing.T) {
	c := build(resource.RoundRobin,
		resource.Endpoint{Address: "127.0.0.1:1", Weight: 3},
		resource.Endpoint{Address: "127.0.0.1:2", Weight: 1})
	got := count(c, 400)
	if got["127.0.0.1:1"] != 300 || got["127.0.0.1:2"] != 100 {
		t.Fatalf("weighted round robin %v", got)
	}
}

func TestHealthAndPanic(t *testing.T) {
	ep := func(a string, h resource.Health) resource.Endpoint {
		return resource.Endpoint{Address: a, Weight: 1, Health: h}
	}
	// 2 of 3 healthy: unhealthy host unused.
	got := count(build(resource.Random, ep("h1", resource.Healthy), ep("h2", resource.Healthy), ep("u", resource.Unhealthy)), 300)
	if got["u"] != 0 || got["h1"] == 0 || got["h2"] == 0 {
		t.Fatalf("healthy selection %v", got)
	}
	// Only degraded hosts besides the unhealthy one: degraded are used.
	got = count(build(resource.RoundRobin, ep("d", resource.Degraded), ep("d2", resource.Degraded), ep("u", resource.Unhealthy)), 30)
	if got["u"] != 0 || got["d"] != 15 {
		t.Fatalf("degraded selection %v", got)
	}
	// 1 of 3 healthy is below the 50% panic threshold: all hosts are used.
	got = count(build(resource.RoundRobin, ep("h", resource.Healthy), ep("u1", resource.Unhealthy), ep("u2", resource.Unhealthy)), 30)
	if got["u1"] != 10 || got["h"] != 10 {
		t.Fatalf("panic mode %v", got)
	}
	if build(resource.RoundRobin).Pick(rand.New(rand.NewPCG(1, 1))) != nil {
		t.Fatal("empty cluster picked a host")
	}
}

func TestLeastRequestPrefersIdleHosts(t *testing.T) {
	c := build(resource.LeastRequest,
		resource.Endpoint{Address: "busy", Weight: 1}, resource.Endpoint{Address: "idle", Weight: 1})
	for _, h := range c.Hosts {
		if h.Addr == "busy" {
			for i := 0; i < 10; i++ {
				h.Pool.Begin()
			}
		}
	}
	if got := count(c, 200); got["busy"] != 0 {
		t.Fatalf("least request picked the busy host: %v", got)
	}
}

func TestPoolsSurviveRebuilds(t *testing.T) {
	m := NewManager(nil)
	cfg := &resource.Cluster{Name: "c", ConnectTimeout: time.Second}
	eps := &resource.Endpoints{Endpoints: []resource.Endpoint{{Address: "127.0.0.1:9", Weight: 1}}}
	a := m.Build(cfg, eps)
	b := m.Build(cfg, eps)
	if a.Hosts[0].Pool != b.Hosts[0].Pool {
		t.Fatal("rebuilt cluster got a new pool")
	}
	m.Retain(map[string]*Cluster{"c": b})
	if len(m.pools) != 1 {
		t.Fatalf("pools %d", len(m.pools))
	}
	m.Retain(nil)
	if len(m.pools) != 0 {
		t.Fatal("unused pool kept")
	}
}
