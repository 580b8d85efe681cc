package hcm

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/nodemesh/nodemesh/proxylib/listener"
	"github.com/nodemesh/nodemesh/proxylib/resource"
	"github.com/nodemesh/nodemesh/proxylib/route"
	"github.com/nodemesh/nodemesh/proxylib/upstream"
)

// readSizes is a client connection that records the size of every read
// the proxy asks of it. The socket underneath is a real loopback TCP
// connection; wrapping it only hides it from the raw socket path, whose
// reads go through the same readRoom.
type readSizes struct {
	net.Conn
	mu  sync.Mutex
	max int
	n   int
}

func (r *readSizes) Read(p []byte) (int, error) {
	r.mu.Lock()
	r.max = max(r.max, len(p))
	r.n++
	r.mu.Unlock()
	return r.Conn.Read(p)
}

func mustAny(t *testing.T, m proto.Message) *anypb.Any {
	t.Helper()
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestBufferLimitBoundsReads checks per_connection_buffer_limit_bytes on
// the HTTP/1.1 path: however much the client sends at once, the proxy
// reads at most the limit at a time, and a request larger than the limit
// still goes through whole.
func TestBufferLimitBoundsReads(t *testing.T) {
	// A backend that counts the body it receives.
	be, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { be.Close() })
	go func() {
		for {
			c, err := be.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					n, _ := io.Copy(io.Discard, req.Body)
					body := fmt.Sprint(n)
					fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
				}
			}()
		}
	}()

	rc, err := resource.DecodeRouteConfig(mustAny(t, &routev3.RouteConfiguration{Name: "rc", VirtualHosts: []*routev3.VirtualHost{{
		Name: "v", Domains: []string{"*"}, Routes: []*routev3.Route{{
			Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
			Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "c"}}},
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

	const limit = 1000
	h := NewHandler(rt, &resource.HCM{RouteConfigName: "rc", Codec: resource.CodecHTTP1, ServerName: "envoy",
		IdleTimeout: time.Minute, StreamIdleTimeout: time.Minute, BufferLimit: limit}, false)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	served := make(chan *readSizes, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		rs := &readSizes{Conn: c}
		h.ServeConn(rs, listener.ConnInfo{})
		served <- rs
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	for _, size := range []int{0, 10, limit, 64 << 10} {
		go fmt.Fprintf(c, "POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n%s", size, strings.Repeat("x", size))
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("%d-byte body: %v", size, err)
		}
		got, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || string(got) != fmt.Sprint(size) {
			t.Fatalf("%d-byte body: %d %q", size, resp.StatusCode, got)
		}
	}
	c.Close()
	rs := <-served
	if rs.max > limit || rs.n < (64<<10)/limit {
		t.Fatalf("%d reads of up to %d bytes; want none over %d", rs.n, rs.max, limit)
	}
}
