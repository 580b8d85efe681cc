package translator

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/nodemesh/nodemesh/internal/golden"
)

// TestGolden translates every testdata/<case>.in.yaml and compares the
// result with <case>.out.yaml (go test -update rewrites them).
func TestGolden(t *testing.T) {
	ins := golden.Inputs(t, "testdata", ".in.yaml", ".out.yaml")
	if len(ins) < 25 {
		t.Errorf("only %d golden cases; every IR feature needs one", len(ins))
	}
	for _, in := range ins {
		name := strings.TrimSuffix(filepath.Base(in), ".in.yaml")
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := decodeIR(data)
			if err != nil {
				t.Fatal(err)
			}
			res, err := Translate(cfg)
			if err != nil {
				t.Fatalf("Translate: %v", err)
			}
			requireValid(t, res)
			again, err := Translate(cfg)
			if err != nil {
				t.Fatalf("second Translate: %v", err)
			}
			requireEqual(t, res, again)
			got, err := renderResources(res)
			if err != nil {
				t.Fatal(err)
			}
			golden.Check(t, strings.TrimSuffix(in, ".in.yaml")+".out.yaml", got)
		})
	}
}

// requireValid re-checks, independently of the translator, that every
// resource passes Envoy's validation and marshals.
func requireValid(t testing.TB, res *Resources) {
	t.Helper()
	for _, m := range allResources(res) {
		if err := m.(validator).ValidateAll(); err != nil {
			t.Errorf("%T: %v", m, err)
		}
		if _, err := proto.Marshal(m); err != nil {
			t.Errorf("%T: marshalling: %v", m, err)
		}
	}
}

// requireEqual fails unless both translations are identical, resource by
// resource and in the same order.
func requireEqual(t testing.TB, a, b *Resources) {
	t.Helper()
	x, y := allResources(a), allResources(b)
	if len(x) != len(y) {
		t.Fatalf("translations differ in size: %d vs %d resources", len(x), len(y))
	}
	for i := range x {
		if !proto.Equal(x[i], y[i]) {
			t.Fatalf("translations differ at resource %d (%T)", i, x[i])
		}
	}
}

func allResources(res *Resources) []proto.Message {
	var out []proto.Message
	for _, m := range res.Listeners {
		out = append(out, m)
	}
	for _, m := range res.RouteConfigurations {
		out = append(out, m)
	}
	for _, m := range res.Clusters {
		out = append(out, m)
	}
	for _, m := range res.ClusterLoadAssignments {
		out = append(out, m)
	}
	for _, m := range res.Secrets {
		out = append(out, m)
	}
	for _, m := range res.ExtensionConfigs {
		out = append(out, m)
	}
	return out
}
