package gateway

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/nodemesh/nodemesh/mesh/input"
)

// gatewayState is one Gateway of one of our classes.
type gatewayState struct {
	key input.Key
	obj *gwv1.Gateway
	// hash is obj's content hash, read only by the Translator's reuse.
	hash  input.Hash
	class *classState
	// problem, when set, rejects the whole Gateway (Accepted=False).
	problem *verdict
	// addr is the assigned address; invalid when none was assigned.
	addr netip.Addr
	// addrProblem explains why addr cannot be used (Programmed=False).
	addrProblem *verdict
	// listeners in spec order; listeners whose name repeats an earlier
	// one are dropped and reported in dupNames.
	listeners []*listenerState
	dupNames  []string
	// own is how many of listeners are the Gateway's own; the rest come
	// from the ListenerSets in sets that it admits (listenerset.go).
	own  int
	sets []*listenerSetState
	// resolved is the ResolvedRefs condition of a Gateway with spec.tls
	// (nil without), and backendCert the valid Secret it presents to
	// backends (backendcert.go).
	resolved    *verdict
	backendCert *input.Key
}

func (t *translator) processGateways() {
	t.gateways = map[input.Key]*gatewayState{}
	for _, gw := range t.in.Gateways {
		cs := t.classes[string(gw.Spec.GatewayClassName)]
		if cs == nil {
			continue
		}
		gs := &gatewayState{key: keyOf(gw), obj: gw, class: cs}
		if t.next != nil {
			gs.hash = t.in.HashOf(gw)
		}
		t.gateways[gs.key] = gs
		t.gatewayOrder = append(t.gatewayOrder, gs)
	}
	// The oldest Gateway wins an address and port that several want, as
	// the oldest Route wins a tie.
	sort.SliceStable(t.gatewayOrder, func(i, j int) bool {
		a, b := t.gatewayOrder[i], t.gatewayOrder[j]
		if !a.obj.CreationTimestamp.Equal(&b.obj.CreationTimestamp) {
			return a.obj.CreationTimestamp.Before(&b.obj.CreationTimestamp)
		}
		return keyLess(a.key, b.key)
	})
	sets := t.listenerSetsByGateway()
	claims := portClaims{}
	for _, gs := range t.gatewayOrder {
		t.processGateway(gs, sets[gs.key], claims)
	}
}

func (t *translator) processGateway(gs *gatewayState, sets []*listenerSetState, claims portClaims) {
	gw := gs.obj
	switch {
	case !gs.class.accepted.ok:
		gs.problem = ptr(no(string(gwv1.GatewayReasonInvalid), "GatewayClass %s is not accepted: %s", gs.class.obj.Name, gs.class.accepted.msg))
	case gw.Spec.Infrastructure != nil && gw.Spec.Infrastructure.ParametersRef != nil:
		p := gw.Spec.Infrastructure.ParametersRef
		gs.problem = ptr(no(string(gwv1.GatewayReasonInvalidParameters), "spec.infrastructure.parametersRef: %s %s is not supported; nodemesh Gateways take no parameters", p.Kind, p.Name))
	}
	t.checkAddresses(gs)
	t.resolveBackendCert(gs)

	seen := map[string]bool{}
	for i := range gw.Spec.Listeners {
		l := &gw.Spec.Listeners[i]
		if seen[string(l.Name)] {
			gs.dupNames = append(gs.dupNames, fmt.Sprintf("spec.listeners[%d]: name %q is used by an earlier listener", i, l.Name))
			continue
		}
		seen[string(l.Name)] = true
		gs.listeners = append(gs.listeners, t.newListener(gs, i, l))
	}
	if gs.problem == nil && len(gs.dupNames) > 0 {
		gs.problem = ptr(no(string(gwv1.GatewayReasonInvalid), "%s", joinProblems(gs.dupNames)))
	}
	markConflicts(gs.listeners)
	gs.own = len(gs.listeners)
	t.mergeListenerSets(gs, sets)
	if gs.problem == nil && gs.addrProblem == nil && gs.addr.IsValid() {
		claims.claim(gs)
	}
	markOverlappingTLS(gs.listeners)
	for _, ls := range gs.listeners {
		ls.serving = gs.problem == nil && gs.addrProblem == nil && gs.addr.IsValid() && ls.servable()
	}
	linkPeers(gs.listeners)
}

// checkAddresses validates spec.addresses against the assigned address.
func (t *translator) checkAddresses(gs *gatewayState) {
	if a, ok := t.opts.Addresses[gs.key]; ok && a.IsValid() {
		gs.addr = a
	}
	for i, a := range gs.obj.Spec.Addresses {
		typ := gwv1.IPAddressType
		if a.Type != nil {
			typ = *a.Type
		}
		if typ != gwv1.IPAddressType {
			if gs.problem == nil {
				gs.problem = ptr(no(string(gwv1.GatewayReasonUnsupportedAddress), "spec.addresses[%d]: address type %q is not supported; use IPAddress", i, typ))
			}
			continue
		}
		if a.Value == "" {
			continue // any address will do
		}
		want, err := netip.ParseAddr(a.Value)
		if err != nil {
			if gs.problem == nil {
				gs.problem = ptr(no(string(gwv1.GatewayReasonUnsupportedAddress), "spec.addresses[%d]: %q is not an IP address", i, a.Value))
			}
			continue
		}
		if t.opts.HostNetwork && gs.addrProblem == nil {
			gs.addrProblem = ptr(no(string(gwv1.GatewayReasonAddressNotUsable), "spec.addresses[%d]: %s was requested, but in host-network mode a Gateway is served on the addresses of the selected nodes", i, want))
			continue
		}
		if gs.addr.IsValid() && want != gs.addr && gs.addrProblem == nil {
			gs.addrProblem = ptr(no(string(gwv1.GatewayReasonAddressNotUsable), "spec.addresses[%d]: %s was requested but %s is assigned", i, want, gs.addr))
		}
	}
}

