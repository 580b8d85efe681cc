package rbac

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"net/netip"
	"net/url"
	"slices"
	"testing"

	"github.com/nodemesh/nodemesh/proxylib/resource"
)

// TestNetworkInput: the connection-level rules the network RBAC filter
// adds — requested_server_name on the SNI (none without one), the peer
// address principals — decide a connection without a request.
func TestNetworkInput(t *testing.T) {
	sni := &resource.Permission{Kind: resource.PermRequestedServerName,
		ServerName: resource.StringMatch{Kind: resource.MatchSuffix, Exact: ".example", IgnoreCase: false}}
	peer := &resource.Principal{Kind: resource.PrinDirectRemoteIP, CIDR: netip.MustParsePrefix("127.0.0.2/32")}
	e := New(&resource.RBAC{Enforce: true, Action: resource.RBACAllow, Policies: []*resource.RBACPolicy{
		{Name: "sni-from-peer", Permissions: []*resource.Permission{{Kind: resource.PermAnd, Rules: []*resource.Permission{
			{Kind: resource.PermDestinationPort, Port: 443}, sni}}}, Principals: []*resource.Principal{peer}},
	}})
	for _, tc := range []struct {
		name       string
		remote     string
		local      string
		serverName string
		want       bool
	}{
		{"allowed peer and name", "127.0.0.2:5000", "127.0.0.1:443", "a.example", true},
		{"other peer", "127.0.0.1:5000", "127.0.0.1:443", "a.example", false},
		{"other name", "127.0.0.2:5000", "127.0.0.1:443", "a.example.org", false},
		{"no SNI", "127.0.0.2:5000", "127.0.0.1:443", "", false},
		{"other port", "127.0.0.2:5000", "127.0.0.1:8443", "a.example", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := &Input{Remote: netip.MustParseAddrPort(tc.remote), Local: netip.MustParseAddrPort(tc.local), ServerName: []byte(tc.serverName)}
			got, _ := e.Evaluate(in)
			if lin, _ := e.EvaluateLinear(in); got != tc.want || lin != tc.want {
				t.Fatalf("Evaluate %v, EvaluateLinear %v, want %v", got, lin, tc.want)
			}
		})
	}
}

func TestAppendPeerNames(t *testing.T) {
	u, _ := url.Parse("spiffe://td/ns/a/sa/b")
	leaf := &x509.Certificate{URIs: []*url.URL{u}, DNSNames: []string{"b.example"}, Subject: pkix.Name{CommonName: "b"}}
	got := AppendPeerNames([]string{"kept"}, leaf)
	if want := []string{"kept", "spiffe://td/ns/a/sa/b", "b.example", "CN=b"}; !slices.Equal(got, want) {
		t.Fatalf("names %q, want %q", got, want)
	}
}
