package gateway

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/nodemesh/nodemesh/mesh/appprotocol"
	"github.com/nodemesh/nodemesh/mesh/input"
	"github.com/nodemesh/nodemesh/mesh/ir"
)

// GAMMA: HTTPRoutes and GRPCRoutes whose parentRef is a Service steer the
// traffic clients send to that Service. This file resolves those
// parentRefs and gathers, per Service port, the routes that apply to it;
// meshbuild.go turns them into IR listeners. The decisions are in doc.go
// ("GAMMA").

// Default range of the ports mesh listeners bind on MeshOptions.ListenAddress.
const (
	DefaultMeshFirstPort = 15000
	DefaultMeshLastPort  = 15999
)

// MeshOptions place the listeners that serve GAMMA routes.
type MeshOptions struct {
	// ListenAddress is the node address the mesh listeners bind, where
	// the datapath sends the connections of the Services they serve.
	// Unset, routes with Service parents still get their status, and no
	// listener or redirect is produced (standalone translation).
	ListenAddress netip.Addr
	// FirstPort and LastPort bound the listeners' ports; both zero means
	// DefaultMeshFirstPort-DefaultMeshLastPort.
	FirstPort, LastPort uint16
	// Taken are sockets other listeners of the node bind; mesh listeners
	// avoid them (as they avoid the Gateways' own).
	Taken map[netip.AddrPort]bool
	// CannotRedirect, when set, says why Services' traffic cannot be sent
	// to the proxy (an agent without a datapath Service table; in the
	// controller, the nodes that report so). Routes with Service parents
	// are then refused (RouteReasonNotRedirected, with this text) rather
	// than read as steering what nothing steers.
	CannotRedirect string
	// OriginalSourceMark, when not zero, says this node's datapath steers
	// the backends' replies to a client's address back to the proxy's
	// socket, and is the mark that asks for it: the mesh listeners then
	// keep the client's address upstream (ir.Listener.OriginalSourceMark),
	// so a backend and its policy see the client Pod, not the node. Zero
	// (no datapath, standalone, the controller) leaves connections coming
	// from the node.
	OriginalSourceMark uint32
}

// RouteReasonNotRedirected is the reason of Accepted=False on a Service
// parent when Services' traffic cannot be sent to the proxy
// (MeshOptions.CannotRedirect): the word mesh/envoyconfig uses for the
// same refusal of a CiliumEnvoyConfig.
const RouteReasonNotRedirected = "NotRedirected"

// MeshRedirect sends the connections clients make to one Service port
// (its cluster IPs) to the mesh listener serving the port's routes.
type MeshRedirect struct {
	Service input.Key `json:"service"`
	Port    uint16    `json:"port"`
	// Listener names the IR listener and Bind is its socket; both are
	// empty when Refused.
	Listener string         `json:"listener,omitempty"`
	Bind     netip.AddrPort `json:"bind,omitzero"`
	// Refused is set when the port's routes cannot be served (no port
	// of the range is free): its connections must then be refused rather
	// than bypass the routes.
	Refused bool `json:"refused,omitempty"`
}

// meshParent is one parentRef of a route to a Service, resolved.
type meshParent struct {
	ref gwv1.ParentReference
	svc input.Key
	// consumer is set when the route is in another namespace than the
	// Service: it applies only to clients in the route's namespace.
	consumer bool
	accepted verdict
	// ports are the Service ports the route attaches to (none unless
	// accepted).
	ports []int32
}

// meshPortKey is one port of a Service.
type meshPortKey struct {
	svc  input.Key
	port int32
}

// meshPort is one Service port with routes: the producer routes (the
// Service's namespace), and the consumer routes by their namespace.
type meshPort struct {
	key       meshPortKey
	sp        corev1.ServicePort
	producers []*routeState
	consumers map[string][]*routeState
}

// isServiceRef reports whether a parentRef names a core Service (group
// "" spelled out: the API's default group is Gateway API's).
func isServiceRef(pr gwv1.ParentReference) bool {
	return pr.Group != nil && *pr.Group == "" && pr.Kind != nil && *pr.Kind == "Service"
}

// namesServiceParent reports whether r has a Service parentRef to svc.
func namesServiceParent(r route, svc input.Key) bool {
	ns := r.meta().Namespace
	for _, pr := range r.parentRefs() {
		if isServiceRef(pr) && string(pr.Name) == svc.Name && namespaceOr(pr.Namespace, ns) == svc.Namespace {
			return true
		}
	}
	return false
}

