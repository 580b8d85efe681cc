package translator

import (
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"

	"github.com/nodemesh/nodemesh/mesh/ir"
	headermatchv1 "github.com/nodemesh/nodemesh/proxylib/api/headermatch/v1"
)

// hasHeaderActions reports whether any HTTP policy of direction d has
// header actions (Cilium headerMatches with a mismatch action).
func hasHeaderActions(p *ir.Policy, d ir.PolicyDirection) bool {
	for _, h := range p.HTTP {
		if h.Direction == d && h.Request != nil && len(h.Request.HeaderActions) > 0 {
			return true
		}
	}
	return false
}

// headerMatchConfig builds the header match filter's configuration for
// one direction: one rule per HTTP policy with header actions, scoped
// exactly like that policy's RBAC policy (the local endpoints are the
// destination for ingress and the source for egress, the peers the other
// side), in name order. Envoy's RBAC filter can only allow or deny, and
// Envoy has no filter that edits headers on a condition of this kind, so
// the filter is the project's own: only the builtin proxy runs it, and
// the warning says so.
func (b *builder) headerMatchConfig(p *ir.Policy, d ir.PolicyDirection) (*corev3.TypedExtensionConfig, error) {
	name := headerMatchExtensionName(d)
	cfg := &headermatchv1.HeaderMatchPolicy{}
	for _, h := range p.HTTP {
		if h.Direction != d || h.Request == nil || len(h.Request.HeaderActions) == 0 {
			continue
		}
		endpoints := make([]*headermatchv1.AddressTerm, len(h.Endpoints))
		for i, e := range h.Endpoints {
			endpoints[i] = &headermatchv1.AddressTerm{Prefix: e}
		}
		peers := peerTerms(h.Peers)
		if len(peers) == 0 {
			// Peers named by identity alone (no address): the filter
			// matches sources by address, so their mismatch actions are
			// not applied (the RBAC filter still judges the request).
			continue
		}
		r := &headermatchv1.HeaderMatchRule{
			Name:            h.Name,
			DestinationPort: h.Port,
			Method:          h.Request.Method,
			Path:            h.Request.Path,
			Authority:       h.Request.Host,
		}
		if d == ir.PolicyIngress {
			r.Destinations, r.Sources = endpoints, peers
		} else {
			r.Destinations, r.Sources = peers, endpoints
		}
		for _, hd := range h.Request.Headers {
			r.Headers = append(r.Headers, &headermatchv1.HeaderRequirement{Name: hd.Name, Value: hd.Value, Present: hd.Present})
		}
		for _, a := range h.Request.HeaderActions {
			r.HeaderMatches = append(r.HeaderMatches, &headermatchv1.HeaderMatch{
				Name: a.Name, Value: a.Value, MismatchAction: mismatchAction(a.Mismatch), Redact: a.Secret,
			})
		}
		cfg.Rules = append(cfg.Rules, r)
	}
	b.warn(object("policy listener", ir.PolicyListenerName(d, ir.L7HTTP)), "",
		"headerMatches with a mismatch action run in nodemesh's header match filter (%s), which only the builtin proxy implements; stock Envoy rejects this listener",
		headerMatchTypeURL)
	return b.extensionConfig(name, cfg)
}

// peerTerms are a peer set's address terms; any peer is every address.
func peerTerms(s ir.PeerSet) []*headermatchv1.AddressTerm {
	if s.Any {
		return []*headermatchv1.AddressTerm{{Prefix: "0.0.0.0/0"}, {Prefix: "::/0"}}
	}
	out := make([]*headermatchv1.AddressTerm, len(s.Terms))
	for i, t := range s.Terms {
		out[i] = &headermatchv1.AddressTerm{Prefix: t.Prefix, Except: append([]string(nil), t.Except...)}
	}
	return out
}

func mismatchAction(m ir.MismatchAction) headermatchv1.MismatchAction {
	switch m {
	case ir.MismatchLog:
		return headermatchv1.MismatchAction_LOG
	case ir.MismatchAdd:
		return headermatchv1.MismatchAction_ADD
	case ir.MismatchDelete:
		return headermatchv1.MismatchAction_DELETE
	case ir.MismatchReplace:
		return headermatchv1.MismatchAction_REPLACE
	}
	// ir.Config.Validate admits nothing else; the proxy NACKs this.
	return headermatchv1.MismatchAction_MISMATCH_ACTION_UNSPECIFIED
}
