package proxylib_test

import (
	"context"
	"net"
	"net/http"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// TestSourcePrefixChains: one listener, a chain without a match and a
// chain for one client address (filter_chain_match.source_prefix_ranges),
// each with its own route table. A client connecting from the named
// address is served by its chain, every other client by the default one,
// over real loopback sockets bound to different source addresses.
func TestSourcePrefixChains(t *testing.T) {
	a := startBackend(t, "a", nil)
	b := startBackend(t, "b", nil)
	x := startXDS(t, "", nil)
	addr := freeAddr(t)
	consumerIP, otherIP := "127.0.9.30", "127.0.9.31"
	l := httpListener(t, "l", addr, "producer", nil)
	consumer := chainFor(t, hcmFor(t, "consumer", nil))
	consumer.Name = "consumer"
	consumer.FilterChainMatch = &listenerv3.FilterChainMatch{SourcePrefixRanges: []*corev3.CidrRange{
		{AddressPrefix: consumerIP, PrefixLen: wrapperspb.UInt32(32)}}}
	l.FilterChains = append(l.FilterChains, consumer)
	x.set(l,
		routeConfig("producer", &routev3.VirtualHost{Name: "p", Domains: []string{"*"}, Routes: []*routev3.Route{prefixRoute("/", "a")}}),
		routeConfig("consumer", &routev3.VirtualHost{Name: "c", Domains: []string{"*"}, Routes: []*routev3.Route{prefixRoute("/", "b")}}),
		edsCluster(t, "a", false, nil), cla("a", a.addr),
		edsCluster(t, "b", false, nil), cla("b", b.addr),
	)
	startProxy(t, x.sock)
	x.waitApplied()
	if n := x.nackMessages(); len(n) > 0 {
		t.Fatalf("NACKed: %v", n)
	}
	from := func(ip string) *http.Client {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
		return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			DialContext:       func(ctx context.Context, n, a string) (net.Conn, error) { return d.DialContext(ctx, n, a) },
			DisableKeepAlives: true}}
	}
	waitServing(t, "http://"+addr, "svc")
	for _, tc := range []struct {
		ip, want string
	}{{consumerIP, "b"}, {otherIP, "a"}, {"127.0.0.1", "a"}} {
		for i := 0; i < 3; i++ {
			code, hdr, _ := do(t, from(tc.ip), "GET", "http://"+addr+"/", "svc", nil, nil)
			if code != 200 || hdr.Get("X-Backend") != tc.want {
				t.Fatalf("from %s: %d from %q, want 200 from %q", tc.ip, code, hdr.Get("X-Backend"), tc.want)
			}
		}
	}
}