// processMesh resolves the Service parentRefs of every route of a kind
// that serves HTTP, and gathers the accepted ones by Service port. A route
// that also names our Gateways is the one processRoutes compiled; a route
// naming only Services is compiled here, on every translation (GAMMA
// routes are few; the Translator does not keep them).
func (t *translator) processMesh() {
	t.mesh = map[meshPortKey]*meshPort{}
	for _, c := range t.meshRoutes {
		k, r, rs := c.kind, c.r, c.rs
		if rs == nil {
			rs = t.compileRoute(k, r)
			t.meshOnly = append(t.meshOnly, rs)
		}
		// A new slice: a route kept from the previous translation
		// may still be read through its old one.
		rs.meshParents = nil
		for _, pr := range r.parentRefs() {
			if !isServiceRef(pr) {
				continue
			}
			mp := t.resolveServiceParent(rs, pr)
			rs.meshParents = append(rs.meshParents, mp)
			if mp.accepted.ok {
				t.attachMesh(rs, mp)
			}
		}
	}
}

// meshRoute is a route of a kind that serves HTTP with a Service
// parentRef, and its state when processRoutes compiled it (it also names
// our Gateways).
type meshRoute struct {
	kind *routeKind
	r    route
	rs   *routeState
}

// noteMesh lists r for processMesh when it has a Service parentRef. rs is
// its compiled state, when processRoutes has one: compilation notes the
// answer (routeState.serviceRefs), so a route kept from the previous
// translation is not read again.
func (t *translator) noteMesh(k *routeKind, r route, rs *routeState) {
	if !k.attachesTo(gwv1.HTTPProtocolType) {
		return
	}
	if rs != nil && !rs.serviceRefs || rs == nil && !slices.ContainsFunc(r.parentRefs(), isServiceRef) {
		return
	}
	t.meshRoutes = append(t.meshRoutes, meshRoute{k, r, rs})
}

// attachMesh adds an accepted route to the ports its parentRef selects,
// once per port however many parentRefs select it.
func (t *translator) attachMesh(rs *routeState, mp *meshParent) {
	svc := t.ix.services[mp.svc]
	for _, port := range mp.ports {
		k := meshPortKey{mp.svc, port}
		p := t.mesh[k]
		if p == nil {
			p = &meshPort{key: k, consumers: map[string][]*routeState{}}
			for _, sp := range svc.Spec.Ports {
				if sp.Port == port {
					p.sp = sp
				}
			}
			t.mesh[k] = p
		}
		if mp.consumer {
			if !slices.Contains(p.consumers[rs.key.Namespace], rs) {
				p.consumers[rs.key.Namespace] = append(p.consumers[rs.key.Namespace], rs)
			}
		} else if !slices.Contains(p.producers, rs) {
			p.producers = append(p.producers, rs)
		}
	}
}

// resolveServiceParent decides whether a Service accepts a route through
// one parentRef: the Service must exist and have a cluster IP, and
// sectionName (a port name) and port select its ports, of which those
// that carry HTTP attach. A parentRef to another namespace makes a
// consumer route, which needs no ReferenceGrant (the spec exempts
// parentRefs to Services from them).
func (t *translator) resolveServiceParent(rs *routeState, pr gwv1.ParentReference) *meshParent {
	k := input.Key{Namespace: namespaceOr(pr.Namespace, rs.key.Namespace), Name: string(pr.Name)}
	mp := &meshParent{ref: *pr.DeepCopy(), svc: k, consumer: k.Namespace != rs.key.Namespace}
	svc := t.ix.services[k]
	if svc == nil {
		mp.accepted = no(string(gwv1.RouteReasonNoMatchingParent), "Service %s not found", k)
		return mp
	}
	if why := noFrontend(svc); why != "" {
		mp.accepted = no(string(gwv1.RouteReasonUnsupportedValue), "Service %s %s: routes attach to Services with a cluster IP", k, why)
		return mp
	}
	selected := 0
	var ports []int32
	var refused []string
	for _, sp := range svc.Spec.Ports {
		if pr.SectionName != nil && sp.Name != string(*pr.SectionName) {
			continue
		}
		if pr.Port != nil && sp.Port != *pr.Port {
			continue
		}
		selected++
		why := t.notHTTP(k, sp)
		if why == "" && rs.kind.backendProtocol == ir.ProtocolH2C {
			why = notH2C(sp)
		}
		if why != "" {
			refused = append(refused, fmt.Sprintf("port %d %s", sp.Port, why))
			continue
		}
		ports = append(ports, sp.Port)
	}
	switch {
	case selected == 0:
		mp.accepted = no(string(gwv1.RouteReasonNoMatchingParent), "Service %s has no port%s", k, describePortSelection(pr))
	case len(ports) == 0:
		mp.accepted = no(string(gwv1.RouteReasonNoMatchingParent), "no port%s of Service %s carries %s: %s", describePortSelection(pr), k, carries(rs.kind), joinProblems(refused))
	case len(rs.problems) > 0:
		mp.accepted = no(string(gwv1.RouteReasonUnsupportedValue), "%s", joinProblems(rs.problems))
	case len(rs.invalid) == len(rs.rules):
		mp.accepted = no(rs.invalid[0].reason, "every rule is invalid: %s", joinProblems(ruleProblems(rs.invalid)))
	case t.opts.Mesh.CannotRedirect != "":
		mp.accepted = no(RouteReasonNotRedirected, "Service %s: %s", k, t.opts.Mesh.CannotRedirect)
	default:
		mp.accepted = yes(string(gwv1.RouteReasonAccepted), "Route is accepted")
		mp.ports = ports
	}
	return mp
}

