package ir

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"
)

// ErrInvalid is wrapped by every error Validate returns.
var ErrInvalid = errors.New("invalid configuration")

// Validate checks the invariants documented in the package comment. The
// returned error joins one error per problem; each names the object and the
// field path, e.g. `listener "gateway/default/eg/80": chains[0].routes...`.
func (c *Config) Validate() error { return c.validate(&validator{}) }

// Validator validates successive Configs, as Validate does, and skips the
// routes of a virtual host whose list of routes (Hashes.RouteList) passed
// earlier in the same call (the virtual hosts of a Gateway's HTTP and
// HTTPS listeners usually hold the same list) or in the previous call:
// then only its cluster references are checked again, against the new
// Config's clusters, and not even those when the Config lists the very
// cluster objects that passed whole last time. Whether such a list
// carries CORS is remembered with it, so a chain without CORS does not
// read its routes again either. A one-route change then costs the changed
// virtual host, not every route; a Config rebuilt from scratch with the
// same content costs its hashes. The zero Validator is ready to use; calls are
// serialised.
type Validator struct {
	// Hashes, when set, is where content hashes come from: share it with
	// the other consumers of the same Configs so each object is hashed
	// once. Its owner calls Next before each Validate. Nil: the Validator
	// keeps its own.
	Hashes *Hashes

	mu    sync.Mutex
	own   Hashes
	valid map[Hash]validList
	// clusters are the hashes of the clusters that passed; clusterList
	// is the last list of clusters that passed whole, and clusterNames
	// their names.
	clusters     map[[2]Hash]bool
	clusterList  []*Cluster
	clusterNames map[string]bool
	// routesOK holds the hashes of routes that passed (see routeOnce).
	routesOK map[Hash]bool
}

// Validate validates c, reusing the previous call's verdicts where it can.
func (x *Validator) Validate(c *Config) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	h := x.Hashes
	if h == nil {
		h = &x.own
		h.Next()
	}
	if x.routesOK == nil {
		n := c.LargestRouteTable()
		x.routesOK = make(map[Hash]bool, n)
		// The first Config: every route is new to the hashes too.
		h.routes.reserve(n)
	}
	v := &validator{hashes: h, prev: x.valid, next: make(map[Hash]validList, len(x.valid)), prevClusters: x.clusters, routesOK: x.routesOK, routesKnown: len(x.routesOK) > 0}
	if x.clusterList != nil && slices.Equal(x.clusterList, c.Clusters) {
		// The very cluster objects that passed last time.
		v.clusterNames, v.nextClusters = x.clusterNames, x.clusters
		v.sameClusters = true
	} else {
		v.nextClusters = make(map[[2]Hash]bool, len(c.Clusters))
	}
	err := c.validate(v)
	x.valid, x.clusters = v.next, v.nextClusters
	x.clusterList, x.clusterNames = nil, nil
	if v.clustersPassed {
		x.clusterList, x.clusterNames = slices.Clone(c.Clusters), v.clusterNames
	}
	return err
}

func (c *Config) validate(v *validator) error {
	clusters := v.clusterNames
	if clusters == nil {
		clusters = make(map[string]bool, len(c.Clusters))
		before := len(v.errs)
		for i, cl := range c.Clusters {
			v.cluster(i, cl, clusters)
		}
		v.clusterNames = clusters
		v.clustersPassed = len(v.errs) == before
	} else {
		v.clustersPassed = true
	}
	for _, l := range c.Listeners {
		if l != nil && (len(l.TCPChains) > 0 || l.UDP != nil) {
			v.tcpClusters, v.udpClusters = make(map[string]bool), make(map[string]bool)
			for _, cl := range c.Clusters {
				if cl != nil && cl.Protocol == ProtocolTCP {
					v.tcpClusters[cl.Name] = true
				}
				if cl != nil && cl.Protocol == ProtocolUDP {
					v.udpClusters[cl.Name] = true
				}
			}
			break
		}
	}
	secrets := map[string]bool{}
	for i, s := range c.Secrets {
		v.secret(i, s, secrets)
	}
	// Client certificates are checked here, not with the cluster, whose
	// verdict is remembered by its content alone.
	for _, cl := range c.Clusters {
		if cl != nil && cl.UpstreamTLS != nil && cl.UpstreamTLS.ClientCertificate != "" && !secrets[cl.UpstreamTLS.ClientCertificate] {
			v.fail(object{kind: "cluster", name: cl.Name}, root.f("upstreamTLS").f("clientCertificate"), "unknown secret %q", cl.UpstreamTLS.ClientCertificate)
		}
	}
	listeners := map[string]bool{}
	tables := map[string]bool{}
	binds := map[string]string{}
	for i, l := range c.Listeners {
		v.listener(i, l, listeners, tables, binds, clusters, secrets)
	}
	if c.Policy != nil {
		v.policy(c.Policy, listeners, binds)
	}
	if c.IngressPolicy != nil {
		v.ingressPolicy(c.IngressPolicy)
	}
	v.resources(c.Resources, map[string]map[string]bool{
		TypeListener:              listeners,
		TypeRouteConfiguration:    tables,
		TypeCluster:               clusters,
		TypeClusterLoadAssignment: clusters, // a cluster's endpoints carry its name
		TypeSecret:                secrets,
	}, binds)
	return errors.Join(v.errs...)
}

