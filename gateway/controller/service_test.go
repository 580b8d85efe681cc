package controller

import (
	"context"
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/nodemesh/nodemesh/gateway"
)

func TestServiceName(t *testing.T) {
	if got := ServiceName("edge"); got != "nodemesh-gateway-edge" {
		t.Fatalf("ServiceName(edge) = %q", got)
	}
	long1, long2 := strings.Repeat("a", 80)+"-1", strings.Repeat("a", 80)+"-2"
	n1, n2 := ServiceName(long1), ServiceName(long2)
	for _, n := range []string{n1, n2} {
		if errs := validation.IsDNS1035Label(n); len(errs) != 0 {
			t.Fatalf("ServiceName of a long name = %q: %v", n, errs)
		}
	}
	if n1 == n2 {
		t.Fatalf("two long Gateway names share the Service name %q", n1)
	}
}

// TestGatewayServiceLifecycle: with WithGatewayServices a Gateway of ours
// gets its LoadBalancer Service (ports, infrastructure labels and
// annotations, requested addresses, owner), waits for the load balancer
// (AddressNotAssigned naming the Service), takes the address the load
// balancer writes, follows infrastructure edits without dropping other
// controllers' annotations, and loses the Service with the Gateway.
func TestGatewayServiceLifecycle(t *testing.T) {
	e := startController(t, WithGatewayServices())
	ctx := context.Background()
	if _, err := e.gw.GatewayV1().GatewayClasses().Create(ctx, &gwv1.GatewayClass{ObjectMeta: metav1.ObjectMeta{Name: "nm"}, Spec: gwv1.GatewayClassSpec{ControllerName: gateway.ControllerName}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.core.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "apps"}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	g := httpGateway("apps", "edge", "nm")
	g.Spec.Listeners = append(g.Spec.Listeners,
		gwv1.Listener{Name: "alt", Port: 8080, Protocol: gwv1.HTTPProtocolType},
		gwv1.Listener{Name: "dns", Port: 53, Protocol: gwv1.UDPProtocolType},
		gwv1.Listener{Name: "alt2", Port: 8080, Protocol: gwv1.HTTPProtocolType, Hostname: ptr(gwv1.Hostname("b.example"))})
	g.Spec.Infrastructure = &gwv1.GatewayInfrastructure{
		Labels:      map[gwv1.LabelKey]gwv1.LabelValue{"team": "edge"},
		Annotations: map[gwv1.AnnotationKey]gwv1.AnnotationValue{"example.com/a": "1"},
	}
	g.Spec.Addresses = []gwv1.GatewaySpecAddress{{Value: "127.0.70.9"}}
	gw, err := e.gw.GatewayV1().Gateways("apps").Create(ctx, g, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	svcs := e.core.CoreV1().Services("apps")
	var svc *corev1.Service
	eventually(t, "the Gateway's Service", func() error {
		svc, err = svcs.Get(ctx, "nodemesh-gateway-edge", metav1.GetOptions{})
		return err
	})
	var ports []string
	for _, p := range svc.Spec.Ports {
		ports = append(ports, fmt.Sprintf("%s/%s/%d", p.Name, p.Protocol, p.Port))
	}
	if got := strings.Join(ports, " "); got != "udp-53/UDP/53 tcp-80/TCP/80 tcp-8080/TCP/8080" || svc.Spec.Type != corev1.ServiceTypeLoadBalancer ||
		svc.Spec.AllocateLoadBalancerNodePorts == nil || *svc.Spec.AllocateLoadBalancerNodePorts || len(svc.Spec.Selector) != 0 {
		t.Fatalf("Service spec: ports %s, %+v", got, svc.Spec)
	}
	if svc.Labels["team"] != "edge" || svc.Labels[gwv1.GatewayNameLabelKey] != "edge" ||
		svc.Annotations["example.com/a"] != "1" || svc.Annotations[LBIPAMIPsAnnotation] != "127.0.70.9" {
		t.Fatalf("Service labels %v annotations %v", svc.Labels, svc.Annotations)
	}
	if o := svc.OwnerReferences; len(o) != 1 || o[0].UID != gw.UID || o[0].Controller == nil || !*o[0].Controller {
		t.Fatalf("Service owners %+v, want the Gateway as controller", o)
	}
	eventually(t, "Programmed waits for the load balancer", func() error {
		cur, err := e.gw.GatewayV1().Gateways("apps").Get(ctx, "edge", metav1.GetOptions{})
		if err != nil {
			return err
		}
		return hasCondition(cur.Status.Conditions, "Programmed", metav1.ConditionFalse, "AddressNotAssigned", "Service apps/nodemesh-gateway-edge")
	})

	// The load balancer answers; another controller annotates too.
	svc.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "127.0.70.9"}}
	if svc, err = svcs.UpdateStatus(ctx, svc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	svc.Annotations["other.example/x"] = "kept"
	if _, err = svcs.Update(ctx, svc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the load balancer's address in Gateway status", func() error {
		cur, err := e.gw.GatewayV1().Gateways("apps").Get(ctx, "edge", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if len(cur.Status.Addresses) != 1 || cur.Status.Addresses[0].Value != "127.0.70.9" {
			return fmt.Errorf("status.addresses %+v", cur.Status.Addresses)
		}
		return nil
	})

	// Infrastructure edited: a1 replaced by b, a listener gone.
	eventually(t, "editing the Gateway", func() error {
		cur, err := e.gw.GatewayV1().Gateways("apps").Get(ctx, "edge", metav1.GetOptions{})
		if err != nil {
			return err
		}
		cur.Spec.Infrastructure.Annotations = map[gwv1.AnnotationKey]gwv1.AnnotationValue{"example.com/b": "2"}
		cur.Spec.Listeners = cur.Spec.Listeners[:1]
		_, err = e.gw.GatewayV1().Gateways("apps").Update(ctx, cur, metav1.UpdateOptions{})
		return err
	})
	eventually(t, "the Service following the Gateway", func() error {
		s, err := svcs.Get(ctx, "nodemesh-gateway-edge", metav1.GetOptions{})
		if err != nil {
			return err
		}
		a := s.Annotations
		if _, stale := a["example.com/a"]; stale || a["example.com/b"] != "2" || a["other.example/x"] != "kept" || len(s.Spec.Ports) != 1 {
			return fmt.Errorf("annotations %v ports %v", a, s.Spec.Ports)
		}
		return nil
	})

	if err := e.gw.GatewayV1().Gateways("apps").Delete(ctx, "edge", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the Service gone with its Gateway", func() error {
		if _, err := svcs.Get(ctx, "nodemesh-gateway-edge", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			return fmt.Errorf("Service still there (%v)", err)
		}
		return nil
	})
}
