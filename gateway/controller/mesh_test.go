package controller

import (
	"context"
	"fmt"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	gwxv1a1 "sigs.k8s.io/gateway-api/apisx/v1alpha1"

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
