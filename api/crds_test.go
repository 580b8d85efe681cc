package api

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	ciliumv2 "github.com/nodemesh/nodemesh/api/cilium/v2"
	ciliumv2alpha1 "github.com/nodemesh/nodemesh/api/cilium/v2alpha1"
	"github.com/nodemesh/nodemesh/api/v1alpha1"
)

// crd is the part of a CustomResourceDefinition the tests read.
type crd struct {
	Metadata struct {
		Name string `json:"name"`
	} `json:"metadata"`
	Spec struct {
		Group string `json:"group"`
		Names struct {
			Kind       string   `json:"kind"`
			ListKind   string   `json:"listKind"`
			Plural     string   `json:"plural"`
			Singular   string   `json:"singular"`
			ShortNames []string `json:"shortNames"`
			Categories []string `json:"categories"`
		} `json:"names"`
		Scope    string `json:"scope"`
		Versions []struct {
			Name         string         `json:"name"`
			Served       bool           `json:"served"`
			Storage      bool           `json:"storage"`
			Subresources map[string]any `json:"subresources"`
			Schema       struct {
				OpenAPIV3Schema map[string]any `json:"openAPIV3Schema"`
			} `json:"schema"`
		} `json:"versions"`
	} `json:"spec"`
}

func readCRD(t *testing.T, file string) *crd {
	t.Helper()
	b, err := CRDs.ReadFile("crds/" + file)
	if err != nil {
		t.Fatal(err)
	}
	var c crd
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	if len(c.Spec.Versions) != 1 {
		t.Fatalf("%s: %d versions, want 1", file, len(c.Spec.Versions))
	}
	return &c
}

// crdCase is what one generated CRD must say, with the Go constants
// clients use to reach it.
type crdCase struct {
	file       string
	gvr        schema.GroupVersionResource
	kind       string
	singular   string
	shortNames []string
	categories []string
	scope      string
	status     bool // status subresource
	goType     reflect.Type
}

