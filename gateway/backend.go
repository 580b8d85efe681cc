package gateway

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/nodemesh/nodemesh/mesh/appprotocol"
	"github.com/nodemesh/nodemesh/mesh/input"
	"github.com/nodemesh/nodemesh/mesh/ir"
)

// weightedBackend starts the IR backend of backendRef k of a rule of any
// kind from its weight, in wb (zero), or fails the rule when the weight
// is invalid.
func weightedBackend(rule *ruleState, k int, weight *int32, wb *ir.WeightedBackend) *ir.WeightedBackend {
	w := int32(1)
	if weight != nil {
		w = *weight
	}
	if w < 0 {
		rule.fail(gwv1.RouteReasonUnsupportedValue, fmt.Sprintf("backendRefs[%d].weight", k), "%d is negative", w)
		return nil
	}
	wb.Weight = uint32(w)
	return wb
}

// resolveBackend adds backendRef k of a rule of any kind to the rule. A
// backend that cannot be resolved keeps its weight with no cluster, so its
// share of requests gets 500 as the API requires, and the route reports
// ResolvedRefs=False.
func (t *translator) resolveBackend(rule *ruleState, k int, wb *ir.WeightedBackend, br *gwv1.BackendObjectReference) {
	// The field is named only in a problem: rules come by the thousand.
	cl, problem := t.service(rule.route, br)
	if problem != nil {
		problem.locate(rule.route, fmt.Sprintf("spec.rules[%d].backendRefs[%d]", rule.index, k))
	}
	switch {
	case problem != nil:
		rule.route.refProblems = append(rule.route.refProblems, *problem)
	case cl == nil:
		// No cluster and no problem: nothing to send to (fail closed).
	default:
		wb.Cluster = cl.Name
		rule.clusters = append(rule.clusters, cl)
	}
	rule.backends = append(rule.backends, wb)
}

// resolveService finds the cluster of a backend reference (at field of
// the route, for messages), or why there is none. A reference to another
// namespace needs a ReferenceGrant there from the route's kind and
// namespace.
func (t *translator) resolveService(rs *routeState, field string, br *gwv1.BackendObjectReference) (*ir.Cluster, *refProblem) {
	cl, problem := t.service(rs, br)
	if problem != nil {
		problem.locate(rs, field)
	}
	return cl, problem
}

// locate prefixes a problem found by service with the route and the field
// of the backend reference.
func (p *refProblem) locate(rs *routeState, field string) {
	p.msg = fmt.Sprintf("%s %s: %s: ", rs.kind.kind, rs.key, field) + p.msg
}

