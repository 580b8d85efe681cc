package gateway

import (
	"iter"
	"slices"
	"sort"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/nodemesh/nodemesh/mesh/input"
	"github.com/nodemesh/nodemesh/mesh/ir"
)

// TLSRoute and TCPRoute: routes that relay connections instead of
// terminating HTTP. Their one rule is a list of backendRefs; compiled into
// the kind-neutral ruleState without matches, they attach, resolve and
// report status as every kind does, and the build turns them into IR TCP
// chains instead of virtual hosts:
//   - a TLS listener gets one chain per hostname its routes serve on,
//     selected by that SNI name (a route without hostnames on a listener
//     without one: the catch-all chain), relaying to the backends of the
//     oldest route serving that hostname (creation time, then
//     namespace/name), split by weight. With tls.mode Passthrough the TLS
//     bytes go to the backend untouched; with Terminate (the API's
//     default) the chain terminates TLS with the listener's
//     certificateRefs (resolved and reported as an HTTPS listener's are,
//     client certificate validation from spec.tls.frontend included) and
//     relays the decrypted bytes. Passthrough and Terminate listeners may
//     share a port (Gateway API's Mixed mode): their chains are told apart
//     by SNI;
//   - a TCP listener gets one chain taking every connection, to the
//     backends of its oldest attached route.
// Backends are TCP clusters (service/<ns>/<name>/<port>/tcp, whatever the
// port's appProtocol). An unresolved backendRef keeps its weight, so its
// share of connections is closed. A TLS and an HTTPS listener on one port
// are a ProtocolConflict, as any two protocols on one port are.
// Routes that share a listener (or, on TLS, an SNI name) with an older one
// are not bound — no traffic reaches their backends — yet report
// Accepted=True and count in attachedRoutes: Gateway API v1.6.3 defines
// no route Conflicted condition, and its conformance tests
// (TCPRouteMultipleRoutesAttachment, UDPRouteMultipleRoutesAttachment)
// require exactly that status.

var tlsRouteKind = routeKind{
	group:           gwv1.GroupName,
	kind:            "TLSRoute",
	plural:          "TLSRoutes",
	namePrefix:      "tlsroute",
	protocols:       []gwv1.ProtocolType{gwv1.TLSProtocolType},
	backendProtocol: ir.ProtocolTCP,
	routes: func(in *input.Snapshot) iter.Seq[route] {
		return func(yield func(route) bool) {
			for _, r := range in.TLSRoutes {
				if !yield(tlsRoute{r}) {
					return
				}
			}
		}
	},
}

var tcpRouteKind = routeKind{
	group:           gwv1.GroupName,
	kind:            "TCPRoute",
	plural:          "TCPRoutes",
	namePrefix:      "tcproute",
	protocols:       []gwv1.ProtocolType{gwv1.TCPProtocolType},
	backendProtocol: ir.ProtocolTCP,
	routes: func(in *input.Snapshot) iter.Seq[route] {
		return func(yield func(route) bool) {
			for _, r := range in.TCPRoutes {
				if !yield(tcpRoute{r}) {
					return
				}
			}
		}
	},
}

type tlsRoute struct{ obj *gwv1.TLSRoute }

func (r tlsRoute) meta() *metav1.ObjectMeta           { return &r.obj.ObjectMeta }
func (r tlsRoute) parentRefs() []gwv1.ParentReference { return r.obj.Spec.ParentRefs }
func (r tlsRoute) hostnames() []gwv1.Hostname         { return r.obj.Spec.Hostnames }
func (r tlsRoute) hash(in *input.Snapshot) input.Hash { return input.ObjectHash(in, r.obj) }
func (r tlsRoute) compileRules(t *translator, rs *routeState) {
	refs := make([][]gwv1.BackendRef, len(r.obj.Spec.Rules))
	for i := range r.obj.Spec.Rules {
		refs[i] = r.obj.Spec.Rules[i].BackendRefs
	}
	t.compileL4Rules(rs, refs)
}

type tcpRoute struct{ obj *gwv1.TCPRoute }

