package proxylib_test

import (
	"bytes"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	xdscorev3 "github.com/cncf/xds/go/xds/core/v3"
	xdsmatcherv3 "github.com/cncf/xds/go/xds/type/matcher/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	udpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/udp/udp_proxy/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// udpBackend answers every datagram with "<name>:<payload>" and records
// the source addresses it saw (one per proxy session).
type udpBackend struct {
	name string
	addr string
	mu   sync.Mutex
	srcs []netip.AddrPort
}

func startUDPBackend(t testing.TB, name string) *udpBackend {
	t.Helper()
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort(freeAddr(t))))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	b := &udpBackend{name: name, addr: c.LocalAddr().String()}
	go func() {
		buf := make([]byte, 65536)
		for {
			n, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			b.mu.Lock()
			b.srcs = append(b.srcs, from)
			b.mu.Unlock()
			_, _ = c.WriteToUDPAddrPort(append([]byte(name+":"), buf[:n]...), from)
		}
	}()
	return b
}

func (b *udpBackend) sources() []netip.AddrPort {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]netip.AddrPort(nil), b.srcs...)
}

func udpListenerFor(t testing.TB, name, addr string, cfg *udpproxyv3.UdpProxyConfig, maxRx uint64) *listenerv3.Listener {
	a := sockAddr(addr)
	a.GetSocketAddress().Protocol = corev3.SocketAddress_UDP
	l := &listenerv3.Listener{Name: name, Address: a, ListenerFilters: []*listenerv3.ListenerFilter{{
		Name: "envoy.filters.udp_listener.udp_proxy", ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: anyOf(t, cfg)}}}}
	if maxRx != 0 {
		l.UdpListenerConfig = &listenerv3.UdpListenerConfig{DownstreamSocketConfig: &corev3.UdpSocketConfig{
			MaxRxDatagramSize: wrapperspb.UInt64(maxRx)}}
	}
	return l
}

// udpRoute is the route as Envoy Gateway emits it: a matcher whose only
// content is the on_no_match action to the cluster.
func udpRoute(t testing.TB, cluster string, idle time.Duration) *udpproxyv3.UdpProxyConfig {
	return &udpproxyv3.UdpProxyConfig{StatPrefix: "udp", IdleTimeout: durationpb.New(idle),
		RouteSpecifier: &udpproxyv3.UdpProxyConfig_Matcher{Matcher: &xdsmatcherv3.Matcher{OnNoMatch: &xdsmatcherv3.Matcher_OnMatch{
			OnMatch: &xdsmatcherv3.Matcher_OnMatch_Action{Action: &xdscorev3.TypedExtensionConfig{Name: "route",
				TypedConfig: anyOf(t, &udpproxyv3.Route{Cluster: cluster})}}}}}}
}

// udpAsk sends payload from c to addr and returns the reply ("" when none
// came within wait).
func udpAsk(t testing.TB, c *net.UDPConn, addr, payload string, wait time.Duration) string {
	t.Helper()
	if _, err := c.WriteToUDPAddrPort([]byte(payload), netip.MustParseAddrPort(addr)); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, 65536)
	n, _, err := c.ReadFromUDPAddrPort(buf)
	if err != nil {
		return ""
	}
	return string(buf[:n])
}