// portClaims records which Gateway serves each address and port, so two
// Gateways given the same address never both bind one port.
type portClaims map[int32][]claim

type claim struct {
	addr netip.Addr
	gw   *gatewayState
}

func (c portClaims) claim(gs *gatewayState) {
	for _, port := range servablePorts(gs.listeners) {
		var owner *gatewayState
		for _, cl := range c[port] {
			if overlap(cl.addr, gs.addr) {
				owner = cl.gw
				break
			}
		}
		if owner == nil {
			c[port] = append(c[port], claim{gs.addr, gs})
			continue
		}
		for _, ls := range gs.listeners {
			if ls.port == port && ls.servable() {
				ls.reject(no(string(gwv1.ListenerReasonPortUnavailable), "address %s port %d is already served by Gateway %s", gs.addr, port, owner.key))
			}
		}
	}
}

// overlap reports whether two listening addresses collide on one port: the
// same address, or a wildcard address of the same family.
func overlap(a, b netip.Addr) bool {
	if a == b {
		return true
	}
	if a.Is4() != b.Is4() {
		return false
	}
	return a.IsUnspecified() || b.IsUnspecified()
}

func servablePorts(ls []*listenerState) []int32 {
	var ports []int32
	seen := map[int32]bool{}
	for _, l := range ls {
		if l.servable() && !seen[l.port] {
			seen[l.port] = true
			ports = append(ports, l.port)
		}
	}
	sort.Slice(ports, func(i, j int) bool { return ports[i] < ports[j] })
	return ports
}

func ptr[T any](v T) *T { return &v }

// accepted reports the Gateway's Accepted condition.
func (gs *gatewayState) accepted() verdict {
	if gs.problem != nil {
		return *gs.problem
	}
	var bad []string
	valid := 0
	for _, ls := range gs.ownListeners() {
		if v := ls.validity(); !v.ok {
			bad = append(bad, fmt.Sprintf("listener %q: %s", ls.name, v.msg))
		} else {
			valid++
		}
	}
	switch {
	case len(bad) == 0:
		return yes(string(gwv1.GatewayReasonAccepted), "Gateway is accepted")
	case valid > 0:
		return yes(string(gwv1.GatewayReasonListenersNotValid), "some listeners are not valid: "+joinProblems(bad))
	}
	return no(string(gwv1.GatewayReasonListenersNotValid), "no listener is valid: %s", joinProblems(bad))
}

// programmed reports the Gateway's Programmed condition.
func (gs *gatewayState) programmed(problems map[input.Key]string) verdict {
	switch {
	case gs.problem != nil:
		return no(string(gwv1.GatewayReasonInvalid), "Gateway is not accepted: %s", gs.problem.msg)
	case !gs.addr.IsValid():
		msg := "no address has been assigned to the Gateway"
		if p := problems[gs.key]; p != "" {
			msg += ": " + p
		}
		return no(string(gwv1.GatewayReasonAddressNotAssigned), "%s", msg)
	case gs.addrProblem != nil:
		return *gs.addrProblem
	}
	var names []string
	for _, ls := range gs.ownListeners() {
		if ls.serving {
			names = append(names, ls.name)
		}
	}
	if len(names) == 0 {
		return no(string(gwv1.GatewayReasonInvalid), "no listener can be programmed")
	}
	return yes(string(gwv1.GatewayReasonProgrammed), "Gateway is programmed with listeners "+strings.Join(names, ", "))
}

func (gs *gatewayState) status(problems map[input.Key]string) gwv1.GatewayStatus {
	gen := gs.obj.Generation
	st := gwv1.GatewayStatus{
		Conditions: []metav1.Condition{
			gs.accepted().condition(string(gwv1.GatewayConditionAccepted), gen),
			gs.programmed(problems).condition(string(gwv1.GatewayConditionProgrammed), gen),
		},
	}
	if gs.resolved != nil {
		st.Conditions = append(st.Conditions, gs.resolved.condition(string(gwv1.GatewayConditionResolvedRefs), gen))
	}
	if gs.insecureFrontend() {
		st.Conditions = append(st.Conditions, yes(string(gwv1.GatewayReasonConfigurationChanged),
			"listeners with spec.tls.frontend validation mode AllowInsecureFallback let clients without a valid certificate in").
			condition(string(gwv1.GatewayConditionInsecureFrontendValidationMode), gen))
	}
	if gs.addr.IsValid() && gs.addrProblem == nil && gs.problem == nil {
		st.Addresses = []gwv1.GatewayStatusAddress{{Type: ptr(gwv1.IPAddressType), Value: gs.addr.String()}}
	}
	for _, ls := range gs.ownListeners() {
		st.Listeners = append(st.Listeners, ls.status())
	}
	if len(gs.sets) > 0 || gs.obj.Spec.AllowedListeners != nil {
		st.AttachedListenerSets = ptr(gs.attachedListenerSets())
	}
	return st
}

// ownListeners are the listeners of the Gateway's own spec, which its
// status lists; those ListenerSets add are in theirs.
func (gs *gatewayState) ownListeners() []*listenerState { return gs.listeners[:gs.own] }