type validator struct {
	errs []error
	// prev holds the route lists (Hashes.RouteList) of the virtual hosts
	// whose routes passed in the previous call, each with the clusters
	// its routes use; next collects this call's (all nil for
	// Config.Validate).
	hashes     *Hashes
	prev, next map[Hash]validList
	// sameClusters: the Config's clusters are the very objects that
	// passed whole in the previous call, against which prev's lists
	// passed too.
	sameClusters bool
	// prevClusters and nextClusters do the same for clusters.
	prevClusters, nextClusters map[[2]Hash]bool
	// clusterNames are the names of the Config's clusters (read-only when
	// handed in by the Validator); clustersPassed says they are valid.
	clusterNames   map[string]bool
	clustersPassed bool
	// tcpClusters names the TCP clusters, when a listener has TCP chains.
	tcpClusters map[string]bool
	// udpClusters names the UDP clusters, likewise.
	udpClusters map[string]bool
	// routesOK holds the hashes of routes that passed, in this call or an
	// earlier one (the Validator's; nil for Config.Validate). routesKnown
	// says it held some when the call began: a first Config (or one after
	// the memory was cleared) does not look its routes up, since nearly
	// all are new, and a route listed twice in it is checked twice, to
	// the same verdict. At 5 000 HTTPRoutes that is 22 500 lookups, each
	// a cache miss into a table of that size, saved.
	routesOK    map[Hash]bool
	routesKnown bool
}

func (v *validator) fail(obj object, field path, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if field.n > 0 {
		msg = field.String() + ": " + msg
	}
	v.errs = append(v.errs, fmt.Errorf("%w: %s: %s", ErrInvalid, obj, msg))
}

// object names what a problem is in: `listener "x"`, or `listeners[3]`
// before the name is known. It is rendered only when a problem is found,
// so validating a large valid Config builds no strings.
type object struct {
	kind, name string
	plural     string
	idx        int
}

func (o object) String() string {
	if o.kind != "" {
		return fmt.Sprintf("%s %q", o.kind, o.name)
	}
	return fmt.Sprintf("%s[%d]", o.plural, o.idx)
}

// path is a field path inside an object, such as
// "chains[0].routes.virtualHosts[2].name", kept as segments and rendered
// only on failure. It is a value: extending it never allocates.
type path struct {
	n    int
	segs [12]segment
}

type segment struct {
	name string
	idx  int // -1: not indexed
}

var root path

// f extends p with a field name (which may itself contain dots).
func (p path) f(name string) path { return p.add(segment{name, -1}) }

// i extends p with an indexed field, name[idx].
func (p path) i(name string, idx int) path { return p.add(segment{name, idx}) }

func (p path) add(s segment) path {
	if p.n < len(p.segs) {
		p.segs[p.n] = s
		p.n++
	}
	return p
}

func (p path) String() string {
	var b strings.Builder
	for k := 0; k < p.n; k++ {
		if k > 0 {
			b.WriteByte('.')
		}
		b.WriteString(p.segs[k].name)
		if p.segs[k].idx >= 0 {
			fmt.Fprintf(&b, "[%d]", p.segs[k].idx)
		}
	}
	return b.String()
}

func (v *validator) cluster(i int, cl *Cluster, seen map[string]bool) {
	obj := object{plural: "clusters", idx: i}
	if cl == nil {
		v.fail(obj, root, "nil cluster")
		return
	}
	if cl.Name == "" {
		v.fail(obj, root.f("name"), "empty")
	} else if seen[cl.Name] {
		v.fail(object{kind: "cluster", name: cl.Name}, root.f("name"), "duplicate")
	}
	seen[cl.Name] = true
	var h [2]Hash
	if v.hashes != nil {
		h[0], h[1] = v.hashes.Cluster(cl)
		if v.prevClusters[h] {
			v.nextClusters[h] = true
			return
		}
	}
	before := len(v.errs)
	defer func() {
		if v.nextClusters != nil && len(v.errs) == before {
			v.nextClusters[h] = true
		}
	}()
	obj = object{kind: "cluster", name: cl.Name}
	switch cl.Protocol {
	case ProtocolHTTP1, ProtocolH2C, ProtocolTCP, ProtocolUDP:
	default:
		v.fail(obj, root.f("protocol"), "unknown protocol %q", cl.Protocol)
	}
	switch cl.LBPolicy {
	case LBRoundRobin, LBRandom, LBLeastRequest:
	default:
		v.fail(obj, root.f("lbPolicy"), "unknown policy %q", cl.LBPolicy)
	}
	if cl.ConnectTimeout < 0 {
		v.fail(obj, root.f("connectTimeout"), "negative")
	}
	if cl.UpstreamTLS != nil {
		v.upstreamTLS(obj, cl)
	}
	for j, ep := range cl.Endpoints {
		if _, err := netip.ParseAddr(ep.Address); err != nil {
			v.fail(obj, root.i("endpoints", j).f("address"), "%v", err)
		}
		if ep.Port == 0 || ep.Port > 65535 {
			v.fail(obj, root.i("endpoints", j).f("port"), "%d out of range 1-65535", ep.Port)
		}
	}
}

