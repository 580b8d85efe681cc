package gateway

import (
	"bytes"
	"slices"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/nodemesh/nodemesh/mesh/input"
	"github.com/nodemesh/nodemesh/mesh/ir"
)

// tlsALPN is what HTTPS chains offer, in preference order.
var tlsALPN = []string{"h2", "http/1.1"}

// buildConfig assembles the IR from the serving listeners and the routes
// attached to them. An IR listener is one (Gateway address, port): the
// HTTP listeners of a port share one plaintext chain and route table; each
// HTTPS listener of a port is its own TLS chain, chosen by SNI, with its own
// route table. Only clusters and secrets that some emitted route or chain
// uses are included.
func (t *translator) buildConfig() *ir.Config {
	b := &builder{t: t, clusters: map[string]*ir.Cluster{}, secrets: map[string]*ir.Secret{}}
	cfg := &ir.Config{}
	for _, gs := range t.gatewayOrder {
		b.cert = gs.backendCert
		if k := gs.backendCert; k != nil {
			// Emitted only when a TLS cluster of its routes presents it.
			name := secretName(*k)
			if b.secrets[name] == nil {
				b.secrets[name] = t.secret(name, *k)
			}
		}
		byPort := map[int32][]*listenerState{}
		var ports []int32
		for _, ls := range gs.listeners {
			if !ls.serving {
				continue
			}
			if byPort[ls.port] == nil {
				ports = append(ports, ls.port)
			}
			byPort[ls.port] = append(byPort[ls.port], ls)
		}
		sort.Slice(ports, func(i, j int) bool { return ports[i] < ports[j] })
		for _, port := range ports {
			group := byPort[port]
			l := &ir.Listener{Name: listenerName(gs.key, port), Address: gs.addr.String(), Port: uint32(port)}
			switch group[0].protocol {
			case gwv1.HTTPProtocolType:
				rt, cors := b.table(plainTableName(gs.key, port), group, nil, port)
				l.Chains = []*ir.HTTPChain{{Name: plainChainName, Routes: rt, CORS: cors}}
			case gwv1.HTTPSProtocolType:
				for _, ls := range group {
					l.Chains = append(l.Chains, b.tlsChain(ls, group, port))
				}
			case gwv1.TLSProtocolType:
				for _, ls := range group {
					l.TCPChains = append(l.TCPChains, b.passthroughChains(ls)...)
				}
			case gwv1.TCPProtocolType:
				l.TCPChains = b.tcpChain(group[0])
			case gwv1.UDPProtocolType:
				l.UDP = b.udpProxy(group[0])
			}
			if len(l.Chains)+len(l.TCPChains) == 0 && l.UDP == nil {
				continue // an L4 listener without routes: nothing to relay to
			}
			cfg.Listeners = append(cfg.Listeners, l)
		}
	}
	if t.next != nil {
		cfg.Clusters = withL4Clusters(t.clusterList(), b.l4Clusters)
	} else {
		cfg.Clusters = make([]*ir.Cluster, 0, len(b.clusters))
		for _, cl := range b.clusters {
			cfg.Clusters = append(cfg.Clusters, cl)
		}
		sort.Slice(cfg.Clusters, func(i, j int) bool { return cfg.Clusters[i].Name < cfg.Clusters[j].Name })
	}
	for _, s := range b.secrets {
		cfg.Secrets = append(cfg.Secrets, s)
	}
	sort.Slice(cfg.Listeners, func(i, j int) bool { return cfg.Listeners[i].Name < cfg.Listeners[j].Name })
	sort.Slice(cfg.Secrets, func(i, j int) bool { return cfg.Secrets[i].Name < cfg.Secrets[j].Name })
	return cfg
}

