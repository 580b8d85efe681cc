package controlplane

import (
	"context"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

func TestDecode(t *testing.T) {
	objs, err := Decode([]byte("---\n# nothing\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\n{\"apiVersion\": \"v1\", \"kind\": \"Namespace\", \"metadata\": {\"name\": \"b\"}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 2 || objs[0].GetName() != "a" || objs[1].GetName() != "b" {
		t.Fatalf("decoded %d objects", len(objs))
	}
	if _, err := Decode([]byte("apiVersion: v1\nkind: [unclosed\n")); err == nil || !strings.Contains(err.Error(), "document 1") {
		t.Fatalf("bad YAML: %v", err)
	}
}

// TestClusterServesAndAppliesCRDs starts the real control plane and checks
// that it serves, that both Gateway API channels' CRDs install, and that
// objects of an installed CRD can be applied.
func TestClusterServesAndAppliesCRDs(t *testing.T) {
	c := ForTest(t, "experimental")
	core, err := kubernetes.NewForConfig(c.Config)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := core.CoreV1().Namespaces().Get(ctx, "default", metav1.GetOptions{}); err != nil {
		t.Fatalf("API server does not serve: %v", err)
	}
	obj := []byte(`apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: x}
spec: {controllerName: example.com/x}
---
apiVersion: nodemesh.io/v1alpha1
kind: NodeProxyStatus
metadata: {name: node-1}
status: {heartbeatTime: "2026-01-01T00:00:00Z"}
`)
	// Applying twice replaces rather than failing.
	for i := 0; i < 2; i++ {
		if err := Apply(ctx, c.Config, obj); err != nil {
			t.Fatalf("apply %d: %v", i, err)
		}
	}
	if err := Apply(ctx, c.Config, []byte("apiVersion: example.com/v1\nkind: Nothing\nmetadata: {name: thing}\n")); err == nil {
		t.Fatal("applying an unknown kind succeeded")
	}
	if _, err := c.Binaries.GatewayCRDs("beta"); err == nil {
		t.Fatal("unknown channel accepted")
	}
	std, err := c.Binaries.GatewayCRDs("standard")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(std), "gateway.networking.k8s.io/channel: standard") {
		t.Fatal("standard channel CRDs are not the standard channel")
	}
}
