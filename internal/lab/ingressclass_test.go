package lab

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nodemesh/nodemesh/gateway"
)

// TestLabChartIngressClass: the lab installs the IngressClass the chart
// renders. With ingressController.className=cilium and .default, that is
// IngressClass cilium of nodemesh's controller marked is-default-class
// (and no class nodemesh); an Ingress naming class cilium and one naming
// no class are both served (each gets an address in its status), with no
// IngressClass applied by the test.
func TestLabChartIngressClass(t *testing.T) {
	l := ForTest(t, Options{Nodes: 1, NoPolicy: true, ChartValues: map[string]any{
		"ingressController": map[string]any{"className": "cilium", "default": true},
	}})
	ctx := context.Background()
	ic, err := l.Client.NetworkingV1().IngressClasses().Get(ctx, "cilium", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the chart's IngressClass: %v", err)
	}
	if ic.Spec.Controller != gateway.IngressController || ic.Annotations["ingressclass.kubernetes.io/is-default-class"] != "true" ||
		ic.Labels["app.kubernetes.io/name"] != "nodemesh" {
		t.Fatalf("IngressClass cilium: controller %q, annotations %v, labels %v; want %s, marked default, the chart's labels",
			ic.Spec.Controller, ic.Annotations, ic.Labels, gateway.IngressController)
	}
	if _, err := l.Client.NetworkingV1().IngressClasses().Get(ctx, gateway.IngressClassName, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("IngressClass %s: %v, want NotFound (the chart's class is cilium)", gateway.IngressClassName, err)
	}

	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "echo", Namespace: "default"},
		Spec:       corev1.ServiceSpec{Selector: map[string]string{"app": "echo"}, Ports: []corev1.ServicePort{{Port: 8080}}},
	}
	if _, err := l.Client.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cilium := "cilium"
	for name, class := range map[string]*string{"named": &cilium, "classless": nil} {
		ing := &networkingv1.Ingress{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
			Spec: networkingv1.IngressSpec{
				IngressClassName: class,
				DefaultBackend: &networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{
					Name: "echo", Port: networkingv1.ServiceBackendPort{Number: 8080},
				}},
			},
		}
		if _, err := l.Client.NetworkingV1().Ingresses("default").Create(ctx, ing, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"named", "classless"} {
		eventually(t, "an address for Ingress "+name, 2*time.Minute, func() error {
			ing, err := l.Client.NetworkingV1().Ingresses("default").Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if lb := ing.Status.LoadBalancer.Ingress; len(lb) != 1 || lb[0].IP == "" {
				return fmt.Errorf("status.loadBalancer.ingress %v", lb)
			}
			return nil
		})
	}
}