// clusterList lists the clusters the virtual hosts of this translation
// use, sorted by name. The Translator counts, per cluster, the virtual
// hosts using it and updates the counts only for the virtual hosts that
// changed, so the list of the previous translation is reused while no
// cluster came or went; Translate collects them afresh instead.
func (t *translator) clusterList() []*ir.Cluster {
	prev, next := t.prev, t.next
	if prev == nil || !t.sameWorld {
		// Cluster objects are not those of the previous translation.
		next.clusterRefs = map[*ir.Cluster]int{}
		for _, vm := range next.vhosts {
			for _, cl := range vm.clusters {
				next.clusterRefs[cl]++
			}
		}
		return next.sortedClusters()
	}
	// The previous translation's memo is not used after this one; its
	// counts become this one's.
	refs, changed := prev.clusterRefs, false
	for name, vm := range prev.vhosts {
		if next.vhosts[name] != vm {
			for _, cl := range vm.clusters {
				if refs[cl]--; refs[cl] == 0 {
					delete(refs, cl)
					changed = true
				}
			}
		}
	}
	for name, vm := range next.vhosts {
		if prev.vhosts[name] != vm {
			for _, cl := range vm.clusters {
				if refs[cl]++; refs[cl] == 1 {
					changed = true
				}
			}
		}
	}
	next.clusterRefs = refs
	if !changed {
		next.clusterSorted = prev.clusterSorted
		return slices.Clone(prev.clusterSorted)
	}
	return next.sortedClusters()
}

func (m *memo) sortedClusters() []*ir.Cluster {
	out := make([]*ir.Cluster, 0, len(m.clusterRefs))
	for cl := range m.clusterRefs {
		out = append(out, cl)
	}
	slices.SortFunc(out, func(a, b *ir.Cluster) int { return strings.Compare(a.Name, b.Name) })
	m.clusterSorted = out
	return slices.Clone(out)
}

type builder struct {
	t        *translator
	clusters map[string]*ir.Cluster
	secrets  map[string]*ir.Secret
	// mark numbers virtual hosts, so each route is visited once per host.
	mark int
	// l4Clusters are the clusters TCP chains use, which the Translator's
	// per-virtual-host cluster counts do not see.
	l4Clusters []*ir.Cluster
	// ordered holds, by domain, the routes last put in precedence order
	// for a virtual host of that domain.
	ordered map[string]*ordered
	// cert is the backend client certificate of the Gateway being built.
	cert *input.Key
}

// ordered is the routes gathered for a domain, in precedence order. The
// route tables of several listeners (a Gateway's HTTP and HTTPS listeners,
// commonly) often gather the very same routes for a domain: the second
// takes the order the first computed.
type ordered struct {
	refs     []routeRef
	items    []item
	clusters []*ir.Cluster // distinctClusters(items), once needed
}

// tlsChain builds the chain of an HTTPS listener; group holds every
// serving HTTPS listener of its port, whose hosts the chain answers 421
// (see table).
func (b *builder) tlsChain(ls *listenerState, group []*listenerState, port int32) *ir.HTTPChain {
	ch := &ir.HTTPChain{Name: tlsChainName(ls.chain)}
	ch.Routes, ch.CORS = b.table(tlsTableName(ls.gw.key, port, ls.chain), []*listenerState{ls}, group, port)
	if ls.hostname != "" {
		ch.ServerNames = []string{ls.hostname}
	}
	ch.TLS = b.listenerCerts(ls)
	ch.TLS.ALPN = append([]string(nil), tlsALPN...)
	return ch
}

// listenerCerts is the TLS a listener terminates with: its certificates
// (added to the configuration's secrets) and client validation.
func (b *builder) listenerCerts(ls *listenerState) *ir.TLS {
	t := &ir.TLS{ClientCA: ls.clientCA, AllowUnverifiedClients: ls.insecureFallback}
	for _, k := range ls.certs {
		name := secretName(k)
		if contains(t.Certificates, name) {
			continue
		}
		t.Certificates = append(t.Certificates, name)
		if b.secrets[name] == nil {
			b.secrets[name] = b.t.secret(name, k)
		}
	}
	return t
}

// usesCORS reports whether a route of the table carries a CORS policy: its
// chain then runs the CORS filter. Chains without one leave it out, so
// their connection managers stay as they were before CORS existed.
func usesCORS(rt *ir.RouteTable) bool {
	for _, vh := range rt.VirtualHosts {
		if vhostCORS(vh) {
			return true
		}
	}
	return false
}

// vhostCORS reports whether a route of the virtual host carries a CORS
// policy. A Translator remembers the answer with the virtual host
// (vhostMemo.cors), so a table of unchanged virtual hosts is not read
// route by route again.
func vhostCORS(vh *ir.VirtualHost) bool {
	for _, r := range vh.Routes {
		if r.CORS != nil {
			return true
		}
	}
	return false
}

