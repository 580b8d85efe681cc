package gateway

import (
	"fmt"
	"slices"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/nodemesh/nodemesh/mesh/input"
	"github.com/nodemesh/nodemesh/mesh/ir"
)

// routeState is one route of any kind with a parentRef to one of our
// Gateways, compiled once whatever the number of listeners it attaches to.
// Compilation (hostnames and rules) depends only on the route object and
// the index; parents, filled by attach, on the Gateways it names too.
type routeState struct {
	kind *routeKind
	src  route
	// hash is the content hash of the object it was compiled from.
	hash       input.Hash
	key        input.Key
	generation int64
	created    metav1.Time
	// hostnames are the valid spec.hostnames, deduplicated; none means
	// any host (and is all a kind without hostnames has).
	hostnames []string
	// problems make the whole route unacceptable (UnsupportedValue).
	problems []string
	rules    []*ruleState
	// invalid lists the rules dropped from the configuration, each with
	// the reason it was dropped.
	invalid []*ruleState
	// refProblems are unresolved backendRefs (ResolvedRefs=False).
	refProblems []refProblem
	// tlsServices are the Services its backends use that
	// BackendTLSPolicies target (their status lists its Gateways).
	tlsServices []input.Key
	// parents are the route's parentRefs to our Gateways, resolved
	// (attach.go), and resolvedWith what they were resolved against:
	// they stay valid while those are unchanged (see Translator).
	parents      []*parentState
	resolvedWith resolution
	// meshParents are the route's parentRefs to Services (GAMMA),
	// resolved afresh by every translation (mesh.go); serviceRefs says
	// it has some.
	meshParents []*meshParent
	serviceRefs bool
	// status is the route's status as last rendered, valid as long as
	// parents are.
	status *gwv1.RouteStatus
	// mark lets virtual host assembly visit each route once per host
	// without a set.
	mark int
	// epoch is the last translation that served the route and pos its
	// position among the routes of its kind there (see reusedRoute).
	epoch, pos int
}

// routeID identifies a route across kinds.
type routeID struct {
	kind *routeKind
	key  input.Key
}

func (rs *routeState) id() routeID { return routeID{rs.kind, rs.key} }

type refProblem struct{ reason, msg string }

// ruleState is one compiled rule, whatever the route kind: the one rule
// type IR assembly (build.go) reads. HTTP-like kinds fill matches (each
// becomes an IR route); every kind fills backends.
type ruleState struct {
	route *routeState
	index int
	// reason and problem are set when the rule is invalid; it is then
	// dropped from the configuration.
	reason, problem string
	matches         []*matchState

	backends    []*ir.WeightedBackend
	clusters    []*ir.Cluster
	redirect    *redirectSpec
	rewrite     *ir.Rewrite
	reqHeaders  *ir.HeaderModifier
	respHeaders *ir.HeaderModifier
	// cors is the rule's CORS filter (httproute_cors.go).
	cors *ir.CORSPolicy
	// timeout bounds the whole request, backendTimeout each request to a
	// backend (timeouts.request and timeouts.backendRequest; 0: none).
	timeout        time.Duration
	backendTimeout time.Duration
	// retry and mirrors are the rule's retry stanza and RequestMirror
	// filters (httproute_retry.go).
	retry   *ir.RetryPolicy
	mirrors []*ir.Mirror
	// routes back the IR routes of the matches (routeOf), by match index.
	routes []ir.Route
}

func (r *ruleState) valid() bool { return r.problem == "" }

// fail records the first problem of a rule; field is relative to the rule.
func (r *ruleState) fail(reason gwv1.RouteConditionReason, field, format string, args ...any) {
	if r.problem != "" {
		return
	}
	r.reason = string(reason)
	r.problem = fmt.Sprintf("%s %s: spec.rules[%d]", r.route.kind.kind, r.route.key, r.index)
	if field != "" {
		r.problem += "." + field
	}
	r.problem += ": " + fmt.Sprintf(format, args...)
}

// matchState is one match of a rule: one IR route per listener port at
// most (redirects may depend on the port), usually one in all.
type matchState struct {
	rule  *ruleState
	index int
	match ir.Match
	// path is what match.Path points to, kept here to save an
	// allocation per match.
	path ir.PathMatch

	// Precedence keys, see precedence.go.
	pathRank int
	// serviceLen and methodLen are the characters of a GRPCRoute
	// method match's service and method (0 for HTTPRoute); 32 bits keep
	// a rule of two matches within a smaller allocation (newRuleState).
	serviceLen, methodLen int32
	pathLen               int
	hasMethod             bool
	headers               int
	query                 int

	route *ir.Route
	// byCert holds the route's copies for Gateways presenting a client
	// certificate to TLS backends (backendcert.go).
	byCert map[input.Key]*ir.Route
	byPort map[int32]*ir.Route
}

// referencesUs reports whether a route has a parentRef to one of our
// Gateways; other routes are none of this controller's business.
func (t *translator) referencesUs(r route) bool {
	ns := r.meta().Namespace
	for _, pr := range r.parentRefs() {
		if gs, _ := t.parentOf(pr, ns); gs != nil {
			return true
		}
	}
	return false
}

func isGatewayRef(pr gwv1.ParentReference) bool {
	return groupOr(pr.Group, gwv1.GroupName) == gwv1.GroupName && kindOr(pr.Kind, "Gateway") == "Gateway"
}

