package rbac

import (
	"net/netip"
	"testing"

	"github.com/nodemesh/nodemesh/proxylib/resource"
)

// TestSourceIdentityPrincipal: the datapath's identity matches the
// filter_state principal; a connection whose identity came from a
// routing mark (IdentityOnly) is never matched by its address, so a
// Gateway from the node's address does not borrow the host's allowance.
func TestSourceIdentityPrincipal(t *testing.T) {
	host := netip.MustParsePrefix("10.0.0.1/32")
	policy := func(name string, p *resource.Principal) *resource.RBACPolicy {
		return &resource.RBACPolicy{Name: name, Permissions: []*resource.Permission{{Kind: resource.PermAny}}, Principals: []*resource.Principal{p}}
	}
	hostOnly := New(&resource.RBAC{Enforce: true, Action: resource.RBACAllow, Policies: []*resource.RBACPolicy{
		policy("host", &resource.Principal{Kind: resource.PrinDirectRemoteIP, CIDR: host}),
	}})
	ingress := New(&resource.RBAC{Enforce: true, Action: resource.RBACAllow, Policies: []*resource.RBACPolicy{
		policy("ingress", &resource.Principal{Kind: resource.PrinSourceIdentity, Identity: 8}),
	}})
	from := netip.MustParseAddrPort("10.0.0.1:40000")
	for _, tc := range []struct {
		name  string
		e     *Engine
		in    Input
		allow bool
	}{
		{"address, no datapath identity", hostOnly, Input{Remote: from}, true},
		{"address, datapath agrees", hostOnly, Input{Remote: from, Identity: 1}, true},
		{"address, identity from the mark", hostOnly, Input{Remote: from, Identity: 8, IdentityOnly: true}, false},
		{"identity from the mark", ingress, Input{Remote: from, Identity: 8, IdentityOnly: true}, true},
		{"other identity", ingress, Input{Remote: from, Identity: 1}, false},
		{"no identity", ingress, Input{Remote: from}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if ok, _ := tc.e.Evaluate(&tc.in); ok != tc.allow {
				t.Fatalf("allowed %v, want %v", ok, tc.allow)
			}
			if ok, _ := tc.e.EvaluateLinear(&tc.in); ok != tc.allow {
				t.Fatalf("linear: allowed %v, want %v", ok, tc.allow)
			}
		})
	}
}
