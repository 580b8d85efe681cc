package translator

import (
	"fmt"
	"math"
	"reflect"
	"runtime"
	"sync"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/nodemesh/nodemesh/mesh/ir"
)

// TestPrebuiltRoutesAsBuiltInPlace: a cold translation of hundreds of
// routes builds them ahead on several goroutines and yields exactly what
// building each in place yields — the same resources and the same
// warnings in the same order — including routes that warn, routes that
// are dropped, and the routes of a virtual host that loses its domain
// (built ahead for nothing).
func TestPrebuiltRoutesAsBuiltInPlace(t *testing.T) {
	cfg := benchConfig(3 * prebuildMin)
	vhosts := cfg.Listeners[0].Chains[0].Routes.VirtualHosts
	// A route whose path prefix cannot be carried: dropped, with a warning.
	vhosts[1].Routes[3].Match.Path = &ir.PathMatch{Type: ir.PathPrefix, Value: "/a?b"}
	// A per-backend Host edit: the route answers 500, with a warning.
	vhosts[2].Routes[4].Backends[0].RequestHeaders = &ir.HeaderModifier{Set: []ir.Header{{Name: "Host", Value: "x"}}}
	// Envoy compares domains case-insensitively: this virtual host loses
	// its only domain to host-0's and is dropped, with its routes.
	lost := &ir.VirtualHost{Name: "lost", Domains: []string{"HOST-0.example.com"}}
	for i := range 5 {
		r := *vhosts[3].Routes[i]
		r.Name = fmt.Sprintf("lost/%d", i)
		r.Timeout++
		lost.Routes = append(lost.Routes, &r)
	}
	cfg.Listeners[0].Chains[0].Routes.VirtualHosts = append(vhosts, lost)
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}

	// Building ahead needs two goroutines' worth of CPUs.
	defer runtime.GOMAXPROCS(max(2, runtime.GOMAXPROCS(0)))
	translate := func(ahead bool) *builder {
		t.Helper()
		if !ahead {
			defer func(n int) { prebuildMin = n }(prebuildMin)
			prebuildMin = math.MaxInt
		}
		b := newBuilder(cfg, &ir.Hashes{}, nil)
		if err := b.build(); err != nil {
			t.Fatal(err)
		}
		if built := len(b.prebuilt) > 0; built != ahead {
			t.Fatalf("routes built ahead: %t, want %t", built, ahead)
		}
		return b
	}
	want := translate(false).out
	var mu sync.Mutex
	counts := map[validator]int{}
	t.Cleanup(func() { validating = nil })
	validating = func(m validator) {
		mu.Lock()
		counts[m]++
		mu.Unlock()
	}
	got := translate(true).out
	validating = nil
	for m, n := range counts {
		if n != 1 {
			t.Fatalf("%T validated %d times", m, n)
		}
	}
	for _, rc := range got.RouteConfigurations {
		for _, vh := range rc.VirtualHosts {
			for _, r := range vh.Routes {
				if counts[r] != 1 {
					t.Fatalf("route %s emitted, validated %d times", r.Name, counts[r])
				}
			}
		}
	}
	if len(want.Warnings) < 3 {
		t.Fatalf("only %d warnings; the test wants a dropped route, a route answering 500 and a lost domain", len(want.Warnings))
	}
	if !reflect.DeepEqual(got.Warnings, want.Warnings) {
		t.Fatalf("warnings built ahead:\n%v\nbuilt in place:\n%v", got.Warnings, want.Warnings)
	}
	for _, l := range []struct {
		name      string
		got, want []proto.Message
	}{
		{"listeners", messages(got.Listeners), messages(want.Listeners)},
		{"route configurations", messages(got.RouteConfigurations), messages(want.RouteConfigurations)},
		{"clusters", messages(got.Clusters), messages(want.Clusters)},
		{"load assignments", messages(got.ClusterLoadAssignments), messages(want.ClusterLoadAssignments)},
		{"secrets", messages(got.Secrets), messages(want.Secrets)},
	} {
		if len(l.got) != len(l.want) {
			t.Fatalf("%s: %d built ahead, %d in place", l.name, len(l.got), len(l.want))
		}
		for i := range l.got {
			if !proto.Equal(l.got[i], l.want[i]) {
				t.Fatalf("%s[%d] differs:\nahead %v\nin place %v", l.name, i, l.got[i], l.want[i])
			}
		}
	}
}

func messages[T proto.Message](list []T) []proto.Message {
	out := make([]proto.Message, len(list))
	for i, m := range list {
		out[i] = m
	}
	return out
}
