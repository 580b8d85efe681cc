package api

import (
	"fmt"
	"sort"
	"testing"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/yaml"
)

// pruning walks a structural schema and returns the path of every node at
// which an API server would drop fields the schema does not declare: an
// object node without x-kubernetes-preserve-unknown-fields, unless it is a
// pure map (additionalProperties and no properties: every key is kept).
// objects counts the object nodes seen, so a caller can tell a walk that
// reached the whole schema from one that stopped at the top.
func pruning(node map[string]any, path string, objects *int) []string {
	var out []string
	_, hasProps := node["properties"]
	addl, hasAddl := node["additionalProperties"].(map[string]any)
	if node["type"] == "object" || hasProps {
		*objects++
		if keep, _ := node["x-kubernetes-preserve-unknown-fields"].(bool); !keep && (hasProps || !hasAddl) {
			out = append(out, path)
		}
	}
	props, _ := node["properties"].(map[string]any)
	names := make([]string, 0, len(props))
	for name := range props {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		child, _ := props[name].(map[string]any)
		out = append(out, pruning(child, path+"."+name, objects)...)
	}
	if items, ok := node["items"].(map[string]any); ok {
		out = append(out, pruning(items, path+"[]", objects)...)
	}
	if hasAddl {
		out = append(out, pruning(addl, path+"{}", objects)...)
	}
	for _, k := range []string{"allOf", "anyOf", "oneOf"} {
		list, _ := node[k].([]any)
		for i, s := range list {
			child, _ := s.(map[string]any)
			out = append(out, pruning(child, fmt.Sprintf("%s(%s %d)", path, k, i), objects)...)
		}
	}
	if not, ok := node["not"].(map[string]any); ok {
		out = append(out, pruning(not, path+"(not)", objects)...)
	}
	return out
}

func TestPruningWalker(t *testing.T) {
	for _, tc := range []struct {
		name   string
		schema string
		want   []string
	}{
		{"preserved object", `{type: object, x-kubernetes-preserve-unknown-fields: true, properties: {a: {type: string}}}`, nil},
		{"object prunes", `{type: object, properties: {a: {type: string}}}`, []string{"spec"}},
		{"object without properties prunes everything", `{type: object}`, []string{"spec"}},
		{"map of strings keeps every key", `{type: object, additionalProperties: {type: string}}`, nil},
		{"nested under properties", `{type: object, x-kubernetes-preserve-unknown-fields: true, properties: {a: {type: object, properties: {b: {type: string}}}}}`, []string{"spec.a"}},
		{"under items", `{type: array, items: {type: object, properties: {b: {type: string}}}}`, []string{"spec[]"}},
		{"under a map", `{type: object, additionalProperties: {type: object, properties: {b: {type: string}}}}`, []string{"spec{}"}},
		{"under allOf", `{type: object, x-kubernetes-preserve-unknown-fields: true, allOf: [{type: object, properties: {b: {type: string}}}]}`, []string{"spec(allOf 0)"}},
		{"int-or-string is no object", `{x-kubernetes-int-or-string: true}`, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var node map[string]any
			if err := yaml.Unmarshal([]byte(tc.schema), &node); err != nil {
				t.Fatal(err)
			}
			var n int
			if d := cmp.Diff(tc.want, pruning(node, "spec", &n)); d != "" {
				t.Fatalf("(-want +got):\n%s", d)
			}
		})
	}
}

// TestCiliumSchemasNeverPrune enforces the decision documented in package
// cilium/v2: no object node under a policy's spec or specs, or an Envoy
// config's spec, may let the API server drop a field it does not declare.
// A field the types lack must reach nodemesh's strict decoder (and make
// the policy Invalid) rather than vanish and leave a weaker policy
// enforced.
func TestCiliumSchemasNeverPrune(t *testing.T) {
	for _, tc := range []struct {
		file   string
		fields []string
		// minObjects guards against a walk that silently stops early.
		minObjects int
	}{
		{"cilium.io_ciliumnetworkpolicies.yaml", []string{"spec", "specs"}, 60},
		{"cilium.io_ciliumclusterwidenetworkpolicies.yaml", []string{"spec", "specs"}, 60},
		{"cilium.io_ciliumenvoyconfigs.yaml", []string{"spec"}, 5},
		{"cilium.io_ciliumclusterwideenvoyconfigs.yaml", []string{"spec"}, 5},
	} {
		t.Run(tc.file, func(t *testing.T) {
			root := readCRD(t, tc.file).Spec.Versions[0].Schema.OpenAPIV3Schema
			props := root["properties"].(map[string]any)
			for _, f := range tc.fields {
				node, ok := props[f].(map[string]any)
				if !ok {
					t.Fatalf("schema has no %s", f)
				}
				var objects int
				if bad := pruning(node, f, &objects); len(bad) > 0 {
					t.Errorf("%d schema nodes prune unknown fields (add +kubebuilder:pruning:PreserveUnknownFields to their Go types):\n%v", len(bad), bad)
				}
				if objects < tc.minObjects {
					t.Errorf("%s: walked %d object nodes, want at least %d", f, objects, tc.minObjects)
				}
			}
		})
	}
	// The Envoy resources are kept whole: an object that declares nothing
	// and keeps everything.
	root := readCRD(t, "cilium.io_ciliumenvoyconfigs.yaml").Spec.Versions[0].Schema.OpenAPIV3Schema
	spec := root["properties"].(map[string]any)["spec"].(map[string]any)
	items := spec["properties"].(map[string]any)["resources"].(map[string]any)["items"].(map[string]any)
	if d := cmp.Diff(map[string]any{"type": "object", "x-kubernetes-preserve-unknown-fields": true}, items); d != "" {
		t.Errorf("spec.resources items (-want +got):\n%s", d)
	}
}
