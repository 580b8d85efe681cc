package gateway

import (
	"fmt"
	"strings"

	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// parentState is one parentRef of a route to one of our Gateways (the
// Gateway is gatewayKey(ref, route namespace)), and what it resolved to.
type parentState struct {
	ref      gwv1.ParentReference
	accepted verdict
	// hits are the listeners that admit the route through this parentRef
	// (none unless accepted).
	hits []listenerHit
	// hit0 holds hits when there is one, the usual case, saving an
	// allocation per route and translation.
	hit0 [1]listenerHit
}

// listenerHit is one listener a route attaches to and the hostnames it is
// served on there. The listener is named by its position in the
// Gateway's listeners rather than by pointer, so a resolved parentRef
// stays meaningful for as long as that Gateway's listeners are unchanged.
type listenerHit struct {
	listener  int
	hostnames []string
}

// attach resolves a route's parentRefs against our Gateways' listeners and
// attaches the route where it is accepted. Routes of every kind attach
// here; the kind enters only through allowedRoutes.kinds.
func (t *translator) attach(rs *routeState) {
	for _, pr := range rs.src.parentRefs() {
		if !isGatewayRef(pr) {
			continue // e.g. a Service parent (GAMMA): not a Gateway's business
		}
		gs := t.gateways[gatewayKey(pr, rs.key.Namespace)]
		if gs == nil {
			continue // not one of our Gateways: another controller reports it
		}
		ps := t.resolveParent(rs, pr, gs)
		rs.parents = append(rs.parents, ps)
		if ps.accepted.ok {
			attachToListeners(rs, ps, gs)
		}
	}
}

// resolveParent decides whether a Gateway accepts a route through one
// parentRef: sectionName and port select listeners, allowedRoutes (kinds,
// then namespaces) admits the route, and hostnames must intersect. Failing
// each step in turn gives NoMatchingParent, NotAllowedByListeners, then
// NoMatchingListenerHostname. The answer depends only on the compiled
// route, the Gateway's listeners and the labels of the route's namespace.
func (t *translator) resolveParent(rs *routeState, pr gwv1.ParentReference, gs *gatewayState) *parentState {
	ps := &parentState{ref: *pr.DeepCopy()}
	var selected, kindOK, allowed int
	hits := ps.hit0[:0]
	for i, ls := range gs.listeners {
		if pr.SectionName != nil && string(*pr.SectionName) != ls.name {
			continue
		}
		if pr.Port != nil && *pr.Port != ls.port {
			continue
		}
		selected++
		if !ls.admitsKind(rs.kind) {
			continue
		}
		kindOK++
		if !ls.allowsNamespace(t.ix, rs.key.Namespace) {
			continue
		}
		allowed++
		if hs := routeHostnames(ls.hostname, rs.hostnames); len(hs) > 0 {
			hits = append(hits, listenerHit{i, hs})
		}
	}
	switch {
	case selected == 0:
		ps.accepted = no(string(gwv1.RouteReasonNoMatchingParent), "Gateway %s has no listener%s", gs.key, describeSelection(pr))
	case kindOK == 0:
		ps.accepted = no(string(gwv1.RouteReasonNotAllowedByListeners), "no listener of Gateway %s%s admits %s", gs.key, describeSelection(pr), rs.kind.plural)
	case allowed == 0:
		ps.accepted = no(string(gwv1.RouteReasonNotAllowedByListeners), "no listener of Gateway %s%s admits %s from namespace %s", gs.key, describeSelection(pr), rs.kind.plural, rs.key.Namespace)
	case len(rs.problems) > 0:
		ps.accepted = no(string(gwv1.RouteReasonUnsupportedValue), "%s", joinProblems(rs.problems))
	case len(hits) == 0:
		ps.accepted = no(string(gwv1.RouteReasonNoMatchingListenerHostname), "no hostname of the route intersects the hostname of a listener of Gateway %s%s", gs.key, describeSelection(pr))
	case len(rs.invalid) == len(rs.rules):
		ps.accepted = no(rs.invalid[0].reason, "every rule is invalid: %s", joinProblems(ruleProblems(rs.invalid)))
	default:
		ps.accepted = yes(string(gwv1.RouteReasonAccepted), "Route is accepted")
		ps.hits = hits
	}
	return ps
}

// attachToListeners counts an accepted route on the listeners it resolved
// to and adds it to the serving ones' route sets, on the hostnames it
// serves there.
func attachToListeners(rs *routeState, ps *parentState, gs *gatewayState) {
	for _, h := range ps.hits {
		ls := gs.listeners[h.listener]
		if ls.attached[rs] {
			continue // already attached through another parentRef
		}
		ls.attached[rs] = true
		if !ls.serving {
			continue
		}
		for _, host := range h.hostnames {
			// Listener isolation: a hostname a more specific listener of
			// the same port claims is served by that listener only.
			if ls.owner(host) == ls {
				ls.entries[host] = append(ls.entries[host], rs)
			}
		}
	}
}

// routeHostnames intersects a route's hostnames with a listener's.
func routeHostnames(listener string, route []string) []string {
	if len(route) == 0 {
		if listener == "" {
			return []string{anyHost}
		}
		return []string{listener}
	}
	var out []string
	for _, h := range route {
		if x, ok := intersect(listener, h); ok && !contains(out, x) {
			out = append(out, x)
		}
	}
	return out
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func describeSelection(pr gwv1.ParentReference) string {
	var parts []string
	if pr.SectionName != nil {
		parts = append(parts, fmt.Sprintf("named %q", *pr.SectionName))
	}
	if pr.Port != nil {
		parts = append(parts, fmt.Sprintf("on port %d", *pr.Port))
	}
	if len(parts) == 0 {
		return ""
	}
	return " " + strings.Join(parts, " ")
}
