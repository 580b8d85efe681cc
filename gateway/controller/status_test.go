package controller

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

var (
	t0 = metav1.NewTime(time.Unix(1000, 0))
	t1 = metav1.NewTime(time.Unix(2000, 0))
)

func cond(typ string, status metav1.ConditionStatus, reason string, at metav1.Time) metav1.Condition {
	return metav1.Condition{Type: typ, Status: status, Reason: reason, LastTransitionTime: at}
}

func TestMergeConditionsKeepsTransitionTime(t *testing.T) {
	existing := []metav1.Condition{
		cond("Accepted", metav1.ConditionTrue, "Accepted", t0),
		cond("Programmed", metav1.ConditionFalse, "Pending", t0),
		cond("Stale", metav1.ConditionTrue, "X", t0),
	}
	desired := []metav1.Condition{
		{Type: "Accepted", Status: metav1.ConditionTrue, Reason: "Accepted", Message: "new message"},
		{Type: "Programmed", Status: metav1.ConditionTrue, Reason: "Programmed"},
	}
	got := mergeConditions(existing, desired, t1)
	want := []metav1.Condition{
		{Type: "Accepted", Status: metav1.ConditionTrue, Reason: "Accepted", Message: "new message", LastTransitionTime: t0},
		{Type: "Programmed", Status: metav1.ConditionTrue, Reason: "Programmed", LastTransitionTime: t1},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Fatalf("(-want +got)\n%s", d)
	}
}

func TestMergeRouteKeepsOtherControllers(t *testing.T) {
	ours := gwv1.GatewayController("nodemesh.io/gateway-controller")
	theirs := gwv1.GatewayController("example.com/other")
	ref := func(name string) gwv1.ParentReference { return gwv1.ParentReference{Name: gwv1.ObjectName(name)} }
	cur := gwv1.RouteStatus{Parents: []gwv1.RouteParentStatus{
		{ParentRef: ref("other-gw"), ControllerName: theirs, Conditions: []metav1.Condition{cond("Accepted", metav1.ConditionTrue, "Accepted", t0)}},
		{ParentRef: ref("gone"), ControllerName: ours, Conditions: []metav1.Condition{cond("Accepted", metav1.ConditionTrue, "Accepted", t0)}},
		{ParentRef: ref("gw"), ControllerName: ours, Conditions: []metav1.Condition{cond("Accepted", metav1.ConditionTrue, "Accepted", t0)}},
	}}
	desired := []gwv1.RouteParentStatus{{ParentRef: ref("gw"), ControllerName: ours, Conditions: []metav1.Condition{
		{Type: "Accepted", Status: metav1.ConditionTrue, Reason: "Accepted"},
		{Type: "ResolvedRefs", Status: metav1.ConditionFalse, Reason: "BackendNotFound"},
	}}}
	got := mergeRoute(cur, desired, ours, t1)
	want := gwv1.RouteStatus{Parents: []gwv1.RouteParentStatus{
		cur.Parents[0],
		{ParentRef: ref("gw"), ControllerName: ours, Conditions: []metav1.Condition{
			{Type: "Accepted", Status: metav1.ConditionTrue, Reason: "Accepted", LastTransitionTime: t0},
			{Type: "ResolvedRefs", Status: metav1.ConditionFalse, Reason: "BackendNotFound", LastTransitionTime: t1},
		}},
	}}
	if d := cmp.Diff(want, got); d != "" {
		t.Fatalf("(-want +got)\n%s", d)
	}
	// No desired entries removes only ours.
	if got := mergeRoute(cur, nil, ours, t1); len(got.Parents) != 1 || got.Parents[0].ControllerName != theirs {
		t.Fatalf("removing ours: %+v", got)
	}
}

// TestMergePolicyKeepsOtherControllers: a BackendTLSPolicy's ancestors of
// other controllers stay, ours are replaced (unchanged conditions keep
// their transition time), and the result never exceeds the API's 16.
func TestMergePolicyKeepsOtherControllers(t *testing.T) {
	ours := gwv1.GatewayController("nodemesh.io/gateway-controller")
	theirs := gwv1.GatewayController("example.com/other")
	ref := func(name string) gwv1.ParentReference { return gwv1.ParentReference{Name: gwv1.ObjectName(name)} }
	cur := gwv1.PolicyStatus{Ancestors: []gwv1.PolicyAncestorStatus{
		{AncestorRef: ref("other-gw"), ControllerName: theirs, Conditions: []metav1.Condition{cond("Accepted", metav1.ConditionTrue, "Accepted", t0)}},
		{AncestorRef: ref("gone"), ControllerName: ours, Conditions: []metav1.Condition{cond("Accepted", metav1.ConditionTrue, "Accepted", t0)}},
		{AncestorRef: ref("gw"), ControllerName: ours, Conditions: []metav1.Condition{cond("Accepted", metav1.ConditionTrue, "Accepted", t0)}},
	}}
	desired := []gwv1.PolicyAncestorStatus{{AncestorRef: ref("gw"), ControllerName: ours, Conditions: []metav1.Condition{
		{Type: "Accepted", Status: metav1.ConditionTrue, Reason: "Accepted"},
		{Type: "ResolvedRefs", Status: metav1.ConditionFalse, Reason: "InvalidCACertificateRef"},
	}}}
	got := mergePolicy(cur, desired, ours, t1)
	want := gwv1.PolicyStatus{Ancestors: []gwv1.PolicyAncestorStatus{
		cur.Ancestors[0],
		{AncestorRef: ref("gw"), ControllerName: ours, Conditions: []metav1.Condition{
			{Type: "Accepted", Status: metav1.ConditionTrue, Reason: "Accepted", LastTransitionTime: t0},
			{Type: "ResolvedRefs", Status: metav1.ConditionFalse, Reason: "InvalidCACertificateRef", LastTransitionTime: t1},
		}},
	}}
	if d := cmp.Diff(want, got); d != "" {
		t.Fatalf("(-want +got)\n%s", d)
	}
	if got := mergePolicy(cur, nil, ours, t1); len(got.Ancestors) != 1 || got.Ancestors[0].ControllerName != theirs {
		t.Fatalf("removing ours: %+v", got)
	}
	many := make([]gwv1.PolicyAncestorStatus, 20)
	for i := range many {
		many[i] = gwv1.PolicyAncestorStatus{AncestorRef: ref(fmt.Sprint("gw", i)), ControllerName: ours}
	}
	if got := mergePolicy(cur, many, ours, t1); len(got.Ancestors) != 16 || got.Ancestors[0].ControllerName != theirs {
		t.Fatalf("20 of ours and 1 other: %d ancestors, first %s", len(got.Ancestors), got.Ancestors[0].ControllerName)
	}
}
