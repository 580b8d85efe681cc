package agent

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/nodemesh/nodemesh/datapath/model"
	"github.com/nodemesh/nodemesh/mesh/ir"
	"github.com/nodemesh/nodemesh/mesh/policy"
)

// A Gateway cluster binds the node's ingress address of its endpoints'
// family; with endpoints of both families, names, or none, it binds
// nothing (a socket of one family cannot reach the other).
func TestUpstreamSource(t *testing.T) {
	src := []netip.Addr{netip.MustParseAddr("10.244.1.254"), netip.MustParseAddr("fd00:244:1::fe")}
	eps := func(addrs ...string) *ir.Cluster {
		c := &ir.Cluster{}
		for _, a := range addrs {
			c.Endpoints = append(c.Endpoints, ir.Endpoint{Address: a, Port: 80})
		}
		return c
	}
	for _, tc := range []struct {
		name string
		c    *ir.Cluster
		src  []netip.Addr
		want string
	}{
		{"IPv4 endpoints", eps("10.244.2.5", "10.244.2.6"), src, "10.244.1.254"},
		{"IPv6 endpoints", eps("fd00:244:2::5"), src, "fd00:244:1::fe"},
		{"both families", eps("10.244.2.5", "fd00:244:2::5"), src, ""},
		{"a name", eps("10.244.2.5", "backend.example"), src, ""},
		{"no endpoints", eps(), src, ""},
		{"no ingress address of that family", eps("fd00:244:2::5"), src[:1], ""},
		{"no ingress address", eps("10.244.2.5"), nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := upstreamSource(tc.c, tc.src); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// The status names the ports on which the datapath refuses Gateway
// connections (their marked ingress identity is not their address's),
// only where the node lacks an ingress address of a family and a local
// endpoint's ingress rows redirect the ingress identity (or every peer).
func TestGatewayFromNode(t *testing.T) {
	v4, v6 := netip.MustParseAddr("10.244.1.254"), netip.MustParseAddr("fd00:244:1::fe")
	rows := func(es ...model.PolicyEntry) *policy.Result {
		return &policy.Result{Datapath: model.Policy{Entries: es}}
	}
	redirect := func(remote model.Identity, port uint16) model.PolicyEntry {
		return model.PolicyEntry{Subject: 1000, Remote: remote, Direction: model.Ingress, Proto: 6, Port: port,
			Verdict: model.Redirect, ProxyPort: 15101}
	}
	l7 := rows(redirect(model.IdentityIngress, 8080), redirect(model.IdentityAny, 9090), redirect(model.IdentityHost, 7070),
		model.PolicyEntry{Subject: 1000, Remote: model.IdentityIngress, Direction: model.Ingress, Proto: 6, Port: 6060, Verdict: model.Allow})
	mark := uint32(0x0B00 | 8<<16)
	for _, tc := range []struct {
		name     string
		mark     uint32
		dp       Datapath
		res      *policy.Result
		addrs    []netip.Addr
		want     []string // substrings
		wantNone bool
		proxyID  bool
	}{
		{name: "no ingress address", mark: mark, dp: &tables{}, res: l7, want: []string{"no IPv4/IPv6 ingress address", "ports 8080, 9090"}},
		{name: "no IPv6 one", mark: mark, dp: &tables{}, res: l7, addrs: []netip.Addr{v4}, want: []string{"no IPv6 ingress address", "ports 8080, 9090"}},
		{name: "both families", mark: mark, dp: &tables{}, res: l7, addrs: []netip.Addr{v4, v6}, wantNone: true},
		{name: "no L7 rows for ingress", mark: mark, dp: &tables{}, res: rows(redirect(model.IdentityHost, 7070)), wantNone: true},
		{name: "no mark", dp: &tables{}, res: l7, wantNone: true},
		{name: "no datapath", mark: mark, res: l7, wantNone: true},
		{name: "proxy reads the datapath's identities", mark: mark, dp: &tables{}, res: l7, proxyID: true, wantNone: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := &Agent{cfg: Config{GatewayUpstreamMark: tc.mark, Datapath: tc.dp, ProxyIdentity: tc.proxyID}}
			got := a.gatewayFromNode(tc.res, tc.addrs)
			if tc.wantNone {
				if got != "" {
					t.Fatalf("got %q, want nothing", got)
				}
				return
			}
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("got %q, want it to say %q", got, w)
				}
			}
		})
	}
}
