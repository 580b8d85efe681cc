package controller

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	gwclient "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned"

	"github.com/nodemesh/nodemesh/api/v1alpha1"
	"github.com/nodemesh/nodemesh/gateway"
	"github.com/nodemesh/nodemesh/internal/lab/controlplane"
)

type env struct {
	core kubernetes.Interface
	gw   gwclient.Interface
	dyn  dynamic.Interface
}

// startController runs the controller against a fresh real API server
// with the standard channel's CRDs.
func startController(t *testing.T, opts ...Option) env {
	t.Helper()
	return startControllerOn(t, "standard", opts...)
}

// startControllerOn runs the controller against a fresh real API server
// with the CRDs of channel.
func startControllerOn(t *testing.T, channel string, opts ...Option) env {
	t.Helper()
	c := controlplane.ForTest(t, channel)
	e := env{}
	var err error
	if e.core, err = kubernetes.NewForConfig(c.Config); err != nil {
		t.Fatal(err)
	}
	if e.gw, err = gwclient.NewForConfig(c.Config); err != nil {
		t.Fatal(err)
	}
	if e.dyn, err = dynamic.NewForConfig(c.Config); err != nil {
		t.Fatal(err)
	}
	ctrl, err := New(e.core, e.gw, e.dyn, netip.MustParsePrefix("127.0.60.0/24"), append([]Option{WithResync(time.Second), WithNodeStaleness(time.Hour)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ctrl.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return e
}

// eventually retries check until it returns nil or 2 minutes pass: on a
// loaded machine the API server alone may take half a minute to start,
// and every status write waits on it too.
func eventually(t *testing.T, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	var err error
	for time.Now().Before(deadline) {
		if err = check(); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: %v", what, err)
}

func hasCondition(conds []metav1.Condition, typ string, status metav1.ConditionStatus, reason, msgPart string) error {
	c := meta.FindStatusCondition(conds, typ)
	if c == nil {
		return fmt.Errorf("no %s condition in %+v", typ, conds)
	}
	if c.Status != status || c.Reason != reason || !strings.Contains(c.Message, msgPart) {
		return fmt.Errorf("%s is %s/%s %q, want %s/%s containing %q", typ, c.Status, c.Reason, c.Message, status, reason, msgPart)
	}
	return nil
}

func httpGateway(ns, name, class string) *gwv1.Gateway {
	return &gwv1.Gateway{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: gwv1.GatewaySpec{
		GatewayClassName: gwv1.ObjectName(class),
		Listeners:        []gwv1.Listener{{Name: "http", Port: 80, Protocol: gwv1.HTTPProtocolType}},
	}}
}

func writeReport(t *testing.T, e env, node string, gps ...v1alpha1.GatewayProgramming) {
	t.Helper()
	writeReportWith(t, e, node, v1alpha1.NodeProxyStatusStatus{Gateways: gps})
}

// writeReportWith writes node's report with st, fresh and ours.
func writeReportWith(t *testing.T, e env, node string, st v1alpha1.NodeProxyStatusStatus) {
	t.Helper()
	ctx := context.Background()
	st.HeartbeatTime, st.ControllerName = metav1.Now(), string(gateway.ControllerName)
	r := &v1alpha1.NodeProxyStatus{
		TypeMeta:   metav1.TypeMeta{APIVersion: "nodemesh.io/v1alpha1", Kind: "NodeProxyStatus"},
		ObjectMeta: metav1.ObjectMeta{Name: node},
		Status:     st,
	}
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(r)
	if err != nil {
		t.Fatal(err)
	}
	u := &unstructured.Unstructured{Object: m}
	res := e.dyn.Resource(v1alpha1.NodeProxyStatusResource)
	if cur, err := res.Get(ctx, node, metav1.GetOptions{}); err == nil {
		u.SetResourceVersion(cur.GetResourceVersion())
		_, err = res.Update(ctx, u, metav1.UpdateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return
	}
	if _, err := res.Create(ctx, u, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// TestControllerOnAPIServer runs the controller against a real API server:
// class acceptance with supported features, address assignment and
// release, listener and route status, merging with another controller's
// route status, node ACK/NACK aggregation into Programmed, and no writes
// when nothing changed.
func TestControllerOnAPIServer(t *testing.T) {
	e := startController(t)
	ctx := context.Background()
	classes := e.gw.GatewayV1().GatewayClasses()
	for _, gc := range []*gwv1.GatewayClass{
		{ObjectMeta: metav1.ObjectMeta{Name: "nm"}, Spec: gwv1.GatewayClassSpec{ControllerName: gateway.ControllerName}},
		{ObjectMeta: metav1.ObjectMeta{Name: "foreign"}, Spec: gwv1.GatewayClassSpec{ControllerName: "example.com/other"}},
	} {
		if _, err := classes.Create(ctx, gc, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "GatewayClass accepted with features", func() error {
		gc, err := classes.Get(ctx, "nm", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if err := hasCondition(gc.Status.Conditions, "Accepted", metav1.ConditionTrue, "Accepted", ""); err != nil {
			return err
		}
		if len(gc.Status.SupportedFeatures) != len(supported(SupportedFeatures)) {
			return fmt.Errorf("supportedFeatures: %v", gc.Status.SupportedFeatures)
		}
		return nil
	})

	ns := "app"
	if _, err := e.core.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	gws := e.gw.GatewayV1().Gateways(ns)
	for _, g := range []*gwv1.Gateway{httpGateway(ns, "gw1", "nm"), httpGateway(ns, "theirs", "foreign")} {
		if _, err := gws.Create(ctx, g, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "gw1 addressed, accepted, pending", func() error {
		g, err := gws.Get(ctx, "gw1", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if len(g.Status.Addresses) != 1 || g.Status.Addresses[0].Value != "127.0.60.1" {
			return fmt.Errorf("addresses %+v", g.Status.Addresses)
		}
		if err := hasCondition(g.Status.Conditions, "Accepted", metav1.ConditionTrue, "Accepted", ""); err != nil {
			return err
		}
		if err := hasCondition(g.Status.Conditions, "Programmed", metav1.ConditionFalse, "Pending", "no node agent"); err != nil {
			return err
		}
		if len(g.Status.Listeners) != 1 || len(g.Status.Listeners[0].SupportedKinds) != 2 ||
			g.Status.Listeners[0].SupportedKinds[0].Kind != "HTTPRoute" || g.Status.Listeners[0].SupportedKinds[1].Kind != "GRPCRoute" {
			return fmt.Errorf("listeners %+v", g.Status.Listeners)
		}
		return nil
	})

	// A route with a missing backend, and another controller's entry in
	// its status that must survive our writes.
	routes := e.gw.GatewayV1().HTTPRoutes(ns)
	r := &gwv1.HTTPRoute{ObjectMeta: metav1.ObjectMeta{Name: "r1"}, Spec: gwv1.HTTPRouteSpec{
		CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: []gwv1.ParentReference{{Name: "gw1"}, {Name: "theirs"}}},
		Rules:           []gwv1.HTTPRouteRule{{BackendRefs: []gwv1.HTTPBackendRef{{BackendRef: gwv1.BackendRef{BackendObjectReference: gwv1.BackendObjectReference{Name: "missing", Port: ptr(gwv1.PortNumber(8080))}}}}}},
	}}
	r, err := routes.Create(ctx, r, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	foreign := gwv1.RouteParentStatus{ParentRef: gwv1.ParentReference{Name: "theirs"}, ControllerName: "example.com/other",
		Conditions: []metav1.Condition{{Type: "Accepted", Status: metav1.ConditionTrue, Reason: "Accepted", LastTransitionTime: metav1.Now(), ObservedGeneration: r.Generation}}}
	eventually(t, "foreign route status written", func() error {
		cur, err := routes.Get(ctx, "r1", metav1.GetOptions{})
		if err != nil {
			return err
		}
		cur.Status.Parents = append(cur.Status.Parents, foreign)
		_, err = routes.UpdateStatus(ctx, cur, metav1.UpdateOptions{})
		return err
	})
	eventually(t, "route status merged", func() error {
		cur, err := routes.Get(ctx, "r1", metav1.GetOptions{})
		if err != nil {
			return err
		}
		var ours, theirs *gwv1.RouteParentStatus
		for i, p := range cur.Status.Parents {
			switch p.ControllerName {
			case gateway.ControllerName:
				ours = &cur.Status.Parents[i]
			case "example.com/other":
				theirs = &cur.Status.Parents[i]
			}
		}
		if theirs == nil {
			return fmt.Errorf("the other controller's entry was dropped: %+v", cur.Status.Parents)
		}
		if ours == nil {
			return fmt.Errorf("no entry of ours: %+v", cur.Status.Parents)
		}
		if string(ours.ParentRef.Name) != "gw1" {
			return fmt.Errorf("our entry is for %s", ours.ParentRef.Name)
		}
		if err := hasCondition(ours.Conditions, "Accepted", metav1.ConditionTrue, "Accepted", ""); err != nil {
			return err
		}
		return hasCondition(ours.Conditions, "ResolvedRefs", metav1.ConditionFalse, "BackendNotFound", "missing")
	})
	eventually(t, "attachedRoutes counted", func() error {
		g, err := gws.Get(ctx, "gw1", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if g.Status.Listeners[0].AttachedRoutes != 1 {
			return fmt.Errorf("attachedRoutes %d", g.Status.Listeners[0].AttachedRoutes)
		}
		return nil
	})

	// A GRPCRoute gets its status written the same way, and counts
	// towards attachedRoutes with the HTTPRoute.
	grpcRoutes := e.gw.GatewayV1().GRPCRoutes(ns)
	gr := &gwv1.GRPCRoute{ObjectMeta: metav1.ObjectMeta{Name: "g1"}, Spec: gwv1.GRPCRouteSpec{
		CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: []gwv1.ParentReference{{Name: "gw1"}}},
		Rules:           []gwv1.GRPCRouteRule{{BackendRefs: []gwv1.GRPCBackendRef{{BackendRef: gwv1.BackendRef{BackendObjectReference: gwv1.BackendObjectReference{Name: "missing", Port: ptr(gwv1.PortNumber(9000))}}}}}},
	}}
	if _, err := grpcRoutes.Create(ctx, gr, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "GRPCRoute status written", func() error {
		cur, err := grpcRoutes.Get(ctx, "g1", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if len(cur.Status.Parents) != 1 || cur.Status.Parents[0].ControllerName != gateway.ControllerName {
			return fmt.Errorf("parents %+v", cur.Status.Parents)
		}
		ours := cur.Status.Parents[0]
		if err := hasCondition(ours.Conditions, "Accepted", metav1.ConditionTrue, "Accepted", ""); err != nil {
			return err
		}
		return hasCondition(ours.Conditions, "ResolvedRefs", metav1.ConditionFalse, "BackendNotFound", "GRPCRoute app/g1")
	})
	eventually(t, "attachedRoutes counts both kinds", func() error {
		g, err := gws.Get(ctx, "gw1", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if g.Status.Listeners[0].AttachedRoutes != 2 {
			return fmt.Errorf("attachedRoutes %d", g.Status.Listeners[0].AttachedRoutes)
		}
		return nil
	})

	// Nodes: an ACK at the current generation programs the Gateway; a
	// NACK on any node shows the proxy's message.
	g1, err := gws.Get(ctx, "gw1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ack := v1alpha1.GatewayProgramming{Namespace: ns, Name: "gw1", ObservedGeneration: g1.Generation, Status: metav1.ConditionTrue, Reason: "Programmed", Message: "programmed on 1 proxies"}
	writeReport(t, e, "node-a", ack)
	eventually(t, "programmed after ACK", func() error {
		g, err := gws.Get(ctx, "gw1", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if err := hasCondition(g.Status.Listeners[0].Conditions, "Programmed", metav1.ConditionTrue, "Programmed", ""); err != nil {
			return err
		}
		return hasCondition(g.Status.Conditions, "Programmed", metav1.ConditionTrue, "Programmed", "1 node")
	})
	nack := ack
	nack.Status, nack.Reason, nack.Message = metav1.ConditionFalse, "Invalid", "proxy p1 rejected Listener version 9: unsupported field"
	writeReport(t, e, "node-b", nack)
	eventually(t, "NACK reaches the Gateway", func() error {
		g, err := gws.Get(ctx, "gw1", metav1.GetOptions{})
		if err != nil {
			return err
		}
		return hasCondition(g.Status.Conditions, "Programmed", metav1.ConditionFalse, "Invalid", "node node-b: proxy p1 rejected Listener version 9: unsupported field")
	})
	writeReport(t, e, "node-b", ack)
	var steady *gwv1.Gateway
	eventually(t, "programmed again", func() error {
		g, err := gws.Get(ctx, "gw1", metav1.GetOptions{})
		if err != nil {
			return err
		}
		steady = g
		return hasCondition(g.Status.Conditions, "Programmed", metav1.ConditionTrue, "Programmed", "2 node")
	})

	// Steady state: several resyncs later nothing was rewritten.
	time.Sleep(3 * time.Second)
	g, err := gws.Get(ctx, "gw1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if g.ResourceVersion != steady.ResourceVersion {
		t.Fatalf("status rewritten without a change: resourceVersion %s -> %s", steady.ResourceVersion, g.ResourceVersion)
	}

	// Another controller's Gateway gets nothing from us.
	th, err := gws.Get(ctx, "theirs", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(th.Status.Addresses) != 0 || meta.FindStatusCondition(th.Status.Conditions, "Programmed") != nil && meta.FindStatusCondition(th.Status.Conditions, "Programmed").Reason != "Pending" {
		t.Fatalf("foreign Gateway was written: %+v", th.Status)
	}

	// Deleting gw1 frees its address for the next Gateway.
	if err := gws.Delete(ctx, "gw1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := gws.Create(ctx, httpGateway(ns, "gw2", "nm"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "gw2 takes the freed address", func() error {
		g, err := gws.Get(ctx, "gw2", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if len(g.Status.Addresses) != 1 || g.Status.Addresses[0].Value != "127.0.60.1" {
			return fmt.Errorf("addresses %+v", g.Status.Addresses)
		}
		return nil
	})
	// With its only parent of ours gone, the route loses our entry and
	// keeps the other controller's.
	eventually(t, "route status of the deleted parent", func() error {
		cur, err := routes.Get(ctx, "r1", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if len(cur.Status.Parents) != 1 || cur.Status.Parents[0].ControllerName != "example.com/other" {
			return fmt.Errorf("parents %+v", cur.Status.Parents)
		}
		return nil
	})
}

// TestControllerRejectsBadInput checks that objects the spec says must be
// rejected get the spec's reasons through the controller, and that the
// controller keeps working.
func TestControllerRejectsBadInput(t *testing.T) {
	e := startController(t)
	ctx := context.Background()
	if _, err := e.gw.GatewayV1().GatewayClasses().Create(ctx, &gwv1.GatewayClass{ObjectMeta: metav1.ObjectMeta{Name: "nm"}, Spec: gwv1.GatewayClassSpec{ControllerName: gateway.ControllerName}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"a", "b"} {
		if _, err := e.core.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: n}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// Two listeners on one port with different protocols conflict.
	conflicted := &gwv1.Gateway{ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: "conflict"}, Spec: gwv1.GatewaySpec{
		GatewayClassName: "nm",
		Listeners: []gwv1.Listener{
			{Name: "one", Port: 80, Protocol: gwv1.HTTPProtocolType},
			{Name: "two", Port: 80, Protocol: gwv1.HTTPSProtocolType, TLS: &gwv1.ListenerTLSConfig{
				CertificateRefs: []gwv1.SecretObjectReference{{Name: "missing"}}}},
		},
	}}
	gwc := e.gw.GatewayV1().Gateways("a")
	if _, err := gwc.Create(ctx, conflicted, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := gwc.Create(ctx, httpGateway("a", "gw", "nm"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "conflicted listeners", func() error {
		g, err := gwc.Get(ctx, "conflict", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if len(g.Status.Listeners) != 2 {
			return fmt.Errorf("listeners %+v", g.Status.Listeners)
		}
		return hasCondition(g.Status.Listeners[0].Conditions, "Conflicted", metav1.ConditionTrue, "ProtocolConflict", "")
	})
	// Backend kinds we cannot serve, and a cross-namespace backend without
	// a ReferenceGrant.
	routes := e.gw.GatewayV1().HTTPRoutes("b")
	kind := gwv1.Kind("ConfigMap")
	otherNS := gwv1.Namespace("a")
	for name, ref := range map[string]gwv1.BackendObjectReference{
		"bad-kind":  {Kind: &kind, Name: "cm", Port: ptr(gwv1.PortNumber(80))},
		"not-grant": {Namespace: &otherNS, Name: "svc", Port: ptr(gwv1.PortNumber(80))},
	} {
		r := &gwv1.HTTPRoute{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: gwv1.HTTPRouteSpec{
			CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: []gwv1.ParentReference{{Name: "gw", Namespace: &otherNS}}},
			Rules:           []gwv1.HTTPRouteRule{{BackendRefs: []gwv1.HTTPBackendRef{{BackendRef: gwv1.BackendRef{BackendObjectReference: ref}}}}},
		}}
		if _, err := routes.Create(ctx, r, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string][]string{
		// gw only admits routes from its own namespace.
		"bad-kind":  {"Accepted", "False", "NotAllowedByListeners"},
		"not-grant": {"Accepted", "False", "NotAllowedByListeners"},
	}
	for name, w := range want {
		eventually(t, name, func() error {
			r, err := routes.Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if len(r.Status.Parents) != 1 {
				return fmt.Errorf("parents %+v", r.Status.Parents)
			}
			return hasCondition(r.Status.Parents[0].Conditions, w[0], metav1.ConditionStatus(w[1]), w[2], "")
		})
	}
	// Let the Gateway admit every namespace: the routes attach and their
	// backend problems show.
	eventually(t, "allow all namespaces", func() error {
		g, err := gwc.Get(ctx, "gw", metav1.GetOptions{})
		if err != nil {
			return err
		}
		all := gwv1.NamespacesFromAll
		g.Spec.Listeners[0].AllowedRoutes = &gwv1.AllowedRoutes{Namespaces: &gwv1.RouteNamespaces{From: &all}}
		_, err = gwc.Update(ctx, g, metav1.UpdateOptions{})
		return err
	})
	for name, reason := range map[string]string{"bad-kind": "InvalidKind", "not-grant": "RefNotPermitted"} {
		eventually(t, name+" resolved refs", func() error {
			r, err := routes.Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if len(r.Status.Parents) != 1 {
				return fmt.Errorf("parents %+v", r.Status.Parents)
			}
			return hasCondition(r.Status.Parents[0].Conditions, "ResolvedRefs", metav1.ConditionFalse, reason, "")
		})
	}
}

func ptr[T any](v T) *T { return &v }
