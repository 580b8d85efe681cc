package gateway

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// renderStatus renders this controller's part of a route's status, for
// every route kind alike: one RouteParentStatus per resolved parentRef with
// Accepted (the parent's verdict), ResolvedRefs (the route's backendRefs)
// and, on accepted parents of a route with dropped rules,
// PartiallyInvalid=True. It reads only the compiled route and its
// resolved parents, so it is as reusable as they are.
func (rs *routeState) renderStatus(controller gwv1.GatewayController) gwv1.RouteStatus {
	gen := rs.generation
	resolved := yes(string(gwv1.RouteReasonResolvedRefs), "All references are resolved")
	if len(rs.refProblems) > 0 {
		msgs := make([]string, len(rs.refProblems))
		for i, p := range rs.refProblems {
			msgs[i] = p.msg
		}
		resolved = no(rs.refProblems[0].reason, "%s", joinProblems(msgs))
	}
	var st gwv1.RouteStatus
	// room holds the conditions of a route's one parent when it has two
	// (no rule dropped): one allocation with the parent's status, since
	// routes come by the thousand and nearly all have one parent.
	var room []metav1.Condition
	if n := len(rs.parents) + len(rs.meshParents); n == 1 && len(rs.invalid) == 0 {
		blk := new(struct {
			parents [1]gwv1.RouteParentStatus
			conds   [2]metav1.Condition
		})
		st.Parents, room = blk.parents[:0:1], blk.conds[:0:2]
	} else {
		st.Parents = make([]gwv1.RouteParentStatus, 0, n)
	}
	parent := func(ref gwv1.ParentReference, accepted verdict) {
		conds := append(room,
			accepted.condition(string(gwv1.RouteConditionAccepted), gen),
			resolved.condition(string(gwv1.RouteConditionResolvedRefs), gen),
		)
		room = nil
		if accepted.ok && len(rs.invalid) > 0 {
			conds = append(conds, yes(string(gwv1.RouteReasonUnsupportedValue), "Dropped Rule(s): "+joinProblems(ruleProblems(rs.invalid))).
				condition(string(gwv1.RouteConditionPartiallyInvalid), gen))
		}
		st.Parents = append(st.Parents, gwv1.RouteParentStatus{
			ParentRef:      ref,
			ControllerName: controller,
			Conditions:     conds,
		})
	}
	for _, ps := range rs.parents {
		parent(ps.ref, ps.accepted)
	}
	// Service parents (GAMMA) after Gateways, in spec order.
	for _, mp := range rs.meshParents {
		parent(mp.ref, mp.accepted)
	}
	return st
}

func ruleProblems(rules []*ruleState) []string {
	out := make([]string, len(rules))
	for i, r := range rules {
		out[i] = r.problem
	}
	return out
}
