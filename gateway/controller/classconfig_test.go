package controller

import (
	"context"
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	ciliumv2alpha1 "github.com/nodemesh/nodemesh/api/cilium/v2alpha1"
	"github.com/nodemesh/nodemesh/gateway"
)

// TestGatewayClassConfig: a GatewayClass naming a CiliumGatewayClassConfig
// is InvalidParameters while the config is missing, Accepted once it
// exists; its Gateways' Services follow the config (externalTrafficPolicy,
// loadBalancerClass, ipFamilies, ipFamilyPolicy, trafficDistribution) and
// the config is Accepted. Asking for NodePort makes config and class
// InvalidParameters naming the field, and the Gateway is not accepted.
func TestGatewayClassConfig(t *testing.T) {
	e := startController(t, WithGatewayServices())
	ctx := context.Background()
	ns := gwv1.Namespace("default")
	class := &gwv1.GatewayClass{ObjectMeta: metav1.ObjectMeta{Name: "tuned"}, Spec: gwv1.GatewayClassSpec{
		ControllerName: gateway.ControllerName,
		ParametersRef:  &gwv1.ParametersReference{Group: "cilium.io", Kind: "CiliumGatewayClassConfig", Name: "internal", Namespace: &ns},
	}}
	if _, err := e.gw.GatewayV1().GatewayClasses().Create(ctx, class, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	getClass := func() (*gwv1.GatewayClass, error) {
		return e.gw.GatewayV1().GatewayClasses().Get(ctx, "tuned", metav1.GetOptions{})
	}
	eventually(t, "InvalidParameters while the config is missing", func() error {
		gc, err := getClass()
		if err != nil {
			return err
		}
		return hasCondition(gc.Status.Conditions, "Accepted", metav1.ConditionFalse, "InvalidParameters", "CiliumGatewayClassConfig default/internal not found")
	})

	lbClass := "example.com/internal"
	single := corev1.IPFamilyPolicySingleStack
	close := corev1.ServiceTrafficDistributionPreferClose
	cfg := &ciliumv2alpha1.CiliumGatewayClassConfig{
		TypeMeta:   metav1.TypeMeta{APIVersion: "cilium.io/v2alpha1", Kind: "CiliumGatewayClassConfig"},
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "internal"},
		Spec: ciliumv2alpha1.CiliumGatewayClassConfigSpec{Description: "internal", Service: &ciliumv2alpha1.ServiceConfig{
			ExternalTrafficPolicy: corev1.ServiceExternalTrafficPolicyLocal, LoadBalancerClass: &lbClass,
			IPFamilies: []corev1.IPFamily{corev1.IPv4Protocol}, IPFamilyPolicy: &single, TrafficDistribution: &close,
		}},
	}
	res := e.dyn.Resource(ciliumv2alpha1.CiliumGatewayClassConfigResource).Namespace("default")
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := res.Create(ctx, &unstructured.Unstructured{Object: m}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the class accepted", func() error {
		gc, err := getClass()
		if err != nil {
			return err
		}
		return hasCondition(gc.Status.Conditions, "Accepted", metav1.ConditionTrue, "Accepted", "")
	})
	configCondition := func(status metav1.ConditionStatus, reason, msg string) {
		t.Helper()
		eventually(t, "the config's Accepted condition", func() error {
			u, err := res.Get(ctx, "internal", metav1.GetOptions{})
			if err != nil {
				return err
			}
			var got ciliumv2alpha1.CiliumGatewayClassConfig
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &got); err != nil {
				return err
			}
			return hasCondition(got.Status.Conditions, "Accepted", status, reason, msg)
		})
	}
	configCondition(metav1.ConditionTrue, "Accepted", "accepted")

	if _, err := e.gw.GatewayV1().Gateways("default").Create(ctx, httpGateway("default", "edge", "tuned"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the Gateway's Service shaped by the config", func() error {
		svc, err := e.core.CoreV1().Services("default").Get(ctx, ServiceName("edge"), metav1.GetOptions{})
		if err != nil {
			return err
		}
		s := svc.Spec
		if s.Type != corev1.ServiceTypeLoadBalancer || s.ExternalTrafficPolicy != corev1.ServiceExternalTrafficPolicyLocal ||
			s.LoadBalancerClass == nil || *s.LoadBalancerClass != lbClass || len(s.IPFamilies) != 1 || s.IPFamilies[0] != corev1.IPv4Protocol ||
			s.IPFamilyPolicy == nil || *s.IPFamilyPolicy != single || s.TrafficDistribution == nil || *s.TrafficDistribution != close {
			return fmt.Errorf("Service spec %+v", s)
		}
		return nil
	})

	// NodePort cannot be served: refused on the config and the class.
	u, err := res.Get(ctx, "internal", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := unstructured.SetNestedField(u.Object, "NodePort", "spec", "service", "type"); err != nil {
		t.Fatal(err)
	}
	if _, err := res.Update(ctx, u, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	configCondition(metav1.ConditionFalse, "InvalidParameters", "spec.service.type: NodePort is not supported")
	eventually(t, "the class and its Gateway refused", func() error {
		gc, err := getClass()
		if err != nil {
			return err
		}
		if err := hasCondition(gc.Status.Conditions, "Accepted", metav1.ConditionFalse, "InvalidParameters", "spec.service.type: NodePort is not supported"); err != nil {
			return err
		}
		gw, err := e.gw.GatewayV1().Gateways("default").Get(ctx, "edge", metav1.GetOptions{})
		if err != nil {
			return err
		}
		return hasCondition(gw.Status.Conditions, "Accepted", metav1.ConditionFalse, "Invalid", "GatewayClass tuned is not accepted")
	})
}