// chainTLS checks the TLS a chain terminates.
func (v *validator) chainTLS(obj object, f path, t *TLS, secrets map[string]bool) {
	if len(t.Certificates) == 0 {
		v.fail(obj, f.f("certificates"), "empty")
	}
	for k, name := range t.Certificates {
		if !secrets[name] {
			v.fail(obj, f.i("certificates", k), "unknown secret %q", name)
		}
	}
	if t.ClientCA != nil {
		if err := checkTrustedCA(t.ClientCA); err != nil {
			v.fail(obj, f.f("clientCA"), "%v", err)
		}
	} else if t.AllowUnverifiedClients {
		v.fail(obj, f.f("allowUnverifiedClients"), "without clientCA")
	}
}

// upstreamTLS checks that a cluster's TLS verifies its endpoints: trust
// anchors that parse, and a name to check the certificate against.
func (v *validator) upstreamTLS(obj object, cl *Cluster) {
	t, f := cl.UpstreamTLS, root.f("upstreamTLS")
	if cl.Protocol != ProtocolHTTP1 && cl.Protocol != ProtocolH2C {
		v.fail(obj, f, "only HTTP clusters originate TLS, not %s", cl.Protocol)
	}
	if err := checkTrustedCA(t.TrustedCA); err != nil {
		v.fail(obj, f.f("trustedCA"), "%v", err)
	}
	if t.SNI == "" && len(t.SubjectAltNames) == 0 {
		v.fail(obj, f, "neither sni nor subjectAltNames: nothing would check whom the certificate names")
	}
	if t.SNI != "" && !validSNI(t.SNI) {
		v.fail(obj, f.f("sni"), "%q is not a DNS name", t.SNI)
	}
	for j, san := range t.SubjectAltNames {
		switch san.Type {
		case SANDNS, SANURI:
		default:
			v.fail(obj, f.i("subjectAltNames", j).f("type"), "unknown type %q", san.Type)
		}
		if san.Value == "" {
			v.fail(obj, f.i("subjectAltNames", j).f("value"), "empty")
		}
	}
}

// checkTrustedCA requires a PEM bundle of certificates only, at least one,
// each of which parses: the proxy refuses anything less.
func checkTrustedCA(b []byte) error {
	n := 0
	for rest := b; ; {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			if len(bytes.TrimSpace(rest)) > 0 {
				return errors.New("holds bytes that are not PEM")
			}
			break
		}
		if blk.Type != "CERTIFICATE" {
			return fmt.Errorf("holds a PEM block of type %q, not CERTIFICATE", blk.Type)
		}
		if _, err := x509.ParseCertificate(blk.Bytes); err != nil {
			return fmt.Errorf("certificate %d: %w", n, err)
		}
		n++
	}
	if n == 0 {
		return errors.New("no certificate")
	}
	return nil
}

