package gateway

import (
	"fmt"
	"slices"
	"testing"

	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/nodemesh/nodemesh/mesh/input"
)

// TestColdTranslationAllocations bounds the allocations of a cold
// translation per rule, at the shape most rules have: one or two matches
// with a header match each, a header filter, two weighted backends, one
// hostname, on a Gateway whose listener takes the route. Rules come by the
// thousand, so what one rule allocates decides what a large input costs
// (conformance/perf BenchmarkSnapshot): the rule's state, matches, header
// matches, IR routes and backends come in two allocations, and names of
// fields and parents are made only for problems. The bound counts
// allocations, not time, so it holds on any machine.
func TestColdTranslationAllocations(t *testing.T) {
	snap, opts := benchSnapshot(200)
	rules := 0
	for _, r := range snap.HTTPRoutes {
		for j := range r.Spec.Rules {
			rule := &r.Spec.Rules[j]
			m := rule.Matches[1] // a path and a header match
			rule.Matches = []gwv1.HTTPRouteMatch{m}
			if j%2 == 1 {
				second := *m.Path.Value + "/b"
				m.Path = &gwv1.HTTPPathMatch{Value: &second}
				rule.Matches = append(rule.Matches, m)
			}
			rule.Filters = rule.Filters[:1]
			rules++
		}
	}
	res := Translate(snap, opts)
	checkResult(t, res)
	for _, r := range res.Routes {
		for _, c := range r.Status.Parents[0].Conditions {
			if c.Status != "True" {
				t.Fatalf("HTTPRoute %s: %s=%s: %s", r.Key, c.Type, c.Status, c.Message)
			}
		}
	}
	perRule := testing.AllocsPerRun(3, func() { Translate(snap, opts) }) / float64(rules)
	t.Logf("%.2f allocations per rule", perRule)
	if perRule > 9 {
		t.Errorf("a cold translation allocates %.2f times per rule, want at most 9", perRule)
	}
}

// TestOneRouteEditAllocations bounds what a Translator allocates for an
// edit of one route, while every Gateway and every object routes read
// stay the same: the edited route is compiled and attached, its virtual
// host assembled; nothing of the other routes is read again — not their
// content hash (a snapshot assembled by hand records none, so each would
// be computed from the object), not their attachment to the listeners.
// So an edit allocates about the same at 100 and at 800 routes.
func TestOneRouteEditAllocations(t *testing.T) {
	edits := func(n int) float64 {
		snap, opts := benchSnapshot(n)
		x := NewTranslator()
		x.Translate(snap, opts)
		var edited [2]input.Snapshot
		for i := range edited {
			edited[i] = *snap
			edited[i].HTTPRoutes = slices.Clone(snap.HTTPRoutes)
			r := snap.HTTPRoutes[n/2].DeepCopy()
			r.Spec.Rules[0].Filters[0].RequestHeaderModifier.Set[0].Value = fmt.Sprintf("edit-%d", i)
			edited[i].HTTPRoutes[n/2] = r
		}
		i := 0
		return testing.AllocsPerRun(20, func() {
			x.Translate(&edited[i%2], opts)
			i++
		})
	}
	small, large := edits(100), edits(800)
	t.Logf("a one-route edit allocates %.0f times at 100 routes, %.0f at 800", small, large)
	if large > small*1.25 {
		t.Errorf("a one-route edit allocates %.0f times at 800 routes and %.0f at 100: it grows with the routes not edited", large, small)
	}
}
