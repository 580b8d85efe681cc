package input

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const (
	cacheNS  = "apiVersion: v1\nkind: Namespace\nmetadata: {name: %s}\n"
	cacheSvc = `apiVersion: v1
kind: Service
metadata: {name: web, namespace: apps}
spec: {ports: [{port: 80}]}
`
	cacheList = `apiVersion: v1
kind: List
items:
- {apiVersion: v1, kind: Namespace, metadata: {name: l1}}
- {apiVersion: v1, kind: Namespace, metadata: {name: l2}}
`
)

func ns(name string) string { return strings.ReplaceAll(cacheNS, "%s", name) }

// TestCacheReusesUnchangedDocuments: a new version of a stream returns
// the very objects of the documents it kept, at their new positions, and
// new objects for the documents that changed; the result is what Decode
// gives.
func TestCacheReusesUnchangedDocuments(t *testing.T) {
	var c Cache
	v1 := ns("a") + "---\n" + cacheSvc + "---\n" + cacheList
	first, err := c.Decode("f.yaml", []byte(v1))
	if err != nil {
		t.Fatal(err)
	}
	// A new first document (two lines longer) moves the others down.
	v2 := "# a comment\n# another\n" + ns("b") + "---\n" + cacheSvc + "---\n" + cacheList
	second, err := c.Decode("g.yaml", []byte(v2))
	if err != nil {
		t.Fatal(err)
	}
	fresh, err := Decode("g.yaml", []byte(v2))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(summarize(fresh), summarize(second)); diff != "" {
		t.Fatalf("cached decode differs from Decode (-want +got):\n%s", diff)
	}
	if second[0].Obj == first[0].Obj {
		t.Error("the changed document's object was reused")
	}
	for i := 1; i < len(first); i++ {
		if second[i].Obj != first[i].Obj {
			t.Errorf("object %d (%s %s) of an unchanged document was decoded again", i, first[i].Kind, keyString(first[i].Key))
		}
	}
}

// TestCacheKeepsLastGoodVersion: a version that fails leaves the cache as
// it was, its errors are reported every time, and duplicates across
// reused documents are still found.
func TestCacheKeepsLastGoodVersion(t *testing.T) {
	var c Cache
	good := ns("a") + "---\n" + cacheSvc
	first, err := c.Decode("f.yaml", []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	bad := good + "---\nkind: Nope\n"
	for i := 0; i < 2; i++ {
		if _, err := c.Decode("f.yaml", []byte(bad)); err == nil || !strings.Contains(err.Error(), "f.yaml:10 (document 3)") {
			t.Fatalf("attempt %d: got %v", i, err)
		}
	}
	again, err := c.Decode("f.yaml", []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if again[0].Obj != first[0].Obj || again[1].Obj != first[1].Obj {
		t.Error("the last good version's objects were not reused after a failed version")
	}
	dup := good + "---\n" + ns("a")
	if _, err := c.Decode("f.yaml", []byte(dup)); err == nil || !strings.Contains(err.Error(), "duplicate object, first defined at f.yaml:1 (document 1)") {
		t.Fatalf("duplicate of a reused object: got %v", err)
	}
}
