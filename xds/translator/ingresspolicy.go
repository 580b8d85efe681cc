package translator

import (
	"crypto/sha256"
	"encoding/json"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	rbacfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	netrbacv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"

	"github.com/nodemesh/nodemesh/mesh/ir"
)

// The policy of the node's ingress endpoint (ir.IngressPolicy) is enforced
// on the listeners built from Gateways and Ingresses (see doc.go, "Ingress
// endpoint policy").

// ingressDenyAllPolicy names the RBAC policy of a closed direction: it
// never matches, so the ALLOW filter denies every request.
const ingressDenyAllPolicy = "ingress-policy/deny-all"

// ingressEnforced reports whether world → ingress is checked.
func (b *builder) ingressEnforced() bool {
	return b.cfg.IngressPolicy != nil && b.cfg.IngressPolicy.Ingress.Enforced
}

// egressEnforced reports whether ingress → backend is checked.
func (b *builder) egressEnforced() bool {
	return b.cfg.IngressPolicy != nil && b.cfg.IngressPolicy.Egress.Enforced
}

// ingressPolicyHash is a content hash of the ingress policy, mixed into
// the memo keys of what depends on it; zero for none.
func ingressPolicyHash(p *ir.IngressPolicy) ir.Hash {
	var h ir.Hash
	if p == nil {
		return h
	}
	data, _ := json.Marshal(p) // plain data: cannot fail
	sum := sha256.Sum256(data)
	copy(h[:], sum[:])
	return h
}

func mixHash(a, b ir.Hash) ir.Hash {
	sum := sha256.Sum256(append(a[:], b[:]...))
	var h ir.Hash
	copy(h[:], sum[:])
	return h
}

// ingressRules are the world → ingress rules of a chain on a listener
// bound to port: ALLOW, with one policy that admits a downstream peer
// address (direct_remote_ip: the connection's peer, never
// x-forwarded-for) that some allow rule for TCP on port admits and no
// deny rule does. A closed direction gets a policy that never matches.
func ingressRules(d *ir.IngressDirection, port uint32) *rbacv3.RBAC {
	var allow, deny []*rbacv3.Principal
	if !d.DenyAll {
		for _, r := range d.Allow {
			if ingressRuleApplies(r, port) {
				allow = append(allow, peerPrincipal(r.Peers))
			}
		}
		for _, r := range d.Deny {
			if ingressRuleApplies(r, port) {
				deny = append(deny, peerPrincipal(r.Peers))
			}
		}
	}
	name, principal := "ingress-policy/allow", anyPrincipal(allow)
	if len(allow) == 0 {
		name, principal = ingressDenyAllPolicy, &rbacv3.Principal{Identifier: &rbacv3.Principal_NotId{NotId: &rbacv3.Principal{Identifier: &rbacv3.Principal_Any{Any: true}}}}
	} else if len(deny) > 0 {
		principal = &rbacv3.Principal{Identifier: &rbacv3.Principal_AndIds{AndIds: &rbacv3.Principal_Set{Ids: []*rbacv3.Principal{
			principal, {Identifier: &rbacv3.Principal_NotId{NotId: anyPrincipal(deny)}},
		}}}}
	}
	return &rbacv3.RBAC{Action: rbacv3.RBAC_ALLOW, Policies: map[string]*rbacv3.Policy{
		name: {Permissions: []*rbacv3.Permission{{Rule: &rbacv3.Permission_Any{Any: true}}}, Principals: []*rbacv3.Principal{principal}},
	}}
}

// ingressRBACFilter is the world → ingress check of an HTTP chain: the
// HTTP RBAC filter with ingressRules. A denied request is answered 403,
// as Cilium's proxy does.
func ingressRBACFilter(listener string, d *ir.IngressDirection, port uint32) (httpFilter, error) {
	tc, err := typedConfig("listener", listener, &rbacfilterv3.RBAC{Rules: ingressRules(d, port)})
	if err != nil {
		return httpFilter{}, err
	}
	return httpFilter{role: roleRBAC, filter: &hcmv3.HttpFilter{Name: filterRBAC, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: tc}}}, nil
}

// ingressNetworkRBACFilter is the world → ingress check of a TCP chain
// (TLS passthrough or terminated TLSRoute, TCPRoute): the network RBAC
// filter with ingressRules, placed before tcp_proxy. It judges each
// connection once, by its peer address, before anything is dialled; a
// denied connection is closed (there is no request to answer 403). Its
// statistics share the chain's tcp_proxy prefix.
func ingressNetworkRBACFilter(listener, statPrefix string, d *ir.IngressDirection, port uint32) (*listenerv3.Filter, error) {
	tc, err := typedConfig("listener", listener, &netrbacv3.RBAC{StatPrefix: statPrefix, Rules: ingressRules(d, port)})
	if err != nil {
		return nil, err
	}
	return &listenerv3.Filter{Name: filterNetworkRBAC, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: tc}}, nil
}

func ingressRuleApplies(r *ir.IngressRule, port uint32) bool {
	return (r.Protocol == ir.IngressProtoAny || r.Protocol == ir.IngressProtoTCP) && (r.Port == 0 || r.Port == port)
}

