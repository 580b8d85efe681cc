package gateway

import (
	"fmt"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/nodemesh/nodemesh/mesh/input"
)

// listenerState is one listener of one of our Gateways.
type listenerState struct {
	gw *gatewayState
	// set is the ListenerSet the listener comes from; nil for the
	// Gateway's own.
	set *listenerSetState
	// chain names the listener in IR chain and table names: its name for
	// the Gateway's own, qualified by the ListenerSet for the others
	// (listener names are unique only within their object).
	chain    string
	index    int
	name     string
	spec     *gwv1.Listener
	hostname string // "" when the listener has none
	port     int32
	protocol gwv1.ProtocolType

	accepted verdict
	resolved verdict
	// conflict, when set, is the reason the listener is Conflicted.
	conflict *verdict
	// overlapping lists HTTPS listeners on the same port whose hostnames
	// overlap this one's (OverlappingTLSConfig).
	overlapping []string

	// kinds are the route kinds the listener admits (supportedKinds).
	kinds       []*routeKind
	nsFrom      gwv1.FromNamespaces
	nsSelector  labels.Selector
	certs       []input.Key // TLS Secrets, all verified
	certProblem bool        // a certificateRef is unusable: do not serve
	// clientCA holds the CAs client certificates are verified against
	// (frontend.go); insecureFallback lets unverified clients in.
	clientCA         []byte
	insecureFallback bool
	// terminate: a TLS listener terminating TLS (tls.mode Terminate).
	terminate bool

	// serving: the listener is part of the IR (Programmed=True).
	serving bool
	// peers are the serving listeners of the same Gateway port, this one
	// included; they share a route table (HTTP) or an IR listener (HTTPS).
	peers []*listenerState
	// attached counts the Accepted Routes attached to this listener.
	attached int
	// entries holds the routes to serve, by the hostname they serve it on.
	entries map[string][]*routeState
}

func (t *translator) newListener(gs *gatewayState, i int, l *gwv1.Listener) *listenerState {
	return t.newListenerIn(gs, nil, i, l)
}

// newListenerIn makes a listener of gs defined by set (nil: by the
// Gateway itself); i is its position in gs's merged listeners.
func (t *translator) newListenerIn(gs *gatewayState, set *listenerSetState, i int, l *gwv1.Listener) *listenerState {
	ls := &listenerState{
		gw: gs, set: set, chain: string(l.Name), index: i, name: string(l.Name), spec: l, port: l.Port, protocol: l.Protocol,
		accepted: yes(string(gwv1.ListenerReasonAccepted), "Listener is accepted"),
		resolved: yes(string(gwv1.ListenerReasonResolvedRefs), "All references are resolved"),
		nsFrom:   gwv1.NamespacesFromSame,
		entries:  map[string][]*routeState{},
	}
	if set != nil {
		ls.chain = "listenerset/" + set.key.Namespace + "/" + set.key.Name + "/" + ls.name
	}
	if l.Hostname != nil {
		ls.hostname = string(*l.Hostname)
	}
	switch l.Protocol {
	case gwv1.HTTPProtocolType, gwv1.HTTPSProtocolType, gwv1.TLSProtocolType, gwv1.TCPProtocolType, gwv1.UDPProtocolType:
	default:
		ls.reject(no(string(gwv1.ListenerReasonUnsupportedProtocol), "protocol %q is not supported; use HTTP, HTTPS, TLS, TCP or UDP", l.Protocol))
		return ls
	}
	if l.Port < 1 || l.Port > 65535 {
		ls.reject(no(string(gwv1.ListenerReasonPortUnavailable), "port %d is out of range 1-65535", l.Port))
	}
	if ls.hostname != "" && !validHostname(ls.hostname, true) {
		ls.reject(no(string(gwv1.ListenerReasonUnsupportedValue), "hostname %q is not a valid hostname", ls.hostname))
	}
	ls.allowedRoutes(l.AllowedRoutes)
	switch l.Protocol {
	case gwv1.HTTPProtocolType, gwv1.TCPProtocolType, gwv1.UDPProtocolType:
		if l.TLS != nil {
			article := "an"
			if l.Protocol != gwv1.HTTPProtocolType {
				article = "a"
			}
			ls.reject(no(string(gwv1.ListenerReasonUnsupportedValue), "tls must not be set on %s %s listener", article, l.Protocol))
		}
	case gwv1.TLSProtocolType:
		// The mode defaults to Terminate: the listener's certificates are
		// resolved as an HTTPS listener's (l4route.go).
		if l.TLS == nil || l.TLS.Mode == nil || *l.TLS.Mode == gwv1.TLSModeTerminate {
			ls.terminate = true
			t.listenerTLS(ls)
		}
	default:
		t.listenerTLS(ls)
	}
	return ls
}

