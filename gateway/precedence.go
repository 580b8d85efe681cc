package gateway

import (
	"cmp"
	"slices"
)

// Route precedence inside one virtual host, first criterion first:
//
//  1. the route hostname that matched: an exact hostname beats a wildcard,
//     a longer hostname beats a shorter one (HTTPRoute spec.hostnames);
//  2. the path match: Exact, then RegularExpression, then PathPrefix; the
//     spec leaves regular expressions implementation-specific, and they
//     sit between Exact and PathPrefix because an expression is usually
//     written to be more specific than a prefix;
//  3. within a path type, the longer value (the longest prefix wins, as the
//     spec requires; longer expressions are taken as more specific);
//  4. a method match over none;
//  5. more header matches, then more query parameter matches;
//  6. the older route (creationTimestamp), then namespace/name, then kind
//     (in table order, for routes of different kinds sharing a name);
//  7. within a route, rule order, then match order.
//
// The order is total, so equal intent always yields the same table.

const (
	rankExact = iota
	rankRegex
	rankPrefix
)

// item is one route match placed in one virtual host.
type item struct {
	m *matchState
	// hostExact and hostLen describe the route hostname the item was
	// matched through.
	hostExact bool
	hostLen   int
}

// before reports whether a takes precedence over b.
func before(a, b *item) bool { return compareItems(a, b) < 0 }

// compareItems orders a before b (-1) or after it (1) by precedence; 0 only
// for the same match through the same hostname.
func compareItems(a, b *item) int {
	ka, kb := precKeyOf(a), precKeyOf(b)
	if c := compareMatchKeys(&ka, &kb); c != 0 {
		return c
	}
	if c := compareRoutes(a.m.rule.route, b.m.rule.route); c != 0 {
		return c
	}
	return compareInRoute(&ka, &kb)
}

// itemKey is what precedence reads of an item, copied out of its match so
// that sorting compares values next to each other rather than following
// two pointers per comparison. route is the item's route's position among
// the routes sorted by compareRoutes, set by sortItems only.
type itemKey struct {
	hostExact, hasMethod  bool
	serviceLen, methodLen int32
	hostLen, pathRank     int
	pathLen               int
	headers, query        int
	route                 int
	rule, match           int
}

func precKeyOf(it *item) itemKey {
	m := it.m
	return itemKey{
		hostExact: it.hostExact, hostLen: it.hostLen,
		pathRank: m.pathRank, serviceLen: m.serviceLen, methodLen: m.methodLen, pathLen: m.pathLen,
		hasMethod: m.hasMethod, headers: m.headers, query: m.query,
		rule: m.rule.index, match: m.index,
	}
}

// compareMatchKeys applies criteria 1-5.
func compareMatchKeys(a, b *itemKey) int {
	if a.hostExact != b.hostExact {
		return first(a.hostExact)
	}
	if a.hostLen != b.hostLen {
		return cmp.Compare(b.hostLen, a.hostLen)
	}
	if a.pathRank != b.pathRank {
		return cmp.Compare(a.pathRank, b.pathRank)
	}
	if a.serviceLen != b.serviceLen {
		return cmp.Compare(b.serviceLen, a.serviceLen)
	}
	if a.methodLen != b.methodLen {
		return cmp.Compare(b.methodLen, a.methodLen)
	}
	if a.pathLen != b.pathLen {
		return cmp.Compare(b.pathLen, a.pathLen)
	}
	if a.hasMethod != b.hasMethod {
		return first(a.hasMethod)
	}
	if a.headers != b.headers {
		return cmp.Compare(b.headers, a.headers)
	}
	return cmp.Compare(b.query, a.query)
}

// compareRoutes applies criterion 6.
func compareRoutes(ra, rb *routeState) int {
	if ra == rb {
		return 0
	}
	if !ra.created.Equal(&rb.created) {
		return first(ra.created.Before(&rb.created))
	}
	if ra.key != rb.key {
		return first(keyLess(ra.key, rb.key))
	}
	return cmp.Compare(ra.kind.rank, rb.kind.rank)
}

// compareInRoute applies criterion 7.
func compareInRoute(a, b *itemKey) int {
	if a.rule != b.rule {
		return cmp.Compare(a.rule, b.rule)
	}
	return cmp.Compare(a.match, b.match)
}

// first is -1 when the item it is asked about comes first, else 1.
func first(b bool) int {
	if b {
		return -1
	}
	return 1
}

// sortItems sorts by precedence, in the order compareItems defines (the
// order is total, so any sort gives the same result).
func sortItems(items []item) { new(itemSorter).sort(items) }

// itemSorter sorts items by precedence. A virtual host holds hundreds of
// items of a few routes each, and most comparisons fall through to
// criterion 6 (items of one hostname and path type differ little before
// it), which reads two routes' timestamps and names: the routes are ranked
// once instead, and items compare their ranks next to the other keys,
// copied out of the matches. It keeps its buffers for the next sort, up
// to maxSorterKept items (a Translator sorts with one in every
// translation, so that an edit sorts its virtual host without
// allocating).
type itemSorter struct {
	keys   []itemKey
	order  []int32
	sorted []item
	ranked []*routeState
}

func (s *itemSorter) sort(items []item) {
	if len(items) < 2 {
		return
	}
	// Items of a route are usually next to each other (expand): one run
	// per route, each run ranked once.
	runs := s.ranked[:0]
	for i := range items {
		if rs := items[i].m.rule.route; i == 0 || rs != items[i-1].m.rule.route {
			runs = append(runs, rs)
		}
	}
	nruns := len(runs)
	runs = append(runs, runs...)
	s.ranked = runs
	ranked := runs[nruns:]
	slices.SortFunc(ranked, compareRoutes)
	s.keys = slices.Grow(s.keys[:0], len(items))[:len(items)]
	s.order = slices.Grow(s.order[:0], len(items))[:len(items)]
	keys, order := s.keys, s.order
	run, pos := -1, 0
	for i := range items {
		if i == 0 || items[i].m.rule.route != items[i-1].m.rule.route {
			// The route's rank: that of the first ranked route comparing
			// equal to it (itself, when the route forms several runs).
			run++
			pos, _ = slices.BinarySearchFunc(ranked, runs[run], compareRoutes)
		}
		keys[i] = precKeyOf(&items[i])
		keys[i].route = pos
		order[i] = int32(i)
	}
	slices.SortFunc(order, func(i, j int32) int {
		a, b := &keys[i], &keys[j]
		if c := compareMatchKeys(a, b); c != 0 {
			return c
		}
		if a.route != b.route {
			return cmp.Compare(a.route, b.route)
		}
		return compareInRoute(a, b)
	})
	s.sorted = append(s.sorted[:0], items...)
	for i, j := range order {
		items[i] = s.sorted[j]
	}
	clear(s.sorted) // hold no match past the sort
	clear(s.ranked)
	if cap(s.keys) > maxSorterKept {
		*s = itemSorter{}
	}
}

// itemSorter returns the translation's item sorter.
func (t *translator) itemSorter() *itemSorter {
	if t.sorter == nil {
		t.sorter = new(itemSorter)
	}
	return t.sorter
}

// maxSorterKept bounds the buffers an itemSorter keeps (about 100 bytes
// an item).
const maxSorterKept = 4096