// validSNI accepts a DNS name of letters, digits, hyphens and dots, as a
// TLS server_name holds (no IP literal, no trailing dot).
func validSNI(s string) bool {
	if len(s) > 253 || strings.HasSuffix(s, ".") || strings.HasPrefix(s, ".") {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

func (v *validator) secret(i int, s *Secret, seen map[string]bool) {
	obj := object{plural: "secrets", idx: i}
	if s == nil {
		v.fail(obj, root, "nil secret")
		return
	}
	if s.Name == "" {
		v.fail(obj, root.f("name"), "empty")
	} else if seen[s.Name] {
		v.fail(object{kind: "secret", name: s.Name}, root.f("name"), "duplicate")
	}
	seen[s.Name] = true
	if len(s.Certificate) == 0 {
		v.fail(object{kind: "secret", name: s.Name}, root.f("certificate"), "empty")
	}
	if len(s.PrivateKey) == 0 {
		v.fail(object{kind: "secret", name: s.Name}, root.f("privateKey"), "empty")
	}
}

func (v *validator) listener(i int, l *Listener, seen, tables map[string]bool, binds map[string]string, clusters, secrets map[string]bool) {
	obj := object{plural: "listeners", idx: i}
	if l == nil {
		v.fail(obj, root, "nil listener")
		return
	}
	if l.Name == "" {
		v.fail(obj, root.f("name"), "empty")
	} else if seen[l.Name] {
		v.fail(object{kind: "listener", name: l.Name}, root.f("name"), "duplicate")
	}
	seen[l.Name] = true
	obj = object{kind: "listener", name: l.Name}
	addr, err := netip.ParseAddr(l.Address)
	if err != nil {
		v.fail(obj, root.f("address"), "%v", err)
	}
	if l.Port == 0 || l.Port > 65535 {
		v.fail(obj, root.f("port"), "%d out of range 1-65535", l.Port)
	}
	if err == nil {
		bind := netip.AddrPortFrom(addr, uint16(l.Port)).String()
		if l.UDP != nil {
			bind = "udp " + bind // UDP and TCP sockets do not collide
		}
		if other, dup := binds[bind]; dup {
			v.fail(obj, root.f("address"), "%s already bound by listener %q", bind, other)
		}
		binds[bind] = l.Name
	}
	switch {
	case l.UDP != nil:
		if len(l.Chains)+len(l.TCPChains) > 0 {
			v.fail(obj, root.f("chains"), "a UDP listener has no chains")
		}
		if l.OriginalSourceMark != 0 {
			v.fail(obj, root.f("originalSourceMark"), "a UDP listener cannot keep the client's address")
		}
		if !clusters[l.UDP.Cluster] {
			v.fail(obj, root.f("udp.cluster"), "unknown cluster %q", l.UDP.Cluster)
		} else if !v.udpClusters[l.UDP.Cluster] {
			v.fail(obj, root.f("udp.cluster"), "cluster %q is not a UDP cluster", l.UDP.Cluster)
		}
	case len(l.Chains)+len(l.TCPChains) == 0:
		v.fail(obj, root.f("chains"), "empty")
	}
	names := map[string]bool{}
	catchAll := 0
	plain, sourced := 0, 0
	// prefixOwner names the chain each source prefix belongs to: two
	// chains may not take the same clients.
	prefixOwner := map[netip.Prefix]string{}
	for j, ch := range l.Chains {
		f := root.i("chains", j)
		if ch == nil {
			v.fail(obj, f, "nil chain")
			continue
		}
		if ch.Name == "" || names[ch.Name] {
			v.fail(obj, f.f("name"), "empty or duplicate %q", ch.Name)
		}
		names[ch.Name] = true
		if len(ch.ServerNames) == 0 && len(ch.SourcePrefixes) == 0 {
			catchAll++
		}
		for k, sn := range ch.ServerNames {
			if !validDomain(sn) {
				v.fail(obj, f.i("serverNames", k), "invalid server name %q", sn)
			}
		}
		v.sourcePrefixes(obj, f, ch, prefixOwner)
		if ch.TLS == nil && len(ch.SourcePrefixes) > 0 {
			sourced++
		} else if ch.TLS == nil {
			plain++
			if len(ch.ServerNames) > 0 {
				v.fail(obj, f.f("serverNames"), "server names need TLS")
			}
		} else {
			v.chainTLS(obj, f.f("tls"), ch.TLS, secrets)
		}
		v.routeTable(obj, f.f("routes"), ch.Routes, tables, clusters)
		if !ch.CORS && ch.Routes != nil {
			v.corsWithoutFilter(obj, f, ch.Routes)
		}
	}
	for j, ch := range l.TCPChains {
		f := root.i("tcpChains", j)
		if ch == nil {
			v.fail(obj, f, "nil chain")
			continue
		}
		if ch.Name == "" || names[ch.Name] {
			v.fail(obj, f.f("name"), "empty or duplicate %q", ch.Name)
		}
		names[ch.Name] = true
		if len(ch.ServerNames) == 0 {
			catchAll++
		}
		for k, sn := range ch.ServerNames {
			if !validDomain(sn) {
				v.fail(obj, f.i("serverNames", k), "invalid server name %q", sn)
			}
		}
		if ch.TLS != nil {
			v.chainTLS(obj, f.f("tls"), ch.TLS, secrets)
		}
		v.tcpBackends(obj, f, ch.Backends, clusters)
	}
	switch {
	case l.PlainAndTLS:
		if plain != 1 || sourced != 0 || len(l.Chains)+len(l.TCPChains) < 2 {
			v.fail(obj, root.f("plainAndTLS"), "needs exactly one plaintext chain, without source prefixes, beside TLS chains")
		}
		// The plaintext chain takes plaintext connections, whatever the
		// TLS chains catch.
		catchAll--
	case plain+sourced > 0 && (plain > 1 || len(l.Chains)+len(l.TCPChains) != plain+sourced):
		v.fail(obj, root.f("chains"), "a plaintext chain must be the listener's only chain, but for plaintext chains told apart by source prefixes")
	}
	if catchAll > 1 {
		v.fail(obj, root.f("chains"), "%d chains without server names; at most one may catch all", catchAll)
	}
}

func (v *validator) routeTable(obj object, f path, rt *RouteTable, tables, clusters map[string]bool) {
	if rt == nil {
		v.fail(obj, f, "missing route table")
		return
	}
	if rt.Name == "" {
		v.fail(obj, f.f("name"), "empty")
	} else if tables[rt.Name] {
		v.fail(obj, f.f("name"), "route table %q defined twice", rt.Name)
	}
	tables[rt.Name] = true
	vhosts := map[string]bool{}
	domains := map[string]string{}
	for i, vh := range rt.VirtualHosts {
		vf := f.i("virtualHosts", i)
		if vh == nil {
			v.fail(obj, vf, "nil virtual host")
			continue
		}
		if vh.Name == "" || vhosts[vh.Name] {
			v.fail(obj, vf.f("name"), "empty or duplicate %q", vh.Name)
		}
		vhosts[vh.Name] = true
		if len(vh.Domains) == 0 {
			v.fail(obj, vf.f("domains"), "empty")
		}
		for j, d := range vh.Domains {
			if !validDomain(d) {
				v.fail(obj, vf.i("domains", j), "invalid domain %q", d)
			}
			if other, dup := domains[d]; dup {
				v.fail(obj, vf.i("domains", j), "domain %q also in virtual host %q", d, other)
			}
			domains[d] = vh.Name
		}
		v.virtualHostRoutes(obj, vf, vh, clusters)
	}
}

// virtualHostRoutes checks the routes of one virtual host.
func (v *validator) virtualHostRoutes(obj object, vf path, vh *VirtualHost, clusters map[string]bool) {
	var h Hash
	var routeHashes []Hash
	if v.hashes != nil {
		h, routeHashes = v.hashes.RouteList(vh), v.hashes.VirtualHostRoutes(vh)
		// The same list of routes passed in this call (another listener
		// of the Gateway serves it too) or in the previous one.
		if _, ok := v.next[h]; ok {
			return
		}
		if used, ok := v.prev[h]; ok && (v.sameClusters || allIn(used.clusters, clusters)) {
			v.next[h] = used
			return
		}
	}
	before := len(v.errs)
	routes := make(map[string]bool, len(vh.Routes))
	for j, r := range vh.Routes {
		rf := vf.i("routes", j)
		if r == nil {
			v.fail(obj, rf, "nil route")
			continue
		}
		if r.Name == "" || routes[r.Name] {
			v.fail(obj, rf.f("name"), "empty or duplicate %q", r.Name)
		}
		routes[r.Name] = true
		var rh Hash
		if routeHashes != nil {
			rh = routeHashes[j]
		}
		v.routeOnce(obj, rf, r, rh, clusters)
	}
	if v.next != nil && len(v.errs) == before {
		v.next[h] = validList{clusters: usedClusters(vh), cors: carriesCORS(vh)}
	}
}

// validList is what the Validator remembers of a list of routes that
// passed: the clusters they use, and whether one carries a CORS policy
// (which its chain must then run, corsWithoutFilter).
type validList struct {
	clusters []string
	cors     bool
}

// usedClusters lists the clusters a virtual host's routes refer to, once
// each.
func usedClusters(vh *VirtualHost) []string {
	seen := map[string]bool{}
	var out []string
	for _, r := range vh.Routes {
		for _, b := range r.Backends {
			if b.Cluster != "" && !seen[b.Cluster] {
				seen[b.Cluster] = true
				out = append(out, b.Cluster)
			}
		}
		for _, m := range r.Mirrors {
			if m != nil && !seen[m.Cluster] {
				seen[m.Cluster] = true
				out = append(out, m.Cluster)
			}
		}
	}
	return out
}

// carriesCORS reports whether a route of vh carries a CORS policy.
func carriesCORS(vh *VirtualHost) bool {
	for _, r := range vh.Routes {
		if r.CORS != nil {
			return true
		}
	}
	return false
}

// maxValidRoutes bounds the Validator's memory of valid routes.
const maxValidRoutes = 1 << 17

// routeOnce checks a route, of hash h, or only its cluster references
// when a route of the same content passed before: everything else a route
// is checked for is its own content.
func (v *validator) routeOnce(obj object, f path, r *Route, h Hash, clusters map[string]bool) {
	if v.routesOK == nil {
		v.route(obj, f, r, clusters)
		return
	}
	if v.routesKnown && v.routesOK[h] {
		for i, b := range r.Backends {
			if b.Cluster != "" && !clusters[b.Cluster] {
				v.fail(obj, f.i("backends", i).f("cluster"), "unknown cluster %q", b.Cluster)
			}
		}
		for i, m := range r.Mirrors {
			if !clusters[m.Cluster] {
				v.fail(obj, f.i("mirrors", i).f("cluster"), "unknown cluster %q", m.Cluster)
			}
		}
		return
	}
	before := len(v.errs)
	v.route(obj, f, r, clusters)
	if len(v.errs) == before {
		if len(v.routesOK) >= maxValidRoutes {
			clear(v.routesOK)
		}
		v.routesOK[h] = true
	}
}

func allIn(names []string, set map[string]bool) bool {
	for _, n := range names {
		if !set[n] {
			return false
		}
	}
	return true
}

func (v *validator) route(obj object, f path, r *Route, clusters map[string]bool) {
	actions := 0
	if len(r.Backends) > 0 {
		actions++
	}
	if r.Redirect != nil {
		actions++
	}
	if r.DirectResponse != nil {
		actions++
	}
	if actions != 1 {
		v.fail(obj, f, "route %q has %d actions, want exactly one of backends, redirect, directResponse", r.Name, actions)
	}
	if p := r.Match.Path; p != nil {
		switch p.Type {
		case PathExact:
			if !strings.HasPrefix(p.Value, "/") {
				v.fail(obj, f.f("match.path.value"), "%q does not start with /", p.Value)
			}
		case PathPrefix:
			if !strings.HasPrefix(p.Value, "/") {
				v.fail(obj, f.f("match.path.value"), "%q does not start with /", p.Value)
			} else if p.Value != "/" && strings.HasSuffix(p.Value, "/") {
				v.fail(obj, f.f("match.path.value"), "prefix %q has a trailing /", p.Value)
			}
		case PathRegex:
			v.regex(obj, f.f("match.path.value"), p.Value)
		default:
			v.fail(obj, f.f("match.path.type"), "unknown type %q", p.Type)
		}
	}
	for i, h := range r.Match.Headers {
		hf := f.i("match.headers", i)
		if !validHeaderName(h.Name) {
			v.fail(obj, hf.f("name"), "invalid header name %q", h.Name)
		}
		v.stringMatch(obj, hf, h.Type, h.Value)
	}
	for i, q := range r.Match.Query {
		qf := f.i("match.query", i)
		if q.Name == "" {
			v.fail(obj, qf.f("name"), "empty")
		}
		v.stringMatch(obj, qf, q.Type, q.Value)
	}
	if r.Match.Method != "" && !ValidToken(r.Match.Method) {
		v.fail(obj, f.f("match.method"), "invalid method %q", r.Match.Method)
	}
	// A path is a few hundred bytes copied at every step: it is extended
	// only for what is there to check, or for a problem (routes come by
	// the thousand, and most of their optional parts are absent).
	for i, b := range r.Backends {
		if b == nil {
			v.fail(obj, f.i("backends", i), "nil backend")
			continue
		}
		if b.Cluster != "" && !clusters[b.Cluster] {
			v.fail(obj, f.i("backends", i).f("cluster"), "unknown cluster %q", b.Cluster)
		}
		if b.RequestHeaders != nil {
			v.headers(obj, f.i("backends", i).f("requestHeaders"), b.RequestHeaders)
		}
		if b.ResponseHeaders != nil {
			v.headers(obj, f.i("backends", i).f("responseHeaders"), b.ResponseHeaders)
		}
	}
	if r.Rewrite != nil {
		if len(r.Backends) == 0 {
			v.fail(obj, f.f("rewrite"), "rewrite without backends")
		}
		v.pathRewrite(obj, f.f("rewrite.path"), r.Rewrite.Path, r.Match.Path)
		if r.Rewrite.Hostname != "" && !validDomain(r.Rewrite.Hostname) {
			v.fail(obj, f.f("rewrite.hostname"), "invalid hostname %q", r.Rewrite.Hostname)
		}
	}
	if rd := r.Redirect; rd != nil {
		switch rd.StatusCode {
		case 301, 302, 303, 307, 308:
		default:
			v.fail(obj, f.f("redirect.statusCode"), "%d is not a redirect status", rd.StatusCode)
		}
		switch rd.Scheme {
		case "", "http", "https":
		default:
			v.fail(obj, f.f("redirect.scheme"), "unsupported scheme %q", rd.Scheme)
		}
		if rd.Port > 65535 {
			v.fail(obj, f.f("redirect.port"), "%d out of range", rd.Port)
		}
		if rd.Hostname != "" && !validDomain(rd.Hostname) {
			v.fail(obj, f.f("redirect.hostname"), "invalid hostname %q", rd.Hostname)
		}
		v.pathRewrite(obj, f.f("redirect.path"), rd.Path, r.Match.Path)
	}
	if d := r.DirectResponse; d != nil && (d.Status < 200 || d.Status > 599) {
		v.fail(obj, f.f("directResponse.status"), "%d out of range 200-599", d.Status)
	}
	if r.RequestHeaders != nil {
		v.headers(obj, f.f("requestHeaders"), r.RequestHeaders)
	}
	if r.ResponseHeaders != nil {
		v.headers(obj, f.f("responseHeaders"), r.ResponseHeaders)
	}
	if r.CORS != nil {
		v.cors(obj, f.f("cors"), r.CORS)
	}
	if r.Timeout < 0 {
		v.fail(obj, f.f("timeout"), "negative")
	}
	switch {
	case r.BackendTimeout < 0:
		v.fail(obj, f.f("backendTimeout"), "negative")
	case r.Timeout > 0 && r.BackendTimeout > r.Timeout:
		v.fail(obj, f.f("backendTimeout"), "%v exceeds the route timeout %v", r.BackendTimeout, r.Timeout)
	}
	if r.Retry != nil {
		v.retry(obj, f.f("retry"), r)
	}
	if len(r.Mirrors) > 0 {
		v.mirrors(obj, f, r, clusters)
	}
}

// retry checks a route's retry policy: it needs backends to retry, and
// every code is an HTTP error status.
func (v *validator) retry(obj object, f path, r *Route) {
	rp := r.Retry
	if rp == nil {
		return
	}
	if len(r.Backends) == 0 {
		v.fail(obj, f, "retry policy without backends")
	}
	for i, c := range rp.Codes {
		if c < 400 || c > 599 {
			v.fail(obj, f.i("codes", i), "%d is not an error status (400-599)", c)
		}
	}
	if rp.Backoff < 0 {
		v.fail(obj, f.f("backoff"), "negative")
	}
}

// mirrors checks a route's mirrors: known clusters, and fractions of at
// most one.
func (v *validator) mirrors(obj object, f path, r *Route, clusters map[string]bool) {
	if len(r.Mirrors) > 0 && len(r.Backends) == 0 {
		v.fail(obj, f.f("mirrors"), "mirrors without backends")
	}
	for i, m := range r.Mirrors {
		mf := f.i("mirrors", i)
		switch {
		case m == nil:
			v.fail(obj, mf, "nil mirror")
			continue
		case !clusters[m.Cluster]:
			v.fail(obj, mf.f("cluster"), "unknown cluster %q", m.Cluster)
		}
		if m.Denominator != 0 && m.Numerator > m.Denominator {
			v.fail(obj, mf.f("numerator"), "%d exceeds the denominator %d", m.Numerator, m.Denominator)
		}
	}
}

// tcpBackends checks a TCP chain's backends: at least one, known
// clusters (TCP ones: v.tcpClusters), no header edits.
func (v *validator) tcpBackends(obj object, f path, backends []*WeightedBackend, clusters map[string]bool) {
	if len(backends) == 0 {
		v.fail(obj, f.f("backends"), "empty")
	}
	for i, b := range backends {
		bf := f.i("backends", i)
		switch {
		case b == nil:
			v.fail(obj, bf, "nil backend")
			continue
		case b.Cluster != "" && !clusters[b.Cluster]:
			v.fail(obj, bf.f("cluster"), "unknown cluster %q", b.Cluster)
		case b.Cluster != "" && !v.tcpClusters[b.Cluster]:
			v.fail(obj, bf.f("cluster"), "cluster %q is not a TCP cluster", b.Cluster)
		}
		if b.RequestHeaders != nil || b.ResponseHeaders != nil {
			v.fail(obj, bf, "header edits on a TCP backend")
		}
	}
}

// corsWithoutFilter fails a chain without CORS whose routes carry a CORS
// policy: the policy would be silently ignored.
func (v *validator) corsWithoutFilter(obj object, f path, rt *RouteTable) {
	for i, vh := range rt.VirtualHosts {
		if vh == nil {
			continue
		}
		if v.hashes != nil {
			// A list that passed (routeTable ran first) says whether
			// it carries CORS, without reading its routes again.
			if l, ok := v.next[v.hashes.RouteList(vh)]; ok && !l.cors {
				continue
			}
		}
		for j, r := range vh.Routes {
			if r != nil && r.CORS != nil {
				v.fail(obj, f.f("routes").i("virtualHosts", i).i("routes", j).f("cors"), "a CORS policy on a chain without CORS")
				return
			}
		}
	}
}

// cors checks a route's CORS policy: every value becomes part of a
// response header as it is.
func (v *validator) cors(obj object, f path, c *CORSPolicy) {
	if c == nil {
		return
	}
	for i, o := range c.AllowOrigins {
		of := f.i("allowOrigins", i)
		v.stringMatch(obj, of, o.Type, o.Value)
		if o.Value == "" || !ValidHeaderValue(o.Value) {
			v.fail(obj, of.f("value"), "%q is not a valid origin value", o.Value)
		}
	}
	v.corsList(obj, f, "allowMethods", c.AllowMethods)
	v.corsList(obj, f, "allowHeaders", c.AllowHeaders)
	v.corsList(obj, f, "exposeHeaders", c.ExposeHeaders)
	if c.MaxAge < 0 || c.MaxAge%time.Second != 0 {
		v.fail(obj, f.f("maxAge"), "%v is not a whole number of seconds", c.MaxAge)
	}
}

// corsList checks a list of methods or header names: tokens, or "*"
// alone.
func (v *validator) corsList(obj object, f path, name string, list []string) {
	for i, s := range list {
		switch {
		case s == "*" && len(list) > 1:
			v.fail(obj, f.i(name, i), "\"*\" must be the only entry")
		case s != "*" && !ValidToken(s):
			v.fail(obj, f.i(name, i), "%q is not a token", s)
		}
	}
}

func (v *validator) pathRewrite(obj object, f path, p *PathRewrite, m *PathMatch) {
	if p == nil {
		return
	}
	if !strings.HasPrefix(p.Value, "/") {
		v.fail(obj, f.f("value"), "%q does not start with /", p.Value)
	}
	switch p.Type {
	case ReplaceFullPath:
	case ReplacePrefixMatch:
		if m == nil || m.Type != PathPrefix {
			v.fail(obj, f.f("type"), "ReplacePrefixMatch needs a Prefix path match")
		}
	default:
		v.fail(obj, f.f("type"), "unknown type %q", p.Type)
	}
}

func (v *validator) headers(obj object, f path, m *HeaderModifier) {
	if m == nil {
		return
	}
	for i, h := range m.Set {
		if !validHeaderName(h.Name) {
			v.fail(obj, f.i("set", i).f("name"), "invalid header name %q", h.Name)
		}
		if !ValidHeaderValue(h.Value) {
			v.fail(obj, f.i("set", i).f("value"), "invalid header value")
		}
	}
	for i, h := range m.Add {
		if !validHeaderName(h.Name) {
			v.fail(obj, f.i("add", i).f("name"), "invalid header name %q", h.Name)
		}
		if !ValidHeaderValue(h.Value) {
			v.fail(obj, f.i("add", i).f("value"), "invalid header value")
		}
	}
	for i, n := range m.Remove {
		if !validHeaderName(n) {
			v.fail(obj, f.i("remove", i), "invalid header name %q", n)
		}
	}
}

func (v *validator) stringMatch(obj object, f path, t StringMatchType, value string) {
	switch t {
	case MatchExact:
	case MatchRegex:
		v.regex(obj, f.f("value"), value)
	default:
		v.fail(obj, f.f("type"), "unknown type %q", t)
	}
}

func (v *validator) regex(obj object, f path, expr string) {
	if err := checkRegex(expr); err != nil {
		v.fail(obj, f, "invalid RE2 regular expression: %v", err)
	}
}

// regexVerdicts remembers whether expressions compile: every update
// validates the whole Config, and compiling thousands of unchanged regexes
// each time would dominate a one-route change. Bounded, because the
// expressions are user input.
var regexVerdicts struct {
	sync.Mutex
	m map[string]error
}

const maxRegexVerdicts = 8192

func checkRegex(expr string) error {
	regexVerdicts.Lock()
	err, ok := regexVerdicts.m[expr]
	regexVerdicts.Unlock()
	if ok {
		return err
	}
	_, err = regexp.Compile(expr)
	regexVerdicts.Lock()
	if regexVerdicts.m == nil || len(regexVerdicts.m) >= maxRegexVerdicts {
		regexVerdicts.m = make(map[string]error)
	}
	regexVerdicts.m[expr] = err
	regexVerdicts.Unlock()
	return err
}

// validDomain accepts a DNS name, "*.suffix", "*", or an IP literal.
func validDomain(d string) bool {
	if d == "*" {
		return true
	}
	// Only an IPv6 literal has a ':'. An IPv4 literal passes the label
	// check below, and parsing every domain as an address first would
	// allocate a failure's error for each, on every validation.
	if strings.Contains(d, ":") {
		_, err := netip.ParseAddr(d)
		return err == nil
	}
	d = strings.TrimPrefix(d, "*.")
	if d == "" || len(d) > 253 {
		return false
	}
	for label := range strings.SplitSeq(d, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' && i > 0 && i < len(label)-1
			if !ok {
				return false
			}
		}
	}
	return true
}

// ValidToken reports whether s is an RFC 9110 token: what header names and
// methods must be. Producers use it to reject user input before it reaches
// the IR.
func ValidToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
			continue
		}
		if !strings.ContainsRune("!#$%&'*+-.^_`|~", rune(c)) {
			return false
		}
	}
	return true
}