// reject records the first reason the listener is not accepted.
func (ls *listenerState) reject(v verdict) {
	if ls.accepted.ok {
		ls.accepted = v
	}
}

// unresolved records the first unresolved reference.
func (ls *listenerState) unresolved(v verdict) {
	if ls.resolved.ok {
		ls.resolved = v
	}
}

// allowedRoutes applies spec.allowedRoutes. The kinds a listener may
// admit come from the table of supported route kinds (routeKinds): those
// attaching to its protocol, or the ones allowedRoutes.kinds names among
// them; other names are InvalidRouteKinds.
func (ls *listenerState) allowedRoutes(ar *gwv1.AllowedRoutes) {
	ls.kinds = kindsFor(ls.protocol)
	if ar == nil {
		return
	}
	if ns := ar.Namespaces; ns != nil && ns.From != nil {
		ls.nsFrom = *ns.From
		switch ls.nsFrom {
		case gwv1.NamespacesFromAll, gwv1.NamespacesFromSame:
		case gwv1.NamespacesFromSelector:
			if ns.Selector == nil {
				ls.nsFrom = ""
				ls.reject(no(string(gwv1.ListenerReasonUnsupportedValue), "allowedRoutes.namespaces.selector is required when from is Selector"))
				break
			}
			sel, err := metav1.LabelSelectorAsSelector(ns.Selector)
			if err != nil {
				ls.nsFrom = ""
				ls.reject(no(string(gwv1.ListenerReasonUnsupportedValue), "allowedRoutes.namespaces.selector: %v", err))
				break
			}
			ls.nsSelector = sel
		default:
			ls.reject(no(string(gwv1.ListenerReasonUnsupportedValue), "allowedRoutes.namespaces.from %q is not supported; use All, Same or Selector", ls.nsFrom))
		}
	}
	if len(ar.Kinds) == 0 {
		return
	}
	supported := ls.kinds
	ls.kinds = nil
	var bad []string
	for _, k := range ar.Kinds {
		group := groupOr(k.Group, gwv1.GroupName)
		if rk := lookupKind(group, k.Kind); rk != nil && rk.attachesTo(ls.protocol) {
			if !slices.Contains(ls.kinds, rk) {
				ls.kinds = append(ls.kinds, rk)
			}
			continue
		}
		bad = append(bad, fmt.Sprintf("%s/%s", group, k.Kind))
	}
	if len(bad) > 0 {
		ls.unresolved(no(string(gwv1.ListenerReasonInvalidRouteKinds), "route kinds %s are not supported on %s listeners; supported: %s",
			strings.Join(bad, ", "), ls.protocol, describeKinds(supported)))
	}
}

// listenerTLS resolves an HTTPS listener's certificates.
func (t *translator) listenerTLS(ls *listenerState) {
	cfg := ls.spec.TLS
	fromKind, fromNS := ls.definedBy()
	if cfg != nil && cfg.Mode != nil && *cfg.Mode != gwv1.TLSModeTerminate {
		ls.reject(no(string(gwv1.ListenerReasonUnsupportedValue), "tls.mode %q is not supported on HTTPS listeners; use Terminate", *cfg.Mode))
		return
	}
	if cfg == nil || len(cfg.CertificateRefs) == 0 {
		ls.certProblem = true
		ls.unresolved(no(string(gwv1.ListenerReasonInvalidCertificateRef), "tls.certificateRefs is required to terminate TLS"))
		return
	}
	for j, cr := range cfg.CertificateRefs {
		field := fmt.Sprintf("tls.certificateRefs[%d]", j)
		group, kind := groupOr(cr.Group, ""), kindOr(cr.Kind, "Secret")
		if group != "" || kind != "Secret" {
			ls.certProblem = true
			ls.unresolved(no(string(gwv1.ListenerReasonInvalidCertificateRef), "%s: %s %q is not supported; use a core Secret", field, groupKind(group, kind), cr.Name))
			continue
		}
		k := input.Key{Namespace: namespaceOr(cr.Namespace, fromNS), Name: string(cr.Name)}
		if !t.ix.permitted(ref{
			fromGroup: gwv1.GroupName, fromKind: fromKind, fromNamespace: fromNS,
			toGroup: "", toKind: "Secret", toNamespace: k.Namespace, toName: k.Name,
		}) {
			ls.certProblem = true
			ls.unresolved(no(string(gwv1.ListenerReasonRefNotPermitted), "%s: Secret %s is in another namespace and no ReferenceGrant there allows %ss from %s to use it", field, k, fromKind, fromNS))
			continue
		}
		if _, err := t.ix.tlsSecret(k); err != nil {
			ls.certProblem = true
			ls.unresolved(no(string(gwv1.ListenerReasonInvalidCertificateRef), "%s: %v", field, err))
			continue
		}
		ls.certs = append(ls.certs, k)
	}
	t.listenerClientValidation(ls)
}

