package input

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestDecodeIngressKinds: Ingress (namespaced, defaulting to "default")
// and IngressClass (cluster-scoped) decode strictly and land in the
// snapshot sorted by key; an unknown field is an error naming it.
func TestDecodeIngressKinds(t *testing.T) {
	doc := `apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: nodemesh}
spec: {controller: nodemesh.io/ingress-controller}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: b}
spec:
  ingressClassName: nodemesh
  rules:
  - host: a.example.com
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: s, port: {number: 80}}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: a, namespace: team}
spec: {defaultBackend: {service: {name: s, port: {name: http}}}}
`
	objs, err := Decode("ing.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	want := []decoded{
		{"ing.yaml:1 (document 1)", KindIngressClass, "nodemesh", "networking.k8s.io/v1"},
		{"ing.yaml:6 (document 2)", KindIngress, "default/b", "networking.k8s.io/v1"},
		{"ing.yaml:17 (document 3)", KindIngress, "team/a", "networking.k8s.io/v1"},
	}
	if diff := cmp.Diff(want, summarize(objs)); diff != "" {
		t.Fatalf("decoded objects (-want +got):\n%s", diff)
	}
	s, err := Build(objs)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.IngressClasses) != 1 || len(s.Ingresses) != 2 || s.Ingresses[0].Name != "b" || s.Ingresses[1].Namespace != "team" {
		t.Fatalf("snapshot: %d IngressClasses, Ingresses %v", len(s.IngressClasses), s.Ingresses)
	}
	if p := s.Ingresses[0].Spec.Rules[0].HTTP.Paths[0]; p.Backend.Service.Port.Number != 80 || *p.PathType != "Prefix" {
		t.Fatalf("path decoded as %+v", p)
	}

	_, err = Decode("bad.yaml", []byte("apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: x}\nspec: {rulez: []}\n"))
	if err == nil || !strings.Contains(err.Error(), `unknown field "spec.rulez"`) {
		t.Fatalf("unknown field: %v", err)
	}
}