func udpClient(t testing.TB) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestUDPProxy: a UDP listener with the udp_proxy (UDPRoute) gives each
// client address its own session to an endpoint, relays datagrams both
// ways, expires idle sessions, applies endpoint changes to new sessions,
// drops datagrams over max_rx_datagram_size and bounds sessions with the
// cluster's max_connections. A TCP listener shares the port.
func TestUDPProxy(t *testing.T) {
	u1, u2 := startUDPBackend(t, "u1"), startUDPBackend(t, "u2")
	tcpBackend := lineBackend(t, "tcp", nil)
	addr, limited, legacy := freeAddr(t), freeAddr(t), freeAddr(t)
	const idle = 600 * time.Millisecond
	oneSession := func(c *clusterv3.Cluster) {
		c.CircuitBreakers = &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{MaxConnections: wrapperspb.UInt32(1)}}}
	}
	legacyCfg := &udpproxyv3.UdpProxyConfig{StatPrefix: "legacy", RouteSpecifier: &udpproxyv3.UdpProxyConfig_Cluster{Cluster: "udp"}}
	resources := func(endpoint string) []proto.Message {
		return []proto.Message{
			udpListenerFor(t, "udp", addr, udpRoute(t, "udp", idle), 100),
			&listenerv3.Listener{Name: "tcp-same-port", Address: sockAddr(addr), FilterChains: []*listenerv3.FilterChain{tcpChain(t, tcpTo("tcp"))}},
			udpListenerFor(t, "limited", limited, udpRoute(t, "one", idle), 0),
			udpListenerFor(t, "legacy", legacy, legacyCfg, 0),
			edsCluster(t, "udp", false, nil), cla("udp", endpoint),
			edsCluster(t, "one", false, oneSession), cla("one", u1.addr),
			edsCluster(t, "tcp", false, nil), cla("tcp", tcpBackend),
		}
	}
	x := startXDS(t, "", nil)
	x.set(resources(u1.addr)...)
	startProxy(t, x.sock)
	x.waitApplied()

	a, b := udpClient(t), udpClient(t)
	t.Run("sessions per client", func(t *testing.T) {
		if got := udpAsk(t, a, addr, "a1", 2*time.Second); got != "u1:a1" {
			t.Fatalf("client a: %q", got)
		}
		if got := udpAsk(t, b, addr, "b1", 2*time.Second); got != "u1:b1" {
			t.Fatalf("client b: %q", got)
		}
		if got := udpAsk(t, a, addr, "a2", 2*time.Second); got != "u1:a2" {
			t.Fatalf("client a again: %q", got)
		}
		src := u1.sources()
		if len(src) != 3 || src[0] != src[2] || src[0] == src[1] {
			t.Fatalf("backend saw sources %v: want a's two datagrams from one session socket and b's from another", src)
		}
	})
	t.Run("TCP on the same port", func(t *testing.T) {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if got := exchange(t, c, "hi"); got != "tcp: hi" {
			t.Fatalf("TCP listener on the UDP listener's port: %q", got)
		}
	})
	t.Run("max_rx_datagram_size", func(t *testing.T) {
		if got := udpAsk(t, a, addr, strings.Repeat("x", 101), 300*time.Millisecond); got != "" {
			t.Fatalf("a 101-byte datagram over max_rx_datagram_size 100 was relayed: %q", got)
		}
		if got := udpAsk(t, a, addr, strings.Repeat("y", 100), 2*time.Second); got != "u1:"+strings.Repeat("y", 100) {
			t.Fatalf("a 100-byte datagram: %q", got)
		}
	})
	t.Run("idle sessions expire", func(t *testing.T) {
		before := len(u1.sources())
		last := u1.sources()[before-1]
		time.Sleep(idle + 400*time.Millisecond)
		if got := udpAsk(t, a, addr, "a3", 2*time.Second); got != "u1:a3" {
			t.Fatalf("after idle: %q", got)
		}
		src := u1.sources()
		if src[len(src)-1] == last {
			t.Fatalf("the session outlived its idle timeout: same source %v", last)
		}
	})
	t.Run("endpoint changes apply to new sessions", func(t *testing.T) {
		// Keep a's session busy while the endpoint moves to u2.
		if got := udpAsk(t, a, addr, "a4", 2*time.Second); got != "u1:a4" {
			t.Fatalf("before the update: %q", got)
		}
		x.set(resources(u2.addr)...)
		x.waitApplied()
		if got := udpAsk(t, a, addr, "a5", 2*time.Second); got != "u1:a5" {
			t.Fatalf("an established session changed endpoint: %q", got)
		}
		c := udpClient(t)
		if got := udpAsk(t, c, addr, "c1", 2*time.Second); got != "u2:c1" {
			t.Fatalf("a new session after the update: %q", got)
		}
	})
	t.Run("max_connections bounds sessions", func(t *testing.T) {
		p, q := udpClient(t), udpClient(t)
		if got := udpAsk(t, p, limited, "p1", 2*time.Second); got != "u1:p1" {
			t.Fatalf("first session: %q", got)
		}
		if got := udpAsk(t, q, limited, "q1", 300*time.Millisecond); got != "" {
			t.Fatalf("a second session beyond max_connections 1: %q", got)
		}
		// Once p's session is idle its slot is free.
		time.Sleep(idle + 400*time.Millisecond)
		if got := udpAsk(t, q, limited, "q2", 2*time.Second); got != "u1:q2" {
			t.Fatalf("after the first session expired: %q", got)
		}
	})
	t.Run("deprecated cluster field", func(t *testing.T) {
		c := udpClient(t)
		if got := udpAsk(t, c, legacy, "l1", 2*time.Second); !bytes.HasPrefix([]byte(got), []byte("u2:")) {
			t.Fatalf("legacy route: %q", got)
		}
	})
}
