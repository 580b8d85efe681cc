package gateway

import (
	"cmp"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/nodemesh/nodemesh/mesh/ir"
)

// Ingress listeners. A load balancer is the shared listener set (every
// shared Ingress) or one dedicated Ingress; each gets a plaintext listener
// on the HTTP port and, when some of its hosts have TLS, a TLS listener on
// the HTTPS port with one chain per certificate, selected by SNI.

// ingressLB is one address with its listener set and the Ingresses on it,
// oldest first (the older Ingress wins a conflict).
type ingressLB struct {
	name      string // IR name of the listener set, without the port
	addr      netip.Addr
	ingresses []*ingressState
	// httpPort and httpsPort are its listener ports; in host-network
	// mode they are one port, plain and TLS connections told apart by the
	// transport protocol.
	httpPort, httpsPort int32
}

// holder names the load balancer in messages about the ports it holds.
func (lb *ingressLB) holder() string {
	if len(lb.ingresses) == 1 && lb.ingresses[0].mode == LoadBalancerDedicated {
		return "Ingress " + lb.ingresses[0].key.String()
	}
	return "the shared Ingress listener (oldest Ingress " + lb.ingresses[0].key.String() + ")"
}

// processIngresses compiles every Ingress of our class.
func (t *translator) processIngresses() {
	for _, ing := range ownIngresses(&t.opts.Ingress, t.in) {
		t.ingresses = append(t.ingresses, t.compileIngress(ing))
	}
}

// ingressRoute is one path placed on a load balancer's HTTP table.
type ingressRoute struct {
	is   *ingressState
	host string // the path's host, anyHost for none
	m    *matchState
	// isDefault marks spec.defaultBackend, which ranks after every path.
	isDefault bool
}

