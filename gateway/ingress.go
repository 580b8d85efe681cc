package gateway

import (
	"cmp"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/nodemesh/nodemesh/mesh/input"
	"github.com/nodemesh/nodemesh/mesh/ir"
)

// Ingress (networking.k8s.io/v1): which Ingresses are ours, and how one
// compiles into the kind-neutral ruleState. Assembly into listeners is in
// ingressbuild.go; see "Ingress" in doc.go for the decisions.

// Ingress class defaults.
const (
	// IngressClassName is the class nodemesh serves by default.
	IngressClassName = "nodemesh"
	// IngressController is the spec.controller of IngressClasses nodemesh
	// owns, whatever their name.
	IngressController = "nodemesh.io/ingress-controller"

	legacyClassAnnotation  = "kubernetes.io/ingress.class"
	defaultClassAnnotation = "ingressclass.kubernetes.io/is-default-class"
)

// The ingress.cilium.io annotations, keys verbatim.
const (
	annLBMode           = "ingress.cilium.io/loadbalancer-mode"
	annLBClass          = "ingress.cilium.io/loadbalancer-class"
	annServiceType      = "ingress.cilium.io/service-type"
	annExternalTraffic  = "ingress.cilium.io/service-external-traffic-policy"
	annInsecureNodePort = "ingress.cilium.io/insecure-node-port"
	annSecureNodePort   = "ingress.cilium.io/secure-node-port"
	annHostListenerPort = "ingress.cilium.io/host-listener-port"
	annTLSPassthrough   = "ingress.cilium.io/tls-passthrough"
	annForceHTTPS       = "ingress.cilium.io/force-https"
)

// LoadBalancerMode says whether an Ingress shares its address and
// listeners with the other shared Ingresses or has its own.
type LoadBalancerMode string

const (
	LoadBalancerDedicated LoadBalancerMode = "dedicated"
	LoadBalancerShared    LoadBalancerMode = "shared"
)

// IngressOptions tune how Ingresses are served. The zero value serves
// Ingresses of class nodemesh, dedicated, on ports 80 and 443.
type IngressOptions struct {
	// Disabled turns Ingress support off: no Ingress is ours, whatever
	// its class (the zero value serves them, as nodemesh always has).
	Disabled bool
	// ClassName is the ingressClassName (and legacy annotation value)
	// that selects nodemesh; empty means IngressClassName.
	ClassName string
	// Default makes nodemesh serve Ingresses that name no class, as an
	// IngressClass of ours marked is-default-class does.
	Default bool
	// Mode is the load-balancer mode of an Ingress without the
	// loadbalancer-mode annotation; empty means dedicated.
	Mode LoadBalancerMode
	// EnforceHTTPS is force-https for Ingresses without the annotation.
	EnforceHTTPS bool
	// DefaultCertificate is the Secret serving spec.tls entries without a
	// secretName; nil means such entries are refused.
	DefaultCertificate *input.Key
	// Addresses holds the address assigned to each dedicated Ingress;
	// SharedAddress is the address of the shared listener set. An
	// Ingress without an address is reported and produces no listeners.
	Addresses     map[input.Key]netip.Addr
	SharedAddress netip.Addr
	// HTTPPort and HTTPSPort are the listener ports; zero means 80 and
	// 443. Not used in host-network mode.
	HTTPPort, HTTPSPort int32
	// HostNetwork serves Ingresses on the node proxies' own node
	// addresses (Addresses and SharedAddress then hold a node address):
	// plain HTTP and HTTPS share one port per load balancer,
	// SharedListenerPort for the shared set, the
	// ingress.cilium.io/host-listener-port annotation (default
	// DefaultHostListenerPort) for a dedicated Ingress.
	HostNetwork bool
	// SharedListenerPort is the shared set's port in host-network mode;
	// zero means DefaultHostListenerPort.
	SharedListenerPort int32
}

// DefaultHostListenerPort is Cilium's default port of host-network
// Ingress listeners, shared and dedicated.
const DefaultHostListenerPort = 8080

func (o *IngressOptions) className() string {
	if o.ClassName == "" {
		return IngressClassName
	}
	return o.ClassName
}

// Ports are the HTTP and HTTPS listener ports in effect.
func (o *IngressOptions) Ports() (http, https int32) { return o.ports() }

