package gateway

import (
	"cmp"
	"hash/fnv"
	"net/netip"
	"slices"

	corev1 "k8s.io/api/core/v1"

	"github.com/nodemesh/nodemesh/mesh/ir"
)

// buildMesh adds to cfg one listener per Service port with accepted
// routes, and returns the redirects that send the port's connections
// there. A listener holds a producer chain (the producer routes, for
// every client) and one chain per namespace with consumer routes,
// selected by the addresses of that namespace's Pods. A chain's routes
// replace the Service's own behaviour (GEP-1294, "Route presence"): a
// request none of them matches gets a 404. Only a chain without routes
// (the producer chain of a port that has consumer routes only) keeps it,
// with the port's default route to the Service itself. Clusters the
// routes use are added to cfg.Clusters.
func (t *translator) buildMesh(b *builder, cfg *ir.Config) []MeshRedirect {
	mo := t.opts.Mesh
	if len(t.mesh) == 0 || !mo.ListenAddress.IsValid() {
		return nil
	}
	first, last := mo.FirstPort, mo.LastPort
	if first == 0 && last == 0 {
		first, last = DefaultMeshFirstPort, DefaultMeshLastPort
	}
	taken := map[netip.AddrPort]bool{}
	for ap := range mo.Taken {
		taken[ap] = true
	}
	for _, l := range cfg.Listeners {
		if a, err := netip.ParseAddr(l.Address); err == nil && l.UDP == nil {
			taken[netip.AddrPortFrom(a, uint16(l.Port))] = true
		}
	}
	keys := make([]meshPortKey, 0, len(t.mesh))
	for k := range t.mesh {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b meshPortKey) int {
		if a.svc != b.svc {
			if keyLess(a.svc, b.svc) {
				return -1
			}
			return 1
		}
		return cmp.Compare(a.port, b.port)
	})
	var clients map[string][]string
	clusters := map[string]*ir.Cluster{}
	var out []MeshRedirect
	for _, k := range keys {
		p := t.mesh[k]
		if len(p.consumers) > 0 && clients == nil {
			clients = podPrefixes(t.in.Pods)
		}
		name := meshListenerName(k.svc, k.port)
		var chains []*ir.HTTPChain
		for _, ns := range sortedKeys(p.consumers) {
			if len(clients[ns]) == 0 {
				continue // no client there: nothing to tell apart
			}
			chains = append(chains, &ir.HTTPChain{
				Name:           meshConsumerChainName(ns),
				SourcePrefixes: clients[ns],
				Routes:         t.meshTable(b, p, name, meshConsumerChainName(ns), p.consumers[ns], clusters),
			})
		}
		if len(chains) == 0 && len(p.producers) == 0 {
			continue // only consumer routes, and none of their clients exists
		}
		chains = append([]*ir.HTTPChain{{
			Name:   meshProducerChainName,
			Routes: t.meshTable(b, p, name, meshProducerChainName, p.producers, clusters),
		}}, chains...)
		for _, ch := range chains {
			ch.CORS = usesCORS(ch.Routes)
		}
		rd := MeshRedirect{Service: k.svc, Port: uint16(k.port)}
		bind, ok := meshPort16(name, mo.ListenAddress, first, last, taken)
		if !ok {
			rd.Refused = true
			out = append(out, rd)
			continue
		}
		rd.Listener, rd.Bind = name, bind
		// The clients are Pods of this node (the redirect happens in its
		// socket hooks), so replies to their addresses pass through it.
		cfg.Listeners = append(cfg.Listeners, &ir.Listener{Name: name, Address: bind.Addr().String(), Port: uint32(bind.Port()), Chains: chains,
			OriginalSourceMark: mo.OriginalSourceMark})
		out = append(out, rd)
	}
	var extra []*ir.Cluster
	for _, cl := range clusters {
		if _, found := slices.BinarySearchFunc(cfg.Clusters, cl.Name, func(c *ir.Cluster, n string) int { return cmp.Compare(c.Name, n) }); !found {
			extra = append(extra, cl)
		}
	}
	if len(extra) > 0 {
		// Clip: the list may be the previous translation's, shared.
		cfg.Clusters = append(slices.Clip(cfg.Clusters), extra...)
		slices.SortFunc(cfg.Clusters, func(a, b *ir.Cluster) int { return cmp.Compare(a.Name, b.Name) })
	}
	slices.SortFunc(cfg.Listeners, func(a, b *ir.Listener) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

// meshTable is one chain's route table: the routes' matches in the
// precedence every route table uses (hostnames play no part: the
// Service's cluster IP, not the Host header, selected the routes), or,
// for a chain without routes, the port's default route alone.
func (t *translator) meshTable(b *builder, p *meshPort, listener, chain string, routes []*routeState, clusters map[string]*ir.Cluster) *ir.RouteTable {
	name := listener + "/" + chain
	if len(routes) == 0 {
		vh := &ir.VirtualHost{Name: virtualHostName(name, anyHost), Domains: []string{anyHost}, Routes: []*ir.Route{t.meshDefault(p, listener, clusters)}}
		return &ir.RouteTable{Name: name, VirtualHosts: []*ir.VirtualHost{vh}}
	}
	port := p.key.port
	refs := make([]routeRef, len(routes))
	for i, rs := range routes {
		refs[i] = routeRef{rs: rs}
	}
	items := expand(refs)
	sortItems(items)
	vh := &ir.VirtualHost{Name: virtualHostName(name, anyHost), Domains: []string{anyHost}, Routes: make([]*ir.Route, 0, len(items))}
	for i := range items {
		for _, cl := range b.ruleClusters(items[i].m.rule, nil) {
			clusters[cl.Name] = cl
		}
		vh.Routes = append(vh.Routes, b.route(items[i].m, port))
	}
	return &ir.RouteTable{Name: name, VirtualHosts: []*ir.VirtualHost{vh}}
}

// meshDefault is the route of clients no route applies to (the producer
// chain of a port with consumer routes only): to the Service's own
// endpoints, without a timeout (the Service had none), as if the proxy
// were not there. Such a chain holds no GRPCRoute, so the port's own
// protocol (appProtocol or name) decides how it is spoken to.
func (t *translator) meshDefault(p *meshPort, listener string, clusters map[string]*ir.Cluster) *ir.Route {
	proto, _ := appProtocol(&p.sp, false) // notHTTP refused the others
	cl := t.cluster(p.key.svc, &p.sp, proto, nil)
	clusters[cl.Name] = cl
	return &ir.Route{Name: listener + "/default", Backends: []*ir.WeightedBackend{{Cluster: cl.Name, Weight: 1}}}
}

// meshPort16 picks the listener's port: the name's hash into the range,
// then the next free one, so a listener keeps its port while the ports
// before it come and go. false when the range is full.
func meshPort16(name string, addr netip.Addr, first, last uint16, taken map[netip.AddrPort]bool) (netip.AddrPort, bool) {
	if last < first {
		return netip.AddrPort{}, false
	}
	size := uint32(last) - uint32(first) + 1
	h := fnv.New32a()
	_, _ = h.Write([]byte(name))
	start := h.Sum32() % size
	for i := uint32(0); i < size; i++ {
		ap := netip.AddrPortFrom(addr, uint16(uint32(first)+(start+i)%size))
		if !taken[ap] {
			taken[ap] = true
			return ap, true
		}
	}
	return netip.AddrPort{}, false
}

// podPrefixes maps each namespace to the host prefixes (/32, /128) of its
// Pods' addresses, sorted. Pods on the host network (their address is
// the node's, shared with every such Pod) and Pods that ended (their
// address may already be another Pod's) are left out, as is an address
// two namespaces claim: such a client is nobody's consumer and gets the
// producer routes.
func podPrefixes(pods []*corev1.Pod) map[string][]string {
	owner := map[netip.Addr]string{}
	const ambiguous = "\x00"
	for _, p := range pods {
		if p == nil || p.Spec.HostNetwork || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		ips := []string{p.Status.PodIP}
		for _, ip := range p.Status.PodIPs {
			ips = append(ips, ip.IP)
		}
		for _, s := range ips {
			a, err := netip.ParseAddr(s)
			if err != nil || a.Zone() != "" {
				continue
			}
			a = a.Unmap()
			if o, seen := owner[a]; seen && o != p.Namespace {
				owner[a] = ambiguous
				continue
			}
			owner[a] = p.Namespace
		}
	}
	byNS := map[string][]netip.Addr{}
	for a, ns := range owner {
		if ns != ambiguous {
			byNS[ns] = append(byNS[ns], a)
		}
	}
	out := make(map[string][]string, len(byNS))
	for ns, addrs := range byNS {
		slices.SortFunc(addrs, netip.Addr.Compare)
		ps := make([]string, len(addrs))
		for i, a := range addrs {
			ps[i] = netip.PrefixFrom(a, a.BitLen()).String()
		}
		out[ns] = ps
	}
	return out
}
