package gateway

import (
	"fmt"
	"slices"
	"strings"

	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/nodemesh/nodemesh/mesh/input"
)

// parentState is one parentRef of a route to one of our Gateways (the
// Gateway is gatewayKey(ref, route namespace)), and what it resolved to.
type parentState struct {
	ref gwv1.ParentReference
	// gw is the Gateway the parentRef names.
	gw       input.Key
	accepted verdict
	// hits are the listeners that admit the route through this parentRef
	// (none unless accepted).
	hits []listenerHit
	// hit0 holds hits when there are one or two (a Gateway's HTTP and
	// HTTPS listeners), the usual case, saving an allocation per route
	// and translation.
	hit0 [2]listenerHit
}

// listenerHit is one listener a route attaches to and the hostnames it is
// served on there. The listener is named by its position in the
// Gateway's listeners rather than by pointer, so a resolved parentRef
// stays meaningful for as long as that Gateway's listeners are unchanged.
type listenerHit struct {
	listener  int
	hostnames []string
}

// attach resolves a route's parentRefs against our Gateways' listeners and
// attaches the route where it is accepted. Routes of every kind attach
// here; the kind enters only through allowedRoutes.kinds.
func (t *translator) attach(rs *routeState) {
	for _, pr := range rs.src.parentRefs() {
		gs, set := t.parentOf(pr, rs.key.Namespace)
		if gs == nil {
			continue // not one of our Gateways (or a Service parent, GAMMA): not ours to report
		}
		var ps *parentState
		if set != nil && set.notAttached != nil {
			ps = &parentState{ref: *pr.DeepCopy(), accepted: no(string(gwv1.RouteReasonNoMatchingParent),
				"ListenerSet %s is not attached to Gateway %s: %s", set.key, gs.key, set.notAttached.msg)}
		} else {
			ps = t.resolveParent(rs, pr, gs, set)
		}
		ps.gw = gs.key
		rs.parents = append(rs.parents, ps)
	}
	t.attachResolved(rs)
}

// parentOf finds the Gateway of ours a parentRef selects listeners of:
// the Gateway it names, or the parent of the ListenerSet it names (then
// set is that ListenerSet). gs is nil for any other parentRef.
func (t *translator) parentOf(pr gwv1.ParentReference, routeNamespace string) (gs *gatewayState, set *listenerSetState) {
	switch {
	case isGatewayRef(pr):
		return t.gateways[gatewayKey(pr, routeNamespace)], nil
	case isListenerSetRef(pr):
		if set = t.listenerSets[gatewayKey(pr, routeNamespace)]; set != nil {
			return set.gw, set
		}
	}
	return nil, nil
}

// attachResolved attaches a route whose parentRefs are resolved to this
// translation's listeners: counted on every listener it resolved to, and
// added to the serving ones' route sets on the hostnames it serves there.
// Listeners are named by position in their Gateway's listeners, which are
// the same while the Gateway object is.
func (t *translator) attachResolved(rs *routeState) {
	t.forListeners(rs, func(ls *listenerState, hostnames []string) {
		ls.attached++
		if !ls.serving {
			return
		}
		for _, host := range hostnames {
			// Listener isolation: a hostname a more specific listener
			// of the same port claims is served by that listener only.
			if ls.owner(host) == ls {
				ls.entries[host] = append(ls.entries[host], rs)
			}
		}
	})
}

// forListeners calls fn once per listener of this translation rs is
// attached to, with the hostnames it serves there: a route attached to
// one listener through several parentRefs counts once.
func (t *translator) forListeners(rs *routeState, fn func(ls *listenerState, hostnames []string)) {
	// Usually one or two.
	var seen [4]*listenerState
	done := seen[:0]
	for _, ps := range rs.parents {
		if !ps.accepted.ok {
			continue
		}
		gs := t.gateways[ps.gw]
		for _, h := range ps.hits {
			ls := gs.listeners[h.listener]
			if slices.Contains(done, ls) {
				continue
			}
			done = append(done, ls)
			fn(ls, h.hostnames)
		}
	}
}

