package kube

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

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
