package gateway

import (
	"fmt"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// parentState is one parentRef of a route to one of our Gateways.
type parentState struct {
	ref      gwv1.ParentReference
	accepted verdict
}

// attach resolves a route's parentRefs against our Gateways' listeners:
// sectionName and port select listeners, allowedRoutes admits the route,
// and hostnames must intersect. Accepted routes are added to the serving
// listeners' route sets, on the hostnames they serve there.
func (t *translator) attach(rs *routeState) {
	r := rs.obj
	for _, pr := range r.Spec.ParentRefs {
		if !isGatewayRef(pr) {
			continue // e.g. a Service parent (GAMMA): not a Gateway's business
		}
		gs := t.gateways[gatewayKey(pr, r.Namespace)]
		if gs == nil {
			continue // not one of our Gateways: another controller reports it
		}
		ps := &parentState{ref: *pr.DeepCopy()}
		rs.parents = append(rs.parents, ps)

		type hit struct {
			ls        *listenerState
			hostnames []string
		}
		var selected, kindOK, allowed int
		var hits []hit
		for _, ls := range gs.listeners {
			if pr.SectionName != nil && string(*pr.SectionName) != ls.name {
				continue
			}
			if pr.Port != nil && *pr.Port != ls.port {
				continue
			}
			selected++
			if !ls.allowsHTTPRoute() {
				continue
			}
			kindOK++
			if !ls.allowsNamespace(t.ix, r.Namespace) {
				continue
			}
			allowed++
			if hs := routeHostnames(ls.hostname, rs.hostnames); len(hs) > 0 {
				hits = append(hits, hit{ls, hs})
			}
		}
		switch {
		case selected == 0:
			ps.accepted = no(string(gwv1.RouteReasonNoMatchingParent), "Gateway %s has no listener%s", gs.key, describeSelection(pr))
		case kindOK == 0:
			ps.accepted = no(string(gwv1.RouteReasonNotAllowedByListeners), "no listener of Gateway %s%s admits HTTPRoutes", gs.key, describeSelection(pr))
		case allowed == 0:
			ps.accepted = no(string(gwv1.RouteReasonNotAllowedByListeners), "no listener of Gateway %s%s admits HTTPRoutes from namespace %s", gs.key, describeSelection(pr), r.Namespace)
		case len(rs.problems) > 0:
			ps.accepted = no(string(gwv1.RouteReasonUnsupportedValue), "%s", joinProblems(rs.problems))
		case len(hits) == 0:
			ps.accepted = no(string(gwv1.RouteReasonNoMatchingListenerHostname), "no hostname of the route intersects the hostname of a listener of Gateway %s%s", gs.key, describeSelection(pr))
		case len(rs.invalid) == len(rs.rules):
			ps.accepted = no(rs.invalid[0].reason, "every rule is invalid: %s", joinProblems(ruleProblems(rs.invalid)))
		default:
			ps.accepted = yes(string(gwv1.RouteReasonAccepted), "Route is accepted")
		}
		if !ps.accepted.ok {
			continue
		}
		for _, h := range hits {
			if h.ls.attached[rs] {
				continue // already attached through another parentRef
			}
			h.ls.attached[rs] = true
			if !h.ls.serving {
				continue
			}
			for _, host := range h.hostnames {
				// Listener isolation: a hostname a more specific listener of
				// the same port claims is served by that listener only.
				if h.ls.owner(host) == h.ls {
					h.ls.entries[host] = append(h.ls.entries[host], rs)
				}
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

func ruleProblems(rules []*ruleState) []string {
	out := make([]string, len(rules))
	for i, r := range rules {
		out[i] = r.problem
	}
	return out
}

// status renders this controller's RouteParentStatus entries.
func (rs *routeState) status(controller gwv1.GatewayController) gwv1.HTTPRouteStatus {
	gen := rs.obj.Generation
	resolved := yes(string(gwv1.RouteReasonResolvedRefs), "All references are resolved")
	if len(rs.refProblems) > 0 {
		msgs := make([]string, len(rs.refProblems))
		for i, p := range rs.refProblems {
			msgs[i] = p.msg
		}
		resolved = no(rs.refProblems[0].reason, "%s", joinProblems(msgs))
	}
	var st gwv1.HTTPRouteStatus
	st.Parents = []gwv1.RouteParentStatus{}
	for _, ps := range rs.parents {
		conds := []metav1.Condition{
			ps.accepted.condition(string(gwv1.RouteConditionAccepted), gen),
			resolved.condition(string(gwv1.RouteConditionResolvedRefs), gen),
		}
		if ps.accepted.ok && len(rs.invalid) > 0 {
			conds = append(conds, yes(string(gwv1.RouteReasonUnsupportedValue), "Dropped Rule(s): "+joinProblems(ruleProblems(rs.invalid))).
				condition(string(gwv1.RouteConditionPartiallyInvalid), gen))
		}
		st.Parents = append(st.Parents, gwv1.RouteParentStatus{
			ParentRef:      ps.ref,
			ControllerName: controller,
			Conditions:     conds,
		})
	}
	return st
}
