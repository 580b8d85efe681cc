package controller

import (
	"context"
	"fmt"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/nodemesh/nodemesh/api/v1alpha1"
	"github.com/nodemesh/nodemesh/gateway"
)

// TestGatewayHostNetwork: with WithHostNetwork a Gateway gets no Service
// (one left from the load-balancer mode is deleted); while no Node
// matches the selector it is AddressNotAssigned saying so; its
// status.addresses then lists the InternalIP of every selected Node and
// follows Node label changes; only the selected nodes' reports decide
// Programmed; a requested spec.addresses is AddressNotUsable; a newer
// Gateway on the same port gets PortUnavailable on its listener.
func TestGatewayHostNetwork(t *testing.T) {
	sel, err := labels.Parse("role=edge")
	if err != nil {
		t.Fatal(err)
	}
	e := startController(t, WithHostNetwork(sel), WithGatewayServices())
	ctx := context.Background()
	if _, err := e.gw.GatewayV1().GatewayClasses().Create(ctx, &gwv1.GatewayClass{ObjectMeta: metav1.ObjectMeta{Name: "nm"}, Spec: gwv1.GatewayClassSpec{ControllerName: gateway.ControllerName}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	gw, err := e.gw.GatewayV1().Gateways("default").Create(ctx, httpGateway("default", "edge", "nm"), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// A Service the load-balancer mode gave this Gateway earlier.
	yes := true
	stale := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: ServiceName("edge"), OwnerReferences: []metav1.OwnerReference{{
		APIVersion: gwv1.GroupVersion.String(), Kind: "Gateway", Name: "edge", UID: gw.UID, Controller: &yes,
	}}}, Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Ports: []corev1.ServicePort{{Port: 80}}}}
	if _, err := e.core.CoreV1().Services("default").Create(ctx, stale, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	getGW := func(name string) (*gwv1.Gateway, error) {
		return e.gw.GatewayV1().Gateways("default").Get(ctx, name, metav1.GetOptions{})
	}
	eventually(t, "AddressNotAssigned without selected nodes", func() error {
		g, err := getGW("edge")
		if err != nil {
			return err
		}
		return hasCondition(g.Status.Conditions, "Programmed", metav1.ConditionFalse, "AddressNotAssigned", `no Node with an InternalIP address among nodes matching "role=edge"`)
	})
	eventually(t, "the stale Service deleted", func() error {
		_, err := e.core.CoreV1().Services("default").Get(ctx, ServiceName("edge"), metav1.GetOptions{})
		if !apierrors.IsNotFound(err) {
			return fmt.Errorf("Service still there (%v)", err)
		}
		return nil
	})

	createNode(t, e, "node-a", "10.0.0.1", map[string]string{"role": "edge"})
	createNode(t, e, "node-b", "10.0.0.2", nil)
	createNode(t, e, "node-c", "10.0.0.3", map[string]string{"role": "edge"})
	addresses := func(g *gwv1.Gateway) []string {
		var out []string
		for _, a := range g.Status.Addresses {
			out = append(out, string(*a.Type)+"/"+a.Value)
		}
		return out
	}
	// Selected nodes acknowledge; node-b, not selected, has no address
	// for the Gateway and does not count.
	ack := func(node string) {
		g, err := getGW("edge")
		if err != nil {
			t.Fatal(err)
		}
		writeReport(t, e, node, v1alpha1.GatewayProgramming{Namespace: "default", Name: "edge", ObservedGeneration: g.Generation, Status: metav1.ConditionTrue, Reason: "Programmed"})
	}
	ack("node-a")
	ack("node-c")
	writeReport(t, e, "node-b", v1alpha1.GatewayProgramming{Namespace: "default", Name: "edge", ObservedGeneration: gw.Generation, Status: metav1.ConditionFalse, Reason: "AddressNotAssigned", Message: "not selected"})
	eventually(t, "the selected nodes' addresses, Programmed", func() error {
		g, err := getGW("edge")
		if err != nil {
			return err
		}
		if got := addresses(g); !slices.Equal(got, []string{"IPAddress/10.0.0.1", "IPAddress/10.0.0.3"}) {
			return fmt.Errorf("status.addresses %v", got)
		}
		return hasCondition(g.Status.Conditions, "Programmed", metav1.ConditionTrue, "Programmed", "programmed on 2 node(s)")
	})
	if _, err := e.core.CoreV1().Services("default").Get(ctx, ServiceName("edge"), metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("host-network Gateway got a Service (%v)", err)
	}

	// node-c leaves the selection.
	unlabelNode(t, e, "node-c")
	eventually(t, "node-c's address gone", func() error {
		g, err := getGW("edge")
		if err != nil {
			return err
		}
		if got := addresses(g); !slices.Equal(got, []string{"IPAddress/10.0.0.1"}) {
			return fmt.Errorf("status.addresses %v", got)
		}
		return nil
	})

	// A newer Gateway on the same port, and one asking for an address.
	if _, err := e.gw.GatewayV1().Gateways("default").Create(ctx, httpGateway("default", "later", "nm"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	asking := httpGateway("default", "asking", "nm")
	asking.Spec.Listeners[0].Port = 9090
	asking.Spec.Addresses = []gwv1.GatewaySpecAddress{{Value: "10.0.0.1"}}
	if _, err := e.gw.GatewayV1().Gateways("default").Create(ctx, asking, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the port clash on the newer Gateway's listener", func() error {
		g, err := getGW("later")
		if err != nil {
			return err
		}
		if len(g.Status.Listeners) != 1 {
			return fmt.Errorf("listeners %+v", g.Status.Listeners)
		}
		return hasCondition(g.Status.Listeners[0].Conditions, "Accepted", metav1.ConditionFalse, "PortUnavailable", "port 80 is already served by Gateway default/edge")
	})
	eventually(t, "spec.addresses refused", func() error {
		g, err := getGW("asking")
		if err != nil {
			return err
		}
		if len(g.Status.Addresses) != 0 {
			return fmt.Errorf("status.addresses %v", g.Status.Addresses)
		}
		return hasCondition(g.Status.Conditions, "Programmed", metav1.ConditionFalse, "AddressNotUsable", "host-network mode")
	})
	g, err := getGW("edge")
	if err != nil {
		t.Fatal(err)
	}
	if c := meta.FindStatusCondition(g.Status.Listeners[0].Conditions, "Accepted"); c == nil || c.Status != metav1.ConditionTrue {
		t.Fatalf("older Gateway's listener Accepted %+v", c)
	}
}

// createNode makes a Node with labels lbls and InternalIP ip.
func createNode(t *testing.T, e env, name, ip string, lbls map[string]string) {
	t.Helper()
	ctx := context.Background()
	n, err := e.core.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: lbls}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeHostName, Address: name}, {Type: corev1.NodeInternalIP, Address: ip}}
	if _, err := e.core.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// unlabelNode removes every label of a Node.
func unlabelNode(t *testing.T, e env, name string) {
	t.Helper()
	ctx := context.Background()
	n, err := e.core.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n.Labels = nil
	if _, err := e.core.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}
