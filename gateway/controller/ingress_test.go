package controller

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
)

// TestControllerIngressStatus: on a real API server the controller writes
// each Ingress of class nodemesh its address from the pool: dedicated
// Ingresses one each, shared ones one between them; an Ingress of another
// class gets none. A newer shared Ingress claiming an older one's path is
// told so with a Warning Event. Moving an Ingress to another class
// withdraws its address.
func TestControllerIngressStatus(t *testing.T) {
	e := startController(t)
	ctx := context.Background()
	ings := e.core.NetworkingV1().Ingresses("default")
	prefix := networkingv1.PathTypePrefix
	mk := func(name, class string, shared bool, path string) *networkingv1.Ingress {
		ing := &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: networkingv1.IngressSpec{
			IngressClassName: &class,
			Rules: []networkingv1.IngressRule{{Host: "shop.example.com", IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{
				Paths: []networkingv1.HTTPIngressPath{{Path: path, PathType: &prefix, Backend: networkingv1.IngressBackend{
					Service: &networkingv1.IngressServiceBackend{Name: "app", Port: networkingv1.ServiceBackendPort{Number: 80}},
				}}},
			}}}},
		}}
		if shared {
			ing.Annotations = map[string]string{"ingress.cilium.io/loadbalancer-mode": "shared"}
		}
		return ing
	}
	if _, err := e.core.CoreV1().Services("default").Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "app"},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80}}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, ing := range []*networkingv1.Ingress{
		mk("dedicated", "nodemesh", false, "/"),
		mk("shared-a", "nodemesh", true, "/cart"),
		mk("other", "nginx", false, "/"),
	} {
		if _, err := ings.Create(ctx, ing, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	addrOf := func(name string) (string, error) {
		ing, err := ings.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return "", err
		}
		lb := ing.Status.LoadBalancer.Ingress
		if len(lb) != 1 || lb[0].IP == "" {
			return "", fmt.Errorf("Ingress %s status.loadBalancer %+v", name, lb)
		}
		if a, err := netip.ParseAddr(lb[0].IP); err != nil || !netip.MustParsePrefix("127.0.60.0/24").Contains(a) {
			return "", fmt.Errorf("Ingress %s address %q is not from the pool", name, lb[0].IP)
		}
		return lb[0].IP, nil
	}
	var dedicated, shared string
	eventually(t, "Ingress addresses", func() (err error) {
		if dedicated, err = addrOf("dedicated"); err != nil {
			return err
		}
		shared, err = addrOf("shared-a")
		return err
	})
	if dedicated == shared {
		t.Fatalf("dedicated and shared Ingresses share %s", dedicated)
	}

	// A second shared Ingress gets the shared address; its path clashes.
	if _, err := ings.Create(ctx, mk("shared-b", "nodemesh", true, "/cart"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "second shared Ingress", func() error {
		a, err := addrOf("shared-b")
		if err != nil {
			return err
		}
		if a != shared {
			return fmt.Errorf("shared-b has %s, want the shared %s", a, shared)
		}
		evs, err := e.core.CoreV1().Events("default").List(ctx, metav1.ListOptions{
			FieldSelector: fields.OneTermEqualSelector("involvedObject.name", "shared-b").String()})
		if err != nil {
			return err
		}
		for _, ev := range evs.Items {
			if ev.Type == corev1.EventTypeWarning && strings.Contains(ev.Message, "is already served by Ingress default/shared-a on the shared load balancer") {
				return nil
			}
		}
		return fmt.Errorf("no conflict Event for shared-b in %+v", evs.Items)
	})

	other, err := ings.Get(ctx, "other", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(other.Status.LoadBalancer.Ingress) != 0 {
		t.Errorf("Ingress of class nginx got status %+v", other.Status.LoadBalancer)
	}

	// Moving to another class withdraws the address.
	cur, err := ings.Get(ctx, "dedicated", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	nginx := "nginx"
	cur.Spec.IngressClassName = &nginx
	if _, err := ings.Update(ctx, cur, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "address withdrawn", func() error {
		ing, err := ings.Get(ctx, "dedicated", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if n := len(ing.Status.LoadBalancer.Ingress); n != 0 {
			return fmt.Errorf("still %+v", ing.Status.LoadBalancer.Ingress)
		}
		return nil
	})
}