// takeAttachments gives this translation's listeners the routes the
// previous translation attached to them (entries and counts), when its
// listeners are the very same (sameListeners: the same Gateway,
// ListenerSet and world objects, the same addresses), so that an edit
// costs the routes that changed: processRoutes then attaches only routes
// compiled or resolved again, and detaches the previous state of those
// and of routes gone, instead of attaching every route anew. The order of
// a hostname's routes may then differ from a fresh translation's, which
// nothing depends on: virtual hosts order their routes by precedence (a
// total order, precedence.go), L4 listeners pick the oldest route. It
// reports whether it took them.
func (t *translator) takeAttachments() bool {
	if !t.sameListeners || t.prev.gatewayStates == nil || len(t.prev.gatewayStates) != len(t.gateways) {
		return false
	}
	for key, gs := range t.gateways {
		pg := t.prev.gatewayStates[key]
		if pg == nil || len(pg.listeners) != len(gs.listeners) {
			return false
		}
		for i, ls := range gs.listeners {
			if pl := pg.listeners[i]; pl.entries == nil || pl.serving != ls.serving {
				return false
			}
		}
	}
	for key, gs := range t.gateways {
		pg := t.prev.gatewayStates[key]
		for i, ls := range gs.listeners {
			pl := pg.listeners[i]
			ls.entries, ls.attached = pl.entries, pl.attached
			// The previous translation is not used after this one.
			pl.entries = nil
		}
	}
	return true
}

// detach undoes attachResolved for a route attached with its current
// parents (see takeAttachments).
func (t *translator) detach(rs *routeState) {
	t.forListeners(rs, func(ls *listenerState, hostnames []string) {
		ls.attached--
		if !ls.serving {
			return
		}
		for _, host := range hostnames {
			if ls.owner(host) != ls {
				continue
			}
			list := ls.entries[host]
			if i := slices.Index(list, rs); i >= 0 {
				if list = slices.Delete(list, i, i+1); len(list) == 0 {
					delete(ls.entries, host)
				} else {
					ls.entries[host] = list
				}
			}
		}
	})
}

// resolution is what resolving a route's parentRefs reads besides the
// route and the Namespaces (which the index holds, and reuse of a
// compiled route already requires to be unchanged): the controller name
// and, for each parentRef naming a Gateway or ListenerSet, that Gateway's
// content hash when it is one of ours (zero otherwise), and for a
// ListenerSet the hashes of every ListenerSet of the Gateway. A Gateway's
// listeners, and so resolveParent's answer, are a function of those.
type resolution struct {
	controller gwv1.GatewayController
	gateways   []input.Hash
}

func (t *translator) resolution(rs *routeState) resolution {
	r := resolution{controller: t.opts.ControllerName}
	for _, pr := range rs.src.parentRefs() {
		if !isGatewayRef(pr) && !isListenerSetRef(pr) {
			continue
		}
		var h input.Hash
		gs, set := t.parentOf(pr, rs.key.Namespace)
		if gs != nil {
			h = gs.hash
		}
		r.gateways = append(r.gateways, h)
		if set != nil {
			// A ListenerSet's listeners follow those of the sets before
			// it in the merged list: every set of the Gateway counts.
			for _, o := range gs.sets {
				r.gateways = append(r.gateways, o.hash)
			}
			r.gateways = append(r.gateways, input.Hash{})
		}
	}
	return r
}

func (r resolution) same(o resolution) bool {
	return r.controller == o.controller && slices.Equal(r.gateways, o.gateways)
}

