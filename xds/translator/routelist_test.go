package translator

import (
	"reflect"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/nodemesh/nodemesh/mesh/ir"
)

// TestSharedRouteLists: the virtual hosts of two route tables holding the
// same list of routes (a Gateway's HTTP and HTTPS listeners) share one
// list of Envoy routes, and the output is what a translation of each
// table on its own gives: the same routes, with the warnings of the
// second table's routes repeated.
func TestSharedRouteLists(t *testing.T) {
	cfg := benchConfig(40)
	vhosts := cfg.Listeners[0].Chains[0].Routes.VirtualHosts
	// A route whose path prefix cannot be carried: dropped, with a
	// warning, in each table.
	vhosts[1].Routes[3].Match.Path = &ir.PathMatch{Type: ir.PathPrefix, Value: "/a?b"}
	res, err := New().Translate(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.RouteConfigurations) != 2 {
		t.Fatalf("%d route configurations, want 2", len(res.RouteConfigurations))
	}
	a, b := res.RouteConfigurations[0].VirtualHosts, res.RouteConfigurations[1].VirtualHosts
	for i := range a {
		if len(a[i].Routes) == 0 || &a[i].Routes[0] != &b[i].Routes[0] {
			t.Fatalf("virtual host %d: the two tables do not share their list of routes", i)
		}
	}
	// Each table alone gives the same resources and warnings.
	var warnings []Warning
	for l := range cfg.Listeners {
		alone := *cfg
		alone.Listeners = cfg.Listeners[l : l+1]
		got, err := Translate(&alone)
		if err != nil {
			t.Fatal(err)
		}
		var same bool
		for _, rc := range res.RouteConfigurations {
			same = same || proto.Equal(got.RouteConfigurations[0], rc)
		}
		if !same {
			t.Fatalf("table %s differs from its translation alone", got.RouteConfigurations[0].Name)
		}
		warnings = append(warnings, got.Warnings...)
	}
	if len(warnings) != 2 || !reflect.DeepEqual(res.Warnings, warnings) {
		t.Fatalf("warnings %v, want %v (one per table)", res.Warnings, warnings)
	}
}