// service is resolveService without the field: its problems say what is
// wrong, and the caller says where (locate).
func (t *translator) service(rs *routeState, br *gwv1.BackendObjectReference) (*ir.Cluster, *refProblem) {
	fail := func(reason gwv1.RouteConditionReason, format string, args ...any) (*ir.Cluster, *refProblem) {
		return nil, &refProblem{reason: string(reason), msg: fmt.Sprintf(format, args...)}
	}
	group, kind := groupOr(br.Group, ""), kindOr(br.Kind, "Service")
	if group != "" || kind != "Service" {
		return fail(gwv1.RouteReasonInvalidKind, "backend kind %s is not supported; use a core Service", groupKind(group, kind))
	}
	k := input.Key{Namespace: namespaceOr(br.Namespace, rs.key.Namespace), Name: string(br.Name)}
	// A route may always send to a Service it names as its parent: a
	// consumer route (mesh.go) sends its clients on to the Service they
	// asked for, which is no reach into the other namespace.
	if !t.ix.permitted(ref{
		fromGroup: string(rs.kind.group), fromKind: string(rs.kind.kind), fromNamespace: rs.key.Namespace,
		toGroup: "", toKind: "Service", toNamespace: k.Namespace, toName: k.Name,
	}) && !namesServiceParent(rs.src, k) {
		return fail(gwv1.RouteReasonRefNotPermitted, "Service %s is in another namespace and no ReferenceGrant there allows %s from %s to use it", k, rs.kind.plural, rs.key.Namespace)
	}
	if br.Port == nil {
		return fail(gwv1.RouteReasonBackendNotFound, "port is required for a Service backend")
	}
	pk := servicePortKey{k, int32(*br.Port)}
	p, seen := t.servicePorts[pk]
	if !seen {
		p = t.servicePort(pk)
	}
	if p.svc == nil {
		return fail(gwv1.RouteReasonBackendNotFound, "Service %s not found", k)
	}
	if p.svc.Spec.Type == corev1.ServiceTypeExternalName {
		return fail(gwv1.RouteReasonInvalidKind, "Service %s is of type ExternalName, which is not supported", k)
	}
	sp := p.sp
	if sp == nil {
		return fail(gwv1.RouteReasonBackendNotFound, "Service %s has no port %d", k, *br.Port)
	}
	if rs.kind.backendProtocol == ir.ProtocolUDP {
		if sp.Protocol != corev1.ProtocolUDP {
			return fail(gwv1.RouteReasonUnsupportedProtocol, "Service %s port %d uses protocol %s; %s need UDP", k, sp.Port, protocolOr(sp.Protocol), rs.kind.plural)
		}
		return t.cluster(k, sp, ir.ProtocolUDP, nil), nil
	}
	if sp.Protocol != "" && sp.Protocol != corev1.ProtocolTCP {
		return fail(gwv1.RouteReasonUnsupportedProtocol, "Service %s port %d uses protocol %s; %s need TCP", k, sp.Port, sp.Protocol, rs.kind.plural)
	}
	if rs.kind.backendProtocol == ir.ProtocolTCP {
		// Bytes are relayed whatever the port speaks.
		return t.cluster(k, sp, ir.ProtocolTCP, nil), nil
	}
	bt := p.bt
	if p.tlsTargeted && !slices.Contains(rs.tlsServices, k) {
		rs.tlsServices = append(rs.tlsServices, k)
	}
	proto, ok := p.proto, p.protoOK
	if !ok {
		return fail(gwv1.RouteReasonUnsupportedProtocol, "Service %s port %d has appProtocol %q, which %s speak only with a BackendTLSPolicy targeting it", k, sp.Port, *sp.AppProtocol, rs.kind.plural)
	}
	if want := rs.kind.backendProtocol; want == ir.ProtocolH2C && proto != want && bt == nil &&
		!appprotocol.Declared(sp.AppProtocol, sp.Name) && namesServiceParent(rs.src, k) {
		// A GRPCRoute attached to this Service (GAMMA) says its ports
		// speak gRPC; one that says nothing itself is taken at its word
		// (impliedH2CCluster says why the cluster is apart).
		return t.impliedH2CCluster(k, sp), nil
	}
	if want := rs.kind.backendProtocol; want != "" && proto != want {
		return fail(gwv1.RouteReasonUnsupportedProtocol, "Service %s port %d speaks %s; %s need %s (appProtocol kubernetes.io/h2c, or a port name grpc or grpc-<suffix>)", k, sp.Port, proto, rs.kind.plural, want)
	}
	if bt != nil && bt.tls == nil {
		// The backend asks for TLS the policy cannot give it: the
		// backendRef is invalid (the HTTPBackendRef contract), with the
		// reason the spec gives for a backend that cannot be spoken to
		// as required, and its share of requests fails (no cluster).
		return fail(gwv1.RouteReasonUnsupportedProtocol, "Service %s port %d needs the TLS of a BackendTLSPolicy that cannot be honoured: %s", k, sp.Port, bt.problem())
	}
	if p.cluster == nil {
		var tls *ir.UpstreamTLS
		if bt != nil {
			tls = bt.tls
		}
		p.cluster = t.cluster(k, sp, proto, tls)
		if t.servicePorts != nil {
			t.servicePorts[pk] = p
		}
	}
	return p.cluster, nil
}

// servicePortKey names a port of a Service by number, as a backendRef
// does.
type servicePortKey struct {
	svc  input.Key
	port int32
}