func gatewayKey(pr gwv1.ParentReference, routeNamespace string) input.Key {
	return input.Key{Namespace: namespaceOr(pr.Namespace, routeNamespace), Name: string(pr.Name)}
}

// processRoutes compiles (or reuses) and attaches every route of every
// supported kind that names one of our Gateways.
//
// A route the previous translation compiled from an object of the same
// kind, key and content hash, with the same index, keeps its compiled
// state; if the Gateways its parentRefs name have the same content too, it
// keeps its resolved parents and its status, and is only attached to this
// translation's listeners.
func (t *translator) processRoutes() {
	t.dirty = map[string]bool{}
	t.delta = t.takeAttachments()
	if t.next != nil {
		t.next.gatewayStates = t.gateways
	}
	for _, k := range routeKinds {
		var order []*routeState
		if t.prev != nil {
			// About as many routes as last time.
			order = make([]*routeState, 0, len(t.prev.order[k.rank])+1)
			if t.routes == nil {
				t.routes = make([]*routeState, 0, t.prev.served+1)
			}
		}
		for r := range k.routes(t.in) {
			var h input.Hash
			if t.next != nil {
				h = t.hashOf(k, r, len(order))
			}
			rs := t.reusedRoute(k, r, h, len(order))
			if rs != nil && t.sameGateways && rs.parents != nil {
				// It referenced our Gateways and resolved against
				// these very objects: attached where it was, which
				// the listeners taken over still hold.
				if !t.delta {
					t.attachResolved(rs)
				}
			} else {
				if t.delta && rs != nil {
					// Attached as before in the listeners taken over:
					// it is attached again below.
					t.detach(rs)
				}
				if !t.referencesUs(r) {
					t.noteMesh(k, r, nil)
					continue
				}
				if rs == nil {
					rs = t.compileRoute(k, r)
					rs.hash = h
				}
				if with := t.resolution(rs); rs.parents == nil || !rs.resolvedWith.same(with) {
					t.touch(rs)
					rs.parents, rs.status = nil, nil
					rs.resolvedWith = with
					t.attach(rs)
				} else {
					t.attachResolved(rs)
				}
				t.touch(rs)
			}
			t.noteMesh(k, r, rs)
			rs.epoch, rs.pos = t.epoch, len(order)
			order = append(order, rs)
			t.routes = append(t.routes, rs)
		}
		if t.next != nil {
			t.next.order[k.rank] = order
		}
	}
	// The hostnames of routes gone since the previous translation.
	if t.prev != nil {
		for _, o := range t.prev.order {
			for _, rs := range o {
				if rs.epoch != t.epoch {
					t.touch(rs)
					if t.delta {
						t.detach(rs)
					}
				}
			}
		}
	}
}

// hashOf returns r's content hash. The route the previous translation
// compiled from the very same object (usually found where r is, see
// reusedRoute) carries that object's hash: objects never change once
// translated, so its hash is taken from there without a lookup in the
// snapshot's table of hashes, which costs a cache miss or two per route
// on every translation. It is the same content hash either way.
func (t *translator) hashOf(k *routeKind, r route, at int) input.Hash {
	if t.prev != nil {
		order := t.prev.order[k.rank]
		if i := at + t.shift[k.rank]; i >= 0 && i < len(order) && order[i].src == r {
			return order[i].hash
		}
	}
	return r.hash(t.in)
}

// touch marks the hostnames a route is served on as dirty: their virtual
// hosts are assembled again.
func (t *translator) touch(rs *routeState) {
	if !t.sameListeners {
		// Only read then (cleanVirtualHost): a cold translation, or one
		// whose listeners changed, assembles every virtual host.
		return
	}
	for _, ps := range rs.parents {
		for _, h := range ps.hits {
			for _, host := range h.hostnames {
				t.dirty[host] = true
			}
		}
	}
}

// maxScannedHostnames is the most hostnames compileRoute dedupes by scanning.
const maxScannedHostnames = 16

// compileRoute compiles what every kind shares (identity, hostnames) and
// has the kind compile its rules.
func (t *translator) compileRoute(k *routeKind, r route) *routeState {
	m := r.meta()
	rs := &routeState{kind: k, src: r, key: input.Key{Namespace: m.Namespace, Name: m.Name}, generation: m.Generation, created: m.CreationTimestamp}
	// The API allows 16 hostnames, which a scan dedupes faster than a map;
	// input that did not pass API validation may hold many more.
	hostnames := r.hostnames()
	var seen map[string]bool
	if len(hostnames) > maxScannedHostnames {
		seen = make(map[string]bool, len(hostnames))
	}
	for i, h := range hostnames {
		hs := string(h)
		if !validHostname(hs, true) {
			rs.problems = append(rs.problems, fmt.Sprintf("%s %s: spec.hostnames[%d]: %q is not a valid hostname", k.kind, rs.key, i, hs))
			continue
		}
		if seen != nil {
			if seen[hs] {
				continue
			}
			seen[hs] = true
		} else if contains(rs.hostnames, hs) {
			continue
		}
		rs.hostnames = append(rs.hostnames, hs)
	}
	rs.serviceRefs = slices.ContainsFunc(r.parentRefs(), isServiceRef)
	r.compileRules(t, rs)
	for _, rule := range rs.rules {
		if !rule.valid() {
			rs.invalid = append(rs.invalid, rule)
		}
	}
	return rs
}
