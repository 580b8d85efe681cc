package input

import (
	"slices"
	"strings"
	"testing"

	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

const hashCase = `
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web, namespace: apps}
spec:
  parentRefs: [{name: eg}]
  hostnames: [a.example.com]
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: apps}
spec:
  ports: [{port: 80}]
`

// TestHashFollowsContent: decoding the same content again, even written
// differently, gives new objects with the same hashes; changing a field
// changes that object's hash only.
func TestHashFollowsContent(t *testing.T) {
	build := func(src string) *Snapshot {
		t.Helper()
		s, err := Build(mustDecode(t, "a.yaml", src))
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range s.HTTPRoutes {
			if h, ok := s.RecordedHash(r); !ok || h != HashObject(r) {
				t.Fatalf("route hash not recorded as decoded")
			}
		}
		return s
	}
	a := build(hashCase)
	if n := len(slices.Collect(a.Objects())); n != 2 {
		t.Fatalf("Objects listed %d objects, want 2", n)
	}
	reformatted := build("# a comment\n" + strings.ReplaceAll(hashCase, "{port: 80}", "{ port: 80 }"))
	if a.HTTPRoutes[0] == reformatted.HTTPRoutes[0] {
		t.Fatal("decoding twice returned one object")
	}
	if !SameContent(a, reformatted) {
		t.Error("the same content decoded again is not SameContent")
	}
	edited := build(strings.Replace(hashCase, "a.example.com", "b.example.com", 1))
	if SameContent(a, edited) {
		t.Error("an edited route is SameContent")
	}
	if a.HashOf(a.HTTPRoutes[0]) == edited.HashOf(edited.HTTPRoutes[0]) {
		t.Error("the edited route kept its hash")
	}
	if a.HashOf(a.Services[0]) != edited.HashOf(edited.Services[0]) {
		t.Error("the unchanged Service changed hash")
	}
	// An object swapped into a copy of a snapshot is hashed, not taken
	// for the one it replaced.
	cp := *a
	cp.HTTPRoutes = []*gwv1.HTTPRoute{edited.HTTPRoutes[0]}
	if SameContent(a, &cp) {
		t.Error("a copy with a replaced route is SameContent")
	}
}

// BenchmarkHashObject is what hashing costs one object as it enters.
func BenchmarkHashObject(b *testing.B) {
	objs, err := Decode("a.yaml", []byte(hashCase))
	if err != nil {
		b.Fatal(err)
	}
	s, err := Build(objs)
	if err != nil {
		b.Fatal(err)
	}
	r := s.HTTPRoutes[0]
	b.ReportAllocs()
	for b.Loop() {
		HashObject(r)
	}
}
