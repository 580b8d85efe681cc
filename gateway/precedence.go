package gateway

import "sort"

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
func before(a, b *item) bool {
	if a.hostExact != b.hostExact {
		return a.hostExact
	}
	if a.hostLen != b.hostLen {
		return a.hostLen > b.hostLen
	}
	ma, mb := a.m, b.m
	if ma.pathRank != mb.pathRank {
		return ma.pathRank < mb.pathRank
	}
	if ma.pathLen != mb.pathLen {
		return ma.pathLen > mb.pathLen
	}
	if ma.hasMethod != mb.hasMethod {
		return ma.hasMethod
	}
	if ma.headers != mb.headers {
		return ma.headers > mb.headers
	}
	if ma.query != mb.query {
		return ma.query > mb.query
	}
	ra, rb := ma.rule.route, mb.rule.route
	if ra != rb {
		if !ra.created.Equal(&rb.created) {
			return ra.created.Before(&rb.created)
		}
		if ra.key != rb.key {
			return keyLess(ra.key, rb.key)
		}
		return ra.kind.rank < rb.kind.rank
	}
	if ma.rule.index != mb.rule.index {
		return ma.rule.index < mb.rule.index
	}
	return ma.index < mb.index
}

func sortItems(items []item) {
	sort.Slice(items, func(i, j int) bool { return before(&items[i], &items[j]) })
}
