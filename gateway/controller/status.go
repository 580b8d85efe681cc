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
	out := gwv1.GatewayStatus{Addresses: desired.Addresses}
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
	var out gwv1.RouteStatus
	for _, p := range cur.Parents {
		if p.ControllerName != controller {
			out.Parents = append(out.Parents, p)
		}
	}
	for _, d := range desired {
		var prev []metav1.Condition
		for _, p := range cur.Parents {
			if p.ControllerName == controller && reflect.DeepEqual(p.ParentRef, d.ParentRef) {
				prev = p.Conditions
				break
			}
		}
		d.Conditions = mergeConditions(prev, d.Conditions, now)
		out.Parents = append(out.Parents, d)
	}
	if len(out.Parents) > maxParents {
		// The API accepts at most 32 parent entries; keep other
		// controllers' and as many of ours as fit.
		out.Parents = out.Parents[:maxParents]
	}
	if out.Parents == nil {
		out.Parents = []gwv1.RouteParentStatus{}
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
