package ciliumidentity

import (
	"encoding/json"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// FuzzParseObject decodes a CiliumIdentity as JSON from the API server
// (any writer of the cluster-wide kind can put one there) and parses it.
// Properties: no panic; an accepted object is within the bounds, its name
// is the canonical form of its number, and writing its number and labels
// back as an object (newObject) parses to the same identity.
func FuzzParseObject(f *testing.F) {
	for _, s := range []string{
		`{"apiVersion":"cilium.io/v2","kind":"CiliumIdentity","metadata":{"name":"256","uid":"u1","resourceVersion":"7"},` +
			`"security-labels":{"k8s:app":"web","k8s:io.kubernetes.pod.namespace":"default","k8s:a:b":""}}`,
		`{"metadata":{"name":"65535"},"security-labels":{"reserved:host":""}}`,
		`{"metadata":{"name":"0256"},"security-labels":{"k8s:app":"web"}}`,
		`{"metadata":{"name":"300"},"security-labels":{"app":"web"}}`,
		`{"metadata":{"name":"300"},"security-labels":{"k8s:app":7}}`,
		`{"metadata":{"name":"300","deletionTimestamp":"2026-01-02T03:04:05Z"},"security-labels":{}}`,
		`{"metadata":{"name":"300"},"security-labels":{"k8s:x":"1"},"extra":[1,2,{"a":null}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var obj map[string]any
		if json.Unmarshal(b, &obj) != nil || obj == nil {
			return
		}
		u := &unstructured.Unstructured{Object: obj}
		e := parseObject(u)
		if e.Err != nil {
			return
		}
		if name(e.ID) != u.GetName() {
			t.Fatalf("name %q accepted as %d", u.GetName(), e.ID)
		}
		if len(e.Labels) == 0 || len(e.Labels) > MaxLabels {
			t.Fatalf("accepted %d labels", len(e.Labels))
		}
		size := 0
		for _, l := range e.Labels {
			size += len(l.Source) + 1 + len(l.Key) + len(l.Value)
		}
		if size > MaxLabelBytes+len(e.Labels) {
			t.Fatalf("accepted %d bytes of labels", size)
		}
		again := parseObject(newObject(e.ID, e.Labels))
		if again.Err != nil || again.ID != e.ID || !again.Labels.Equal(e.Labels) {
			t.Fatalf("%d %v written back parses as %d %v (%v)", e.ID, e.Labels, again.ID, again.Labels, again.Err)
		}
	})
}
