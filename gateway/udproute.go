package gateway

import (
	"iter"
	"sort"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/nodemesh/nodemesh/mesh/input"
	"github.com/nodemesh/nodemesh/mesh/ir"
)

// UDPRoute: like TCPRoute (l4route.go), its one rule lists backendRefs,
// and a UDP listener relays every client's datagrams to the backends of
// its oldest attached route. Backends are Service ports of protocol UDP
// (others are UnsupportedProtocol), each a UDP cluster
// service/<ns>/<name>/<port>/udp. The proxy routes a UDP listener to one
// cluster, so one backend is its cluster and several become one cluster
// of the route, udproute/<ns>/<name>, holding every backend's ready
// endpoints with weights in proportion to the backendRef weights (a
// backend's weight divided evenly among its endpoints). An unresolved
// backendRef, or one without ready endpoints, takes no datagrams: UDP has
// no way to refuse them that a client would see. When the oldest route has
// no backend with ready endpoints the listener takes none at all; the
// next route does not stand in, since only the oldest route is bound
// (both still report Accepted=True, as v1.6.3's conformance requires).

var udpRouteKind = routeKind{
	group:           gwv1.GroupName,
	kind:            "UDPRoute",
	plural:          "UDPRoutes",
	namePrefix:      "udproute",
	protocols:       []gwv1.ProtocolType{gwv1.UDPProtocolType},
	backendProtocol: ir.ProtocolUDP,
	routes: func(in *input.Snapshot) iter.Seq[route] {
		return func(yield func(route) bool) {
			for _, r := range in.UDPRoutes {
				if !yield(udpRoute{r}) {
					return
				}
			}
		}
	},
}

type udpRoute struct{ obj *gwv1.UDPRoute }

func (r udpRoute) meta() *metav1.ObjectMeta           { return &r.obj.ObjectMeta }
func (r udpRoute) parentRefs() []gwv1.ParentReference { return r.obj.Spec.ParentRefs }
func (r udpRoute) hostnames() []gwv1.Hostname         { return nil }
func (r udpRoute) hash(in *input.Snapshot) input.Hash { return input.ObjectHash(in, r.obj) }
func (r udpRoute) compileRules(t *translator, rs *routeState) {
	refs := make([][]gwv1.BackendRef, len(r.obj.Spec.Rules))
	for i := range r.obj.Spec.Rules {
		refs[i] = r.obj.Spec.Rules[i].BackendRefs
	}
	t.compileL4Rules(rs, refs)
}

// maxUDPWeight bounds an endpoint weight of a combined cluster.
const maxUDPWeight = 1 << 16

// udpProxy returns the UDP proxy of a UDP listener, or nil when no
// attached route has a backend to send to.
func (b *builder) udpProxy(ls *listenerState) *ir.UDPProxy {
	var all []*routeState
	for _, rs := range ls.entries {
		all = append(all, rs...)
	}
	for _, rs := range oldestRoute(all) {
		backends := b.l4Backends(rs)
		if backends == nil {
			continue // no valid rule: not bound, the next route is
		}
		// The oldest route with a valid rule is the bound one, even with
		// no live backend: a newer route must not take its datagrams.
		var live []*ir.WeightedBackend
		for _, be := range backends {
			if be.Cluster != "" && be.Weight > 0 && readyEndpoints(b.clusters[be.Cluster]) > 0 {
				live = append(live, be)
			}
		}
		switch len(live) {
		case 0:
			return nil
		case 1:
			return &ir.UDPProxy{Cluster: live[0].Cluster}
		}
		cl := b.combinedUDPCluster(rs, live)
		b.clusters[cl.Name] = cl
		b.l4Clusters = append(b.l4Clusters, cl)
		return &ir.UDPProxy{Cluster: cl.Name}
	}
	return nil
}

func readyEndpoints(cl *ir.Cluster) int {
	n := 0
	if cl != nil {
		for _, ep := range cl.Endpoints {
			if ep.Ready {
				n++
			}
		}
	}
	return n
}

// combinedUDPCluster is the one cluster of a route with several live
// backends: each backend's ready endpoints share its weight. Weights are
// scaled by the least common multiple of the endpoint counts so the
// division is exact, and scaled down again if that exceeds
// maxUDPWeight (keeping every weight at least 1).
func (b *builder) combinedUDPCluster(rs *routeState, live []*ir.WeightedBackend) *ir.Cluster {
	lcm := uint64(1)
	for _, be := range live {
		n := uint64(readyEndpoints(b.clusters[be.Cluster]))
		lcm = lcm / gcd(lcm, n) * n
		if lcm > maxUDPWeight {
			lcm = maxUDPWeight
		}
	}
	cl := &ir.Cluster{Name: combinedUDPClusterName(rs.key), Protocol: ir.ProtocolUDP, LBPolicy: ir.LBRoundRobin}
	var top uint64
	type weighted struct {
		ep ir.Endpoint
		w  uint64
	}
	var eps []weighted
	for _, be := range live {
		src := b.clusters[be.Cluster]
		n := uint64(readyEndpoints(src))
		for _, ep := range src.Endpoints {
			if !ep.Ready {
				continue
			}
			w := max(uint64(be.Weight)*lcm/n, 1)
			top = max(top, w)
			eps = append(eps, weighted{ep, w})
		}
	}
	for _, e := range eps {
		w := e.w
		if top > maxUDPWeight {
			w = max(w*maxUDPWeight/top, 1)
		}
		e.ep.Weight = uint32(w)
		cl.Endpoints = append(cl.Endpoints, e.ep)
	}
	sort.SliceStable(cl.Endpoints, func(i, j int) bool {
		a, c := cl.Endpoints[i], cl.Endpoints[j]
		if a.Address != c.Address {
			return a.Address < c.Address
		}
		return a.Port < c.Port
	})
	return cl
}

func gcd(a, b uint64) uint64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}