func (o *IngressOptions) ports() (http, https int32) {
	http, https = o.HTTPPort, o.HTTPSPort
	if http == 0 {
		http = 80
	}
	if https == 0 {
		https = 443
	}
	return http, https
}

// sharedListenerPort is the shared set's host-network port in effect.
func (o *IngressOptions) sharedListenerPort() int32 {
	return cmp.Or(o.SharedListenerPort, DefaultHostListenerPort)
}

// parsePort reads a port annotation: decimal digits only, no sign, no
// leading zero, 1 to 65535 (strconv.Atoi would also take "+80" and
// "0080", spellings nobody means as a port).
func parsePort(v string) (int32, bool) {
	if len(v) == 0 || len(v) > 5 || v[0] == '0' {
		return 0, false
	}
	n := 0
	for _, c := range []byte(v) {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	if n > 65535 {
		return 0, false
	}
	return int32(n), true
}

// IngressStatus is what translation decided for one Ingress of ours.
type IngressStatus struct {
	Key input.Key `json:"key"`
	// Mode is the load-balancer mode in effect.
	Mode LoadBalancerMode `json:"mode"`
	// Address is the address serving the Ingress, empty when it has none
	// or is not served; status.loadBalancer.ingress[0].ip.
	Address string `json:"address,omitempty"`
	// Served says the Ingress has configuration (some of its paths may
	// still have been refused, see Problems).
	Served bool `json:"served"`
	// Problems explain every part of the Ingress that is not served, each
	// naming the field; providers turn them into events.
	Problems []string `json:"problems,omitempty"`
}

// ingressKind is the route kind of Ingress paths. It is not a row of
// routeKinds: Ingresses have no parentRefs and attach to the Ingress
// listeners implicitly.
var ingressKind = routeKind{
	group:      networkingv1.GroupName,
	kind:       "Ingress",
	plural:     "Ingresses",
	namePrefix: strings.TrimSuffix(ir.IngressNamePrefix, "/"),
}

// ingressPassthroughKind is the kind of the rules of a TLS passthrough
// Ingress: the same kind, whose backends are TCP clusters (the TLS bytes
// are relayed, as a TLSRoute's are).
var ingressPassthroughKind routeKind

func init() {
	ingressKind.rank = len(routeKinds)
	ingressPassthroughKind = ingressKind
	ingressPassthroughKind.backendProtocol = ir.ProtocolTCP
}

// ingressState is one Ingress of ours, compiled.
type ingressState struct {
	obj  *networkingv1.Ingress
	key  input.Key
	mode LoadBalancerMode
	// forceHTTPS redirects plaintext requests for TLS hosts to HTTPS.
	forceHTTPS bool
	// rs carries identity for route precedence and names.
	rs *routeState
	// paths are the valid paths, each with its host ("" for any).
	paths []ingressPath
	// defaultRule is spec.defaultBackend, compiled, or nil.
	defaultRule *ruleState
	// tls maps each TLS host ("*" for an entry without hosts) to the IR
	// name of the Secret serving it.
	tls map[string]string
	// tlsWanted holds every host a spec.tls entry names ("*" for an entry
	// without hosts), served or not: force-https redirects them all, so a
	// refused certificate never turns an HTTPS-only host into plain HTTP.
	tlsWanted map[string]bool
	// certs are the IR Secrets the TLS entries use.
	certs map[string]*ir.Secret
	// passthrough is set by ingress.cilium.io/tls-passthrough: enabled;
	// the Ingress then has no paths, only sni.
	passthrough bool
	// sni are the hosts of a passthrough Ingress, each relaying the TLS
	// connections whose SNI names it to one backend.
	sni      []ingressSNI
	problems []string
	// skip says the Ingress produces no configuration at all.
	skip bool
	addr netip.Addr
	// hostPort is a dedicated Ingress's host-network listener port
	// (host-listener-port, else DefaultHostListenerPort).
	hostPort int32
}

type ingressPath struct {
	host string
	m    *matchState
	// field names the path in messages, spec.rules[i].http.paths[j].
	field string
}

// ingressSNI is one host of a passthrough Ingress.
type ingressSNI struct {
	host  string
	rule  *ruleState
	field string
}

func (is *ingressState) fail(format string, args ...any) {
	is.problems = append(is.problems, fmt.Sprintf("Ingress %s: ", is.key)+fmt.Sprintf(format, args...))
}

// ownsIngress reports whether an Ingress is of our class: its
// ingressClassName names our class or an IngressClass of our controller;
// else its legacy annotation names our class; else (no class at all) we
// are the default class.
func ownsIngress(opts *IngressOptions, ing *networkingv1.Ingress, classes map[string]*networkingv1.IngressClass, defaultOurs bool) bool {
	name := opts.className()
	if cn := ing.Spec.IngressClassName; cn != nil && *cn != "" {
		if *cn == name {
			return true
		}
		c := classes[*cn]
		return c != nil && c.Spec.Controller == IngressController
	}
	if v, ok := ing.Annotations[legacyClassAnnotation]; ok {
		return v == name
	}
	return defaultOurs
}

// ingressClasses indexes IngressClasses and says whether we are the
// default class: by option, or because an IngressClass of ours carries
// is-default-class "true".
func ingressClasses(opts *IngressOptions, in *input.Snapshot) (map[string]*networkingv1.IngressClass, bool) {
	classes := make(map[string]*networkingv1.IngressClass, len(in.IngressClasses))
	def := opts.Default
	for _, c := range in.IngressClasses {
		classes[c.Name] = c
		ours := c.Spec.Controller == IngressController || c.Name == opts.className()
		if ours && c.Annotations[defaultClassAnnotation] == "true" {
			def = true
		}
	}
	return classes, def
}

// ownIngresses lists the snapshot's Ingresses of our class.
func ownIngresses(opts *IngressOptions, in *input.Snapshot) []*networkingv1.Ingress {
	if opts.Disabled {
		return nil
	}
	classes, def := ingressClasses(opts, in)
	var out []*networkingv1.Ingress
	for _, ing := range in.Ingresses {
		if ownsIngress(opts, ing, classes, def) {
			out = append(out, ing)
		}
	}
	return out
}

// ingressMode is an Ingress's load-balancer mode; ok is false when its
// annotation holds something else.
func ingressMode(opts *IngressOptions, ing *networkingv1.Ingress) (mode LoadBalancerMode, ok bool) {
	mode = cmp.Or(opts.Mode, LoadBalancerDedicated)
	if v, set := ing.Annotations[annLBMode]; set {
		switch LoadBalancerMode(v) {
		case LoadBalancerDedicated, LoadBalancerShared:
			return LoadBalancerMode(v), true
		}
		return mode, false
	}
	return mode, true
}

// boolAnnotation reads an enabled/disabled annotation; Cilium also takes
// boolean spellings.
func boolAnnotation(v string) (bool, bool) {
	switch strings.ToLower(v) {
	case "enabled", "true":
		return true, true
	case "disabled", "false":
		return false, true
	}
	return false, false
}

// compileIngress compiles one Ingress of ours. Annotation values that
// cannot be read make the whole Ingress unserved: guessing the intent of
// a security-relevant knob (force-https, passthrough, mode) fails open.
func (t *translator) compileIngress(ing *networkingv1.Ingress) *ingressState {
	k := keyOf(ing)
	is := &ingressState{obj: ing, key: k, tls: map[string]string{}, tlsWanted: map[string]bool{}, certs: map[string]*ir.Secret{}}
	is.rs = &routeState{kind: &ingressKind, key: k, generation: ing.Generation, created: ing.CreationTimestamp}
	opts := &t.opts.Ingress

	mode, ok := ingressMode(opts, ing)
	is.mode = mode
	ann := ing.Annotations
	if !ok {
		is.fail("metadata.annotations[%s]: %q is not dedicated or shared", annLBMode, ann[annLBMode])
		is.skip = true
	}
	is.forceHTTPS = opts.EnforceHTTPS
	if v, ok := ann[annForceHTTPS]; ok {
		if b, valid := boolAnnotation(v); valid {
			is.forceHTTPS = b
		} else {
			is.fail("metadata.annotations[%s]: %q is not enabled or disabled", annForceHTTPS, v)
			is.skip = true
		}
	}
	if v, ok := ann[annTLSPassthrough]; ok {
		if b, valid := boolAnnotation(v); !valid {
			is.fail("metadata.annotations[%s]: %q is not enabled or disabled", annTLSPassthrough, v)
			is.skip = true
		} else {
			is.passthrough = b
		}
	}
	t.checkServiceAnnotations(is)
	if is.skip {
		return is
	}
	if is.passthrough {
		t.compilePassthrough(is)
		return is
	}

	for i := range ing.Spec.TLS {
		t.compileIngressTLS(is, i, &ing.Spec.TLS[i])
	}
	for i := range ing.Spec.Rules {
		r := &ing.Spec.Rules[i]
		host := r.Host
		if host != "" && !validHostname(host, true) {
			is.fail("spec.rules[%d].host: %q is not a valid hostname", i, host)
			continue
		}
		if r.HTTP == nil {
			continue
		}
		for j := range r.HTTP.Paths {
			field := fmt.Sprintf("spec.rules[%d].http.paths[%d]", i, j)
			if m := t.compileIngressPath(is, i, j, field, &r.HTTP.Paths[j]); m != nil {
				is.paths = append(is.paths, ingressPath{host: host, m: m, field: field})
			}
		}
	}
	if b := ing.Spec.DefaultBackend; b != nil {
		rule := &ruleState{route: is.rs, index: -1}
		ms := &matchState{rule: rule, match: ir.Match{Path: &ir.PathMatch{Type: ir.PathPrefix, Value: "/"}}, pathRank: rankPrefix, pathLen: 1}
		rule.matches = []*matchState{ms}
		t.ingressBackend(is, rule, "spec.defaultBackend", b)
		is.defaultRule = rule
	}
	if len(is.paths) == 0 && is.defaultRule == nil {
		is.skip = true
	}
	return is
}

// compilePassthrough compiles an Ingress with tls-passthrough enabled, as
// Cilium serves one: each rule's host takes the TLS connections whose SNI
// names it, relayed untouched (the backend terminates TLS) to the backend
// of its path "/". A rule without a host cannot be selected by SNI, paths
// other than "/" cannot be told apart without decrypting, and the default
// backend and spec.tls have nothing to do: all are reported and ignored.
// With nothing left the Ingress is not served.
func (t *translator) compilePassthrough(is *ingressState) {
	is.rs.kind = &ingressPassthroughKind
	ing := is.obj
	if ing.Spec.DefaultBackend != nil {
		is.fail("spec.defaultBackend: ignored with %s (connections are told apart by SNI only)", annTLSPassthrough)
	}
	if len(ing.Spec.TLS) > 0 {
		is.fail("spec.tls: ignored with %s (the backends terminate TLS)", annTLSPassthrough)
	}
	seen := map[string]bool{}
	for i := range ing.Spec.Rules {
		r := &ing.Spec.Rules[i]
		switch {
		case r.Host == "":
			is.fail("spec.rules[%d].host: required with %s (the TLS server name selects the backend); the rule is not served", i, annTLSPassthrough)
			continue
		case !validHostname(r.Host, true):
			is.fail("spec.rules[%d].host: %q is not a valid hostname", i, r.Host)
			continue
		case r.HTTP == nil:
			continue
		}
		for j := range r.HTTP.Paths {
			p := &r.HTTP.Paths[j]
			field := fmt.Sprintf("spec.rules[%d].http.paths[%d]", i, j)
			if p.Path != "" && p.Path != "/" {
				is.fail("%s.path: %q is ignored with %s (only / is served: paths cannot be read without terminating TLS)", field, p.Path, annTLSPassthrough)
				continue
			}
			if seen[r.Host] {
				is.fail("%s: host %q already has a backend in this Ingress; it is not served", field, r.Host)
				continue
			}
			seen[r.Host] = true
			rule := &ruleState{route: is.rs, index: i}
			t.ingressBackend(is, rule, field+".backend", &p.Backend)
			is.sni = append(is.sni, ingressSNI{host: r.Host, rule: rule, field: field})
		}
	}
	if len(is.sni) == 0 {
		is.fail("no rule has a host and the path /; the Ingress is not served")
		is.skip = true
	}
}

// checkServiceAnnotations validates the annotations that shape the
// LoadBalancer Service Cilium creates per Ingress. nodemesh assigns the
// address itself and creates no Service, so valid values change nothing;
// invalid ones are still reported.
func (t *translator) checkServiceAnnotations(is *ingressState) {
	ann := is.obj.Annotations
	if v, ok := ann[annServiceType]; ok && v != "LoadBalancer" && v != "NodePort" {
		is.fail("metadata.annotations[%s]: %q is not LoadBalancer or NodePort", annServiceType, v)
	}
	if v, ok := ann[annExternalTraffic]; ok && v != "Cluster" && v != "Local" {
		is.fail("metadata.annotations[%s]: %q is not Cluster or Local", annExternalTraffic, v)
	}
	for _, a := range []string{annInsecureNodePort, annSecureNodePort} {
		if v, ok := ann[a]; ok {
			if _, valid := parsePort(v); !valid {
				is.fail("metadata.annotations[%s]: %q is not a port number (1 to 65535)", a, v)
			}
		}
	}
	t.hostListenerPort(is)
	if v, ok := ann[annLBClass]; ok && v == "" {
		is.fail("metadata.annotations[%s]: empty", annLBClass)
	}
}

// hostListenerPort reads ingress.cilium.io/host-listener-port. In
// host-network mode it is where a dedicated Ingress listens, so an
// unreadable value leaves the Ingress unserved (serving it on the default
// port could take another Ingress's port); on a shared Ingress it is
// ignored, and told, as the shared set listens on the shared port.
// Outside host-network mode it is only validated.
func (t *translator) hostListenerPort(is *ingressState) {
	is.hostPort = DefaultHostListenerPort
	v, set := is.obj.Annotations[annHostListenerPort]
	if !set {
		return
	}
	p, valid := parsePort(v)
	switch {
	case !valid && t.opts.Ingress.HostNetwork && is.mode == LoadBalancerDedicated:
		is.fail("metadata.annotations[%s]: %q is not a port number (1 to 65535); the Ingress is not served", annHostListenerPort, v)
		is.skip = true
	case !valid:
		is.fail("metadata.annotations[%s]: %q is not a port number (1 to 65535)", annHostListenerPort, v)
	case t.opts.Ingress.HostNetwork && is.mode == LoadBalancerShared:
		is.fail("metadata.annotations[%s]: ignored on a shared Ingress, which listens on the shared port %d", annHostListenerPort, t.opts.Ingress.sharedListenerPort())
	default:
		is.hostPort = p
	}
}

// compileIngressTLS resolves one spec.tls entry: its Secret (in the
// Ingress's namespace, or the default certificate without secretName)
// must hold a usable key pair. A host in two entries keeps the first.
func (t *translator) compileIngressTLS(is *ingressState, i int, e *networkingv1.IngressTLS) {
	if len(e.Hosts) == 0 {
		is.tlsWanted[anyHost] = true
	}
	for _, h := range e.Hosts {
		is.tlsWanted[h] = true
	}
	var k input.Key
	switch {
	case e.SecretName != "":
		k = input.Key{Namespace: is.key.Namespace, Name: e.SecretName}
	case t.opts.Ingress.DefaultCertificate != nil:
		k = *t.opts.Ingress.DefaultCertificate
	default:
		is.fail("spec.tls[%d]: no secretName and no default certificate is configured; its hosts are not served over TLS", i)
		return
	}
	if _, err := t.ix.tlsSecret(k); err != nil {
		is.fail("spec.tls[%d].secretName: %v; its hosts are not served over TLS", i, err)
		return
	}
	name := secretName(k)
	is.certs[name] = t.secret(name, k)
	hosts := e.Hosts
	if len(hosts) == 0 {
		hosts = []string{anyHost}
	}
	for j, h := range hosts {
		if h != anyHost && !validHostname(h, true) {
			is.fail("spec.tls[%d].hosts[%d]: %q is not a valid hostname", i, j, h)
			continue
		}
		if _, dup := is.tls[h]; !dup {
			is.tls[h] = name
		}
	}
}

// compileIngressPath compiles one path into a rule with one match. Path
// types follow Cilium: Exact and Prefix as Kubernetes defines them,
// ImplementationSpecific a regular expression matching the whole path.
func (t *translator) compileIngressPath(is *ingressState, i, j int, field string, p *networkingv1.HTTPIngressPath) *matchState {
	rule := &ruleState{route: is.rs, index: i}
	ms := &matchState{rule: rule, index: j}
	rule.matches = []*matchState{ms}
	value := p.Path
	typ := networkingv1.PathTypeImplementationSpecific
	if p.PathType != nil {
		typ = *p.PathType
	}
	if value == "" {
		// No path matches everything, whatever the type.
		value, typ = "/", networkingv1.PathTypePrefix
	}
	switch typ {
	case networkingv1.PathTypeExact, networkingv1.PathTypePrefix:
		if err := checkPath(value); err != nil {
			is.fail("%s.path: %q %v", field, value, err)
			return nil
		}
		if typ == networkingv1.PathTypeExact {
			ms.match.Path = &ir.PathMatch{Type: ir.PathExact, Value: value}
			ms.pathRank = rankExact
		} else {
			if value != "/" {
				value = strings.TrimSuffix(value, "/")
			}
			ms.match.Path = &ir.PathMatch{Type: ir.PathPrefix, Value: value}
			ms.pathRank = rankPrefix
		}
	case networkingv1.PathTypeImplementationSpecific:
		if !strings.HasPrefix(value, "/") {
			is.fail("%s.path: %q must start with /", field, value)
			return nil
		}
		if _, err := regexp.Compile(value); err != nil {
			is.fail("%s.path: invalid RE2 regular expression %q: %v", field, value, err)
			return nil
		}
		ms.match.Path = &ir.PathMatch{Type: ir.PathRegex, Value: value}
		ms.pathRank = rankRegex
	default:
		is.fail("%s.pathType: unsupported path type %q", field, typ)
		return nil
	}
	ms.pathLen = len(value)
	t.ingressBackend(is, rule, field+".backend", &p.Backend)
	return ms
}

// ingressBackend resolves a backend to a Service port cluster in the
// Ingress's namespace. A backend that cannot be resolved keeps its path
// with a backend of no cluster (reported), so its requests get 500 as an
// HTTPRoute's unresolved backendRef does, and never fall to another,
// broader path of the Ingress.
func (t *translator) ingressBackend(is *ingressState, rule *ruleState, field string, b *networkingv1.IngressBackend) {
	if !t.resolveIngressBackend(is, rule, field, b) {
		rule.backends = []*ir.WeightedBackend{{Weight: 1}}
		rule.clusters = nil
	}
}

// resolveIngressBackend sets the rule's backend and cluster, or reports
// why it cannot.
func (t *translator) resolveIngressBackend(is *ingressState, rule *ruleState, field string, b *networkingv1.IngressBackend) bool {
	if b.Resource != nil {
		is.fail("%s.resource: resource backends are not supported; use a Service", field)
		return false
	}
	if b.Service == nil {
		is.fail("%s.service: required", field)
		return false
	}
	k := input.Key{Namespace: is.key.Namespace, Name: b.Service.Name}
	svc := t.ix.services[k]
	if svc == nil {
		is.fail("%s.service: Service %s not found", field, k)
		return false
	}
	port := b.Service.Port
	idx := slices.IndexFunc(svc.Spec.Ports, func(sp corev1.ServicePort) bool {
		if port.Name != "" {
			return sp.Name == port.Name
		}
		return sp.Port == port.Number
	})
	if idx < 0 {
		what := strconv.Itoa(int(port.Number))
		if port.Name != "" {
			what = strconv.Quote(port.Name)
		}
		is.fail("%s.service.port: Service %s has no port %s", field, k, what)
		return false
	}
	// Resolve through the shared path, so every check (type, protocol,
	// appProtocol) is the one routes get.
	num := svc.Spec.Ports[idx].Port
	cl, problem := t.resolveService(is.rs, "spec.rules[0].backendRefs[0]", &gwv1.BackendObjectReference{Name: gwv1.ObjectName(k.Name), Port: &num})
	if problem != nil {
		// The message's field path is the route one; report ours.
		_, detail, _ := strings.Cut(problem.msg, "]: ")
		is.fail("%s.service: %s", field, detail)
		return false
	}
	if cl == nil {
		is.fail("%s.service: Service %s is targeted by a BackendTLSPolicy that cannot verify it (see the policy's status)", field, k)
		return false
	}
	rule.backends = []*ir.WeightedBackend{{Cluster: cl.Name, Weight: 1}}
	rule.clusters = []*ir.Cluster{cl}
	return true
}