// secret returns the IR form of the TLS Secret k, made once per Secret
// while the objects routes and listeners read are unchanged (Translator).
func (t *translator) secret(name string, k input.Key) *ir.Secret {
	if out := t.secrets[k]; out != nil {
		return out
	}
	s := t.ix.secrets[k]
	out := &ir.Secret{
		Name:        name,
		Certificate: bytes.Clone(s.Data[corev1.TLSCertKey]),
		PrivateKey:  bytes.Clone(s.Data[corev1.TLSPrivateKeyKey]),
	}
	t.secrets[k] = out
	return out
}

// table builds the route table served by a set of listeners of one port,
// and reports whether a route of it carries a CORS policy (usesCORS).
// Its domains are the listeners' own hostnames ("*" for none) — so a
// listener without routes still answers 404 for its hosts instead of
// leaking them to a less specific listener — and every hostname routes are
// served on. Each domain belongs to the most specific listener covering it
// and holds that listener's routes whose hostname covers the domain.
//
// An HTTPS listener's table (tls, every serving HTTPS listener of the
// port; nil for plaintext tables) detects misdirected requests
// (GatewayHTTPSListenerDetectMisdirectedRequests): a client that reuses a
// connection whose SNI chose this listener for a host that belongs to
// another listener of the port (HTTP/2 connection coalescing) gets 421
// Misdirected Request, never this listener's routes nor 404. So the
// table also holds every other listener's hostname ("*" for one without),
// and "*" when this listener has a hostname; a domain whose most specific
// covering listener of the port is not this one answers 421.
func (b *builder) table(name string, listeners, tls []*listenerState, port int32) (*ir.RouteTable, bool) {
	seen := map[string]bool{}
	var domains []string
	add := func(d string) {
		if !seen[d] {
			seen[d] = true
			domains = append(domains, d)
		}
	}
	for _, ls := range listeners {
		if ls.hostname == "" {
			add(anyHost)
		} else {
			add(ls.hostname)
		}
		for h := range ls.entries {
			add(h)
		}
	}
	if tls != nil {
		for _, other := range tls {
			if other.hostname == "" {
				add(anyHost)
			} else {
				add(other.hostname)
			}
		}
		add(anyHost)
	}
	sort.Strings(domains)
	rt := &ir.RouteTable{Name: name, VirtualHosts: make([]*ir.VirtualHost, 0, len(domains))}
	cors := false
	for _, d := range domains {
		// The virtual host's name is made only when it is built anew.
		key := vhostKey{table: name, domain: d}
		if tls != nil && !slices.Contains(listeners, ownerAmong(tls, d)) {
			rt.VirtualHosts = append(rt.VirtualHosts, misdirected(virtualHostName(name, d), d))
			continue
		}
		if vm := b.cleanVirtualHost(key, port); vm != nil {
			rt.VirtualHosts = append(rt.VirtualHosts, vm.vh)
			cors = cors || vm.cors
			continue
		}
		var refs []routeRef
		if owner := ownerAmong(listeners, d); owner != nil {
			refs = b.gather(owner, d)
		}
		vh, vhCORS := b.virtualHost(key, refs, port)
		rt.VirtualHosts = append(rt.VirtualHosts, vh)
		cors = cors || vhCORS
	}
	return rt, cors
}

// misdirected is the virtual host answering 421 for a domain another
// HTTPS listener of the port owns.
func misdirected(name, d string) *ir.VirtualHost {
	return &ir.VirtualHost{Name: name, Domains: []string{d}, Routes: []*ir.Route{{
		Name: name + "/misdirected", DirectResponse: &ir.DirectResponse{Status: 421},
	}}}
}

