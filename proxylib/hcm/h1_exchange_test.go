package hcm

import (
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/nodemesh/nodemesh/proxylib/listener"
	"github.com/nodemesh/nodemesh/proxylib/resource"
	"github.com/nodemesh/nodemesh/proxylib/route"
	"github.com/nodemesh/nodemesh/proxylib/sockio"
	"github.com/nodemesh/nodemesh/proxylib/upstream"
)

// oneClusterRuntime is a Runtime whose route config "rc" sends every
// request to cluster "c", whose one endpoint is be; edits change the
// route's action.
func oneClusterRuntime(t *testing.T, be net.Listener, edits ...func(*routev3.RouteAction)) (*Runtime, *upstream.Cluster) {
	t.Helper()
	action := &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "c"}}
	for _, edit := range edits {
		edit(action)
	}
	rc, err := resource.DecodeRouteConfig(mustAny(t, &routev3.RouteConfiguration{Name: "rc", VirtualHosts: []*routev3.VirtualHost{{
		Name: "v", Domains: []string{"*"}, Routes: []*routev3.Route{{
			Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
			Action: &routev3.Route_Route{Route: action},
		}},
	}}}))
	if err != nil {
		t.Fatal(err)
	}
	eps, err := resource.DecodeEndpoints(mustAny(t, &endpointv3.ClusterLoadAssignment{ClusterName: "c", Endpoints: []*endpointv3.LocalityLbEndpoints{{
		LbEndpoints: []*endpointv3.LbEndpoint{{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
			Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
				Address: "127.0.0.1", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(be.Addr().(*net.TCPAddr).Port)}}}},
		}}}},
	}}}))
	if err != nil {
		t.Fatal(err)
	}
	um := upstream.NewManager(nil)
	t.Cleanup(um.Close)
	ccfg, err := resource.DecodeCluster(mustAny(t, &clusterv3.Cluster{Name: "c",
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig: &clusterv3.Cluster_EdsClusterConfig{EdsConfig: &corev3.ConfigSource{
			ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}}, ResourceApiVersion: corev3.ApiVersion_V3}},
		ConnectTimeout: durationpb.New(time.Second)}))
	if err != nil {
		t.Fatal(err)
	}
	cluster := um.Build(ccfg, eps)
	rt := NewRuntime("127.0.0.1", nil)
	rt.Store(&Routing{Routes: map[string]*route.Table{"rc": route.New(rc)}, Clusters: map[string]*upstream.Cluster{"c": cluster}})
	return rt, cluster
}

// exchangeProxy serves one client connection through a Handler routing
// everything to the backend be; it returns the client side and the
// cluster.
func exchangeProxy(t *testing.T, be net.Listener) (net.Conn, *upstream.Cluster) {
	t.Helper()
	rt, cluster := oneClusterRuntime(t, be)
	h := NewHandler(rt, &resource.HCM{RouteConfigName: "rc", Codec: resource.CodecHTTP1, ServerName: "envoy",
		IdleTimeout: time.Minute, StreamIdleTimeout: time.Minute}, false)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		h.ServeConn(c, listener.ConnInfo{})
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, cluster
}

// TestUpstreamResponseReadsArePlain checks the system-call budget of the
// upstream side of a keep-alive exchange: the response is read with plain
// reads, not with recvmsg asking for TCP_INQ (a control message per read),
// since the pool's probe before reuse finds a FIN or stray bytes behind a
// response anyway. And that it does: a backend that closes every
// connection right after its response, without saying so, and one that
// sends a stray byte after it, never make a later request fail.
func TestUpstreamResponseReadsArePlain(t *testing.T) {
	be, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { be.Close() })
	var mode atomic.Int32 // 0: keep-alive, 1: close after the response, 2: a stray byte after it
	var conns atomic.Int32
	go func() {
		for {
			c, err := be.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					_, _ = io.Copy(io.Discard, req.Body)
					m := mode.Load()
					tail := ""
					if m == 2 {
						tail = "X"
					}
					fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok%s", tail)
					if m == 1 {
						return
					}
				}
			}()
		}
	}()
	c, cluster := exchangeProxy(t, be)
	br := bufio.NewReader(c)
	get := func(what string) {
		t.Helper()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := fmt.Fprint(c, "GET /x HTTP/1.1\r\nHost: h\r\n\r\n"); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || string(body) != "ok" {
			t.Fatalf("%s: %d %q, want 200 \"ok\"", what, resp.StatusCode, body)
		}
	}
	get("first request")
	get("request on the reused connection")

	// The pooled connection's socket: nothing asks for TCP_INQ on it.
	// The proxy returns the connection to its pool after it has written
	// the response to the client, so the pool may be empty for a moment.
	pool := cluster.Pick(rand.New(rand.NewPCG(1, 2))).Pool
	uc := pool.GetIdle(time.Now())
	for wait := time.Now().Add(5 * time.Second); uc == nil && time.Now().Before(wait); uc = pool.GetIdle(time.Now()) {
		time.Sleep(time.Millisecond)
	}
	if uc == nil {
		t.Fatal("no idle upstream connection after two keep-alive requests")
	}
	sc, ok := uc.Conn.(*sockio.Conn)
	if !ok {
		t.Fatalf("upstream connection is a %T, want a raw socket", uc.Conn)
	}
	raw, err := sc.NetConn().(syscall.Conn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	inq, gerr := -1, error(nil)
	if err := raw.Control(func(fd uintptr) {
		inq, gerr = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, 0x24 /* TCP_INQ */)
	}); err != nil || gerr != nil {
		t.Fatal(err, gerr)
	}
	if inq != 0 {
		t.Errorf("TCP_INQ is on for the upstream connection: its response reads are recvmsg with a control message")
	}
	pool.PutAt(uc, time.Now())

	// The backend closes after each response: each next request finds
	// the pooled connection closed (by the probe, or by its reset) and
	// succeeds on a new one.
	mode.Store(1)
	before := conns.Load()
	for i := range 5 {
		get(fmt.Sprintf("request %d to a closing backend", i))
	}
	if got := conns.Load() - before; got < 4 {
		t.Errorf("%d new backend connections for 5 requests to a backend closing each, want at least 4", got)
	}
	// A stray byte behind a response: that connection is never used again.
	mode.Store(2)
	for i := range 5 {
		get(fmt.Sprintf("request %d to a backend sending a stray byte", i))
	}
}