func (r tcpRoute) meta() *metav1.ObjectMeta           { return &r.obj.ObjectMeta }
func (r tcpRoute) parentRefs() []gwv1.ParentReference { return r.obj.Spec.ParentRefs }
func (r tcpRoute) hostnames() []gwv1.Hostname         { return nil }
func (r tcpRoute) hash(in *input.Snapshot) input.Hash { return input.ObjectHash(in, r.obj) }
func (r tcpRoute) compileRules(t *translator, rs *routeState) {
	refs := make([][]gwv1.BackendRef, len(r.obj.Spec.Rules))
	for i := range r.obj.Spec.Rules {
		refs[i] = r.obj.Spec.Rules[i].BackendRefs
	}
	t.compileL4Rules(rs, refs)
}

// compileL4Rules compiles the rules of a TLSRoute or TCPRoute: the API
// allows one, holding the backendRefs. A route without rules has no
// backends, so its connections are closed.
func (t *translator) compileL4Rules(rs *routeState, rules [][]gwv1.BackendRef) {
	if len(rules) == 0 {
		rules = [][]gwv1.BackendRef{nil}
	}
	rs.rules = make([]*ruleState, 0, len(rules))
	for i, refs := range rules {
		rule := &ruleState{route: rs, index: i}
		if i > 0 {
			rule.fail(gwv1.RouteReasonUnsupportedValue, "", "only one rule is supported")
		}
		for k := range refs {
			wb := weightedBackend(rule, k, refs[k].Weight, new(ir.WeightedBackend))
			if wb == nil {
				continue
			}
			t.resolveBackend(rule, k, wb, &refs[k].BackendObjectReference)
		}
		rs.rules = append(rs.rules, rule)
	}
}

// l4Backends returns the backends of the first valid rule of a route
// attached to an L4 listener, adding its clusters to the build.
func (b *builder) l4Backends(rs *routeState) []*ir.WeightedBackend {
	for _, rule := range rs.rules {
		if !rule.valid() {
			continue
		}
		for _, cl := range rule.clusters {
			b.clusters[cl.Name] = cl
			b.l4Clusters = append(b.l4Clusters, cl)
		}
		if len(rule.backends) == 0 {
			return []*ir.WeightedBackend{{Weight: 1}} // no backendRefs: close every connection
		}
		return rule.backends
	}
	return nil
}

// oldestRoute orders the routes serving one hostname: creation time, then
// namespace/name.
func oldestRoute(routes []*routeState) []*routeState {
	out := slices.Clone(routes)
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if !a.created.Equal(&b.created) {
			return a.created.Before(&b.created)
		}
		return keyLess(a.key, b.key)
	})
	return out
}

// passthroughChains builds the TCP chains of a TLS passthrough listener:
// one per hostname its routes serve on, in hostname order.
func (b *builder) passthroughChains(ls *listenerState) []*ir.TCPChain {
	hosts := make([]string, 0, len(ls.entries))
	for h := range ls.entries {
		hosts = append(hosts, h)
	}
	sort.Strings(hosts)
	var out []*ir.TCPChain
	for _, h := range hosts {
		for _, rs := range oldestRoute(ls.entries[h]) {
			backends := b.l4Backends(rs)
			if backends == nil {
				continue
			}
			ch := &ir.TCPChain{Name: passthroughChainName(ls.chain, h), Backends: backends}
			if h != anyHost {
				ch.ServerNames = []string{h}
			}
			if ls.terminate {
				ch.TLS = b.listenerCerts(ls)
			}
			out = append(out, ch)
			break
		}
	}
	return out
}

// tcpChain builds the one chain of a TCP listener.
func (b *builder) tcpChain(ls *listenerState) []*ir.TCPChain {
	var all []*routeState
	for _, rs := range ls.entries {
		all = append(all, rs...)
	}
	for _, rs := range oldestRoute(all) {
		if backends := b.l4Backends(rs); backends != nil {
			return []*ir.TCPChain{{Name: tcpChainName(ls.chain), Backends: backends}}
		}
	}
	return nil
}

// withL4Clusters adds the clusters of TCP chains to a cluster list built
// from virtual hosts (the Translator's), sorted by name.
func withL4Clusters(list []*ir.Cluster, l4 []*ir.Cluster) []*ir.Cluster {
	if len(l4) == 0 {
		return list
	}
	have := make(map[string]bool, len(list))
	for _, cl := range list {
		have[cl.Name] = true
	}
	out := slices.Clone(list)
	for _, cl := range l4 {
		if !have[cl.Name] {
			have[cl.Name] = true
			out = append(out, cl)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