// cleanVirtualHost returns the previous translation's virtual host for
// the table and domain of key when the listeners are the same and no
// hostname covering the domain has routes other than before: it would
// gather the very same routes.
func (b *builder) cleanVirtualHost(key vhostKey, port int32) *vhostMemo {
	t := b.t
	if !t.sameListeners {
		return nil
	}
	d := key.domain
	vm := t.prev.vhosts[key]
	if vm == nil || vm.port != port || !sameCert(vm.cert, b.cert) {
		return nil
	}
	clean := true
	if len(t.dirty) <= maxScannedDirty {
		// An edit dirties a hostname or two: each is checked against
		// the domain, rather than the domain's covering hostnames
		// made and looked up, for every virtual host.
		for h := range t.dirty {
			if covers(h, d) {
				clean = false
				break
			}
		}
	} else {
		coveringHostnames(d, func(h string) bool {
			clean = !t.dirty[h]
			return clean
		})
	}
	if !clean {
		return nil
	}
	// The Translator lists clusters from its virtual hosts (clusterList).
	t.next.vhosts[key] = vm
	return vm
}

// maxScannedDirty is the most dirty hostnames cleanVirtualHost scans.
const maxScannedDirty = 8

// vhostKey identifies a virtual host across translations: its route
// table's name and its domain (its name is made of both).
type vhostKey struct{ table, domain string }

// virtualHost returns the virtual host serving domain d with the gathered
// routes: the previous translation's, when it was built from the very same
// compiled routes, gathered in the same order through the same hostnames,
// on the same port (see Translator), or a new one; and whether a route of
// it carries a CORS policy.
func (b *builder) virtualHost(key vhostKey, refs []routeRef, port int32) (*ir.VirtualHost, bool) {
	d := key.domain
	if prev := b.t.prev; prev != nil {
		if vm := prev.vhosts[key]; vm != nil && vm.port == port && slices.Equal(vm.refs, refs) && sameCert(vm.cert, b.cert) {
			b.t.next.vhosts[key] = vm
			return vm.vh, vm.cors
		}
	}
	o := b.ordered[d]
	if o == nil || !slices.Equal(o.refs, refs) {
		o = &ordered{refs: refs, items: expand(refs)}
		b.t.itemSorter().sort(o.items)
		if b.ordered == nil {
			b.ordered = map[string]*ordered{}
		}
		b.ordered[d] = o
	}
	items := o.items
	vh := &ir.VirtualHost{Name: virtualHostName(key.table, d), Domains: []string{d}, Routes: make([]*ir.Route, len(items))}
	for i := range items {
		vh.Routes[i] = b.route(items[i].m, port)
	}
	cors := vhostCORS(vh)
	if b.t.next != nil {
		// The clusters depend on the Gateway's client certificate; the
		// shared order caches those of Gateways without one.
		clusters := o.clusters
		switch {
		case b.cert != nil:
			clusters = b.distinctClusters(items)
		case clusters == nil:
			o.clusters = b.distinctClusters(items)
			clusters = o.clusters
		}
		b.t.next.vhosts[key] = &vhostMemo{port: port, cert: b.cert, refs: refs, vh: vh, clusters: clusters, cors: cors}
	}
	return vh, cors
}

// distinctClusters lists the clusters the items' rules use, once each.
func (b *builder) distinctClusters(items []item) []*ir.Cluster {
	seen := map[*ir.Cluster]bool{}
	var out []*ir.Cluster
	for i := range items {
		if i > 0 && items[i].m.rule == items[i-1].m.rule {
			continue // the matches of a rule are often next to each other
		}
		for _, cl := range b.ruleClusters(items[i].m.rule, b.cert) {
			if !seen[cl] {
				seen[cl] = true
				out = append(out, cl)
			}
		}
	}
	return out
}

// ownerAmong returns the listener with the most specific hostname covering
// domain d.
func ownerAmong(listeners []*listenerState, d string) *listenerState {
	var best *listenerState
	for _, ls := range listeners {
		if listenerCovers(ls.hostname, d) && (best == nil || moreSpecific(ls.hostname, best.hostname)) {
			best = ls
		}
	}
	return best
}

// routeRef is a route gathered for a domain, with the route hostname it
// was gathered through.
type routeRef struct {
	rs        *routeState
	hostExact bool
	hostLen   int
}

// gather collects the owner's routes that serve domain d, each route once,
// through its most specific covering hostname.
func (b *builder) gather(owner *listenerState, d string) []routeRef {
	b.mark++
	var refs []routeRef
	coveringHostnames(d, func(h string) bool {
		exact, length := specificity(h)
		for _, rs := range owner.entries[h] {
			if rs.mark == b.mark {
				continue
			}
			rs.mark = b.mark
			refs = append(refs, routeRef{rs: rs, hostExact: exact, hostLen: length})
		}
		return true
	})
	return refs
}

