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
	if a.hostExact != b.hostExact {
		return first(a.hostExact)
	}
	if a.hostLen != b.hostLen {
		return cmp.Compare(b.hostLen, a.hostLen)
	}
	ma, mb := a.m, b.m
	if ma.pathRank != mb.pathRank {
		return cmp.Compare(ma.pathRank, mb.pathRank)
	}
	if ma.serviceLen != mb.serviceLen {
		return cmp.Compare(mb.serviceLen, ma.serviceLen)
	}
	if ma.methodLen != mb.methodLen {
		return cmp.Compare(mb.methodLen, ma.methodLen)
	}
	if ma.pathLen != mb.pathLen {
		return cmp.Compare(mb.pathLen, ma.pathLen)
	}
	if ma.hasMethod != mb.hasMethod {
		return first(ma.hasMethod)
	}
	if ma.headers != mb.headers {
		return cmp.Compare(mb.headers, ma.headers)
	}
	if ma.query != mb.query {
		return cmp.Compare(mb.query, ma.query)
	}
	ra, rb := ma.rule.route, mb.rule.route
	if ra != rb {
		if !ra.created.Equal(&rb.created) {
			return first(ra.created.Before(&rb.created))
		}
		if ra.key != rb.key {
			return first(keyLess(ra.key, rb.key))
		}
		return cmp.Compare(ra.kind.rank, rb.kind.rank)
	}
	if ma.rule.index != mb.rule.index {
		return cmp.Compare(ma.rule.index, mb.rule.index)
	}
	return cmp.Compare(ma.index, mb.index)
}

// first is -1 when the item it is asked about comes first, else 1.
func first(b bool) int {
	if b {
		return -1
	}
	return 1
}

// sortItems sorts by precedence. The order is total, so any sort gives the
// same result; slices.SortFunc avoids sort.Slice's reflection.
func sortItems(items []item) {
	slices.SortFunc(items, func(a, b item) int { return compareItems(&a, &b) })
}