// backendAllowed reports whether ingress → backend admits an endpoint of a
// cluster of the protocol.
func (b *builder) backendAllowed(c *ir.Cluster, addr netip.Addr, port uint32) bool {
	if !b.egressEnforced() {
		return true
	}
	proto := ir.IngressProtoTCP
	if c.Protocol == ir.ProtocolUDP {
		proto = ir.IngressProtoUDP
	}
	return b.cfg.IngressPolicy.Egress.Allows(addr, proto, port)
}

// ingressSaltBase is mixed into the memo keys of routes built for Gateway
// and Ingress listeners while ingress → backend is enforced: they name the
// filtered variants, so they never share a built route with the others.
var ingressSaltBase = func() ir.Hash {
	var h ir.Hash
	copy(h[:], "ingress-policy/via-ingress")
	return h
}()

// viaIngressSalt is ingressSaltBase, mixed with the names of the denied
// clusters when there are any: a route to a denied cluster answers 403
// instead of forwarding (backend.go), so every ingress route is rebuilt
// when a cluster becomes denied or admitted again, and only then.
func (b *builder) viaIngressSalt(denied map[string]bool) ir.Hash {
	if len(denied) == 0 {
		return ingressSaltBase
	}
	names := make([]string, 0, len(denied))
	for n := range denied {
		names = append(names, n)
	}
	slices.Sort(names)
	v := b.ver.start("denied clusters").hash(ingressSaltBase)
	for _, n := range names {
		v.str(n)
	}
	return v.sum()
}

// deniedByIngress reports whether ingress → backend denies every endpoint
// of every backend in valid (indexes into r.Backends), while building the
// routes of an ingress listener. Such a route answers 403, as Cilium's
// proxy answers a request its egress policy denies; a backend without
// endpoints is not denied (it answers 503, as without a policy).
func (b *builder) deniedByIngress(r *ir.Route, valid []int) bool {
	if !b.viaIngress || len(b.denied) == 0 {
		return false
	}
	for _, i := range valid {
		if !b.denied[r.Backends[i].Cluster] {
			return false
		}
	}
	return true
}

// isIngressListener reports whether the clients of an IR listener are
// outside the mesh: every listener of Config.Listeners but the GAMMA ones
// (ir.MeshNamePrefix), whose clients are Pods.
func isIngressListener(l *ir.Listener) bool {
	return !strings.HasPrefix(l.Name, ir.MeshNamePrefix)
}

// viaIngressNamesOf names the filtered variant of every cluster, distinct
// from every other emitted cluster name.
func viaIngressNamesOf(clusters []*ir.Cluster, names map[string]string, invalid string) map[string]string {
	emitted := make(map[string]bool, len(names)+1)
	for _, n := range names {
		emitted[n] = true
	}
	emitted[invalid] = true
	out := make(map[string]string, len(clusters))
	for _, c := range clusters {
		base := names[c.Name] + viaIngressSuffix
		n := base
		for i := 1; emitted[n]; i++ {
			n = base + "~" + strconv.Itoa(i)
		}
		emitted[n] = true
		out[c.Name] = n
	}
	return out
}

// enterListener prepares the builder for the chains and routes of l: the
// routes of an ingress listener name the filtered cluster variants while
// ingress → backend is enforced. The returned func restores the builder.
func (b *builder) enterListener(l *ir.Listener) func() {
	if !b.egressEnforced() || !isIngressListener(l) {
		return func() {}
	}
	names, actions, last := b.clusterNames, b.actions, b.lastAction
	// lastAction is an entry of the actions map in use: it starts empty
	// with the other map, and comes back with this one.
	b.clusterNames, b.actions, b.lastAction, b.viaIngress = b.viaIngressNames, b.ingressActions, actionFrom{}, true
	return func() {
		b.ingressActions = b.actions
		b.clusterNames, b.actions, b.lastAction, b.viaIngress = names, actions, last, false
	}
}

// viaIngressCluster builds the filtered variant of cluster c into m: the
// same settings under its own name, and a load assignment without the
// endpoints the ingress endpoint's egress denies. The Cluster is reused
// from prev while its settings and name are unchanged.
func (b *builder) viaIngressCluster(c *ir.Cluster, m, prev *clusterMemo) error {
	name := b.viaIngressNames[c.Name]
	if prev != nil && prev.via != nil && prev.settings == m.settings && prev.via.GetName() == name {
		m.via, m.viaVersion = prev.via, prev.viaVersion
	} else {
		out, err := b.buildCluster(c, name)
		if err != nil {
			return err
		}
		m.via, m.viaVersion = out, versionString(b.ver.start("cluster").hash(m.settings).str(name).sum())
	}
	cla, err := b.loadAssignment(c, name, true)
	if err != nil {
		return err
	}
	m.viaCLA, m.viaCLAVersion = cla, versionString(b.ver.start("cluster load assignment").hash(m.endpoints).str(name).sum())
	m.denied = len(m.cla.GetEndpoints()) > 0 && len(cla.GetEndpoints()) == 0
	return nil
}