// servicePort is what a translation found about a Service port the first
// time a backendRef named it: every later reference (a Service is the
// backend of many rules) takes it from translator.servicePorts with one
// lookup instead of one per index it comes from, when every route is
// compiled (an edit compiles a few and keeps no memo). Nothing in it
// depends on the referring route.
type servicePort struct {
	svc *corev1.Service     // nil: no such Service
	sp  *corev1.ServicePort // nil: no such port
	bt  *backendTLS
	// tlsTargeted: a BackendTLSPolicy targets the Service (any port).
	tlsTargeted bool
	proto       ir.AppProtocol
	protoOK     bool
	// cluster is the port's cluster for the HTTP kinds, once made.
	cluster *ir.Cluster
}

// servicePort looks a Service port up and remembers it.
func (t *translator) servicePort(k servicePortKey) servicePort {
	var p servicePort
	if p.svc = t.ix.services[k.svc]; p.svc != nil {
		for i := range p.svc.Spec.Ports {
			if p.svc.Spec.Ports[i].Port == k.port {
				p.sp = &p.svc.Spec.Ports[i]
				break
			}
		}
	}
	if p.sp != nil {
		p.bt = t.ix.backendTLSFor(k.svc, p.sp.Name)
		p.tlsTargeted = len(t.ix.tlsBySvc[k.svc]) > 0
		p.proto, p.protoOK = appProtocol(p.sp, p.bt != nil)
	}
	if t.sameWorld {
		// An edit: a route or two are compiled, and the index answers
		// their few references as fast as a memo would.
		return p
	}
	if t.servicePorts == nil {
		// Every route is compiled (the objects routes read changed, or
		// there is no previous translation).
		t.servicePorts = make(map[servicePortKey]servicePort, len(t.in.Services))
	}
	t.servicePorts[k] = p
	return p
}

// appProtocol maps what a Service port says (its appProtocol, or its
// name, mesh/appprotocol) to the protocol spoken to its endpoints:
// h2c when it says HTTP/2 cleartext or gRPC, else HTTP/1.1. appProtocol
// values naming TLS or WebSocket-over-TLS are refused unless a
// BackendTLSPolicy configures TLS to the port (withTLS). Unrecognized
// values are hints the project does not act on, as Kubernetes allows.
func appProtocol(sp *corev1.ServicePort, withTLS bool) (ir.AppProtocol, bool) {
	if p := sp.AppProtocol; p != nil {
		switch *p {
		case "https", "HTTPS", "tls", "TLS", "kubernetes.io/wss":
			return ir.ProtocolHTTP1, withTLS
		}
	}
	if appprotocol.H2C(sp.AppProtocol, sp.Name) {
		return ir.ProtocolH2C, true
	}
	return ir.ProtocolHTTP1, true
}

// impliedH2CCluster returns the (memoized) h2c cluster of a Service port
// that says nothing about its protocol but has a GRPCRoute attached
// (GAMMA): the route's statement holds for that route's traffic only.
// The cluster is apart from the port's own (HTTP/1.1) one, which other
// routes to the port keep using: one GRPCRoute does not change how every
// other route, Gateway or mesh, speaks to the port.
func (t *translator) impliedH2CCluster(svc input.Key, sp *corev1.ServicePort) *ir.Cluster {
	k := clusterKey{svc, sp.Port, impliedH2C}
	if cl := t.clusters[k]; cl != nil {
		return cl
	}
	cl := &ir.Cluster{Name: h2cClusterName(svc, sp.Port), Protocol: ir.ProtocolH2C, LBPolicy: ir.LBRoundRobin, Endpoints: t.endpoints(svc, sp)}
	if t.clusters == nil {
		t.clusters = map[clusterKey]*ir.Cluster{}
	}
	t.clusters[k] = cl
	return cl
}

// impliedH2C keys impliedH2CCluster's clusters apart from the HTTP one of
// the same port.
const impliedH2C ir.AppProtocol = "h2c-implied"

