package controller

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
)

func TestIngressServiceName(t *testing.T) {
	if got := IngressServiceName("basic-ingress"); got != "nodemesh-ingress-basic-ingress" {
		t.Fatalf("IngressServiceName(basic-ingress) = %q", got)
	}
	long := IngressServiceName(strings.Repeat("b", 250))
	if errs := validation.IsDNS1035Label(long); len(errs) != 0 {
		t.Fatalf("IngressServiceName of a long name = %q: %v", long, errs)
	}
}

// TestIngressServiceLifecycle: with WithGatewayServices every dedicated
// Ingress of ours gets its LoadBalancer Service (ports 80 and 443, the
// Ingress's load-balancer annotations, the Ingress as owner) and the
// shared Ingresses one Service between them in the shared namespace; an
// Ingress shows no address until the load balancer writes one to its
// Service, then exactly that address (not one of the pool). An Ingress
// that leaves our class loses its Service and its address; the shared
// Service goes with the last shared Ingress.
func TestIngressServiceLifecycle(t *testing.T) {
	e := startController(t, WithGatewayServices(), WithSharedIngressNamespace("kube-system"))
	ctx := context.Background()
	ings := e.core.NetworkingV1().Ingresses("default")
	mk := appIngress(t, e)
	web, err := ings.Create(ctx, mk("web", map[string]string{
		"service.beta.kubernetes.io/aws-load-balancer-type": "nlb",
		"lbipam.cilium.io/ips":                              "10.0.0.5",
		"example.com/not-for-the-service":                   "x",
	}), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ings.Create(ctx, mk("shop", map[string]string{"ingress.cilium.io/loadbalancer-mode": "shared"}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	svcs := e.core.CoreV1().Services("default")
	shared := e.core.CoreV1().Services("kube-system")
	var svc, sharedSvc *corev1.Service
	eventually(t, "the Ingress Services", func() (err error) {
		if svc, err = svcs.Get(ctx, "nodemesh-ingress-web", metav1.GetOptions{}); err != nil {
			return err
		}
		sharedSvc, err = shared.Get(ctx, "nodemesh-ingress", metav1.GetOptions{})
		return err
	})
	for _, s := range []*corev1.Service{svc, sharedSvc} {
		var ports []string
		for _, p := range s.Spec.Ports {
			ports = append(ports, fmt.Sprintf("%s/%s/%d", p.Name, p.Protocol, p.Port))
		}
		if got := strings.Join(ports, " "); got != "http/TCP/80 https/TCP/443" || s.Spec.Type != corev1.ServiceTypeLoadBalancer ||
			len(s.Spec.Selector) != 0 || s.Spec.AllocateLoadBalancerNodePorts == nil || *s.Spec.AllocateLoadBalancerNodePorts {
			t.Fatalf("Service %s/%s spec: ports %s, %+v", s.Namespace, s.Name, got, s.Spec)
		}
	}
	if a := svc.Annotations; a["service.beta.kubernetes.io/aws-load-balancer-type"] != "nlb" || a[LBIPAMIPsAnnotation] != "10.0.0.5" || a["example.com/not-for-the-service"] != "" {
		t.Fatalf("dedicated Service annotations %v, want the load-balancer ones only", a)
	}
	if o := svc.OwnerReferences; len(o) != 1 || o[0].Kind != "Ingress" || o[0].UID != web.UID || o[0].Controller == nil || !*o[0].Controller {
		t.Fatalf("dedicated Service owners %+v, want the Ingress as controller", o)
	}
	if sharedSvc.Labels[SharedIngressLabel] != "true" || len(sharedSvc.OwnerReferences) != 0 {
		t.Fatalf("shared Service labels %v owners %v", sharedSvc.Labels, sharedSvc.OwnerReferences)
	}
	// No address before the load balancer gives one: after a few passes
	// of the one-second resync (a longer wait only makes this stricter).
	time.Sleep(3 * time.Second)
	if cur, err := ings.Get(ctx, "web", metav1.GetOptions{}); err != nil {
		t.Fatal(err)
	} else if lb := cur.Status.LoadBalancer.Ingress; len(lb) != 0 {
		t.Fatalf("Ingress web shows %+v before its load balancer assigned an address", lb)
	}

	// The load balancer answers.
	svc.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "10.0.0.5"}}
	if _, err := svcs.UpdateStatus(ctx, svc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	sharedSvc.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "10.0.0.6"}}
	if _, err := shared.UpdateStatus(ctx, sharedSvc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	addrOf := func(name string) string {
		cur, err := ings.Get(ctx, name, metav1.GetOptions{})
		if err != nil || len(cur.Status.LoadBalancer.Ingress) != 1 {
			return ""
		}
		return cur.Status.LoadBalancer.Ingress[0].IP
	}
	eventually(t, "the load balancer's addresses in Ingress status", func() error {
		if w, s := addrOf("web"), addrOf("shop"); w != "10.0.0.5" || s != "10.0.0.6" {
			return fmt.Errorf("web shows %q, shop %q; want 10.0.0.5 and 10.0.0.6", w, s)
		}
		return nil
	})

	// Leaving our class: Service and address go.
	eventually(t, "moving web to class nginx", func() error {
		cur, err := ings.Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return err
		}
		nginx := "nginx"
		cur.Spec.IngressClassName = &nginx
		_, err = ings.Update(ctx, cur, metav1.UpdateOptions{})
		return err
	})
	eventually(t, "web's Service and address withdrawn", func() error {
		if _, err := svcs.Get(ctx, "nodemesh-ingress-web", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			return fmt.Errorf("Service still there (%v)", err)
		}
		if a := addrOf("web"); a != "" {
			return fmt.Errorf("web still shows %s", a)
		}
		return nil
	})
	// The last shared Ingress gone: the shared Service goes.
	if err := ings.Delete(ctx, "shop", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the shared Service gone", func() error {
		if _, err := shared.Get(ctx, "nodemesh-ingress", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			return fmt.Errorf("Service still there (%v)", err)
		}
		return nil
	})
}

// appIngress makes the Service app (port 80) in namespace default and
// returns a maker of Ingresses of class nodemesh routing /<name> to it.
func appIngress(t *testing.T, e env) func(name string, ann map[string]string) *networkingv1.Ingress {
	t.Helper()
	if _, err := e.core.CoreV1().Services("default").Create(context.Background(), &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "app"},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80}}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	prefix := networkingv1.PathTypePrefix
	return func(name string, ann map[string]string) *networkingv1.Ingress {
		class := "nodemesh"
		return &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: ann}, Spec: networkingv1.IngressSpec{
			IngressClassName: &class,
			Rules: []networkingv1.IngressRule{{IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{
				Paths: []networkingv1.HTTPIngressPath{{Path: "/" + name, PathType: &prefix, Backend: networkingv1.IngressBackend{
					Service: &networkingv1.IngressServiceBackend{Name: "app", Port: networkingv1.ServiceBackendPort{Number: 80}},
				}}},
			}}}},
		}}
	}
}
