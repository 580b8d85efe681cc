package chart

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"

	"github.com/nodemesh/nodemesh/internal/lab/controlplane"
)

// TestChartServerSideDryRun applies every object of the golden rendered
// manifests with a server-side apply dry run against a real kube-apiserver
// (skipped unless the Kubernetes binaries are built; `make integration`
// builds them), so the API server's validation of DaemonSets, RBAC and CRDs
// accepts what the chart renders.
func TestChartServerSideDryRun(t *testing.T) {
	c := controlplane.ForTest(t, "standard")
	dyn, err := dynamic.NewForConfig(c.Config)
	if err != nil {
		t.Fatal(err)
	}
	dc, err := discovery.NewDiscoveryClientForConfig(c.Config)
	if err != nil {
		t.Fatal(err)
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, name := range []string{"default", "envoy", "ingress", "no-ingress"} {
		data, err := os.ReadFile(filepath.Join("testdata", name+".yaml"))
		if err != nil {
			t.Fatal(err)
		}
		objs, err := controlplane.Decode(data)
		if err != nil {
			t.Fatal(err)
		}
		if len(objs) < 10 {
			t.Fatalf("%s: %d objects rendered", name, len(objs))
		}
		for _, o := range objs {
			gvk := o.GroupVersionKind()
			m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
			if err != nil {
				t.Fatalf("%s: mapping %s: %v", name, gvk, err)
			}
			var ri dynamic.ResourceInterface = dyn.Resource(m.Resource)
			if m.Scope.Name() == meta.RESTScopeNameNamespace {
				ri = dyn.Resource(m.Resource).Namespace(o.GetNamespace())
			}
			body, err := json.Marshal(o.Object)
			if err != nil {
				t.Fatal(err)
			}
			force := true
			_, err = ri.Patch(ctx, o.GetName(), types.ApplyPatchType, body, metav1.PatchOptions{
				DryRun: []string{metav1.DryRunAll}, FieldManager: "helm", Force: &force,
			})
			if err != nil {
				t.Errorf("%s: dry-run apply of %s %s: %v", name, gvk.Kind, o.GetName(), err)
			}
		}
	}
}
