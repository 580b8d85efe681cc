package translator

import (
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/nodemesh/nodemesh/mesh/ir"
)

// Producers build one IR route per match of a rule, and the routes of a
// rule hold the very same backends, header modifiers, CORS, retry and
// mirror objects (gateway's newRoute). Their forwarding actions are then
// equal, so a translation builds the action and its header edits once per
// rule and the routes share those messages: at the benchmark's shape a
// third of all actions, with their weighted clusters and header edits.
//
// What decides is the identity of the IR objects an action is built from,
// not their content: the IR is never modified once built (mesh/ir), so
// the same objects mean the same content for the whole translation, and
// comparing pointers costs nothing next to hashing the content again.
// Routes with equal content behind different objects simply build their
// own action. Identity decides only what is shared within one
// translation; versions and reuse across translations stay with the
// content hashes. Shared messages are never modified once built (nothing
// in the translator edits a built route), and marshalling, validation and
// proto.Equal read a message held by several routes as they would read a
// copy of it.

// actionFrom is a route built with a forwarding action, and the IR route
// it was built from.
type actionFrom struct {
	in  *ir.Route
	out *routev3.Route
}

// sharedAction returns a route built in this translation whose action
// and header edits r would get too, or nil. Only forwarding routes are
// shared: redirects and direct responses are rare and cheap.
func (b *builder) sharedAction(r *ir.Route) *routev3.Route {
	if !forwards(r) {
		return nil
	}
	// The matches of a rule are often next to each other in precedence
	// order: the action remembered last is tried before the map.
	if a := b.lastAction; a.in != nil && &a.in.Backends[0] == &r.Backends[0] {
		if sameAction(a.in, r) {
			return a.out
		}
		return nil
	}
	if a, ok := b.actions[&r.Backends[0]]; ok && sameAction(a.in, r) {
		return a.out
	}
	return nil
}

// rememberAction records out, built from r without a problem, for the
// routes sharing r's action objects.
func (b *builder) rememberAction(r *ir.Route, out *routev3.Route) {
	if !forwards(r) {
		return
	}
	if b.actions == nil {
		b.actions = make(map[**ir.WeightedBackend]actionFrom)
	}
	if _, ok := b.actions[&r.Backends[0]]; !ok {
		a := actionFrom{in: r, out: out}
		b.actions[&r.Backends[0]], b.lastAction = a, a
	}
}

func forwards(r *ir.Route) bool {
	return r.Redirect == nil && r.DirectResponse == nil && len(r.Backends) > 0
}

// sameAction reports whether a and b, two forwarding routes, hold the
// same objects for everything forward and action read: all but the name
// and the match, and the match's path too when a path rewrite refers to
// it.
func sameAction(a, b *ir.Route) bool {
	return len(a.Backends) == len(b.Backends) && &a.Backends[0] == &b.Backends[0] &&
		a.RequestHeaders == b.RequestHeaders && a.ResponseHeaders == b.ResponseHeaders &&
		a.CORS == b.CORS && a.Retry == b.Retry &&
		a.Timeout == b.Timeout && a.BackendTimeout == b.BackendTimeout &&
		sameSlice(a.Mirrors, b.Mirrors) &&
		a.Rewrite == b.Rewrite && (a.Rewrite == nil || a.Match.Path == b.Match.Path)
}

// sameSlice reports whether a and b are the same slice of the same array.
func sameSlice[T any](a, b []T) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}

// shareAction sets out's action and header edits to those of from, a
// route whose IR route holds the same action objects.
func shareAction(out, from *routev3.Route) {
	out.Action = from.Action
	out.RequestHeadersToAdd, out.RequestHeadersToRemove = from.RequestHeadersToAdd, from.RequestHeadersToRemove
	out.ResponseHeadersToAdd, out.ResponseHeadersToRemove = from.ResponseHeadersToAdd, from.ResponseHeadersToRemove
	out.TypedPerFilterConfig = from.TypedPerFilterConfig
}

// validShared reports whether out, a route that shares the action and
// header edits of from, is valid provided from passes ValidateAll. Route's
// validation rules each read one field (the action oneof being one), and
// its name has none; so when every other field of out holds from's very
// values, out passes ValidateAll exactly when its match does. That check
// skips what dominates validating a shared action: its weighted clusters,
// header edits and the generated code's per-map key sort (one per Route
// and one per ClusterWeight, each allocating although the maps are
// empty).
//
// The comparison covers every field of Route (TestValidSharedCoversRoute
// fails when go-control-plane adds one), so a route given anything of its
// own after sharing is validated whole; false means only "not proven",
// and the caller then runs ValidateAll. checkRoutes validates from whole,
// and from precedes out in build order, so the first failure reported is
// the one a route-by-route ValidateAll would report. Only reads: out and
// from may be checked on different goroutines at once.
func validShared(out, from *routev3.Route) bool {
	return out.Action == from.Action &&
		out.Metadata == from.Metadata && out.Decorator == from.Decorator &&
		sameMap(out.TypedPerFilterConfig, from.TypedPerFilterConfig) &&
		sameSlice(out.RequestHeadersToAdd, from.RequestHeadersToAdd) &&
		sameSlice(out.RequestHeadersToRemove, from.RequestHeadersToRemove) &&
		sameSlice(out.ResponseHeadersToAdd, from.ResponseHeadersToAdd) &&
		sameSlice(out.ResponseHeadersToRemove, from.ResponseHeadersToRemove) &&
		out.Tracing == from.Tracing &&
		out.PerRequestBufferLimitBytes == from.PerRequestBufferLimitBytes &&
		out.StatPrefix == from.StatPrefix &&
		out.RequestBodyBufferLimit == from.RequestBodyBufferLimit &&
		sameSlice(out.RouteSpecifiers, from.RouteSpecifiers) &&
		out.Match != nil && (validMatch(out.Match) || out.Match.ValidateAll() == nil)
}

// sameMap reports whether a and b hold the same keys with the very same
// values.
func sameMap[K, V comparable](a, b map[K]V) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}
