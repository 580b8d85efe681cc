package kube

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/nodemesh/nodemesh/mesh/input"
)

var crdResource = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// TestProviderWithoutOptionalCRDs: with the TLSRoute and UDPRoute CRDs
// not installed, the provider still syncs and publishes the kinds that
// are served; once the TLSRoute CRD is installed, its routes join the
// snapshots without a restart.
func TestProviderWithoutOptionalCRDs(t *testing.T) {
	c := newClients(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// Remove the two CRDs, keeping TLSRoute's to install it again later.
	tlsCRD, err := c.dyn.Resource(crdResource).Get(ctx, "tlsroutes."+gwv1.GroupName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"tlsroutes", "udproutes"} {
		if err := c.dyn.Resource(crdResource).Delete(ctx, name+"."+gwv1.GroupName, metav1.DeleteOptions{}); err != nil {
			t.Fatalf("deleting the %s CRD: %v", name, err)
		}
	}
	waitServed(t, c, map[string]bool{"tlsroutes": false, "udproutes": false})

	ns := "opt"
	mustCreate(t, c.core.CoreV1().Namespaces().Create, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	mustCreate(t, c.gw.GatewayV1().HTTPRoutes(ns).Create, &gwv1.HTTPRoute{ObjectMeta: metav1.ObjectMeta{Name: "h"}})
	mustCreate(t, c.gw.GatewayV1().TCPRoutes(ns).Create, &gwv1.TCPRoute{ObjectMeta: metav1.ObjectMeta{Name: "t"},
		Spec: gwv1.TCPRouteSpec{Rules: []gwv1.TCPRouteRule{{BackendRefs: []gwv1.BackendRef{{
			BackendObjectReference: gwv1.BackendObjectReference{Name: "s", Port: ptrTo(gwv1.PortNumber(80))}}}}}}})

	var got snapshots
	p := New(c.core, c.gw, WithDiscoveryInterval(100*time.Millisecond))
	done := make(chan error, 1)
	go func() { done <- p.Watch(ctx, got.put) }()
	got.waitFor(t, "the served kinds despite the missing CRDs", func(s *input.Snapshot) bool {
		return len(s.HTTPRoutes) == 1 && len(s.TCPRoutes) == 1 && len(s.TLSRoutes) == 0 && len(s.UDPRoutes) == 0
	})

	// Install the TLSRoute CRD again; its routes must follow.
	tlsCRD.SetResourceVersion("")
	tlsCRD.SetUID("")
	unstructured.RemoveNestedField(tlsCRD.Object, "status")
	if _, err := c.dyn.Resource(crdResource).Create(ctx, tlsCRD, metav1.CreateOptions{}); err != nil {
		t.Fatalf("installing the TLSRoute CRD again: %v", err)
	}
	route := &gwv1.TLSRoute{ObjectMeta: metav1.ObjectMeta{Name: "tls"},
		Spec: gwv1.TLSRouteSpec{Hostnames: []gwv1.Hostname{"a.example.com"}, Rules: []gwv1.TLSRouteRule{{BackendRefs: []gwv1.BackendRef{{
			BackendObjectReference: gwv1.BackendObjectReference{Name: "s", Port: ptrTo(gwv1.PortNumber(443))}}}}}}}
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := c.gw.GatewayV1().TLSRoutes(ns).Create(ctx, route, metav1.CreateOptions{})
		if err == nil {
			break
		}
		if time.Now().After(deadline) || !(apierrors.IsNotFound(err) || apierrors.IsMethodNotSupported(err)) {
			t.Fatalf("creating a TLSRoute after installing its CRD: %v", err)
		}
		time.Sleep(50 * time.Millisecond) // the CRD is being established
	}
	got.waitFor(t, "the TLSRoute whose CRD appeared", func(s *input.Snapshot) bool {
		return len(s.TLSRoutes) == 1 && len(s.HTTPRoutes) == 1 && len(s.TCPRoutes) == 1
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Watch: %v", err)
	}
}

func ptrTo[T any](v T) *T { return &v }

func waitServed(t *testing.T, c clients, want map[string]bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		list, err := c.gw.Discovery().ServerResourcesForGroupVersion(gwv1.GroupVersion.String())
		if err == nil {
			have := map[string]bool{}
			for _, r := range list.APIResources {
				have[r.Name] = true
			}
			ok := true
			for r, w := range want {
				ok = ok && have[r] == w
			}
			if ok {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("discovery never showed %v (last error %v)", want, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
