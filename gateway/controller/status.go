package controller

import (
	"reflect"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// mergeConditions returns desired, each condition keeping the
// lastTransitionTime of the existing condition of its type when the status
// did not change, and stamped now otherwise. Conditions of types not in
// desired are dropped: the caller owns the whole list.
func mergeConditions(existing, desired []metav1.Condition, now metav1.Time) []metav1.Condition {
	if desired == nil {
		return nil
	}
	out := make([]metav1.Condition, len(desired))
	for i, d := range desired {
		d.LastTransitionTime = now
		for _, e := range existing {
			if e.Type == d.Type && e.Status == d.Status && !e.LastTransitionTime.IsZero() {
				d.LastTransitionTime = e.LastTransitionTime
				break
			}
		}
		out[i] = d
	}
	return out
}

// mergeGateway returns the Gateway status to write: desired (computed
// from scratch) with transition times carried over from cur.
func mergeGateway(cur, desired gwv1.GatewayStatus, now metav1.Time) gwv1.GatewayStatus {
	out := gwv1.GatewayStatus{Addresses: desired.Addresses, AttachedListenerSets: desired.AttachedListenerSets}
	out.Conditions = mergeConditions(cur.Conditions, desired.Conditions, now)
	for _, d := range desired.Listeners {
		var prev []metav1.Condition
		for _, c := range cur.Listeners {
			if c.Name == d.Name {
				prev = c.Conditions
				break
			}
		}
		d.Conditions = mergeConditions(prev, d.Conditions, now)
		out.Listeners = append(out.Listeners, d)
	}
	return out
}

// mergeRoute returns the route status to write: every parent entry of
// other controllers untouched, ours replaced by desired (with transition
// times carried over from our previous entry for the same parentRef).
// Passing no desired parents removes all of ours.
func mergeRoute(cur gwv1.RouteStatus, desired []gwv1.RouteParentStatus, controller gwv1.GatewayController, now metav1.Time) gwv1.RouteStatus {
	parents := mergeOurs(cur.Parents, desired, now, maxParents,
		func(p *gwv1.RouteParentStatus) bool { return p.ControllerName == controller },
		func(a, b *gwv1.RouteParentStatus) bool { return reflect.DeepEqual(a.ParentRef, b.ParentRef) },
		func(p *gwv1.RouteParentStatus) *[]metav1.Condition { return &p.Conditions })
	return gwv1.RouteStatus{Parents: parents}
}

// mergeOurs keeps the entries of cur that are not ours and replaces ours
// with desired, carrying transition times over from our previous entry
// for the same reference; at most limit entries are kept (the API's
// bound), other controllers' first. Never nil: an empty list is written
// as such.
func mergeOurs[E any](cur, desired []E, now metav1.Time, limit int, ours func(*E) bool, sameRef func(a, b *E) bool, conds func(*E) *[]metav1.Condition) []E {
	var out []E
	for i := range cur {
		if !ours(&cur[i]) {
			out = append(out, cur[i])
		}
	}
	for _, d := range desired {
		var prev []metav1.Condition
		for i := range cur {
			if ours(&cur[i]) && sameRef(&cur[i], &d) {
				prev = *conds(&cur[i])
				break
			}
		}
		*conds(&d) = mergeConditions(prev, *conds(&d), now)
		out = append(out, d)
	}
	if len(out) > limit {
		out = out[:limit]
	}
	if out == nil {
		out = []E{}
	}
	return out
}

const maxParents = 32

// mergeClass returns the GatewayClass status to write.
func mergeClass(cur, desired gwv1.GatewayClassStatus, now metav1.Time) gwv1.GatewayClassStatus {
	return gwv1.GatewayClassStatus{
		Conditions:        mergeConditions(cur.Conditions, desired.Conditions, now),
		SupportedFeatures: desired.SupportedFeatures,
	}
}
