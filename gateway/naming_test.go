package gateway

import (
	"testing"

	"github.com/nodemesh/nodemesh/mesh/input"
)

// TestRouteNamesOfARule: the names of a rule's matches cut from one
// string are routeName's, for any number of matches (digit widths change
// at 10 and 100) and rule index.
func TestRouteNamesOfARule(t *testing.T) {
	key := input.Key{Namespace: "team-a", Name: "store"}
	for _, rule := range []int{0, 9, 10, 123} {
		for _, n := range []int{1, 2, 9, 10, 11, 99, 100, 101, 250} {
			names := routeNames(&httpRouteKind, key, rule, n)
			for j := range n {
				if got, want := matchRouteName(names, n, j), routeName(&httpRouteKind, key, rule, j); got != want {
					t.Fatalf("rule %d, match %d of %d: %q, want %q", rule, j, n, got, want)
				}
			}
		}
	}
}