// expand lists the matches of the valid rules of gathered routes.
func expand(refs []routeRef) []item {
	n := 0
	for _, r := range refs {
		for _, rule := range r.rs.rules {
			n += len(rule.matches)
		}
	}
	items := make([]item, 0, n)
	for _, r := range refs {
		for _, rule := range r.rs.rules {
			if !rule.valid() {
				continue
			}
			for _, m := range rule.matches {
				items = append(items, item{m: m, hostExact: r.hostExact, hostLen: r.hostLen})
			}
		}
	}
	return items
}

// route returns the IR route of a match on a listener port, creating it
// once per match (once per port for redirects that depend on the port).
func (b *builder) route(m *matchState, port int32) *ir.Route {
	rule := m.rule
	if b.t.next == nil {
		// Translate lists the clusters its routes use from here; a
		// Translator counts them per virtual host instead (clusterList),
		// and this map would be filled for nothing, once per route and
		// listener.
		for _, cl := range b.ruleClusters(rule, b.cert) {
			b.clusters[cl.Name] = cl
		}
	}
	if rd := rule.redirect; rd != nil && rd.portDependent() {
		if r := m.byPort[port]; r != nil {
			return r
		}
		if m.byPort == nil {
			m.byPort = map[int32]*ir.Route{}
		}
		r := newRoute(m, port)
		m.byPort[port] = r
		return r
	}
	if m.route == nil {
		m.route = rule.routeOf(m, port)
	}
	if b.cert != nil && usesTLS(rule) {
		return b.withClientCert(m, m.route, *b.cert)
	}
	return m.route
}

func sameCert(a, b *input.Key) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// routeOf is the IR route of a match that does not depend on the port,
// made once. The routes of a rule's matches come in one allocation: routes
// come by the thousand. Each element is written once, when its match first
// needs its route, and never again (IR objects never change once built).
func (r *ruleState) routeOf(m *matchState, port int32) *ir.Route {
	i := m.index
	if i < 0 || i >= len(r.matches) || r.matches[i] != m {
		// A rule whose match indexes are not positions (an Ingress
		// path is a rule of one match with the path's index).
		return newRoute(m, port)
	}
	if len(r.routes) == 0 {
		// The routes are named up front, those of every rule of the
		// route at once (nameRoutes); an element's name is all that is
		// set before its match needs it. A rule its route does not list
		// (an Ingress path's) is named on its own.
		nameRoutes(r.route, r.route.rules)
		if len(r.routes) == 0 {
			nameRoutes(r.route, []*ruleState{r})
		}
	}
	out := &r.routes[i]
	fillRoute(out, out.Name, m, port)
	return out
}

// newRoute is the IR route of a match. The routes of one rule hold the
// rule's own objects (backends, header modifiers, CORS, retry, mirrors,
// rewrite), not copies: xds/translator builds one action for routes
// holding the same objects.
func newRoute(m *matchState, port int32) *ir.Route {
	r := new(ir.Route)
	fillRoute(r, routeName(m.rule.route.kind, m.rule.route.key, m.rule.index, m.index), m, port)
	return r
}

// fillRoute sets r (zero, or holding only its name) to the IR route of a
// match, named name.
func fillRoute(r *ir.Route, name string, m *matchState, port int32) {
	rule := m.rule
	*r = ir.Route{
		Name:            name,
		Match:           m.match,
		RequestHeaders:  rule.reqHeaders,
		ResponseHeaders: rule.respHeaders,
		Timeout:         rule.timeout,
		BackendTimeout:  rule.backendTimeout,
		CORS:            rule.cors,
	}
	switch {
	case rule.redirect != nil:
		r.Redirect = rule.redirect.ir(port)
	case len(rule.backends) > 0:
		r.Backends = rule.backends
		r.Rewrite = rule.rewrite
		r.Retry = rule.retry
		r.Mirrors = rule.mirrors
	default:
		// No backendRefs: the API requires a 500 for every request.
		r.DirectResponse = &ir.DirectResponse{Status: 500}
	}
}
