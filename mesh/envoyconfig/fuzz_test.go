package envoyconfig

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/nodemesh/nodemesh/mesh/input"
	"github.com/nodemesh/nodemesh/mesh/ir"
)

// FuzzTranslate feeds arbitrary YAML through decoding and translation:
// whatever a user (or an API server) hands over, translation never panics
// and what it emits is valid IR.
func FuzzTranslate(f *testing.F) {
	for _, dir := range []string{"testdata", filepath.Join("..", "..", "examples", "envoyconfig")} {
		files, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
		for _, p := range files {
			if b, err := os.ReadFile(p); err == nil {
				f.Add(b)
			}
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
		res := Translate(snap, testOptions())
		if err := (&ir.Config{Resources: res.Resources}).Validate(); err != nil {
			t.Fatalf("invalid IR: %v", err)
		}
	})
}
