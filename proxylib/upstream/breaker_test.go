package upstream

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/nodemesh/nodemesh/proxylib/resource"
)

// listen accepts connections on loopback and counts them; every accepted
// connection stays open until the test ends.
func listen(t *testing.T) (string, chan net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	acc := make(chan net.Conn, 64)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			acc <- c
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		for {
			select {
			case c := <-acc:
				c.Close()
			default:
				return
			}
		}
	})
	return ln.Addr().String(), acc
}

func limitedCluster(t *testing.T, addr string, lim resource.Thresholds, idle time.Duration) (*Manager, *Pool) {
	m := NewManager(nil)
	c := m.Build(&resource.Cluster{Name: "c", ConnectTimeout: time.Second, Limits: lim, IdleTimeout: idle},
		&resource.Endpoints{Endpoints: []resource.Endpoint{{Address: addr, Weight: 1}}})
	t.Cleanup(m.Close)
	return m, c.Hosts[0].Pool
}

func TestBreakerQueuesForConnections(t *testing.T) {
	addr, _ := listen(t)
	_, p := limitedCluster(t, addr, resource.Thresholds{MaxConnections: 1, MaxPendingRequests: 1, MaxRequests: 10}, 0)
	ctx := context.Background()
	a, reused, err := p.Get(ctx, 0)
	if err != nil || reused {
		t.Fatalf("first Get: %v reused=%v", err, reused)
	}
	// At max_connections: the next request waits (pending 1 of 1), the one
	// after overflows.
	got := make(chan *Conn, 1)
	go func() {
		c, _, err := p.Get(ctx, 0)
		if err != nil {
			t.Error(err)
		}
		got <- c
	}()
	waitUntil(t, func() bool { return p.b.nwait.Load() == 1 })
	if _, _, err := p.Get(ctx, 0); !errors.Is(err, ErrOverflow) {
		t.Fatalf("third Get = %v, want ErrOverflow", err)
	}
	// Releasing the connection hands it to the waiting request.
	p.Put(a)
	if b := <-got; b != a {
		t.Fatalf("the waiting request got %p, not the released connection %p", b, a)
	}
	s := p.b.Stats()
	if s.UpstreamCxOverflow == 0 || s.UpstreamRqPendingOverflow != 1 || s.UpstreamCxActive != 1 || s.UpstreamRqPendingActive != 0 {
		t.Fatalf("stats %+v", s)
	}
	// Closing it frees the slot for a waiting request, which dials.
	go func() {
		c, reused, err := p.Get(ctx, 0)
		if err != nil || reused {
			t.Errorf("Get after a close: %v reused=%v", err, reused)
		}
		got <- c
	}()
	waitUntil(t, func() bool { return p.b.nwait.Load() == 1 })
	a.Discard()
	a.Discard() // idempotent: frees one slot
	c := <-got
	if c == nil || c == a || p.b.conns.Load() != 1 {
		t.Fatalf("after the close: conn %p, %d connections counted", c, p.b.conns.Load())
	}
	// A bounded wait gives up with ErrPendingTimeout.
	if _, _, err := p.Get(ctx, 50*time.Millisecond); !errors.Is(err, ErrPendingTimeout) {
		t.Fatalf("bounded wait = %v", err)
	}
	if p.b.nwait.Load() != 0 || p.b.pending.Load() != 0 {
		t.Fatalf("left %d waiters, %d pending", p.b.nwait.Load(), p.b.pending.Load())
	}
	c.Discard()
	if p.b.conns.Load() != 0 || p.open.Load() != 0 {
		t.Fatalf("%d connections counted after closing all", p.b.conns.Load())
	}
}

func TestBreakerMaxRequests(t *testing.T) {
	_, p := limitedCluster(t, "127.0.0.1:9", resource.Thresholds{MaxConnections: 1, MaxPendingRequests: 1, MaxRequests: 2}, 0)
	if !p.Admit() || !p.Admit() || p.Admit() {
		t.Fatal("max_requests 2 did not admit exactly two")
	}
	p.Done()
	if !p.Admit() {
		t.Fatal("a finished request did not free its place")
	}
	if s := p.b.Stats(); s.UpstreamRqPendingOverflow != 1 || s.UpstreamRqActive != 2 {
		t.Fatalf("stats %+v", s)
	}
}

