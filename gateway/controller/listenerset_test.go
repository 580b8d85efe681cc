package controller

import (
	"context"
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/nodemesh/nodemesh/api/v1alpha1"
	"github.com/nodemesh/nodemesh/gateway"
)

// TestControllerListenerSetStatus runs the controller against a real API
// server with the standard CRDs: a ListenerSet the Gateway allows is
// Accepted with its listeners' status, counted in the Gateway's
// attachedListenerSets and Programmed once the nodes program the Gateway;
// one from a namespace the Gateway does not allow is NotAllowed; a route
// attached through the ListenerSet gets a status entry for that parentRef.
func TestControllerListenerSetStatus(t *testing.T) {
	e := startController(t)
	ctx := context.Background()
	gc := &gwv1.GatewayClass{ObjectMeta: metav1.ObjectMeta{Name: "nm"}, Spec: gwv1.GatewayClassSpec{ControllerName: gateway.ControllerName}}
	if _, err := e.gw.GatewayV1().GatewayClasses().Create(ctx, gc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, ns := range []string{"app", "other"} {
		if _, err := e.core.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	gw := httpGateway("app", "gw", "nm")
	gw.Spec.AllowedListeners = &gwv1.AllowedListeners{Namespaces: &gwv1.ListenerNamespaces{From: ptr(gwv1.NamespacesFromSame)}}
	if _, err := e.gw.GatewayV1().Gateways("app").Create(ctx, gw, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	set := func(ns, name string) *gwv1.ListenerSet {
		return &gwv1.ListenerSet{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: gwv1.ListenerSetSpec{
			ParentRef: gwv1.ParentGatewayReference{Name: "gw", Namespace: ptr(gwv1.Namespace("app"))},
			Listeners: []gwv1.ListenerEntry{{Name: "extra", Port: 80, Protocol: gwv1.HTTPProtocolType, Hostname: ptr(gwv1.Hostname(name + ".example.com"))}},
		}}
	}
	if _, err := e.gw.GatewayV1().ListenerSets("app").Create(ctx, set("app", "allowed"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.gw.GatewayV1().ListenerSets("other").Create(ctx, set("other", "refused"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	r := &gwv1.HTTPRoute{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "r"}, Spec: gwv1.HTTPRouteSpec{
		CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: []gwv1.ParentReference{{
			Group: ptr(gwv1.Group(gwv1.GroupName)), Kind: ptr(gwv1.Kind("ListenerSet")), Name: "allowed", SectionName: ptr(gwv1.SectionName("extra")),
		}}},
	}}
	if _, err := e.gw.GatewayV1().HTTPRoutes("app").Create(ctx, r, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	eventually(t, "allowed ListenerSet accepted, waiting for nodes", func() error {
		ls, err := e.gw.GatewayV1().ListenerSets("app").Get(ctx, "allowed", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if err := hasCondition(ls.Status.Conditions, "Accepted", metav1.ConditionTrue, "Accepted", ""); err != nil {
			return err
		}
		if err := hasCondition(ls.Status.Conditions, "Programmed", metav1.ConditionFalse, "Pending", "no node agent"); err != nil {
			return err
		}
		if len(ls.Status.Listeners) != 1 || ls.Status.Listeners[0].Name != "extra" || ls.Status.Listeners[0].AttachedRoutes != 1 {
			return fmt.Errorf("listeners %+v", ls.Status.Listeners)
		}
		return nil
	})
	eventually(t, "refused ListenerSet NotAllowed", func() error {
		ls, err := e.gw.GatewayV1().ListenerSets("other").Get(ctx, "refused", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if err := hasCondition(ls.Status.Conditions, "Accepted", metav1.ConditionFalse, "NotAllowed", "from is Same"); err != nil {
			return err
		}
		return hasCondition(ls.Status.Conditions, "Programmed", metav1.ConditionFalse, "NotAllowed", "")
	})
	eventually(t, "Gateway counts one attached ListenerSet", func() error {
		g, err := e.gw.GatewayV1().Gateways("app").Get(ctx, "gw", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if g.Status.AttachedListenerSets == nil || *g.Status.AttachedListenerSets != 1 {
			return fmt.Errorf("attachedListenerSets %v", g.Status.AttachedListenerSets)
		}
		if len(g.Status.Listeners) != 1 || g.Status.Listeners[0].AttachedRoutes != 0 {
			return fmt.Errorf("the Gateway lists or counts the set's listener: %+v", g.Status.Listeners)
		}
		return nil
	})
	eventually(t, "route accepted through the ListenerSet", func() error {
		cur, err := e.gw.GatewayV1().HTTPRoutes("app").Get(ctx, "r", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if len(cur.Status.Parents) != 1 || cur.Status.Parents[0].ParentRef.Kind == nil || *cur.Status.Parents[0].ParentRef.Kind != "ListenerSet" {
			return fmt.Errorf("parents %+v", cur.Status.Parents)
		}
		return hasCondition(cur.Status.Parents[0].Conditions, "Accepted", metav1.ConditionTrue, "Accepted", "")
	})

	g, err := e.gw.GatewayV1().Gateways("app").Get(ctx, "gw", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	writeReport(t, e, "node-a", v1alpha1.GatewayProgramming{Namespace: "app", Name: "gw", ObservedGeneration: g.Generation,
		Status: metav1.ConditionTrue, Reason: "Programmed", Message: "programmed on 1 proxies"})
	eventually(t, "ListenerSet programmed with its Gateway", func() error {
		ls, err := e.gw.GatewayV1().ListenerSets("app").Get(ctx, "allowed", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if err := hasCondition(ls.Status.Listeners[0].Conditions, "Programmed", metav1.ConditionTrue, "Programmed", ""); err != nil {
			return err
		}
		return hasCondition(ls.Status.Conditions, "Programmed", metav1.ConditionTrue, "Programmed", "1 node")
	})
}
