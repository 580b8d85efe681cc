package controller

import (
	"context"
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	gwxv1a1 "sigs.k8s.io/gateway-api/apisx/v1alpha1"

	"github.com/nodemesh/nodemesh/api/v1alpha1"
	"github.com/nodemesh/nodemesh/gateway"
)

// TestControllerAcceptsXMesh runs the controller on a real API server with
// the experimental CRDs: an XMesh naming nodemesh is accepted with the
// mesh features (where the conformance suite reads them), one with
// parametersRef is refused with InvalidParameters, and another
// controller's XMesh is left alone.
func TestControllerAcceptsXMesh(t *testing.T) {
	e := startControllerOn(t, "experimental")
	ctx := context.Background()
	cl := e.gw.ExperimentalV1alpha1().XMeshes()
	for _, m := range []*gwxv1a1.XMesh{
		{ObjectMeta: metav1.ObjectMeta{Name: "ours"}, Spec: gwxv1a1.MeshSpec{ControllerName: gateway.ControllerName}},
		{ObjectMeta: metav1.ObjectMeta{Name: "with-params"}, Spec: gwxv1a1.MeshSpec{ControllerName: gateway.ControllerName,
			ParametersRef: &gwv1.ParametersReference{Group: "example.com", Kind: "Params", Name: "p"}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "theirs"}, Spec: gwxv1a1.MeshSpec{ControllerName: "example.com/other"}},
	} {
		if _, err := cl.Create(ctx, m, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "XMesh ours accepted with the mesh features", func() error {
		m, err := cl.Get(ctx, "ours", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if err := hasCondition(m.Status.Conditions, "Accepted", metav1.ConditionTrue, "Accepted", ""); err != nil {
			return err
		}
		if fmt.Sprint(m.Status.SupportedFeatures) != fmt.Sprint(supported(MeshFeatures)) {
			return fmt.Errorf("supportedFeatures %v, want %v", m.Status.SupportedFeatures, MeshFeatures)
		}
		return nil
	})
	eventually(t, "XMesh with-params refused", func() error {
		m, err := cl.Get(ctx, "with-params", metav1.GetOptions{})
		if err != nil {
			return err
		}
		return hasCondition(m.Status.Conditions, "Accepted", metav1.ConditionFalse, "InvalidParameters", "parametersRef")
	})
	m, err := cl.Get(ctx, "theirs", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range m.Status.Conditions {
		if c.Reason != "Pending" {
			t.Fatalf("another controller's XMesh got status %+v", m.Status)
		}
	}
}

// TestControllerRefusesMeshRoutesNodesCannotSteer: a route with a Service
// parent is Accepted while the nodes can steer Services' traffic; once a
// live node reports it cannot (an agent without a datapath Service
// table), the parent is Accepted=False/NotRedirected naming the node and
// why, and Accepted again when the node reports it can.
func TestControllerRefusesMeshRoutesNodesCannotSteer(t *testing.T) {
	e := startController(t)
	ctx := context.Background()
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "echo"}, Spec: corev1.ServiceSpec{
		Ports: []corev1.ServicePort{{Name: "http", Port: 80}}}}
	if _, err := e.core.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	group, kind := gwv1.Group(""), gwv1.Kind("Service")
	hr := &gwv1.HTTPRoute{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "mesh"}, Spec: gwv1.HTTPRouteSpec{
		CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: []gwv1.ParentReference{{Group: &group, Kind: &kind, Name: "echo"}}}}}
	if _, err := e.gw.GatewayV1().HTTPRoutes("default").Create(ctx, hr, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	accepted := func(status metav1.ConditionStatus, reason, msg string) func() error {
		return func() error {
			r, err := e.gw.GatewayV1().HTTPRoutes("default").Get(ctx, "mesh", metav1.GetOptions{})
			if err != nil {
				return err
			}
			if len(r.Status.Parents) != 1 {
				return fmt.Errorf("parents %+v, want one", r.Status.Parents)
			}
			return hasCondition(r.Status.Parents[0].Conditions, "Accepted", status, reason, msg)
		}
	}
	writeReport(t, e, "n1")
	eventually(t, "route accepted while n1 can steer", accepted(metav1.ConditionTrue, "Accepted", ""))

	const why = "this node cannot send a Service's traffic to the proxy (test)"
	writeReportWith(t, e, "n2", v1alpha1.NodeProxyStatusStatus{CannotRedirect: why})
	eventually(t, "route refused while n2 cannot steer", accepted(metav1.ConditionFalse, gateway.RouteReasonNotRedirected, "node n2: "+why))

	writeReportWith(t, e, "n2", v1alpha1.NodeProxyStatusStatus{})
	eventually(t, "route accepted again", accepted(metav1.ConditionTrue, "Accepted", ""))
}