// noFrontend says why a Service has no cluster IP to steer ("" when it
// has one).
func noFrontend(svc *corev1.Service) string {
	switch {
	case svc.Spec.Type == corev1.ServiceTypeExternalName:
		return "is of type ExternalName"
	case svc.Spec.ClusterIP == corev1.ClusterIPNone:
		return "is headless"
	}
	return ""
}

// notHTTP says why clients of a Service port do not speak plaintext HTTP
// to it ("" when they may): a non-TCP protocol, an appProtocol naming TLS
// or raw TCP, a name saying so by the "<protocol>[-<suffix>]" convention
// when there is no appProtocol, or a BackendTLSPolicy targeting the port
// (its clients speak TLS to the backends). Proxying such a port as HTTP
// would break every connection to it.
func (t *translator) notHTTP(svc input.Key, sp corev1.ServicePort) string {
	if p := protocolOr(sp.Protocol); p != corev1.ProtocolTCP {
		return fmt.Sprintf("uses protocol %s", p)
	}
	if sp.AppProtocol != nil {
		if _, ok := appProtocol(&sp, false); !ok {
			return fmt.Sprintf("has appProtocol %q (TLS)", *sp.AppProtocol)
		}
		switch strings.ToLower(*sp.AppProtocol) {
		case "tcp", "udp", "sctp":
			return fmt.Sprintf("has appProtocol %q", *sp.AppProtocol)
		}
	} else {
		proto, _, _ := strings.Cut(sp.Name, "-")
		switch proto {
		case "https", "tls", "tcp", "udp":
			return fmt.Sprintf("is named %q (%s)", sp.Name, proto)
		}
	}
	if t.ix.backendTLSFor(svc, sp.Name) != nil {
		return "is targeted by a BackendTLSPolicy (clients speak TLS to it)"
	}
	return ""
}

// notH2C says why a port that carries HTTP cannot carry gRPC ("" when
// it can): it says it speaks HTTP/1.1, by its appProtocol or its name. A
// port that says h2c carries gRPC; one that says nothing is taken to
// speak what the GRPCRoute attached to it implies (doc.go, "GAMMA").
func notH2C(sp corev1.ServicePort) string {
	switch {
	case appprotocol.H2C(sp.AppProtocol, sp.Name) || !appprotocol.Declared(sp.AppProtocol, sp.Name):
		return ""
	case sp.AppProtocol != nil:
		return fmt.Sprintf("has appProtocol %q (HTTP/1.1; gRPC needs HTTP/2: appProtocol %s)", *sp.AppProtocol, appprotocol.KubernetesH2C)
	}
	return fmt.Sprintf("is named %q (HTTP/1.1; gRPC needs HTTP/2: appProtocol %s, or a port name grpc or grpc-<suffix>)", sp.Name, appprotocol.KubernetesH2C)
}

// carries names what a route kind's Service ports must carry.
func carries(k *routeKind) string {
	if k.backendProtocol == ir.ProtocolH2C {
		return "gRPC"
	}
	return "HTTP"
}

// describePortSelection describes the Service ports a parentRef selects:
// " 80", " named \"http\"", both, or nothing.
func describePortSelection(pr gwv1.ParentReference) string {
	var s string
	if pr.Port != nil {
		s += fmt.Sprintf(" %d", *pr.Port)
	}
	if pr.SectionName != nil {
		s += fmt.Sprintf(" named %q", *pr.SectionName)
	}
	return s
}
