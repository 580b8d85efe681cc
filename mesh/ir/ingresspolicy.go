package ir

import (
	"fmt"
	"net/netip"
	"unicode/utf8"
)

// IngressPolicy is the network policy of the node's ingress endpoint:
// the Gateway and Ingress proxy, which Cilium models as an endpoint with
// the reserved identity ingress. Producers: mesh/policy (policies whose
// endpointSelector selects reserved:ingress). Consumers: xds/translator,
// for the listeners built from Gateways and Ingresses.
//
// It is checked at two points. Ingress (world → ingress) judges a
// downstream connection by its source address and the listener port it
// reached. Egress (ingress → backend) judges an upstream connection by
// the backend's address and port. A flow passes a direction that is not
// Enforced; in an Enforced one it passes when DenyAll is false, some
// Allow rule matches it and no Deny rule does.
type IngressPolicy struct {
	Ingress IngressDirection `json:"ingress"`
	Egress  IngressDirection `json:"egress"`
}

// IngressDirection is what one direction of the ingress endpoint admits.
type IngressDirection struct {
	// Enforced: some policy selects the ingress endpoint in this
	// direction. Without one the direction allows everything, as in
	// Cilium.
	Enforced bool `json:"enforced,omitempty"`
	// DenyAll holds the direction closed whatever the rules say: a
	// policy asks for something neither check point can enforce (its
	// status says what). Reason names the first such policy and rule.
	DenyAll bool   `json:"denyAll,omitempty"`
	Reason  string `json:"reason,omitempty"`
	// Allow and Deny rules, sorted by name.
	Allow []*IngressRule `json:"allow,omitempty"`
	Deny  []*IngressRule `json:"deny,omitempty"`
}

// IngressRule matches flows of one protocol and port with a peer in
// Peers: the client for ingress, the backend for egress.
type IngressRule struct {
	// Name traces back to the rule, e.g.
	// "ccnp/external-lockdown/ingress/0".
	Name string `json:"name"`
	// Protocol is TCP, UDP, SCTP or ANY (every protocol).
	Protocol string `json:"protocol"`
	// Port is the destination port; 0 is every port.
	Port  uint32  `json:"port,omitempty"`
	Peers PeerSet `json:"peers"`
}

// Protocols of an IngressRule.
const (
	IngressProtoAny  = "ANY"
	IngressProtoTCP  = "TCP"
	IngressProtoUDP  = "UDP"
	IngressProtoSCTP = "SCTP"
)

// Allows reports whether the direction lets a TCP or UDP flow ("TCP",
// "UDP") with peer address peer and destination port port through.
func (d *IngressDirection) Allows(peer netip.Addr, proto string, port uint32) bool {
	if d == nil || !d.Enforced {
		return true
	}
	if d.DenyAll {
		return false
	}
	for _, r := range d.Deny {
		if r.matches(peer, proto, port) {
			return false
		}
	}
	for _, r := range d.Allow {
		if r.matches(peer, proto, port) {
			return true
		}
	}
	return false
}

func (r *IngressRule) matches(peer netip.Addr, proto string, port uint32) bool {
	if r.Protocol != IngressProtoAny && r.Protocol != proto {
		return false
	}
	if r.Port != 0 && r.Port != port {
		return false
	}
	return r.Peers.Contains(peer)
}

// Contains reports whether addr is in the set. Terms that do not parse
// match nothing (Validate rejects them).
func (s PeerSet) Contains(addr netip.Addr) bool {
	if s.Any {
		return true
	}
	addr = addr.Unmap()
	for _, t := range s.Terms {
		p, err := netip.ParsePrefix(t.Prefix)
		if err != nil || !p.Contains(addr) {
			continue
		}
		excluded := false
		for _, e := range t.Except {
			if q, err := netip.ParsePrefix(e); err == nil && q.Contains(addr) {
				excluded = true
				break
			}
		}
		if !excluded {
			return true
		}
	}
	return false
}

func (v *validator) ingressPolicy(p *IngressPolicy) {
	for _, d := range []struct {
		name string
		dir  *IngressDirection
	}{{"ingress", &p.Ingress}, {"egress", &p.Egress}} {
		obj := object{kind: "ingress policy", name: d.name}
		if !d.dir.Enforced && (d.dir.DenyAll || len(d.dir.Allow) > 0 || len(d.dir.Deny) > 0) {
			v.fail(obj, root, "rules or denyAll in a direction that is not enforced")
		}
		if !utf8.ValidString(d.dir.Reason) {
			v.fail(obj, root.f("reason"), "invalid UTF-8")
		}
		for _, rs := range []struct {
			field string
			rules []*IngressRule
		}{{"allow", d.dir.Allow}, {"deny", d.dir.Deny}} {
			names := map[string]bool{}
			for i, r := range rs.rules {
				f := root.i(rs.field, i)
				if r == nil {
					v.fail(obj, f, "nil rule")
					continue
				}
				if r.Name == "" || !utf8.ValidString(r.Name) {
					v.fail(obj, f.f("name"), "empty or invalid UTF-8")
				} else if key := fmt.Sprintf("%s\x00%s\x00%d", r.Name, r.Protocol, r.Port); names[key] {
					v.fail(obj, f.f("name"), "duplicate rule %q for %s/%d", r.Name, r.Protocol, r.Port)
				} else {
					names[key] = true
				}
				switch r.Protocol {
				case IngressProtoAny, IngressProtoTCP, IngressProtoUDP, IngressProtoSCTP:
				default:
					v.fail(obj, f.f("protocol"), "unknown protocol %q", r.Protocol)
				}
				if r.Port > 65535 {
					v.fail(obj, f.f("port"), "%d out of range 0-65535", r.Port)
				}
				v.peerSet(obj, f.f("peers"), r.Peers)
			}
		}
	}
}
