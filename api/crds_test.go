package api

import (
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	"github.com/nodemesh/nodemesh/api/v1alpha1"
)

// schemaProps returns the property names of the schema node at path.
func schemaProps(t *testing.T, node map[string]any, path ...string) map[string]any {
	t.Helper()
	for _, p := range path {
		props, _ := node["properties"].(map[string]any)
		next, ok := props[p].(map[string]any)
		if !ok {
			if items, ok := node["items"].(map[string]any); ok && p == "[]" {
				node = items
				continue
			}
			t.Fatalf("schema has no %s", strings.Join(path, "."))
		}
		node = next
	}
	props, _ := node["properties"].(map[string]any)
	return props
}

func jsonFields(typ reflect.Type) []string {
	var out []string
	for i := 0; i < typ.NumField(); i++ {
		tag := strings.Split(typ.Field(i).Tag.Get("json"), ",")[0]
		if tag != "" && tag != "-" {
			out = append(out, tag)
		}
	}
	sort.Strings(out)
	return out
}

func keys(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TestCRDMatchesTypes keeps the hand-written CRD schema and the Go types
// in step: every JSON field is in the schema and nothing else is.
func TestCRDMatchesTypes(t *testing.T) {
	b, err := CRDs.ReadFile("crds/nodemesh.io_nodeproxystatuses.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var crd map[string]any
	if err := yaml.Unmarshal(b, &crd); err != nil {
		t.Fatal(err)
	}
	spec := crd["spec"].(map[string]any)
	if spec["group"] != v1alpha1.Group || spec["scope"] != "Cluster" {
		t.Fatalf("group/scope: %v %v", spec["group"], spec["scope"])
	}
	if plural := spec["names"].(map[string]any)["plural"]; plural != v1alpha1.NodeProxyStatusResource.Resource {
		t.Fatalf("plural %v", plural)
	}
	version := spec["versions"].([]any)[0].(map[string]any)
	if version["name"] != v1alpha1.Version {
		t.Fatalf("version %v", version["name"])
	}
	root := version["schema"].(map[string]any)["openAPIV3Schema"].(map[string]any)
	for _, tc := range []struct {
		path []string
		typ  reflect.Type
	}{
		{[]string{"status"}, reflect.TypeOf(v1alpha1.NodeProxyStatusStatus{})},
		{[]string{"status", "gateways", "[]"}, reflect.TypeOf(v1alpha1.GatewayProgramming{})},
		{[]string{"status", "proxies", "[]"}, reflect.TypeOf(v1alpha1.ProxyState{})},
	} {
		if d := cmp.Diff(jsonFields(tc.typ), keys(schemaProps(t, root, tc.path...))); d != "" {
			t.Errorf("%s: Go fields (-) vs schema (+):\n%s", strings.Join(tc.path, "."), d)
		}
	}
	if len(CRDManifests()) <= len(b) {
		t.Fatal("CRDManifests does not include the CRD")
	}
}

func TestNodeProxyStatusRoundTripAndDeepCopy(t *testing.T) {
	in := &v1alpha1.NodeProxyStatus{
		TypeMeta:   metav1.TypeMeta{APIVersion: "nodemesh.io/v1alpha1", Kind: "NodeProxyStatus"},
		ObjectMeta: metav1.ObjectMeta{Name: "n1"},
		Status: v1alpha1.NodeProxyStatusStatus{
			HeartbeatTime: metav1.Unix(1000, 0), ControllerName: "c",
			Gateways: []v1alpha1.GatewayProgramming{{Namespace: "a", Name: "b", ObservedGeneration: 2, Status: metav1.ConditionTrue, Reason: "Programmed"}},
			Proxies:  []v1alpha1.ProxyState{{Node: "p", Connected: true, Rejected: "x"}},
		},
	}
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(in)
	if err != nil {
		t.Fatal(err)
	}
	var out v1alpha1.NodeProxyStatus
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(m, &out); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(in, &out); d != "" {
		t.Fatalf("round trip (-in +out):\n%s", d)
	}
	cp := in.DeepCopyObject().(*v1alpha1.NodeProxyStatus)
	cp.Status.Gateways[0].Name = "changed"
	cp.Status.Proxies[0].Node = "changed"
	if in.Status.Gateways[0].Name != "b" || in.Status.Proxies[0].Node != "p" {
		t.Fatal("DeepCopy shares slices with the original")
	}
}
