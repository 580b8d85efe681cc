package gateway

import (
	"fmt"
	"sort"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/nodemesh/nodemesh/mesh/input"
)

// listenerSetState is one ListenerSet whose parentRef names one of our
// Gateways. Its listeners, when the Gateway admits it, are appended to
// the Gateway's (gatewayState.listeners) after the Gateway's own and those
// of the ListenerSets before it, and from then on are listeners like any
// other: they share ports, route tables and the Gateway's address.
type listenerSetState struct {
	key  input.Key
	obj  *gwv1.ListenerSet
	hash input.Hash
	gw   *gatewayState
	// notAttached, when set, is why the Gateway does not take the
	// ListenerSet's listeners (NotAllowed, ParentNotAccepted); the set
	// then has no listeners.
	notAttached *verdict
	// problem, when set, rejects the whole set (Accepted=False/Invalid).
	problem *verdict
	// listeners in spec order; repeated names are dropped and reported
	// in dupNames.
	listeners []*listenerState
	dupNames  []string
}

// isListenerSetRef reports whether a parentRef names a ListenerSet.
func isListenerSetRef(pr gwv1.ParentReference) bool {
	return groupOr(pr.Group, gwv1.GroupName) == gwv1.GroupName && kindOr(pr.Kind, "Gateway") == "ListenerSet"
}

// listenerSetsByGateway groups the ListenerSets whose parentRef names one
// of our Gateways, each group in the spec's precedence order: oldest
// first, then by namespace/name.
func (t *translator) listenerSetsByGateway() map[input.Key][]*listenerSetState {
	out := map[input.Key][]*listenerSetState{}
	t.listenerSets = map[input.Key]*listenerSetState{}
	for _, obj := range t.in.ListenerSets {
		pr := obj.Spec.ParentRef
		if groupOr(pr.Group, gwv1.GroupName) != gwv1.GroupName || kindOr(pr.Kind, "Gateway") != "Gateway" {
			continue
		}
		gk := input.Key{Namespace: namespaceOr(pr.Namespace, obj.Namespace), Name: string(pr.Name)}
		gs := t.gateways[gk]
		if gs == nil {
			continue // another controller's Gateway, or none: not ours to report
		}
		lss := &listenerSetState{key: keyOf(obj), obj: obj, gw: gs}
		if t.next != nil {
			lss.hash = t.in.HashOf(obj)
		}
		t.listenerSets[lss.key] = lss
		t.listenerSetOrder = append(t.listenerSetOrder, lss)
		out[gk] = append(out[gk], lss)
	}
	for _, sets := range out {
		sort.SliceStable(sets, func(i, j int) bool {
			a, b := sets[i].obj, sets[j].obj
			if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
				return a.CreationTimestamp.Before(&b.CreationTimestamp)
			}
			return keyLess(sets[i].key, sets[j].key)
		})
	}
	return out
}

// mergeListenerSets appends the listeners of the ListenerSets the Gateway
// admits to its own, in precedence order. A ListenerSet listener that
// conflicts with one earlier in the merged list (a different protocol on
// its port, or the same protocol and hostname) is Conflicted and the
// earlier one keeps the port or hostname, as the spec's precedence asks;
// this holds within one ListenerSet too. (Among the Gateway's own
// listeners every listener of a conflicting group stays Conflicted:
// markConflicts.)
func (t *translator) mergeListenerSets(gs *gatewayState, sets []*listenerSetState) {
	gs.sets = sets
	for _, lss := range sets {
		if v := t.admitsListenerSet(gs, lss); v != nil {
			lss.notAttached = v
			continue
		}
		seen := map[string]bool{}
		for i := range lss.obj.Spec.Listeners {
			e := &lss.obj.Spec.Listeners[i]
			if seen[string(e.Name)] {
				lss.dupNames = append(lss.dupNames, fmt.Sprintf("spec.listeners[%d]: name %q is used by an earlier listener", i, e.Name))
				continue
			}
			seen[string(e.Name)] = true
			l := &gwv1.Listener{Name: e.Name, Hostname: e.Hostname, Port: e.Port, Protocol: e.Protocol, TLS: e.TLS, AllowedRoutes: e.AllowedRoutes}
			lss.listeners = append(lss.listeners, t.newListenerIn(gs, lss, len(gs.listeners)+len(lss.listeners), l))
		}
		if len(lss.dupNames) > 0 {
			lss.problem = ptr(no(string(gwv1.ListenerSetReasonInvalid), "%s", joinProblems(lss.dupNames)))
		}
		for _, l := range lss.listeners {
			if l.accepted.ok {
				conflictWithEarlier(l, gs.listeners)
			}
			gs.listeners = append(gs.listeners, l)
		}
	}
}

// conflictWithEarlier marks l Conflicted when a listener before it in the
// merged list, itself accepted and not conflicted, holds its port with
// another protocol or its port, protocol and hostname.
func conflictWithEarlier(l *listenerState, earlier []*listenerState) {
	for _, e := range earlier {
		if !e.accepted.ok || e.conflict != nil || e.port != l.port {
			continue
		}
		if e.protocol != l.protocol {
			l.setConflict(string(gwv1.ListenerReasonProtocolConflict), "port %d is used with protocol %s by listener %s, which takes precedence", l.port, e.protocol, e.qualifiedName())
			return
		}
		if e.hostname == l.hostname {
			h := l.hostname
			if h == "" {
				h = "(none)"
			}
			l.setConflict(string(gwv1.ListenerReasonHostnameConflict), "port %d, protocol %s and hostname %s are used by listener %s, which takes precedence", l.port, l.protocol, h, e.qualifiedName())
			return
		}
	}
}

