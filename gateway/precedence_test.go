package gateway

import (
	"math/rand"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/nodemesh/nodemesh/mesh/input"
)

// TestPrecedence lists items in the order the spec requires; sorting any
// permutation must restore it.
func TestPrecedence(t *testing.T) {
	t0 := metav1.NewTime(time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC))
	t1 := metav1.NewTime(t0.Add(time.Hour))
	route := func(ns, name string, created metav1.Time) *routeState {
		return &routeState{key: input.Key{Namespace: ns, Name: name}, created: created}
	}
	old, young := route("default", "old", t0), route("default", "young", t1)
	sameAgeA, sameAgeB := route("a", "z", t1), route("b", "a", t1)

	type spec struct {
		name              string
		host              string // route hostname the item matched through
		route             *routeState
		rule, match       int
		rank, length      int
		method            bool
		headers, queryNum int
	}
	ordered := []spec{
		{name: "exact host wins over everything", host: "foo.example.com", route: young, rank: rankPrefix, length: 1},
		{name: "longer wildcard host", host: "*.foo.example.com", route: young, rank: rankPrefix, length: 1},
		{name: "shorter wildcard host, Exact path", host: "*.example.com", route: young, rank: rankExact, length: 4},
		{name: "any host, Exact path", host: anyHost, route: young, rank: rankExact, length: 4},
		{name: "longer regex", host: anyHost, route: young, rank: rankRegex, length: 12},
		{name: "shorter regex", host: anyHost, route: young, rank: rankRegex, length: 3},
		{name: "longest prefix", host: anyHost, route: young, rank: rankPrefix, length: 8},
		{name: "method", host: anyHost, route: young, rank: rankPrefix, length: 4, method: true},
		{name: "two headers", host: anyHost, route: young, rank: rankPrefix, length: 4, headers: 2},
		{name: "one header, one query", host: anyHost, route: young, rank: rankPrefix, length: 4, headers: 1, queryNum: 1},
		{name: "one header", host: anyHost, route: young, rank: rankPrefix, length: 4, headers: 1},
		{name: "oldest route", host: anyHost, route: old, rank: rankPrefix, length: 4},
		{name: "same age, namespace a", host: anyHost, route: sameAgeA, rank: rankPrefix, length: 4},
		{name: "same age, namespace b", host: anyHost, route: sameAgeB, rank: rankPrefix, length: 4},
		{name: "youngest, first rule", host: anyHost, route: young, rule: 0, match: 1, rank: rankPrefix, length: 4},
		{name: "second rule, first match", host: anyHost, route: young, rule: 1, match: 0, rank: rankPrefix, length: 4},
		{name: "second rule, second match", host: anyHost, route: young, rule: 1, match: 1, rank: rankPrefix, length: 4},
	}
	var items []item
	names := map[*matchState]string{}
	for _, s := range ordered {
		exact, hl := specificity(s.host)
		m := &matchState{
			rule: &ruleState{route: s.route, index: s.rule}, index: s.match,
			pathRank: s.rank, pathLen: s.length, hasMethod: s.method, headers: s.headers, query: s.queryNum,
		}
		names[m] = s.name
		items = append(items, item{m: m, hostExact: exact, hostLen: hl})
	}
	var want []string
	for _, s := range ordered {
		want = append(want, s.name)
	}
	r := rand.New(rand.NewSource(1))
	for i := 0; i < 50; i++ {
		shuffledItems := shuffled(items, r)
		sortItems(shuffledItems)
		var got []string
		for _, it := range shuffledItems {
			got = append(got, names[it.m])
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("precedence order (-want +got):\n%s", diff)
		}
	}
	for i := range items {
		if before(&items[i], &items[i]) {
			t.Errorf("item %q sorts before itself", names[items[i].m])
		}
	}
}