// buildIngresses adds the Ingress listeners to cfg and settles each
// Ingress's status. binds holds the address:ports cfg's listeners use
// already.
func (t *translator) buildIngresses(cfg *ir.Config) []IngressStatus {
	if len(t.ingresses) == 0 {
		return nil
	}
	opts := &t.opts.Ingress
	httpPort, httpsPort := opts.ports()
	shared := &ingressLB{name: ir.IngressNamePrefix + "shared", addr: opts.SharedAddress, httpPort: httpPort, httpsPort: httpsPort}
	if opts.HostNetwork {
		shared.httpPort, shared.httpsPort = opts.sharedListenerPort(), opts.sharedListenerPort()
	}
	var lbs []*ingressLB
	order := slices.Clone(t.ingresses)
	slices.SortFunc(order, func(a, b *ingressState) int {
		if c := a.obj.CreationTimestamp.Compare(b.obj.CreationTimestamp.Time); c != 0 {
			return c
		}
		return cmp.Or(strings.Compare(a.key.Namespace, b.key.Namespace), strings.Compare(a.key.Name, b.key.Name))
	})
	for _, is := range order {
		if is.skip {
			continue
		}
		if is.mode == LoadBalancerShared {
			if len(shared.ingresses) == 0 {
				// The shared set is as old as its oldest Ingress, and
				// takes its place in the order of load balancers.
				lbs = append(lbs, shared)
			}
			shared.ingresses = append(shared.ingresses, is)
			continue
		}
		lb := &ingressLB{name: ir.IngressNamePrefix + is.key.Namespace + "/" + is.key.Name, addr: opts.Addresses[is.key], ingresses: []*ingressState{is},
			httpPort: httpPort, httpsPort: httpsPort}
		if opts.HostNetwork {
			lb.httpPort, lb.httpsPort = is.hostPort, is.hostPort
		}
		lbs = append(lbs, lb)
	}
	// binds names what holds each address and port: the older load
	// balancer keeps a contested one (they are taken oldest first), and
	// the listeners built before Ingresses (Gateways) keep theirs.
	binds := map[netip.AddrPort]string{}
	for _, l := range cfg.Listeners {
		if a, err := netip.ParseAddr(l.Address); err == nil {
			binds[netip.AddrPortFrom(a, uint16(l.Port))] = "listener " + l.Name
		}
	}
	clusters := map[string]*ir.Cluster{}
	for _, cl := range cfg.Clusters {
		clusters[cl.Name] = cl
	}
	secrets := map[string]*ir.Secret{}
	for _, s := range cfg.Secrets {
		secrets[s.Name] = s
	}
	for _, lb := range lbs {
		if !lb.addr.IsValid() {
			for _, is := range lb.ingresses {
				is.fail("no address is assigned to its load balancer (%s mode); it is not served", is.mode)
			}
			continue
		}
		var ports []int32
		if lb.hasHTTP() {
			ports = append(ports, lb.httpPort)
		}
		if lb.hasTLS() && !(lb.hasHTTP() && lb.httpsPort == lb.httpPort) {
			ports = append(ports, lb.httpsPort)
		}
		clash := false
		for _, p := range ports {
			if holder, taken := binds[netip.AddrPortFrom(lb.addr, uint16(p))]; taken {
				clash = true
				for _, is := range lb.ingresses {
					if opts.HostNetwork {
						is.fail("host-network port %d is already used by %s on the node address; it is not served", p, holder)
					} else {
						is.fail("address %s port %d is already used by %s; it is not served", lb.addr, p, holder)
					}
				}
			}
		}
		if clash {
			continue
		}
		for _, p := range ports {
			binds[netip.AddrPortFrom(lb.addr, uint16(p))] = lb.holder()
		}
		cfg.Listeners = append(cfg.Listeners, t.buildIngressLB(lb)...)
		for _, is := range lb.ingresses {
			is.addr = lb.addr
			for _, p := range is.paths {
				for _, cl := range p.m.rule.clusters {
					clusters[cl.Name] = cl
				}
			}
			if is.defaultRule != nil {
				for _, cl := range is.defaultRule.clusters {
					clusters[cl.Name] = cl
				}
			}
			for _, sn := range is.sni {
				for _, cl := range sn.rule.clusters {
					clusters[cl.Name] = cl
				}
			}
			for name, s := range is.certs {
				secrets[name] = s
			}
		}
	}
	cfg.Clusters = cfg.Clusters[:0]
	for _, cl := range clusters {
		cfg.Clusters = append(cfg.Clusters, cl)
	}
	cfg.Secrets = cfg.Secrets[:0]
	for _, s := range secrets {
		cfg.Secrets = append(cfg.Secrets, s)
	}
	sort.Slice(cfg.Clusters, func(i, j int) bool { return cfg.Clusters[i].Name < cfg.Clusters[j].Name })
	sort.Slice(cfg.Secrets, func(i, j int) bool { return cfg.Secrets[i].Name < cfg.Secrets[j].Name })
	sort.Slice(cfg.Listeners, func(i, j int) bool { return cfg.Listeners[i].Name < cfg.Listeners[j].Name })

	out := make([]IngressStatus, 0, len(t.ingresses))
	for _, is := range t.ingresses {
		st := IngressStatus{Key: is.key, Mode: is.mode, Problems: is.problems}
		if is.addr.IsValid() {
			st.Address, st.Served = is.addr.String(), true
		}
		out = append(out, st)
	}
	slices.SortFunc(out, func(a, b IngressStatus) int {
		return cmp.Or(strings.Compare(a.Key.Namespace, b.Key.Namespace), strings.Compare(a.Key.Name, b.Key.Name))
	})
	return out
}

func (lb *ingressLB) hasTLS() bool {
	for _, is := range lb.ingresses {
		if len(is.tls) > 0 || len(is.sni) > 0 {
			return true
		}
	}
	return false
}

// hasHTTP reports whether some Ingress of the load balancer serves HTTP:
// one with only TLS passthrough hosts has nothing on the plaintext port.
func (lb *ingressLB) hasHTTP() bool {
	for _, is := range lb.ingresses {
		if !is.passthrough {
			return true
		}
	}
	return false
}

// pathKey identifies what a path matches on one host: two Ingresses
// claiming the same one conflict.
type pathKey struct {
	host  string
	typ   ir.PathMatchType
	value string
}