// cluster returns the (memoized) cluster of one Service port.
func (t *translator) cluster(svc input.Key, sp *corev1.ServicePort, proto ir.AppProtocol, tls *ir.UpstreamTLS) *ir.Cluster {
	kp := proto
	if kp == ir.ProtocolH2C {
		kp = ir.ProtocolHTTP1
	}
	k := clusterKey{svc, sp.Port, kp}
	if cl := t.clusters[k]; cl != nil {
		return cl
	}
	name := clusterName(svc, sp.Port)
	switch proto {
	case ir.ProtocolTCP:
		name = tcpClusterName(svc, sp.Port)
	case ir.ProtocolUDP:
		name = clusterName(svc, sp.Port) + "/udp"
	}
	cl := &ir.Cluster{Name: name, Protocol: proto, LBPolicy: ir.LBRoundRobin, Endpoints: t.endpoints(svc, sp), UpstreamTLS: tls}
	if t.clusters == nil {
		t.clusters = map[clusterKey]*ir.Cluster{}
	}
	t.clusters[k] = cl
	return cl
}

type clusterKey struct {
	svc  input.Key
	port int32
	// proto tells the HTTP, TCP and UDP clusters of one port apart (the
	// HTTP protocols share one cluster: it comes from the Service).
	proto ir.AppProtocol
}

// endpoints collects a Service port's endpoints from the Service's
// EndpointSlices. A slice port belongs to a Service port when their names
// are equal (both empty for a single unnamed port), as the EndpointSlice
// controller writes them; its number is the target port. Ready follows
// conditions.ready, where unset means ready. An address listed by several
// slices appears once, ready if any slice says so.
func (t *translator) endpoints(svc input.Key, sp *corev1.ServicePort) []ir.Endpoint {
	type ep struct {
		addr netip.Addr
		port uint32
	}
	ready := map[ep]bool{}
	// Each endpoint once, in order, with its address as written when
	// that is how netip writes it too (the usual case: no string to make).
	type listed struct {
		ep
		text string
	}
	// A Service port has a few endpoints, usually: room for them on the
	// stack, since Services come by the thousand.
	var room [8]listed
	order := room[:0]
	var scratch [64]byte
	for _, es := range t.ix.slices[svc] {
		if es.AddressType != discoveryv1.AddressTypeIPv4 && es.AddressType != discoveryv1.AddressTypeIPv6 {
			continue
		}
		port := uint32(0)
		for _, p := range es.Ports {
			name := ""
			if p.Name != nil {
				name = *p.Name
			}
			if name != sp.Name || p.Port == nil || *p.Port < 1 || *p.Port > 65535 ||
				protocolOr(ptrOr(p.Protocol)) != protocolOr(sp.Protocol) {
				continue
			}
			port = uint32(*p.Port)
			break
		}
		if port == 0 {
			continue
		}
		for _, e := range es.Endpoints {
			r := e.Conditions.Ready == nil || *e.Conditions.Ready
			for _, a := range e.Addresses {
				addr, err := netip.ParseAddr(a)
				if err != nil || addr.Zone() != "" {
					continue
				}
				k := ep{addr, port}
				if _, seen := ready[k]; !seen {
					l := listed{ep: k}
					if string(addr.AppendTo(scratch[:0])) == a {
						l.text = a
					}
					order = append(order, l)
				}
				ready[k] = ready[k] || r
			}
		}
	}
	// (address, port) is unique in order: any sort gives the same result.
	slices.SortFunc(order, func(a, b listed) int {
		if c := a.addr.Compare(b.addr); c != 0 {
			return c
		}
		return cmp.Compare(a.port, b.port)
	})
	out := make([]ir.Endpoint, 0, len(order))
	for _, l := range order {
		if l.text == "" {
			l.text = l.addr.String()
		}
		out = append(out, ir.Endpoint{Address: l.text, Port: l.port, Ready: ready[l.ep]})
	}
	return out
}

// protocolOr is a port protocol with the API's default, TCP.
func protocolOr(p corev1.Protocol) corev1.Protocol {
	if p == "" {
		return corev1.ProtocolTCP
	}
	return p
}

func ptrOr(p *corev1.Protocol) corev1.Protocol {
	if p == nil {
		return ""
	}
	return *p
}