// TestMatchPrecedenceKeys checks the keys compileMatch derives from the
// API's match forms.
func TestMatchPrecedenceKeys(t *testing.T) {
	str := func(s string) *string { return &s }
	pt := func(p gwv1.PathMatchType) *gwv1.PathMatchType { return &p }
	get := gwv1.HTTPMethodGet
	tests := []struct {
		name      string
		m         gwv1.HTTPRouteMatch
		rank, len int
		method    bool
		headers   int
		query     int
	}{
		{"default", gwv1.HTTPRouteMatch{}, rankPrefix, 1, false, 0, 0},
		{"prefix trailing slash", gwv1.HTTPRouteMatch{Path: &gwv1.HTTPPathMatch{Value: str("/foo/")}}, rankPrefix, 4, false, 0, 0},
		{"exact", gwv1.HTTPRouteMatch{Path: &gwv1.HTTPPathMatch{Type: pt(gwv1.PathMatchExact), Value: str("/foo/")}}, rankExact, 5, false, 0, 0},
		{"regex", gwv1.HTTPRouteMatch{Path: &gwv1.HTTPPathMatch{Type: pt(gwv1.PathMatchRegularExpression), Value: str("/f.*")}}, rankRegex, 4, false, 0, 0},
		{"duplicate header names count once", gwv1.HTTPRouteMatch{Method: &get, Headers: []gwv1.HTTPHeaderMatch{{Name: "A", Value: "1"}, {Name: "a", Value: "2"}, {Name: "b", Value: "3"}}}, rankPrefix, 1, true, 2, 0},
		{"duplicate query names count once", gwv1.HTTPRouteMatch{QueryParams: []gwv1.HTTPQueryParamMatch{{Name: "q", Value: "1"}, {Name: "q", Value: "2"}, {Name: "Q", Value: "3"}}}, rankPrefix, 1, false, 0, 2},
	}
	for _, tc := range tests {
		rule := &ruleState{route: &routeState{}}
		ms := compileMatch(new(matchState), rule, 0, &tc.m)
		if !rule.valid() {
			t.Errorf("%s: rule invalid: %s", tc.name, rule.problem)
			continue
		}
		got := []any{ms.pathRank, ms.pathLen, ms.hasMethod, ms.headers, ms.query}
		if diff := cmp.Diff([]any{tc.rank, tc.len, tc.method, tc.headers, tc.query}, got); diff != "" {
			t.Errorf("%s: keys [rank len method headers query] (-want +got):\n%s", tc.name, diff)
		}
	}
}

// TestSortItemsAgreesWithCompare sorts random virtual hosts, with ties at
// every criterion, routes of equal age and routes whose items are not
// next to each other, and requires the order compareItems gives item by
// item.
func TestSortItemsAgreesWithCompare(t *testing.T) {
	r := rand.New(rand.NewSource(2))
	t0 := metav1.NewTime(time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC))
	kinds := []*routeKind{{rank: 0}, {rank: 1}}
	hosts := []string{"a.example.com", "*.example.com", "*.b.example.com", anyHost}
	for round := range 200 {
		var routes []*routeState
		for range 1 + r.Intn(12) {
			routes = append(routes, &routeState{
				kind:    kinds[r.Intn(len(kinds))],
				key:     input.Key{Namespace: []string{"a", "b"}[r.Intn(2)], Name: []string{"x", "y", "z"}[r.Intn(3)]},
				created: metav1.NewTime(t0.Add(time.Duration(r.Intn(3)) * time.Hour)),
			})
		}
		var items []item
		for _, rs := range routes {
			for rule := range 1 + r.Intn(3) {
				rl := &ruleState{route: rs, index: rule}
				for match := range 1 + r.Intn(3) {
					exact, hl := specificity(hosts[r.Intn(len(hosts))])
					m := &matchState{rule: rl, index: match,
						pathRank: r.Intn(3), pathLen: r.Intn(3), hasMethod: r.Intn(2) == 0,
						serviceLen: int32(r.Intn(2)), methodLen: int32(r.Intn(2)),
						headers: r.Intn(2), query: r.Intn(2)}
					items = append(items, item{m: m, hostExact: exact, hostLen: hl})
				}
			}
		}
		if round%2 == 1 {
			// Items of one route apart from each other.
			items = shuffled(items, r)
		}
		want := slices.Clone(items)
		slices.SortStableFunc(want, func(a, b item) int { return compareItems(&a, &b) })
		got := slices.Clone(items)
		sortItems(got)
		for i := range want {
			if compareItems(&want[i], &got[i]) != 0 {
				t.Fatalf("round %d: item %d differs: want %+v, got %+v", round, i, *want[i].m, *got[i].m)
			}
		}
	}
}