// buildIngressLB settles conflicts among the load balancer's Ingresses and
// builds its listeners.
func (t *translator) buildIngressLB(lb *ingressLB) []*ir.Listener {
	httpPort, httpsPort := lb.httpPort, lb.httpsPort
	claimed := map[pathKey]*ingressState{}
	tlsHosts := map[string]string{} // host → secret
	tlsOwner := map[string]*ingressState{}
	passOwner := map[string]*ingressState{} // passthrough host → Ingress
	passRule := map[string]*ruleState{}
	byHost := map[string][]ingressRoute{}
	var hosts []string
	addHost := func(h string) {
		if _, ok := byHost[h]; !ok {
			byHost[h] = nil
			hosts = append(hosts, h)
		}
	}
	for _, is := range lb.ingresses {
		for _, p := range is.paths {
			host := cmp.Or(p.host, anyHost)
			k := pathKey{host, p.m.match.Path.Type, p.m.match.Path.Value}
			if other := claimed[k]; other != nil {
				if other == is {
					is.fail("%s: host %q path %q (%s) repeats an earlier path; it is not served", p.field, host, k.value, k.typ)
				} else {
					is.fail("%s: host %q path %q (%s) is already served by Ingress %s on the shared load balancer; it is not served", p.field, host, k.value, k.typ, other.key)
				}
				continue
			}
			claimed[k] = is
			addHost(host)
			byHost[host] = append(byHost[host], ingressRoute{is: is, host: host, m: p.m})
		}
		if is.defaultRule != nil {
			// The default backend serves the Ingress's own hosts after
			// its paths, and every host no Ingress names.
			own := []string{anyHost}
			for _, p := range is.paths {
				if h := cmp.Or(p.host, anyHost); !contains(own, h) {
					own = append(own, h)
				}
			}
			for _, h := range own {
				k := pathKey{h, "default", ""}
				if other := claimed[k]; other != nil {
					is.fail("spec.defaultBackend: host %q already has the default backend of Ingress %s on the shared load balancer; it is not served there", h, other.key)
					continue
				}
				claimed[k] = is
				addHost(h)
				byHost[h] = append(byHost[h], ingressRoute{is: is, host: h, m: is.defaultRule.matches[0], isDefault: true})
			}
		}
		for _, h := range sortedKeys(is.tls) {
			s := is.tls[h]
			if other := passOwner[h]; other != nil {
				is.fail("spec.tls: host %q is relayed with TLS passthrough by Ingress %s on the shared load balancer; it is not served over TLS here", h, other.key)
				continue
			}
			if other, ok := tlsHosts[h]; ok {
				if other != s {
					is.fail("spec.tls: host %q already has certificate %s from Ingress %s on the shared load balancer; %s is not used for it", h, strings.TrimPrefix(other, ir.SecretNamePrefix), tlsOwner[h].key, strings.TrimPrefix(s, ir.SecretNamePrefix))
				}
				continue
			}
			tlsHosts[h], tlsOwner[h] = s, is
		}
		// Passthrough hosts: one connection cannot be both relayed and
		// terminated, so an SNI name belongs to the older Ingress.
		for _, sn := range is.sni {
			if other := passOwner[sn.host]; other != nil {
				is.fail("%s: host %q is already relayed with TLS passthrough by Ingress %s on the shared load balancer; it is not served", sn.field, sn.host, other.key)
				continue
			}
			if other := tlsOwner[sn.host]; other != nil {
				is.fail("%s: host %q is already served with TLS termination by Ingress %s on the shared load balancer; it is not served", sn.field, sn.host, other.key)
				continue
			}
			passOwner[sn.host], passRule[sn.host] = is, sn.rule
		}
	}
	sort.Strings(hosts)

	var out []*ir.Listener
	if lb.hasHTTP() {
		out = append(out, t.ingressPlainListener(lb, httpPort, httpsPort, hosts, byHost))
	}
	if len(tlsHosts) == 0 && len(passOwner) == 0 {
		return out
	}
	httpsName := lb.name + "/" + strconv.Itoa(int(httpsPort))
	bySecret := map[string][]string{}
	for _, h := range sortedKeys(tlsHosts) {
		bySecret[tlsHosts[h]] = append(bySecret[tlsHosts[h]], h)
	}
	l := &ir.Listener{Name: httpsName, Address: lb.addr.String(), Port: uint32(httpsPort)}
	if len(out) == 1 && httpsPort == httpPort {
		// One port for both (host-network mode): the TLS chains join the
		// plaintext listener, told apart from its chain by the transport
		// protocol.
		l = out[0]
		l.PlainAndTLS = true
		out = nil
	}
	for _, s := range sortedKeys(bySecret) {
		chainName := "https/" + strings.TrimPrefix(s, ir.SecretNamePrefix)
		table := &ir.RouteTable{Name: httpsName + "/" + chainName}
		ch := &ir.HTTPChain{Name: chainName, TLS: &ir.TLS{Certificates: []string{s}, ALPN: slices.Clone(tlsALPN)}, Routes: table}
		for _, h := range bySecret[s] {
			if h != anyHost {
				ch.ServerNames = append(ch.ServerNames, h)
			}
			table.VirtualHosts = append(table.VirtualHosts, t.ingressVHost(table.Name, h, byHost, true, httpsPort))
		}
		l.Chains = append(l.Chains, ch)
	}
	for _, h := range sortedKeys(passOwner) {
		l.TCPChains = append(l.TCPChains, &ir.TCPChain{Name: passthroughChainName(httpsName, h), ServerNames: []string{h},
			Backends: passRule[h].backends})
	}
	return append(out, l)
}

