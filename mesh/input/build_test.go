package input

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func mustDecode(t *testing.T, source, in string) []Object {
	t.Helper()
	objs, err := Decode(source, []byte(in))
	if err != nil {
		t.Fatalf("Decode(%s): %v", source, err)
	}
	return objs
}

func TestBuildSorts(t *testing.T) {
	objs := mustDecode(t, "a.yaml", `
apiVersion: v1
kind: Service
metadata: {name: b, namespace: ns-y}
---
apiVersion: v1
kind: Service
metadata: {name: a, namespace: ns-y}
---
apiVersion: v1
kind: Service
metadata: {name: z, namespace: ns-x}
---
apiVersion: v1
kind: Namespace
metadata: {name: ns-y}
---
apiVersion: v1
kind: Namespace
metadata: {name: ns-x}
---
apiVersion: v1
kind: Secret
metadata: {name: a, namespace: ns-y}
`)
	s, err := Build(objs)
	if err != nil {
		t.Fatal(err)
	}
	var svcs, nss []string
	for _, v := range s.Services {
		svcs = append(svcs, v.Namespace+"/"+v.Name)
	}
	for _, v := range s.Namespaces {
		nss = append(nss, v.Name)
	}
	if diff := cmp.Diff([]string{"ns-x/z", "ns-y/a", "ns-y/b"}, svcs); diff != "" {
		t.Errorf("Services order (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"ns-x", "ns-y"}, nss); diff != "" {
		t.Errorf("Namespaces order (-want +got):\n%s", diff)
	}
	if len(s.Secrets) != 1 {
		t.Errorf("got %d Secrets, want 1 (same name as a Service is not a duplicate)", len(s.Secrets))
	}
}

func TestBuildDuplicateAcrossSources(t *testing.T) {
	a := mustDecode(t, "a.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: s}\n")
	b := mustDecode(t, "b.yaml", "# two lines\napiVersion: v1\nkind: Service\nmetadata: {name: s, namespace: default}\n")
	s, err := Build(append(a, b...))
	if err == nil {
		t.Fatalf("Build succeeded, want a duplicate error")
	}
	if s != nil {
		t.Error("Build returned a snapshot with an error")
	}
	want := "b.yaml:1 (document 1): Service default/s: duplicate object, also defined at a.yaml:1 (document 1)"
	if !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not contain %q", err, want)
	}
}

func TestBuildRejectsForeignObjects(t *testing.T) {
	objs := []Object{
		{Origin: Origin{Source: "x", Item: -1}, Obj: &corev1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: "p"}}},
		{Origin: Origin{Source: "y", Item: -1}, Obj: (*corev1.Service)(nil)},
		{Origin: Origin{Source: "z", Item: -1}},
	}
	if _, err := Build(objs); err == nil || strings.Count(err.Error(), "unsupported object type") != 3 {
		t.Errorf("Build error = %v, want three unsupported-type errors", err)
	}
}
