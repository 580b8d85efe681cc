package gateway

import (
	"testing"

	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
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
