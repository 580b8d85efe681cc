package translator

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/nodemesh/nodemesh/mesh/ir"
)

// TestTranslatorMatchesTranslate feeds one Translator every golden input in
// turn (and then in reverse): each result must be proto-equal, warnings
// included, to a fresh Translate of the same input.
func TestTranslatorMatchesTranslate(t *testing.T) {
	ins, err := filepath.Glob(filepath.Join("testdata", "*.in.yaml"))
	if err != nil || len(ins) == 0 {
		t.Fatalf("no inputs (%v)", err)
	}
	var cfgs []*ir.Config
	for _, in := range ins {
		data, err := os.ReadFile(in)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := decodeIR(data)
		if err != nil {
			t.Fatal(err)
		}
		cfgs = append(cfgs, cfg)
	}
	tr := New()
	order := append(slices.Clone(cfgs), cfgs...)
	slices.Reverse(order[len(cfgs):])
	for i, cfg := range order {
		got, err := tr.Translate(cfg)
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		want, err := Translate(cfg)
		if err != nil {
			t.Fatal(err)
		}
		requireEqual(t, want, got)
		if !slices.Equal(want.Warnings, got.Warnings) {
			t.Fatalf("step %d: warnings %v, want %v", i, got.Warnings, want.Warnings)
		}
	}
}

// TestTranslatorReuses: unchanged IR objects give the very same Envoy
// objects; a one-route change rebuilds only that route configuration.
func TestTranslatorReuses(t *testing.T) {
	tr := New()
	first, err := tr.Translate(benchConfig(200))
	if err != nil {
		t.Fatal(err)
	}
	// An equal Config built afresh (no shared pointers).
	same, err := tr.Translate(benchConfig(200))
	if err != nil {
		t.Fatal(err)
	}
	a, b := allResources(first), allResources(same)
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("resource %d (%T) rebuilt although its IR is unchanged", i, a[i])
		}
	}

	changed := benchConfig(200)
	changed.Listeners[0].Chains[0].Routes.VirtualHosts[3].Routes[2].Timeout++
	// The HTTPS listener shares the virtual hosts, so both tables change.
	next, err := tr.Translate(changed)
	if err != nil {
		t.Fatal(err)
	}
	for i, rc := range next.RouteConfigurations {
		if rc == same.RouteConfigurations[i] {
			t.Errorf("route configuration %s reused although a route changed", rc.Name)
		}
		for j, vh := range rc.VirtualHosts {
			if reused := vh == same.RouteConfigurations[i].VirtualHosts[j]; reused == (j == 3) {
				t.Errorf("virtual host %d of %s: reused=%t", j, rc.Name, reused)
			}
		}
	}
	for i, l := range next.Listeners {
		if l != same.Listeners[i] {
			t.Errorf("listener %s rebuilt for a route change", l.Name)
		}
	}
	for i, c := range next.Clusters {
		if c != same.Clusters[i] {
			t.Errorf("cluster %s rebuilt for a route change", c.Name)
		}
	}
	fresh, err := Translate(changed)
	if err != nil {
		t.Fatal(err)
	}
	requireEqual(t, fresh, next)
	if proto.Equal(next.RouteConfigurations[0], same.RouteConfigurations[0]) {
		t.Error("the route change did not reach the output")
	}
}