// definedBy names the kind and namespace of the object defining the
// listener: ReferenceGrants are checked from it (a Gateway's grants do not
// extend to its ListenerSets, nor theirs to it), and allowedRoutes
// namespaces Same means its namespace.
func (ls *listenerState) definedBy() (kind, namespace string) {
	if ls.set != nil {
		return "ListenerSet", ls.set.key.Namespace
	}
	return "Gateway", ls.gw.key.Namespace
}

// qualifiedName names the listener in messages about the merged list.
func (ls *listenerState) qualifiedName() string {
	if ls.set != nil {
		return fmt.Sprintf("%q of ListenerSet %s", ls.name, ls.set.key)
	}
	return fmt.Sprintf("%q of Gateway %s", ls.name, ls.gw.key)
}

func groupKind(group, kind string) string {
	if group == "" {
		return kind
	}
	return kind + "." + group
}

// servable reports whether the listener itself can carry traffic; the
// Gateway may still be unable to serve it.
func (ls *listenerState) servable() bool {
	return ls.accepted.ok && ls.conflict == nil && !ls.certProblem && (ls.set == nil || ls.set.problem == nil)
}

// validity is the listener's verdict for the Gateway's ListenersNotValid.
func (ls *listenerState) validity() verdict {
	switch {
	case ls.conflict != nil:
		return *ls.conflict
	case !ls.accepted.ok:
		return ls.accepted
	case !ls.resolved.ok:
		return ls.resolved
	}
	return yes("", "")
}

// allowsNamespace reports whether routes in namespace ns may attach.
func (ls *listenerState) allowsNamespace(ix *index, ns string) bool {
	// Listener status does not affect attachment (the spec counts routes
	// even on listeners that are not accepted), but a namespace policy that
	// cannot be evaluated admits nothing.
	switch ls.nsFrom {
	case gwv1.NamespacesFromAll:
		return true
	case gwv1.NamespacesFromSame:
		_, own := ls.definedBy()
		return ns == own
	case gwv1.NamespacesFromSelector:
		return ls.nsSelector != nil && ls.nsSelector.Matches(ix.namespaceSet(ns))
	}
	return false
}

// admitsKind reports whether the listener admits routes of kind k.
func (ls *listenerState) admitsKind(k *routeKind) bool { return slices.Contains(ls.kinds, k) }

// markConflicts applies the spec's distinctness rules to the accepted
// listeners of one Gateway: listeners sharing a port must share the
// protocol, and listeners sharing port and protocol must differ in
// hostname. Every listener of a conflicting group is rejected; none wins.
func markConflicts(ls []*listenerState) {
	byPort := map[int32][]*listenerState{}
	var ports []int32
	for _, l := range ls {
		if !l.accepted.ok {
			continue
		}
		if byPort[l.port] == nil {
			ports = append(ports, l.port)
		}
		byPort[l.port] = append(byPort[l.port], l)
	}
	for _, port := range ports {
		group := byPort[port]
		protocols := map[gwv1.ProtocolType]bool{}
		for _, l := range group {
			protocols[l.protocol] = true
		}
		if len(protocols) > 1 {
			for _, l := range group {
				l.setConflict(string(gwv1.ListenerReasonProtocolConflict), "port %d is used with different protocols by listeners %s", port, names(group))
			}
			continue
		}
		byHost := map[string][]*listenerState{}
		for _, l := range group {
			byHost[l.hostname] = append(byHost[l.hostname], l)
		}
		for _, l := range group {
			if same := byHost[l.hostname]; len(same) > 1 {
				h := l.hostname
				if h == "" {
					h = "(none)"
				}
				l.setConflict(string(gwv1.ListenerReasonHostnameConflict), "listeners %s use port %d, protocol %s and hostname %s", names(same), port, l.protocol, h)
			}
		}
	}
}

