package gateway

import (
	"iter"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/nodemesh/nodemesh/mesh/input"
	"github.com/nodemesh/nodemesh/mesh/ir"
)

// The route model (see "Route kinds" in doc.go). Each supported route kind
// is one row of routeKinds plus one file that compiles its spec into the
// kind-neutral routeState (httproute.go for HTTPRoute). Everything else —
// listener kind validation, attachment, backendRef resolution and
// ReferenceGrants, route status, IR assembly — is written once over
// routeState and never looks at the API type.

// routeKind is one route kind the translator supports.
type routeKind struct {
	group gwv1.Group
	kind  gwv1.Kind
	// plural names the kind's routes in condition messages ("HTTPRoutes").
	plural string
	// namePrefix starts the IR names of the kind's routes (naming.go).
	namePrefix string
	// protocols are the listener protocols the kind attaches to. A
	// listener of another protocol does not list the kind in
	// supportedKinds, and naming it in allowedRoutes.kinds there is
	// InvalidRouteKinds.
	protocols []gwv1.ProtocolType
	// backendProtocol, when set, is the one protocol the kind's backends
	// may speak; a Service port resolving to another is
	// UnsupportedProtocol.
	backendProtocol ir.AppProtocol
	// routes lists the snapshot's objects of the kind.
	routes func(in *input.Snapshot) iter.Seq[route]

	// rank is the kind's position in routeKinds: results list the routes
	// of one kind after another in table order.
	rank int
}

// routeKinds is the table of supported route kinds, in the order results
// list their statuses. Adding a kind is a row here and a file implementing
// route for its API type.
var routeKinds = []*routeKind{
	&httpRouteKind,
	&grpcRouteKind,
	&tlsRouteKind,
	&tcpRouteKind,
	&udpRouteKind,
}

func init() {
	for i, k := range routeKinds {
		k.rank = i
	}
}

// route is one object of a supported route kind: what the kind-neutral
// code reads from it, and the one kind-specific step, compiling its rules.
// Implementations are a struct holding only the API object's pointer, so
// boxing one allocates nothing.
type route interface {
	// meta is the object's metadata (namespace, name, generation,
	// creation time). It must not be modified.
	meta() *metav1.ObjectMeta
	// hash is the object's content hash in the snapshot, which the
	// Translator's reuse compares.
	hash(in *input.Snapshot) input.Hash
	// parentRefs are the object's spec.parentRefs.
	parentRefs() []gwv1.ParentReference
	// hostnames are the object's spec.hostnames, unvalidated; nil for
	// kinds without hostnames, which attach as a route without hostnames
	// does (to every hostname of the listener).
	hostnames() []gwv1.Hostname
	// compileRules compiles the object's rules into rs.rules: one
	// ruleState per spec rule, in order, each invalid rule carrying its
	// reason and problem, and unresolved backendRefs in rs.refProblems.
	// It reads only the route, the translator's index and cluster memo,
	// never Gateway or listener state, so its result can be reused while
	// those inputs are unchanged (see Translator).
	compileRules(t *translator, rs *routeState)
}

// groupKind is the kind as listeners list it in supportedKinds.
func (k *routeKind) groupKind() gwv1.RouteGroupKind {
	return gwv1.RouteGroupKind{Group: ptr(k.group), Kind: k.kind}
}

// attachesTo reports whether the kind's routes attach to listeners of
// protocol p.
func (k *routeKind) attachesTo(p gwv1.ProtocolType) bool {
	for _, q := range k.protocols {
		if q == p {
			return true
		}
	}
	return false
}

// lookupKind returns the supported kind group/kind, or nil.
func lookupKind(group string, kind gwv1.Kind) *routeKind {
	for _, k := range routeKinds {
		if string(k.group) == group && k.kind == kind {
			return k
		}
	}
	return nil
}

// kindsFor lists the kinds that attach to listeners of protocol p, in
// table order: a listener's supportedKinds when allowedRoutes.kinds is
// unset.
func kindsFor(p gwv1.ProtocolType) []*routeKind {
	var out []*routeKind
	for _, k := range routeKinds {
		if k.attachesTo(p) {
			out = append(out, k)
		}
	}
	return out
}

// describeKinds renders kinds as group/kind for condition messages.
func describeKinds(kinds []*routeKind) string {
	parts := make([]string, len(kinds))
	for i, k := range kinds {
		parts[i] = string(k.group) + "/" + string(k.kind)
	}
	return strings.Join(parts, ", ")
}
