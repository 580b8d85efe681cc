package policy

import (
	"fmt"
	"sort"

	"k8s.io/apimachinery/pkg/types"

	"github.com/nodemesh/nodemesh/datapath/model"
	"github.com/nodemesh/nodemesh/mesh/identity"
	"github.com/nodemesh/nodemesh/mesh/ir"
)

// ReasonIngressFailClosed: rules of the policy select the node's ingress
// endpoint with something its two check points cannot enforce (L7 rules,
// authentication); that direction of the ingress endpoint denies every
// flow, whatever other policies allow.
const ReasonIngressFailClosed = "IngressFailClosed"

// ingressEndpoint is the virtual endpoint that stands for the node's
// Gateway and Ingress proxy: it has the reserved ingress identity, no
// address of its own on the datapath and no container ports.
var ingressEndpoint = &identity.Endpoint{Pod: types.NamespacedName{Name: "reserved:ingress"}, Identity: model.IdentityIngress}

// addIngressEndpoint makes policies select the virtual ingress endpoint
// like a local one (see doc.go, "The ingress endpoint").
func (ev *evaluator) addIngressEndpoint() {
	ls, ok := ev.st.Labels(model.IdentityIngress)
	if !ok {
		return
	}
	ev.localBy[model.IdentityIngress] = append(ev.localBy[model.IdentityIngress], ingressEndpoint)
	ev.localIDs = append(ev.localIDs, identity.Identity{ID: model.IdentityIngress, Labels: ls})
}

// ingressNote is what a policy's status says about the ingress endpoint.
type ingressNote struct {
	rule *rule
	msg  string
}

// takeIngress removes the groups of the virtual ingress endpoint from the
// table — they never become datapath rows or proxy policy listeners — and
// turns them into the ingress endpoint's policy. It returns nil when no
// policy selects the endpoint, and the rules whose policy's status must
// say that they hold a direction closed.
func (t *table) takeIngress(ev *evaluator) (*ir.IngressPolicy, []ingressNote) {
	var out *ir.IngressPolicy
	var notes []ingressNote
	for _, gk := range t.sortedGroups() {
		if gk.subject != model.IdentityIngress {
			continue
		}
		g := t.groups[gk]
		delete(t.groups, gk)
		if out == nil {
			out = &ir.IngressPolicy{}
		}
		d := &out.Ingress
		if gk.dir == model.Egress {
			d = &out.Egress
		}
		d.Enforced = true
		closeDir := func(r *rule, why string) {
			msg := fmt.Sprintf("%s: %s of the ingress endpoint (reserved:ingress) denies every flow: %s", r.name, gk.dir, why)
			if !d.DenyAll {
				d.DenyAll, d.Reason = true, msg
			}
			notes = append(notes, ingressNote{rule: r, msg: msg})
		}
		if !g.enables {
			d.Allow = append(d.Allow, &ir.IngressRule{Name: g.firstRule, Protocol: ir.IngressProtoAny, Peers: ir.PeerSet{Any: true}})
		}
		seen := map[string]bool{}
		add := func(list *[]*ir.IngressRule, c *contribution, key l4) {
			proto := ingressProto(key.proto)
			if proto == "" {
				return // ICMP never reaches the proxy's listeners
			}
			id := fmt.Sprintf("%t\x00%s\x00%s\x00%d", c.rule.deny, c.rule.name, proto, key.port)
			if seen[id] {
				return // the same rule twice on one key: same peers
			}
			seen[id] = true
			peers := ev.peerSet(c)
			if peers == nil || !peers.Any && len(peers.Terms) == 0 {
				return // the peers have no address: nothing can match
			}
			// A Gateway's own listener judges its clients by address.
			byAddr := *peers
			byAddr.Identities = nil
			*list = append(*list, &ir.IngressRule{Name: c.rule.name, Protocol: proto, Port: uint32(key.port), Peers: byAddr})
		}
		for _, key := range g.sortedKeys() {
			f := g.filters[key]
			for _, c := range f.denies {
				if c.peerAll && key == (l4{model.ProtoAny, 0}) && !d.DenyAll {
					// Denying every flow (a rejected policy held closed, or
					// a deny-all rule): say so instead of a rule.
					d.DenyAll, d.Reason = true, fmt.Sprintf("%s: denies every flow", c.rule.name)
				}
				add(&d.Deny, c, key)
			}
			for _, c := range f.allows {
				switch {
				case f.kind != l7None:
					closeDir(c.rule, fmt.Sprintf("%s rules on %s cannot be enforced there", f.kind, key))
				case c.rule.auth:
					closeDir(c.rule, "authentication (authentication.mode required) cannot be enforced there")
				default:
					add(&d.Allow, c, key)
				}
			}
		}
	}
	if out == nil {
		return nil, nil
	}
	for _, d := range []*ir.IngressDirection{&out.Ingress, &out.Egress} {
		if d.DenyAll {
			// The rules no longer matter; keep the output small.
			d.Allow, d.Deny = nil, nil
		}
		for _, list := range [][]*ir.IngressRule{d.Allow, d.Deny} {
			sort.SliceStable(list, func(i, j int) bool { return ingressRuleLess(list[i], list[j]) })
		}
	}
	return out, notes
}

func ingressRuleLess(a, b *ir.IngressRule) bool {
	switch {
	case a.Name != b.Name:
		return a.Name < b.Name
	case a.Protocol != b.Protocol:
		return a.Protocol < b.Protocol
	}
	return a.Port < b.Port
}

func ingressProto(p uint8) string {
	switch p {
	case model.ProtoAny:
		return ir.IngressProtoAny
	case model.ProtoTCP:
		return ir.IngressProtoTCP
	case model.ProtoUDP:
		return ir.IngressProtoUDP
	case model.ProtoSCTP:
		return ir.IngressProtoSCTP
	}
	return ""
}