// validHeaderName accepts a header field name; pseudo-headers (":path") are
// never matched or edited through the IR.
func validHeaderName(s string) bool { return ValidToken(s) }

// ValidHeaderValue reports whether s can be a header value: no control
// characters that would split or smuggle a header.
func ValidHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// resources checks verbatim Envoy resources: a known type, a name unique
// in its type and distinct from every name the IR's own objects take, and
// for listeners a socket no other listener binds.
func (v *validator) resources(rs []*Resource, taken map[string]map[string]bool, binds map[string]string) {
	own := map[string]map[string]bool{}
	for i, r := range rs {
		obj := object{plural: "resources", idx: i}
		if r == nil {
			v.fail(obj, path{}, "nil")
			continue
		}
		names, known := taken[r.TypeURL]
		if !known {
			v.fail(obj, path{}, "type %q is not a Listener, RouteConfiguration, Cluster, ClusterLoadAssignment or Secret", r.TypeURL)
			continue
		}
		if r.Name == "" {
			v.fail(obj, path{}, "no name")
			continue
		}
		if own[r.TypeURL] == nil {
			own[r.TypeURL] = map[string]bool{}
		}
		if own[r.TypeURL][r.Name] || names[r.Name] {
			v.fail(obj, path{}, "%s name %q is taken", r.TypeURL, r.Name)
		}
		own[r.TypeURL][r.Name] = true
		if len(r.Value) == 0 && r.TypeURL != TypeClusterLoadAssignment {
			v.fail(obj, path{}, "%q has no content", r.Name)
		}
		if (r.Bind != "") != (r.TypeURL == TypeListener) {
			v.fail(obj, path{}, "%q: a listener, and only a listener, has a bind", r.Name)
			continue
		}
		if r.Bind == "" {
			continue
		}
		ap, err := netip.ParseAddrPort(r.Bind)
		if err != nil || ap.Port() == 0 {
			v.fail(obj, path{}, "%q: bind %q is not an address and port", r.Name, r.Bind)
			continue
		}
		bind := ap.String()
		if other, dup := binds[bind]; dup {
			v.fail(obj, path{}, "%q: %s already bound by listener %q", r.Name, bind, other)
		}
		binds[bind] = r.Name
	}
}

// sourcePrefixes checks a chain's source prefixes: canonical CIDR
// prefixes (the address is the prefix's first), on plaintext chains only,
// each taken by one chain of the listener.
func (v *validator) sourcePrefixes(obj object, f path, ch *HTTPChain, owner map[netip.Prefix]string) {
	if len(ch.SourcePrefixes) > 0 && (ch.TLS != nil || len(ch.ServerNames) > 0) {
		v.fail(obj, f.f("sourcePrefixes"), "source prefixes are for plaintext chains only")
	}
	for k, s := range ch.SourcePrefixes {
		p, err := netip.ParsePrefix(s)
		if err != nil || p != p.Masked() || p.Addr().Zone() != "" {
			v.fail(obj, f.i("sourcePrefixes", k), "%q is not a canonical CIDR prefix", s)
			continue
		}
		if other, dup := owner[p]; dup {
			v.fail(obj, f.i("sourcePrefixes", k), "prefix %s is already chain %q's", p, other)
			continue
		}
		owner[p] = ch.Name
	}
}