// ingressPlainListener builds the plaintext listener of a load balancer.
func (t *translator) ingressPlainListener(lb *ingressLB, httpPort, httpsPort int32, hosts []string, byHost map[string][]ingressRoute) *ir.Listener {
	httpName := lb.name + "/" + strconv.Itoa(int(httpPort))
	plainTable := &ir.RouteTable{Name: httpName + "/" + plainChainName}
	domains := slices.Clone(hosts)
	if !contains(domains, anyHost) {
		// Hosts no Ingress names answer 404 rather than reach a more
		// general listener.
		domains = append(domains, anyHost)
		sort.Strings(domains)
	}
	for _, d := range domains {
		plainTable.VirtualHosts = append(plainTable.VirtualHosts, t.ingressVHost(plainTable.Name, d, byHost, false, httpsPort))
	}
	return &ir.Listener{
		Name: httpName, Address: lb.addr.String(), Port: uint32(httpPort),
		Chains: []*ir.HTTPChain{{Name: plainChainName, Routes: plainTable}},
	}
}

// ingressVHost builds the virtual host of domain d: the routes of every
// host covering d (d itself, the wildcards above it, then any host),
// ordered as precedence.go describes, with default backends last. On the
// plaintext listener, a path whose Ingress forces HTTPS for its host
// redirects instead.
func (t *translator) ingressVHost(table, d string, byHost map[string][]ingressRoute, secure bool, httpsPort int32) *ir.VirtualHost {
	type placed struct {
		item
		r ingressRoute
	}
	var list []placed
	hasDefault := false
	coveringHostnames(d, func(h string) bool {
		exact, length := specificity(h)
		for _, r := range byHost[h] {
			if r.isDefault {
				// Only the most specific host's default backend can
				// ever answer.
				if hasDefault {
					continue
				}
				hasDefault = true
			}
			list = append(list, placed{item{m: r.m, hostExact: exact, hostLen: length}, r})
		}
		return true
	})
	slices.SortStableFunc(list, func(a, b placed) int {
		if a.r.isDefault != b.r.isDefault {
			if a.r.isDefault {
				return 1
			}
			return -1
		}
		if before(&a.item, &b.item) {
			return -1
		}
		if before(&b.item, &a.item) {
			return 1
		}
		return 0
	})
	vh := &ir.VirtualHost{Name: virtualHostName(table, d), Domains: []string{d}, Routes: make([]*ir.Route, 0, len(list))}
	for _, p := range list {
		redirect := !secure && p.r.is.forceHTTPS && p.r.is.tlsCovers(p.r.host)
		vh.Routes = append(vh.Routes, ingressIRRoute(p.r, redirect, httpsPort))
	}
	return vh
}

// tlsCovers reports whether the Ingress asks for host to be served over
// TLS, whether or not its certificate could be used: force-https then
// redirects it, and a refused certificate fails the HTTPS side, not open
// to plain HTTP.
func (is *ingressState) tlsCovers(host string) bool {
	return is.tlsWanted[host] || is.tlsWanted[anyHost]
}

// ingressIRRoute makes the IR route of one placed path.
func ingressIRRoute(r ingressRoute, redirect bool, httpsPort int32) *ir.Route {
	m := r.m
	var name string
	if r.isDefault {
		name = ir.IngressNamePrefix + r.is.key.Namespace + "/" + r.is.key.Name + "/default-backend"
	} else {
		name = routeName(&ingressKind, r.is.key, m.rule.index, m.index)
	}
	out := &ir.Route{Name: name, Match: m.match}
	if redirect {
		out.Name += "/https-redirect"
		out.Redirect = &ir.Redirect{Scheme: "https", Port: uint32(httpsPort), StatusCode: 301}
		return out
	}
	out.Backends = m.rule.backends
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
