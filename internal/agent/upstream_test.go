package agent

import (
	"net/netip"
	"testing"

	"github.com/nodemesh/nodemesh/mesh/ir"
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
