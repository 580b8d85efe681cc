package gateway

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/nodemesh/nodemesh/mesh/input"
)

// FuzzTranslate runs the whole pipeline on arbitrary bytes: whatever the
// decoder accepts must translate without panicking into a Config that
// validates and statuses the API server would accept.
func FuzzTranslate(f *testing.F) {
	files, _ := filepath.Glob("testdata/*/*.in.yaml")
	for _, file := range files {
		if b, err := os.ReadFile(file); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		objs, err := input.Decode("fuzz.yaml", data)
		if err != nil {
			return
		}
		snap, err := input.Build(objs)
		if err != nil {
			return
		}
		res := Translate(snap, Options{Addresses: testAddresses(t, snap, false), Ingress: testIngressOptions(t, snap, false), Mesh: testMesh})
		checkResult(t, res)
	})
}