func TestBreakerSurvivesRebuilds(t *testing.T) {
	m := NewManager(nil)
	eps := &resource.Endpoints{Endpoints: []resource.Endpoint{{Address: "127.0.0.1:9", Weight: 1}}}
	a := m.Build(&resource.Cluster{Name: "c", Limits: resource.DefaultThresholds}, eps)
	b := m.Build(&resource.Cluster{Name: "c", Limits: resource.Thresholds{MaxConnections: 5}}, eps)
	if a.Breaker() != b.Breaker() || b.Breaker().maxConns.Load() != 5 {
		t.Fatal("a rebuilt cluster got a new breaker or kept the old limits")
	}
	other := m.Build(&resource.Cluster{Name: "d", Limits: resource.DefaultThresholds}, eps)
	if other.Hosts[0].Pool == b.Hosts[0].Pool {
		t.Fatal("two clusters share a pool (and so their connection counts)")
	}
	m.Retain(map[string]*Cluster{"c": b})
	if len(m.Stats()) != 1 {
		t.Fatalf("stats of removed clusters kept: %v", m.Stats())
	}
}

func TestIdleTimeoutClosesPooledConnections(t *testing.T) {
	addr, acc := listen(t)
	_, p := limitedCluster(t, addr, resource.DefaultThresholds, 100*time.Millisecond)
	c, _, err := p.Get(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	srv := <-acc
	p.Put(c)
	_ = srv.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := srv.Read(make([]byte, 1)); n != 0 || err == nil {
		t.Fatalf("server read %d, %v; want the close", n, err)
	}
	// The slot is freed right after the close the server saw.
	waitUntil(t, func() bool { return p.b.conns.Load() == 0 })
}

func TestReadLimit(t *testing.T) {
	_, p := limitedCluster(t, "127.0.0.1:9", resource.DefaultThresholds, 0)
	c := &Conn{pool: p, Buf: make([]byte, ReadBufferSize)}
	for _, tc := range []struct{ limit, want int }{{0, ReadBufferSize}, {1024, 1024}, {1 << 20, ReadBufferSize}} {
		p.bufLimit.Store(int64(tc.limit))
		if got := c.ReadLimit(); got != tc.want {
			t.Errorf("limit %d: ReadLimit %d, want %d", tc.limit, got, tc.want)
		}
	}
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatal("condition never held")
}

// Reusing a pooled connection (admission, probe, return with an idle
// timeout armed) allocates nothing.
func TestReuseDoesNotAllocate(t *testing.T) {
	addr, _ := listen(t)
	_, p := limitedCluster(t, addr, resource.DefaultThresholds, time.Hour)
	ctx := context.Background()
	c, _, err := p.Get(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	p.Put(c)
	now := time.Now()
	allocs := testing.AllocsPerRun(200, func() {
		if !p.Admit() {
			t.Fatal("not admitted")
		}
		p.BeginAt(now)
		c, reused, err := p.GetAt(ctx, now, 0)
		if err != nil || !reused {
			t.Fatalf("GetAt: %v reused=%v", err, reused)
		}
		p.PutAt(c, now)
		p.End()
		p.Done()
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per reuse", allocs)
	}
}

// As in Envoy, a pool without connections may always dial one, so idle
// connections to one endpoint never starve requests to another.
func TestPoolWithoutConnectionsAlwaysDials(t *testing.T) {
	a, _ := listen(t)
	b, _ := listen(t)
	m := NewManager(nil)
	t.Cleanup(m.Close)
	c := m.Build(&resource.Cluster{Name: "c", ConnectTimeout: time.Second, Limits: resource.Thresholds{MaxConnections: 1, MaxPendingRequests: 5, MaxRequests: 5}},
		&resource.Endpoints{Endpoints: []resource.Endpoint{{Address: a, Weight: 1}, {Address: b, Weight: 1}}})
	pa, pb := c.Hosts[0].Pool, c.Hosts[1].Pool
	ca, _, err := pa.Get(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	pa.Put(ca) // idle, holding the cluster's only slot
	cb, _, err := pb.Get(context.Background(), time.Second)
	if err != nil {
		t.Fatalf("the other endpoint's first connection: %v", err)
	}
	if s := c.Breaker().Stats(); s.UpstreamCxOverflow != 1 || s.UpstreamCxActive != 2 {
		t.Fatalf("stats %+v", s)
	}
	cb.Discard()
	if n := c.Breaker().Stats().UpstreamCxActive; n != 1 {
		t.Fatalf("%d connections counted", n)
	}
}
