package input

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzDecode feeds arbitrary bytes to Decode and Build: neither may panic,
// and whatever Decode accepts must be well-formed.
func FuzzDecode(f *testing.F) {
	for _, pattern := range []string{"testdata/*", "../../gateway/testdata/*/*.in.yaml"} {
		files, _ := filepath.Glob(pattern)
		for _, file := range files {
			if b, err := os.ReadFile(file); err == nil {
				f.Add(b)
			}
		}
	}
	f.Add([]byte("apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Namespace\n  metadata: {name: a}\n"))
	f.Add([]byte(`{"apiVersion":"v1","kind":"Secret","metadata":{"name":"s"},"data":{"a":"YQ=="}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		objs, err := Decode("fuzz.yaml", data)
		if err != nil {
			if objs != nil {
				t.Fatalf("Decode returned objects with an error")
			}
			return
		}
		for _, o := range objs {
			if o.Obj == nil || o.Key.Name == "" || o.Kind == "" {
				t.Fatalf("malformed object %+v", o)
			}
			if info := kindInfoOf(o.Kind); info.namespaced != (o.Key.Namespace != "") {
				t.Fatalf("%s %v: namespace presence does not match scope", o.Kind, o.Key)
			}
		}
		if _, err := Build(objs); err != nil {
			t.Fatalf("Build rejected what Decode accepted from one source: %v", err)
		}
	})
}

func kindInfoOf(k Kind) kindInfo {
	for _, info := range kinds {
		if info.kind == k {
			return info
		}
	}
	return kindInfo{}
}