func (ls *listenerState) setConflict(reason, format string, args ...any) {
	v := no(reason, format, args...)
	v.ok = true // Conflicted=True
	ls.conflict = &v
	ls.accepted = no(reason, format, args...)
}

func names(ls []*listenerState) string {
	var n []string
	for _, l := range ls {
		n = append(n, fmt.Sprintf("%q", l.name))
	}
	return strings.Join(n, ", ")
}

// markOverlappingTLS flags HTTPS listeners of one port whose hostnames
// overlap, where HTTP/2 connection coalescing can carry a request to the
// wrong listener's certificate.
func markOverlappingTLS(ls []*listenerState) {
	for i, a := range ls {
		for _, b := range ls[i+1:] {
			if a.protocol != gwv1.HTTPSProtocolType || b.protocol != gwv1.HTTPSProtocolType || a.port != b.port ||
				!a.accepted.ok || !b.accepted.ok || a.conflict != nil || b.conflict != nil {
				continue
			}
			if a.hostname == "" || b.hostname == "" || covers(a.hostname, b.hostname) || covers(b.hostname, a.hostname) {
				a.overlapping = append(a.overlapping, b.name)
				b.overlapping = append(b.overlapping, a.name)
			}
		}
	}
}

// linkPeers groups the serving listeners of each port.
func linkPeers(ls []*listenerState) {
	byPort := map[int32][]*listenerState{}
	for _, l := range ls {
		if l.serving {
			byPort[l.port] = append(byPort[l.port], l)
		}
	}
	for _, l := range ls {
		if l.serving {
			l.peers = byPort[l.port]
		}
	}
}

// owner returns the serving listener of this listener's port that requests
// for domain d reach: the one with the most specific hostname covering d
// (Listener Isolation). It returns nil when none covers d.
func (ls *listenerState) owner(d string) *listenerState {
	var best *listenerState
	for _, p := range ls.peers {
		if !listenerCovers(p.hostname, d) {
			continue
		}
		if best == nil || moreSpecific(p.hostname, best.hostname) {
			best = p
		}
	}
	return best
}

func (ls *listenerState) programmed() verdict {
	gs := ls.gw
	switch {
	case ls.conflict != nil:
		return no(ls.conflict.reason, "%s", ls.conflict.msg)
	case !ls.accepted.ok:
		return no(string(gwv1.ListenerReasonInvalid), "Listener is not accepted: %s", ls.accepted.msg)
	case ls.certProblem:
		return no(string(gwv1.ListenerReasonInvalid), "Listener has unusable certificates: %s", ls.resolved.msg)
	case gs.problem != nil:
		return no(string(gwv1.ListenerReasonInvalid), "Gateway is not accepted: %s", gs.problem.msg)
	case !gs.addr.IsValid():
		return no(string(gwv1.ListenerReasonPending), "the Gateway has no address yet")
	case gs.addrProblem != nil:
		return no(string(gwv1.ListenerReasonPending), "the Gateway's address cannot be used: %s", gs.addrProblem.msg)
	}
	return yes(string(gwv1.ListenerReasonProgrammed), "Listener is programmed")
}

func (ls *listenerState) status() gwv1.ListenerStatus {
	gen := ls.gw.obj.Generation
	if ls.set != nil {
		gen = ls.set.obj.Generation
	}
	conflicted := verdict{reason: string(gwv1.ListenerReasonNoConflicts), msg: "Listener has no conflicts"}
	if ls.conflict != nil {
		conflicted = *ls.conflict
	}
	conds := []metav1.Condition{
		ls.accepted.condition(string(gwv1.ListenerConditionAccepted), gen),
		ls.programmed().condition(string(gwv1.ListenerConditionProgrammed), gen),
		ls.resolved.condition(string(gwv1.ListenerConditionResolvedRefs), gen),
		conflicted.condition(string(gwv1.ListenerConditionConflicted), gen),
	}
	if len(ls.overlapping) > 0 {
		conds = append(conds, yes(string(gwv1.ListenerReasonOverlappingHostnames),
			"hostname overlaps HTTPS listeners "+strings.Join(ls.overlapping, ", ")+" on the same port").
			condition(string(gwv1.ListenerConditionOverlappingTLSConfig), gen))
	}
	kinds := make([]gwv1.RouteGroupKind, len(ls.kinds))
	for i, k := range ls.kinds {
		kinds[i] = k.groupKind()
	}
	return gwv1.ListenerStatus{
		Name:           gwv1.SectionName(ls.name),
		SupportedKinds: kinds,
		AttachedRoutes: int32(ls.attached),
		Conditions:     conds,
	}
}
