package proxylib_test

import (
	"io"
	"net"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// TestTCPProxyListener: a plain listener whose only filter is tcp_proxy
// (a TCPRoute) with weighted_clusters (several backendRefs),
// max_connect_attempts, idle_timeout and the cluster's max_connections.
func TestTCPProxyListener(t *testing.T) {
	aAddr, bAddr := lineBackend(t, "a", nil), lineBackend(t, "b", nil)
	dead := freeAddr(t) // nothing listens: connects are refused
	weighted, retry, once, idle, limited := freeAddr(t), freeAddr(t), freeAddr(t), freeAddr(t), freeAddr(t)
	listen := func(name, addr string, tp *tcpproxyv3.TcpProxy) *listenerv3.Listener {
		return &listenerv3.Listener{Name: name, Address: sockAddr(addr), FilterChains: []*listenerv3.FilterChain{tcpChain(t, tp)}}
	}
	wtp := &tcpproxyv3.TcpProxy{StatPrefix: "w", ClusterSpecifier: &tcpproxyv3.TcpProxy_WeightedClusters{
		WeightedClusters: &tcpproxyv3.TcpProxy_WeightedCluster{Clusters: []*tcpproxyv3.TcpProxy_WeightedCluster_ClusterWeight{
			{Name: "a", Weight: 1}, {Name: "b", Weight: 3}}}}}
	rtp := tcpTo("flaky")
	rtp.MaxConnectAttempts = wrapperspb.UInt32(2)
	itp := tcpTo("a")
	itp.IdleTimeout = durationpb.New(300 * time.Millisecond)
	roundRobin := func(c *clusterv3.Cluster) { c.LbPolicy = clusterv3.Cluster_ROUND_ROBIN }
	x := startXDS(t, "", nil)
	x.set(listen("weighted", weighted, wtp), listen("retry", retry, rtp), listen("once", once, tcpTo("flaky")),
		listen("idle", idle, itp), listen("limited", limited, tcpTo("one")),
		edsCluster(t, "a", false, nil), cla("a", aAddr), edsCluster(t, "b", false, nil), cla("b", bAddr),
		edsCluster(t, "flaky", false, roundRobin), cla("flaky", dead, aAddr),
		edsCluster(t, "one", false, func(c *clusterv3.Cluster) {
			c.CircuitBreakers = &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{
				MaxConnections: wrapperspb.UInt32(1)}}}
		}), cla("one", bAddr))
	startProxy(t, x.sock)
	x.waitApplied()

	// try opens a connection and exchanges one line: the answer, or ""
	// when the proxy closed the connection instead.
	try := func(t *testing.T, addr string) (string, net.Conn) {
		t.Helper()
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(c, "hi\n"); err != nil {
			return "", c
		}
		b := make([]byte, 64)
		n, _ := c.Read(b)
		return strings.TrimSuffix(string(b[:n]), "\n"), c
	}

	t.Run("weighted_clusters", func(t *testing.T) {
		got := map[string]int{}
		for i := 0; i < 80; i++ {
			ans, c := try(t, weighted)
			c.Close()
			got[ans]++
		}
		// Weights 1:3 over 80 connections: both clusters are used, b
		// clearly more (the odds of a ≥ b are below 1e-5).
		if got["a: hi"] == 0 || got["b: hi"] <= got["a: hi"] || got["a: hi"]+got["b: hi"] != 80 {
			t.Fatalf("connections per answer: %v", got)
		}
	})
	t.Run("max_connect_attempts", func(t *testing.T) {
		// Round robin alternates between the dead and the live endpoint:
		// with two attempts every connection reaches the live one, with
		// one (the default) every other connection is closed.
		failed := 0
		for i := 0; i < 6; i++ {
			ans, c := try(t, retry)
			c.Close()
			if ans != "a: hi" {
				t.Fatalf("connection %d with max_connect_attempts 2: %q", i, ans)
			}
			if ans, c = try(t, once); ans == "" {
				failed++
			}
			c.Close()
		}
		if failed == 0 {
			t.Fatal("with one connect attempt no connection failed: the dead endpoint was never picked")
		}
	})
	t.Run("idle_timeout", func(t *testing.T) {
		ans, c := try(t, idle)
		defer c.Close()
		if ans != "a: hi" {
			t.Fatalf("answer %q", ans)
		}
		start := time.Now()
		rest, _ := io.ReadAll(c) // the proxy closes the idle connection
		if el := time.Since(start); el > 3*time.Second || strings.Contains(string(rest), "hi") {
			t.Fatalf("idle connection closed after %v with %q", el, rest)
		}
	})
	t.Run("max_connections", func(t *testing.T) {
		ans, first := try(t, limited)
		defer first.Close()
		if ans != "b: hi" {
			t.Fatalf("first connection: %q", ans)
		}
		// The cluster allows one connection: the second overflows and
		// is closed without reaching the backend.
		if ans, c := try(t, limited); ans != "" {
			c.Close()
			t.Fatalf("second connection over max_connections answered %q", ans)
		} else {
			c.Close()
		}
		first.Close()
		deadline := time.Now().Add(5 * time.Second)
		for {
			ans, c := try(t, limited)
			c.Close()
			if ans == "b: hi" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the slot was not released after the first connection closed")
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}