// crdCases lists every CRD the package embeds. The cilium.io names, scopes
// and subresources are Cilium's.
var crdCases = []crdCase{
	{
		file: "nodemesh.io_nodeproxystatuses.yaml", gvr: v1alpha1.NodeProxyStatusResource,
		kind: "NodeProxyStatus", singular: "nodeproxystatus", scope: "Cluster",
		// The agent writes the whole object in one Create or Update; a
		// status subresource would make the API server drop its status.
		status: false, goType: reflect.TypeOf(v1alpha1.NodeProxyStatus{}),
	},
	{
		file: "cilium.io_ciliumnetworkpolicies.yaml", gvr: ciliumv2.CiliumNetworkPolicyResource,
		kind: "CiliumNetworkPolicy", singular: "ciliumnetworkpolicy", shortNames: []string{"cnp", "ciliumnp"},
		categories: []string{"cilium", "ciliumpolicy"}, scope: "Namespaced", status: true,
		goType: reflect.TypeOf(ciliumv2.CiliumNetworkPolicy{}),
	},
	{
		file: "cilium.io_ciliumclusterwidenetworkpolicies.yaml", gvr: ciliumv2.CiliumClusterwideNetworkPolicyResource,
		kind: "CiliumClusterwideNetworkPolicy", singular: "ciliumclusterwidenetworkpolicy", shortNames: []string{"ccnp"},
		categories: []string{"cilium", "ciliumpolicy"}, scope: "Cluster", status: true,
		goType: reflect.TypeOf(ciliumv2.CiliumClusterwideNetworkPolicy{}),
	},
	{
		file: "cilium.io_ciliumidentities.yaml", gvr: ciliumv2.CiliumIdentityResource,
		kind: "CiliumIdentity", singular: "ciliumidentity", shortNames: []string{"ciliumid"},
		categories: []string{"cilium"}, scope: "Cluster", status: true,
		goType: reflect.TypeOf(ciliumv2.CiliumIdentity{}),
	},
	{
		file: "cilium.io_ciliumenvoyconfigs.yaml", gvr: ciliumv2.CiliumEnvoyConfigResource,
		kind: "CiliumEnvoyConfig", singular: "ciliumenvoyconfig", shortNames: []string{"cec"},
		categories: []string{"cilium"}, scope: "Namespaced", status: true,
		goType: reflect.TypeOf(ciliumv2.CiliumEnvoyConfig{}),
	},
	{
		file: "cilium.io_ciliumclusterwideenvoyconfigs.yaml", gvr: ciliumv2.CiliumClusterwideEnvoyConfigResource,
		kind: "CiliumClusterwideEnvoyConfig", singular: "ciliumclusterwideenvoyconfig", shortNames: []string{"ccec"},
		categories: []string{"cilium"}, scope: "Cluster", status: true,
		goType: reflect.TypeOf(ciliumv2.CiliumClusterwideEnvoyConfig{}),
	},
	{
		file: "cilium.io_ciliumgatewayclassconfigs.yaml", gvr: ciliumv2alpha1.CiliumGatewayClassConfigResource,
		kind: "CiliumGatewayClassConfig", singular: "ciliumgatewayclassconfig", shortNames: []string{"cgcc"},
		categories: []string{"cilium"}, scope: "Namespaced", status: true,
		goType: reflect.TypeOf(ciliumv2alpha1.CiliumGatewayClassConfig{}),
	},
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

// TestCRDs checks every generated CRD's names, scope, version and
// subresources against the Go constants and Cilium's values, and that its
// top-level fields are the Go type's (a CRD left stale after a type change
// fails here even before `make check-generate` runs).
func TestCRDs(t *testing.T) {
	for _, tc := range crdCases {
		t.Run(tc.kind, func(t *testing.T) {
			c := readCRD(t, tc.file)
			if want := tc.gvr.Resource + "." + tc.gvr.Group; c.Metadata.Name != want {
				t.Errorf("name %q, want %q", c.Metadata.Name, want)
			}
			n := c.Spec.Names
			got := []any{c.Spec.Group, n.Kind, n.ListKind, n.Plural, n.Singular, n.ShortNames, n.Categories, c.Spec.Scope}
			want := []any{tc.gvr.Group, tc.kind, tc.kind + "List", tc.gvr.Resource, tc.singular, tc.shortNames, tc.categories, tc.scope}
			if d := cmp.Diff(want, got); d != "" {
				t.Errorf("group, kind, listKind, plural, singular, shortNames, categories, scope (-want +got):\n%s", d)
			}
			v := c.Spec.Versions[0]
			if v.Name != tc.gvr.Version || !v.Served || !v.Storage {
				t.Errorf("version %q served=%v storage=%v, want %q served and stored", v.Name, v.Served, v.Storage, tc.gvr.Version)
			}
			if _, ok := v.Subresources["status"]; ok != tc.status {
				t.Errorf("status subresource: %v, want %v", ok, tc.status)
			}
			root := v.Schema.OpenAPIV3Schema
			props, _ := root["properties"].(map[string]any)
			wantProps := append(jsonFields(tc.goType), "apiVersion", "kind")
			sort.Strings(wantProps)
			if d := cmp.Diff(wantProps, keys(props)); d != "" {
				t.Errorf("top-level fields, Go (-) vs schema (+):\n%s", d)
			}
		})
	}
}

// TestCRDManifests checks that CRDManifests holds exactly the CRDs above,
// each once, as the harnesses install it.
func TestCRDManifests(t *testing.T) {
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(CRDManifests()), 4096)
	var got []string
	for {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			t.Fatal(err)
		}
		if len(m) == 0 {
			continue
		}
		if m["kind"] != "CustomResourceDefinition" {
			t.Fatalf("manifest of kind %v", m["kind"])
		}
		got = append(got, m["metadata"].(map[string]any)["name"].(string))
	}
	var want []string
	for _, tc := range crdCases {
		want = append(want, tc.gvr.Resource+"."+tc.gvr.Group)
	}
	sort.Strings(got)
	sort.Strings(want)
	if d := cmp.Diff(want, got); d != "" {
		t.Fatalf("CRDManifests (-want +got):\n%s", d)
	}
	files, _ := fs.Glob(CRDs, "crds/*")
	if len(files) != len(want) {
		t.Fatalf("crds/ holds %d files, want one per CRD (%d): %v", len(files), len(want), files)
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
	list := &v1alpha1.NodeProxyStatusList{Items: []v1alpha1.NodeProxyStatus{*in}}
	lcp := list.DeepCopyObject().(*v1alpha1.NodeProxyStatusList)
	lcp.Items[0].Status.Gateways[0].Name = "changed"
	if in.Status.Gateways[0].Name != "b" {
		t.Fatal("list DeepCopy shares items with the original")
	}
}