// resolveParent decides whether a Gateway accepts a route through one
// parentRef: sectionName and port select listeners, allowedRoutes (kinds,
// then namespaces) admits the route, and hostnames must intersect. Failing
// each step in turn gives NoMatchingParent, NotAllowedByListeners, then
// NoMatchingListenerHostname. The answer depends only on the compiled
// route, the Gateway's listeners and the labels of the route's namespace.
func (t *translator) resolveParent(rs *routeState, pr gwv1.ParentReference, gs *gatewayState, set *listenerSetState) *parentState {
	ps := &parentState{ref: *pr.DeepCopy()}
	var selected, kindOK, allowed int
	hits := ps.hit0[:0]
	// The parent's name is only needed for a refusal: routes come by
	// the thousand and nearly all are accepted.
	parent := func() string {
		if set != nil {
			return "ListenerSet " + set.key.String()
		}
		return "Gateway " + gs.key.String()
	}
	for i, ls := range gs.listeners {
		// A Gateway parentRef selects among the Gateway's own listeners,
		// a ListenerSet parentRef among that set's: sectionName names a
		// listener of the object the parentRef names.
		if ls.set != set {
			continue
		}
		if pr.SectionName != nil && string(*pr.SectionName) != ls.name {
			continue
		}
		if pr.Port != nil && *pr.Port != ls.port {
			continue
		}
		selected++
		if !ls.admitsKind(rs.kind) {
			continue
		}
		kindOK++
		if !ls.allowsNamespace(t.ix, rs.key.Namespace) {
			continue
		}
		allowed++
		if hs := routeHostnames(ls.hostname, rs.hostnames); len(hs) > 0 {
			hits = append(hits, listenerHit{i, hs})
		}
	}
	switch {
	case selected == 0:
		ps.accepted = no(string(gwv1.RouteReasonNoMatchingParent), "%s has no listener%s", parent(), describeSelection(pr))
	case kindOK == 0:
		ps.accepted = no(string(gwv1.RouteReasonNotAllowedByListeners), "no listener of %s%s admits %s", parent(), describeSelection(pr), rs.kind.plural)
	case allowed == 0:
		ps.accepted = no(string(gwv1.RouteReasonNotAllowedByListeners), "no listener of %s%s admits %s from namespace %s", parent(), describeSelection(pr), rs.kind.plural, rs.key.Namespace)
	case len(rs.problems) > 0:
		ps.accepted = no(string(gwv1.RouteReasonUnsupportedValue), "%s", joinProblems(rs.problems))
	case len(hits) == 0:
		ps.accepted = no(string(gwv1.RouteReasonNoMatchingListenerHostname), "no hostname of the route intersects the hostname of a listener of %s%s", parent(), describeSelection(pr))
	case len(rs.invalid) == len(rs.rules):
		ps.accepted = no(rs.invalid[0].reason, "every rule is invalid: %s", joinProblems(ruleProblems(rs.invalid)))
	default:
		ps.accepted = yes(string(gwv1.RouteReasonAccepted), "Route is accepted")
		ps.hits = hits
	}
	return ps
}

// routeHostnames intersects a route's hostnames with a listener's. The
// result may share route's array: callers only read it.
func routeHostnames(listener string, route []string) []string {
	if len(route) == 0 {
		if listener == "" {
			return []string{anyHost}
		}
		return []string{listener}
	}
	if len(route) == 1 {
		// One hostname (the usual case) within the listener's is its
		// own intersection: no list to make per route and listener.
		if x, ok := intersect(listener, route[0]); !ok {
			return nil
		} else if x == route[0] {
			return route[:1:1]
		}
	}
	// The API server caps a route's hostnames at 16, but a file is not
	// checked against the CRD schema: dedupe in linear time so a route
	// with very many hostnames costs linear work, not quadratic.
	var out []string
	var seen map[string]bool
	for _, h := range route {
		x, ok := intersect(listener, h)
		if !ok {
			continue
		}
		if len(route) <= 16 {
			if contains(out, x) {
				continue
			}
		} else {
			if seen == nil {
				seen = make(map[string]bool, len(route))
			}
			if seen[x] {
				continue
			}
			seen[x] = true
		}
		out = append(out, x)
	}
	return out
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func describeSelection(pr gwv1.ParentReference) string {
	var parts []string
	if pr.SectionName != nil {
		parts = append(parts, fmt.Sprintf("named %q", *pr.SectionName))
	}
	if pr.Port != nil {
		parts = append(parts, fmt.Sprintf("on port %d", *pr.Port))
	}
	if len(parts) == 0 {
		return ""
	}
	return " " + strings.Join(parts, " ")
}
