package translator

import (
	"crypto/sha256"
	"encoding/json"
	"net/netip"

	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	rbacfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"

	"github.com/nodemesh/nodemesh/mesh/ir"
)

// The policy of the node's ingress endpoint (ir.IngressPolicy) is enforced
// on the listeners built from Gateways and Ingresses (see doc.go, "Ingress
// endpoint policy").

// ingressDenyAllPolicy names the RBAC policy of a closed direction: it
// never matches, so the ALLOW filter denies every request.
const ingressDenyAllPolicy = "ingress-policy/deny-all"

// ingressEnforced reports whether world → ingress is checked.
func (b *builder) ingressEnforced() bool {
	return b.cfg.IngressPolicy != nil && b.cfg.IngressPolicy.Ingress.Enforced
}

// egressEnforced reports whether ingress → backend is checked.
func (b *builder) egressEnforced() bool {
	return b.cfg.IngressPolicy != nil && b.cfg.IngressPolicy.Egress.Enforced
}

// ingressPolicyHash is a content hash of the ingress policy, mixed into
// the memo keys of what depends on it; zero for none.
func ingressPolicyHash(p *ir.IngressPolicy) ir.Hash {
	var h ir.Hash
	if p == nil {
		return h
	}
	data, _ := json.Marshal(p) // plain data: cannot fail
	sum := sha256.Sum256(data)
	copy(h[:], sum[:])
	return h
}

func mixHash(a, b ir.Hash) ir.Hash {
	sum := sha256.Sum256(append(a[:], b[:]...))
	var h ir.Hash
	copy(h[:], sum[:])
	return h
}

// ingressRBACFilter is the world → ingress check of an HTTP chain on a
// listener bound to port: an ALLOW RBAC filter whose one policy admits a
// downstream peer address (direct_remote_ip, never x-forwarded-for) that
// some allow rule for TCP on port admits and no deny rule does. A denied
// request is answered 403, as Cilium's proxy does.
func ingressRBACFilter(listener string, d *ir.IngressDirection, port uint32) (httpFilter, error) {
	var allow, deny []*rbacv3.Principal
	if !d.DenyAll {
		for _, r := range d.Allow {
			if ingressRuleApplies(r, port) {
				allow = append(allow, peerPrincipal(r.Peers))
			}
		}
		for _, r := range d.Deny {
			if ingressRuleApplies(r, port) {
				deny = append(deny, peerPrincipal(r.Peers))
			}
		}
	}
	name, principal := "ingress-policy/allow", anyPrincipal(allow)
	if len(allow) == 0 {
		name, principal = ingressDenyAllPolicy, &rbacv3.Principal{Identifier: &rbacv3.Principal_NotId{NotId: &rbacv3.Principal{Identifier: &rbacv3.Principal_Any{Any: true}}}}
	} else if len(deny) > 0 {
		principal = &rbacv3.Principal{Identifier: &rbacv3.Principal_AndIds{AndIds: &rbacv3.Principal_Set{Ids: []*rbacv3.Principal{
			principal, {Identifier: &rbacv3.Principal_NotId{NotId: anyPrincipal(deny)}},
		}}}}
	}
	cfg := &rbacfilterv3.RBAC{Rules: &rbacv3.RBAC{Action: rbacv3.RBAC_ALLOW, Policies: map[string]*rbacv3.Policy{
		name: {Permissions: []*rbacv3.Permission{{Rule: &rbacv3.Permission_Any{Any: true}}}, Principals: []*rbacv3.Principal{principal}},
	}}}
	tc, err := typedConfig("listener", listener, cfg)
	if err != nil {
		return httpFilter{}, err
	}
	return httpFilter{role: roleRBAC, filter: &hcmv3.HttpFilter{Name: filterRBAC, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: tc}}}, nil
}

func ingressRuleApplies(r *ir.IngressRule, port uint32) bool {
	return (r.Protocol == ir.IngressProtoAny || r.Protocol == ir.IngressProtoTCP) && (r.Port == 0 || r.Port == port)
}

// backendAllowed reports whether ingress → backend admits an endpoint of a
// cluster of the protocol.
func (b *builder) backendAllowed(c *ir.Cluster, addr netip.Addr, port uint32) bool {
	if !b.egressEnforced() {
		return true
	}
	proto := ir.IngressProtoTCP
	if c.Protocol == ir.ProtocolUDP {
		proto = ir.IngressProtoUDP
	}
	return b.cfg.IngressPolicy.Egress.Allows(addr, proto, port)
}
