package controller

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/nodemesh/nodemesh/gateway"
)

// TestIngressHostNetwork: in Ingress host-network mode no Ingress Service
// is made (those of the load-balancer mode are deleted) while Gateways
// keep theirs (the two modes are independent); a served Ingress's
// status.loadBalancer lists the InternalIP of every selected Node and
// follows Node label changes; a dedicated Ingress whose host-listener-port
// the older shared listener holds gets no address and an Event naming the
// holder.
func TestIngressHostNetwork(t *testing.T) {
	sel, err := labels.Parse("role=edge")
	if err != nil {
		t.Fatal(err)
	}
	e := startController(t, WithGatewayServices(), WithSharedIngressNamespace("kube-system"),
		WithIngress(gateway.IngressOptions{HostNetwork: true}), WithIngressHostNetwork(sel))
	ctx := context.Background()
	ings := e.core.NetworkingV1().Ingresses("default")
	mk := appIngress(t, e)
	web, err := ings.Create(ctx, mk("web", map[string]string{"ingress.cilium.io/host-listener-port": "9090"}), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Names order the Ingresses created within one second: the shared
	// one is the older either way.
	if _, err := ings.Create(ctx, mk("a-shop", map[string]string{"ingress.cilium.io/loadbalancer-mode": "shared"}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := ings.Create(ctx, mk("z-late", nil), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Services the load-balancer mode made earlier.
	yes := true
	stale := []*corev1.Service{
		{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: IngressServiceName("web"), OwnerReferences: []metav1.OwnerReference{{
			APIVersion: "networking.k8s.io/v1", Kind: "Ingress", Name: "web", UID: web.UID, Controller: &yes}}},
			Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Ports: []corev1.ServicePort{{Port: 80}}}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: SharedIngressServiceName, Labels: map[string]string{SharedIngressLabel: "true"}},
			Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Ports: []corev1.ServicePort{{Port: 80}}}},
	}
	for _, s := range stale {
		if _, err := e.core.CoreV1().Services(s.Namespace).Create(ctx, s, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
	// A Gateway in the load-balancer mode meanwhile.
	if _, err := e.gw.GatewayV1().GatewayClasses().Create(ctx, &gwv1.GatewayClass{ObjectMeta: metav1.ObjectMeta{Name: "nm"}, Spec: gwv1.GatewayClassSpec{ControllerName: gateway.ControllerName}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.gw.GatewayV1().Gateways("default").Create(ctx, httpGateway("default", "edge", "nm"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the Ingress Services deleted, the Gateway's made", func() error {
		for _, s := range stale {
			if _, err := e.core.CoreV1().Services(s.Namespace).Get(ctx, s.Name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
				return fmt.Errorf("Service %s/%s still there (%v)", s.Namespace, s.Name, err)
			}
		}
		_, err := e.core.CoreV1().Services("default").Get(ctx, ServiceName("edge"), metav1.GetOptions{})
		return err
	})

	createNode(t, e, "node-a", "10.0.0.1", map[string]string{"role": "edge"})
	createNode(t, e, "node-b", "10.0.0.2", nil)
	createNode(t, e, "node-c", "10.0.0.3", map[string]string{"role": "edge"})
	addrs := func(name string) ([]string, error) {
		cur, err := ings.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return nil, err
		}
		var out []string
		for _, lb := range cur.Status.LoadBalancer.Ingress {
			out = append(out, lb.IP)
		}
		return out, nil
	}
	eventually(t, "the selected nodes' addresses in Ingress status", func() error {
		for _, name := range []string{"web", "a-shop"} {
			got, err := addrs(name)
			if err != nil {
				return err
			}
			if !slices.Equal(got, []string{"10.0.0.1", "10.0.0.3"}) {
				return fmt.Errorf("Ingress %s status %v", name, got)
			}
		}
		return nil
	})
	eventually(t, "the port clash reported on the newer Ingress", func() error {
		evs, err := e.core.CoreV1().Events("default").List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		for _, ev := range evs.Items {
			if ev.InvolvedObject.Name == "z-late" && ev.Reason == "IngressProblems" &&
				strings.Contains(ev.Message, "host-network port 8080 is already used by the shared Ingress listener (oldest Ingress default/a-shop)") {
				return nil
			}
		}
		return fmt.Errorf("no Event on z-late naming the shared listener among %d", len(evs.Items))
	})
	if got, err := addrs("z-late"); err != nil || len(got) != 0 {
		t.Fatalf("z-late status %v (%v), want none", got, err)
	}

	// node-c leaves the selection.
	unlabelNode(t, e, "node-c")
	eventually(t, "node-c's address gone", func() error {
		got, err := addrs("web")
		if err != nil {
			return err
		}
		if !slices.Equal(got, []string{"10.0.0.1"}) {
			return fmt.Errorf("Ingress web status %v", got)
		}
		return nil
	})
	for _, name := range []string{"nodemesh-ingress-web", "nodemesh-ingress-a-shop", "nodemesh-ingress-z-late"} {
		if _, err := e.core.CoreV1().Services("default").Get(ctx, name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Fatalf("host-network Ingress got Service %s (%v)", name, err)
		}
	}
}
