package gateway

import (
	"testing"

	"github.com/nodemesh/nodemesh/mesh/input"
	"github.com/nodemesh/nodemesh/mesh/ir"
)

// TestRouteNamesOfARoute: the names nameRoutes cuts from one string are
// routeName's, for any number of matches (digit widths change at 10 and
// 100) and rule index, and it leaves the rules already named alone.
func TestRouteNamesOfARoute(t *testing.T) {
	rs := &routeState{kind: &httpRouteKind, key: input.Key{Namespace: "team-a", Name: "store"}}
	counts := []int{1, 2, 9, 10, 11, 99, 100, 101, 250}
	for i := range 124 {
		r := &ruleState{route: rs, index: i, matches: make([]*matchState, counts[i%len(counts)])}
		if i == 5 {
			r.routes = []ir.Route{{Name: "named"}}
		}
		rs.rules = append(rs.rules, r)
	}
	nameRoutes(rs, rs.rules)
	for _, r := range rs.rules {
		if r.index == 5 {
			if len(r.routes) != 1 || r.routes[0].Name != "named" {
				t.Fatalf("rule 5, named before: %+v", r.routes)
			}
			continue
		}
		if len(r.routes) != len(r.matches) {
			t.Fatalf("rule %d: %d routes for %d matches", r.index, len(r.routes), len(r.matches))
		}
		for j := range r.routes {
			if got, want := r.routes[j].Name, routeName(&httpRouteKind, rs.key, r.index, j); got != want {
				t.Fatalf("rule %d, match %d: %q, want %q", r.index, j, got, want)
			}
		}
	}
}

// TestRouteOfARuleItsRouteDoesNotList: a rule its route does not list
// (an Ingress path's) gets its IR route, named as routeName names it.
func TestRouteOfARuleItsRouteDoesNotList(t *testing.T) {
	rs := &routeState{kind: &httpRouteKind, key: input.Key{Namespace: "team-a", Name: "store"}}
	listed := &ruleState{route: rs, index: 0}
	listed.matches = []*matchState{{rule: listed, index: 0}}
	rs.rules = []*ruleState{listed}
	alone := &ruleState{route: rs, index: 3}
	m := &matchState{rule: alone, index: 0}
	alone.matches = []*matchState{m}
	r := alone.routeOf(m, 80)
	if want := routeName(&httpRouteKind, rs.key, 3, 0); r.Name != want {
		t.Fatalf("route %q, want %q", r.Name, want)
	}
	if len(listed.routes) != 1 || listed.routes[0].Name != routeName(&httpRouteKind, rs.key, 0, 0) {
		t.Fatalf("listed rule's routes %+v", listed.routes)
	}
}
