package kube

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	ciliumv2 "github.com/nodemesh/nodemesh/api/cilium/v2"
	"github.com/nodemesh/nodemesh/mesh/input"
)

func envoyConfig(kind, name string, services []any) map[string]any {
	return map[string]any{
		"apiVersion": "cilium.io/v2", "kind": kind,
		"metadata": map[string]any{"name": name},
		"spec": map[string]any{
			"services": services,
			"resources": []any{map[string]any{
				"@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster", "name": "default/echo", "type": "EDS",
				"edsClusterConfig": map[string]any{"serviceName": "default/echo:8080"},
			}},
		},
	}
}

// TestProviderWatchesEnvoyConfigs: CiliumEnvoyConfigs and
// CiliumClusterwideEnvoyConfigs stored in a real API server reach
// snapshots with their Envoy resources whole (the CRD schema prunes
// nothing), and a version with a field nodemesh does not know leaves the
// last good version in force, reported.
func TestProviderWatchesEnvoyConfigs(t *testing.T) {
	c := newClients(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	mustCreate(t, c.core.CoreV1().Namespaces().Create, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "mesh"}})
	createUnstructured(t, c, ciliumv2.CiliumEnvoyConfigResource, "mesh", envoyConfig("CiliumEnvoyConfig", "lb", []any{map[string]any{"name": "echo"}}))
	createUnstructured(t, c, ciliumv2.CiliumClusterwideEnvoyConfigResource, "", envoyConfig("CiliumClusterwideEnvoyConfig", "cw", nil))

	var got snapshots
	p := New(c.core, c.gw, WithPolicy(c.dyn), WithDebounce(10*time.Millisecond, 100*time.Millisecond))
	done := make(chan error, 1)
	go func() { done <- p.Watch(ctx, got.put) }()
	s := got.waitFor(t, "both configs", func(s *input.Snapshot) bool {
		return len(s.CiliumEnvoyConfigs) == 1 && len(s.CiliumClusterwideEnvoyConfigs) == 1
	})
	cec := s.CiliumEnvoyConfigs[0]
	if cec.Namespace != "mesh" || cec.Spec.Services[0].Name != "echo" || len(cec.Spec.Resources) != 1 ||
		!strings.Contains(string(cec.Spec.Resources[0].Raw), `"serviceName":"default/echo:8080"`) {
		t.Fatalf("CEC as read: %+v, resources %s", cec, cec.Spec.Resources[0].Raw)
	}

	res := c.dyn.Resource(ciliumv2.CiliumEnvoyConfigResource).Namespace("mesh")
	u, err := res.Get(ctx, "lb", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	u.Object["spec"].(map[string]any)["services"] = []any{map[string]any{"name": "other", "listner": "x"}}
	if _, err := res.Update(ctx, u, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for len(p.Problems()) == 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	probs := p.Problems()
	if len(probs) != 1 || !strings.Contains(probs[0], "listner") || !strings.Contains(probs[0], "last good version") {
		t.Fatalf("problems: %q", probs)
	}
	s = got.waitFor(t, "the last good version", func(s *input.Snapshot) bool { return len(s.CiliumEnvoyConfigs) == 1 })
	if name := s.CiliumEnvoyConfigs[0].Spec.Services[0].Name; name != "echo" {
		t.Fatalf("in force: Service %q, want the last good version's echo", name)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Watch: %v", err)
	}
}

// TestProviderEnvoyConfigsWithoutPolicy: without WithPolicy the provider
// still reads the Envoy config kinds (WithEnvoyConfigs), and treats them
// as optional: a missing CRD (here the clusterwide one) neither fails
// Start nor stalls the sync, and once the CRD is installed its objects
// join the snapshots without a restart.
func TestProviderEnvoyConfigsWithoutPolicy(t *testing.T) {
	c := newClients(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	crdName := ciliumv2.CiliumClusterwideEnvoyConfigResource.Resource + "." + ciliumv2.CiliumClusterwideEnvoyConfigResource.Group
	crd, err := c.dyn.Resource(crdResource).Get(ctx, crdName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.dyn.Resource(crdResource).Delete(ctx, crdName, metav1.DeleteOptions{}); err != nil {
		t.Fatalf("deleting the CCEC CRD: %v", err)
	}
	waitGone(t, c, ciliumv2.CiliumClusterwideEnvoyConfigResource)
	mustCreate(t, c.core.CoreV1().Namespaces().Create, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "mesh"}})
	createUnstructured(t, c, ciliumv2.CiliumEnvoyConfigResource, "mesh", envoyConfig("CiliumEnvoyConfig", "lb", nil))

	var got snapshots
	p := New(c.core, c.gw, WithEnvoyConfigs(c.dyn), WithDiscoveryInterval(100*time.Millisecond),
		WithDebounce(10*time.Millisecond, 100*time.Millisecond))
	done := make(chan error, 1)
	go func() { done <- p.Watch(ctx, got.put) }()
	got.waitFor(t, "the CEC without policy", func(s *input.Snapshot) bool {
		return len(s.CiliumEnvoyConfigs) == 1 && len(s.CiliumClusterwideEnvoyConfigs) == 0 && s.Pods == nil
	})

	crd.SetResourceVersion("")
	crd.SetUID("")
	unstructured.RemoveNestedField(crd.Object, "status")
	if _, err := c.dyn.Resource(crdResource).Create(ctx, crd, metav1.CreateOptions{}); err != nil {
		t.Fatalf("installing the CCEC CRD again: %v", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := c.dyn.Resource(ciliumv2.CiliumClusterwideEnvoyConfigResource).Create(ctx,
			&unstructured.Unstructured{Object: envoyConfig("CiliumClusterwideEnvoyConfig", "cw", nil)}, metav1.CreateOptions{})
		if err == nil {
			break
		}
		if time.Now().After(deadline) || !(apierrors.IsNotFound(err) || apierrors.IsMethodNotSupported(err)) {
			t.Fatalf("creating a CCEC after installing its CRD: %v", err)
		}
		time.Sleep(50 * time.Millisecond) // the CRD is being established
	}
	got.waitFor(t, "the CCEC whose CRD appeared", func(s *input.Snapshot) bool {
		return len(s.CiliumEnvoyConfigs) == 1 && len(s.CiliumClusterwideEnvoyConfigs) == 1
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Watch: %v", err)
	}
}

func waitGone(t *testing.T, c clients, gvr schema.GroupVersionResource) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		list, err := c.core.Discovery().ServerResourcesForGroupVersion(gvr.GroupVersion().String())
		gone := apierrors.IsNotFound(err)
		if err == nil {
			gone = true
			for _, r := range list.APIResources {
				if r.Name == gvr.Resource {
					gone = false
				}
			}
		}
		if gone {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("discovery still lists %s (last error %v)", gvr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