// admitsListenerSet decides whether the Gateway takes a ListenerSet's
// listeners: spec.allowedListeners.namespaces (None unless set) must
// admit the set's namespace, and the Gateway must be accepted. It returns
// nil when it does, else the set's Accepted verdict.
func (t *translator) admitsListenerSet(gs *gatewayState, lss *listenerSetState) *verdict {
	if gs.problem != nil {
		return ptr(no(string(gwv1.ListenerSetReasonParentNotAccepted), "Gateway %s is not accepted: %s", gs.key, gs.problem.msg))
	}
	from := gwv1.NamespacesFromNone
	var ns *gwv1.ListenerNamespaces
	if al := gs.obj.Spec.AllowedListeners; al != nil && al.Namespaces != nil {
		ns = al.Namespaces
		if ns.From != nil {
			from = *ns.From
		}
	}
	notAllowed := func(format string, args ...any) *verdict {
		return ptr(no(string(gwv1.ListenerSetReasonNotAllowed), "Gateway %s does not allow this ListenerSet: %s", gs.key, fmt.Sprintf(format, args...)))
	}
	switch from {
	case gwv1.NamespacesFromAll:
		return nil
	case gwv1.NamespacesFromSame:
		if lss.key.Namespace == gs.key.Namespace {
			return nil
		}
		return notAllowed("spec.allowedListeners.namespaces.from is Same and the ListenerSet is in namespace %s", lss.key.Namespace)
	case gwv1.NamespacesFromSelector:
		if ns.Selector == nil {
			return notAllowed("spec.allowedListeners.namespaces.selector is required when from is Selector")
		}
		sel, err := metav1.LabelSelectorAsSelector(ns.Selector)
		if err != nil {
			return notAllowed("spec.allowedListeners.namespaces.selector: %v", err)
		}
		if sel.Matches(t.ix.namespaceSet(lss.key.Namespace)) {
			return nil
		}
		return notAllowed("namespace %s does not match spec.allowedListeners.namespaces.selector", lss.key.Namespace)
	case gwv1.NamespacesFromNone:
		return notAllowed("spec.allowedListeners does not admit ListenerSets (from: None, the default)")
	}
	return notAllowed("spec.allowedListeners.namespaces.from %q is not supported; use All, Same, Selector or None", from)
}

// attached reports whether the set is attached to its Gateway: admitted
// and Accepted (the Gateway's attachedListenerSets counts these).
func (lss *listenerSetState) attached() bool {
	return lss.notAttached == nil && lss.accepted().ok
}

// accepted reports the ListenerSet's Accepted condition: it holds when
// the Gateway admits the set and at least one of its listeners is valid.
func (lss *listenerSetState) accepted() verdict {
	switch {
	case lss.notAttached != nil:
		return *lss.notAttached
	case lss.problem != nil:
		return *lss.problem
	}
	var bad []string
	valid := 0
	for _, ls := range lss.listeners {
		v := ls.validity()
		if ls.conflict != nil {
			// A conflicted listener serves nothing: the set's
			// conformance tests count it as not valid.
			v.ok = false
		}
		if !v.ok {
			bad = append(bad, fmt.Sprintf("listener %q: %s", ls.name, v.msg))
		} else {
			valid++
		}
	}
	switch {
	case len(bad) == 0:
		return yes(string(gwv1.ListenerSetReasonAccepted), "ListenerSet is accepted")
	case valid > 0:
		return yes(string(gwv1.ListenerSetReasonListenersNotValid), "some listeners are not valid: "+joinProblems(bad))
	}
	return no(string(gwv1.ListenerSetReasonListenersNotValid), "no listener is valid: %s", joinProblems(bad))
}

// programmed reports the ListenerSet's Programmed condition: true when
// at least one of its listeners is served.
func (lss *listenerSetState) programmed(problems map[input.Key]string) verdict {
	if a := lss.accepted(); !a.ok {
		return no(a.reason, "ListenerSet is not accepted: %s", a.msg)
	}
	if gp := lss.gw.programmed(problems); !gp.ok && gp.reason != string(gwv1.GatewayReasonInvalid) {
		// No address (yet), or not the one asked for: the Gateway's
		// reason says what the set waits for.
		return no(string(gwv1.ListenerSetReasonPending), "Gateway %s is not programmed: %s", lss.gw.key, gp.msg)
	}
	for _, ls := range lss.listeners {
		if ls.serving {
			return yes(string(gwv1.ListenerSetReasonProgrammed), "ListenerSet is programmed")
		}
	}
	return no(string(gwv1.ListenerSetReasonInvalid), "no listener of the ListenerSet can be programmed")
}

func (lss *listenerSetState) status(problems map[input.Key]string) gwv1.ListenerSetStatus {
	gen := lss.obj.Generation
	st := gwv1.ListenerSetStatus{Conditions: []metav1.Condition{
		lss.accepted().condition(string(gwv1.ListenerSetConditionAccepted), gen),
		lss.programmed(problems).condition(string(gwv1.ListenerSetConditionProgrammed), gen),
	}}
	for _, ls := range lss.listeners {
		s := ls.status()
		st.Listeners = append(st.Listeners, gwv1.ListenerEntryStatus{
			Name: s.Name, SupportedKinds: s.SupportedKinds, AttachedRoutes: s.AttachedRoutes, Conditions: s.Conditions,
		})
	}
	return st
}

// ListenerSetStatus is the status of one ListenerSet whose parent is one
// of our Gateways.
type ListenerSetStatus struct {
	Key    input.Key              `json:"key"`
	Status gwv1.ListenerSetStatus `json:"status"`
}

// attachedListenerSets counts the Gateway's attached ListenerSets.
func (gs *gatewayState) attachedListenerSets() int32 {
	var n int32
	for _, lss := range gs.sets {
		if lss.attached() {
			n++
		}
	}
	return n
}
