package envoyconfig

import (
	"errors"
	"fmt"
	"hash/fnv"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	ciliumv2 "github.com/nodemesh/nodemesh/api/cilium/v2"
	"github.com/nodemesh/nodemesh/mesh/input"
	"github.com/nodemesh/nodemesh/mesh/ir"
	"github.com/nodemesh/nodemesh/proxylib/resource"
)

// Kinds of Object.
const (
	KindEnvoyConfig            = "CiliumEnvoyConfig"
	KindClusterwideEnvoyConfig = "CiliumClusterwideEnvoyConfig"
)

// Reasons of a Status.
const (
	// ReasonAccepted: every resource is delivered to the proxy.
	ReasonAccepted = "Accepted"
	// ReasonInvalid: a resource does not decode, fails Envoy's
	// validation, or refers to something the config does not have.
	ReasonInvalid = "Invalid"
	// ReasonUnsupported: a resource uses a field or value the builtin
	// proxy does not implement (its exact rejection is the message).
	ReasonUnsupported = "Unsupported"
	// ReasonConflict: a listener socket or a Service port is already
	// claimed by another config or by a Gateway, Ingress or policy.
	ReasonConflict = "Conflict"
	// ReasonNotSelected: spec.nodeSelector does not select this node.
	ReasonNotSelected = "NotSelected"
	// ReasonNotRedirected: the config (or an lb-l7 annotation) asks for
	// Services' traffic to go through the proxy, and this node cannot
	// redirect Services (Options.CannotRedirect).
	ReasonNotRedirected = "NotRedirected"
)

// Default range of the ports listeners without an address get.
const (
	DefaultFirstPort = 14000
	DefaultLastPort  = 14999
)

// Options configure a translation.
type Options struct {
	// NodeLabels are this node's labels, matched by spec.nodeSelector.
	NodeLabels map[string]string
	// ListenAddress is where listeners without an address bind: the
	// node address redirected Service traffic is sent to. Required when
	// any such listener exists.
	ListenAddress netip.Addr
	// FirstPort and LastPort bound the ports such listeners get
	// (default DefaultFirstPort-DefaultLastPort).
	FirstPort, LastPort uint16
	// Taken are the sockets other listeners of this node bind (a
	// Gateway's, an Ingress's), with who binds them.
	Taken map[netip.AddrPort]string
	// CannotRedirect says this node has no datapath Service table (the
	// agent runs without --datapath-cgroup), so nothing can send a
	// Service's traffic to a listener, nor refuse it: a config with
	// spec.services, and an lb-l7 Service, is then refused
	// (ReasonNotRedirected) instead of serving a listener the Services'
	// traffic bypasses.
	CannotRedirect bool
	// OriginalSourceMark, when not zero, says this node's datapath steers
	// the replies to connections the proxy opens from a client's address
	// back to the proxy, and is the SO_MARK those connections carry (the
	// proxy mark, no identity: the datapath judges them by the client's
	// address). Listeners of configs that keep the original source (see
	// originalSource) then get an original_src listener filter with it.
	// Zero (no datapath, or --policy-original-source=false): upstream
	// connections come from the node, and the statuses of configs that
	// ask for the original source say it is not in effect.
	OriginalSourceMark uint32
	// UpstreamMark, when not zero, is the SO_MARK of every upstream
	// connection of the configs' and lb-l7 Services' clusters, and of an
	// original_src filter a config gives itself: the routing listeners'
	// mark without identity (datapath.ProxyRouteMark(0)), set where the
	// datapath runs. It tells the datapath that these listeners applied
	// no L7 ingress policy, so a backend's L7 rules are still applied (by
	// the ingress policy listener), whatever the source address. A config
	// that sets a mark of its own is then refused (withUpstreamMark).
	UpstreamMark uint32
}

// Object names a config.
type Object struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
}

func (o Object) String() string {
	if o.Namespace == "" {
		return o.Kind + " " + o.Name
	}
	return o.Kind + " " + o.Namespace + "/" + o.Name
}

// Status is the verdict on one config.
type Status struct {
	Object
	Generation int64 `json:"generation,omitempty"`
	// Valid is true when the config's resources are delivered (or
	// would be, on a node it selects).
	Valid   bool   `json:"valid"`
	Reason  string `json:"reason"`
	Message string `json:"message,omitempty"`
}

// Redirect sends a Service's traffic to a listener of a config.
type Redirect struct {
	Owner   Object
	Service input.Key
	// Ports are the Service's TCP ports that go to the listener.
	Ports []uint16
	// Listener is the qualified listener name and Bind the socket it
	// binds. Both are empty when Refused.
	Listener string
	Bind     netip.AddrPort
	// Refused is set when the config that redirects the Service was
	// refused: the Service's traffic must then fail, never bypass the
	// proxy the user put in its path.
	Refused bool
}

// Result is the translation of every config of a snapshot.
type Result struct {
	// Resources are sorted by type URL, then name.
	Resources []*ir.Resource
	Redirects []Redirect
	// Statuses has one entry per config, clusterwide ones first.
	Statuses []Status
}

// config is one object of either kind.
type config struct {
	obj  Object
	gen  int64
	meta *metav1.ObjectMeta
	spec *ciliumv2.CiliumEnvoyConfigSpec
}

// Translate translates the CiliumClusterwideEnvoyConfigs and
// CiliumEnvoyConfigs of snap for this node. It is pure and deterministic;
// a config in error contributes nothing but its status (and refused
// redirects), and never affects another config.
func Translate(snap *input.Snapshot, opts Options) *Result {
	if opts.FirstPort == 0 && opts.LastPort == 0 {
		opts.FirstPort, opts.LastPort = DefaultFirstPort, DefaultLastPort
	}
	var cfgs []config
	for _, c := range snap.CiliumClusterwideEnvoyConfigs {
		cfgs = append(cfgs, config{Object{KindClusterwideEnvoyConfig, "", c.Name}, c.Generation, &c.ObjectMeta, &c.Spec})
	}
	for _, c := range snap.CiliumEnvoyConfigs {
		cfgs = append(cfgs, config{Object{KindEnvoyConfig, c.Namespace, c.Name}, c.Generation, &c.ObjectMeta, &c.Spec})
	}
	t := &translation{
		opts:     opts,
		svcs:     newServiceIndex(snap),
		binds:    map[netip.AddrPort]string{},
		claimed:  map[svcPort]Object{},
		eds:      map[string]*endpointv3.ClusterLoadAssignment{},
		out:      &Result{},
		resNames: map[[2]string]bool{},
	}
	for ap, who := range opts.Taken {
		t.binds[ap] = who
	}
	for _, c := range cfgs {
		t.config(c)
	}
	for _, svc := range snap.Services {
		if lbL7Enabled(svc) {
			t.serviceLB(svc)
		}
	}
	for _, cla := range t.eds {
		t.out.Resources = append(t.out.Resources, mustResource(cla, cla.GetClusterName(), netip.AddrPort{}))
	}
	slices.SortFunc(t.out.Resources, func(a, b *ir.Resource) int {
		if c := strings.Compare(a.TypeURL, b.TypeURL); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	return t.out
}

type svcPort struct {
	svc  input.Key
	port uint16
}

type translation struct {
	opts    Options
	svcs    *serviceIndex
	binds   map[netip.AddrPort]string
	claimed map[svcPort]Object
	// eds holds the Service endpoints some accepted config asks for.
	eds      map[string]*endpointv3.ClusterLoadAssignment
	out      *Result
	resNames map[[2]string]bool
}

// prefix is what every resource name of a config begins with.
func prefix(o Object) string {
	if o.Kind == KindClusterwideEnvoyConfig {
		return ir.ClusterwideEnvoyConfigNamePrefix + o.Name + "/"
	}
	return ir.EnvoyConfigNamePrefix + o.Namespace + "/" + o.Name + "/"
}

// notRedirected is the refusal of Service redirects on a node that cannot
// make them.
const notRedirected = "spec.services: this node cannot send a Service's traffic to a listener (its agent has no datapath Service table: run it with --datapath-cgroup), so the Services' traffic would bypass the proxy; the config is refused rather than served beside that traffic"

// failure is a config's refusal: its reason and the problems found.
type failure struct {
	reason string
	errs   []error
}

func (f *failure) add(reason string, err error) {
	// The most specific reason wins: a conflict or an unsupported field
	// is more useful to read than "invalid" when both occur; a node that
	// cannot redirect is the most useful of all (nothing else the user
	// fixes makes the config serve there).
	if f.reason == "" || reason == ReasonNotRedirected || (reason == ReasonConflict && f.reason != ReasonNotRedirected) ||
		(reason == ReasonUnsupported && f.reason == ReasonInvalid) {
		f.reason = reason
	}
	f.errs = append(f.errs, err)
}

func (t *translation) config(c config) {
	st := Status{Object: c.obj, Generation: c.gen}
	if sel := c.spec.NodeSelector; sel != nil {
		ok, err := selects(sel, t.opts.NodeLabels)
		if err != nil {
			st.Reason, st.Message = ReasonInvalid, fmt.Sprintf("spec.nodeSelector: %v", err)
			t.out.Statuses = append(t.out.Statuses, st)
			return
		}
		if !ok {
			st.Valid, st.Reason, st.Message = true, ReasonNotSelected, "spec.nodeSelector does not select this node"
			t.out.Statuses = append(t.out.Statuses, st)
			return
		}
	}
	var f failure
	services, backends := t.serviceRefs(c, &f)
	if len(c.spec.Services) > 0 && t.opts.CannotRedirect {
		f.add(ReasonNotRedirected, errors.New(notRedirected))
	}

	// Decode, and index the user's names.
	var rs []*entry
	own := map[string]map[string]bool{}
	var firstListener string
	for i, raw := range c.spec.Resources {
		r, err := decodeResource(i, raw.Raw)
		if err != nil {
			f.add(ReasonInvalid, err)
			continue
		}
		url := r.typeURL()
		if own[url] == nil {
			own[url] = map[string]bool{}
		}
		if own[url][r.name] {
			f.add(ReasonInvalid, fmt.Errorf("resources[%d]: a second %s named %q", i, kindOf(r.msg), r.name))
			continue
		}
		own[url][r.name] = true
		if url == ir.TypeListener && firstListener == "" {
			firstListener = r.name
		}
		rs = append(rs, r)
	}

	p := prefix(c.obj)
	var wantEDS []edsName
	n := &renamer{prefix: p, eds: func(name string) (string, error) {
		if own[ir.TypeClusterLoadAssignment][name] {
			return p + name, nil
		}
		e, ok := parseEDSName(name)
		if !ok {
			return "", fmt.Errorf("EDS service name %q names neither a ClusterLoadAssignment of this config nor a Service (<namespace>/<name>[:<port>])", name)
		}
		sel, listed := services[e.svc]
		if !listed {
			sel, listed = backends[e.svc]
		}
		if !listed {
			return "", fmt.Errorf("EDS service name %q: Service %s is in neither spec.services nor spec.backendServices", name, e.svc)
		}
		if e.port == "" && len(sel) > 0 {
			return "", fmt.Errorf("EDS service name %q: the Service's entry selects ports %v, so name one (%s:<port>)", name, sel, name)
		}
		if e.port != "" && len(sel) > 0 && !slices.Contains(sel, e.port) {
			return "", fmt.Errorf("EDS service name %q: port %s is not among the ports the Service's entry selects (%v)", name, e.port, sel)
		}
		wantEDS = append(wantEDS, e)
		return e.String(), nil
	}, builtin: func(url, name string) bool {
		// The proxy's own admin cluster, as Cilium's bootstrap defines
		// it; a config's own cluster of that name comes first.
		return url == typeCluster && name == resource.AdminClusterName && !own[typeCluster][name]
	}}

	origSrc, origNote := originalSource(c.meta)
	inject := origSrc && t.opts.OriginalSourceMark != 0
	// Only the listeners Services are redirected to: their clients are
	// this node's Pods (the datapath's socket hooks redirect), so the
	// backends' replies to a client's address come back through this
	// node, where the datapath hands them to the proxy. A listener on an
	// address of its own may be reached from other nodes, whose replies
	// would go to the client's node instead.
	redirected := map[string]bool{}
	for _, sl := range c.spec.Services {
		if sl.Listener != "" {
			redirected[sl.Listener] = true
		} else {
			redirected[firstListener] = true
		}
	}
	binds := map[string]netip.AddrPort{} // user listener name -> socket
	var out []*ir.Resource
	for _, r := range rs {
		where := fmt.Sprintf("resources[%d] (%s %q)", r.index, kindOf(r.msg), r.name)
		var err error
		var bind netip.AddrPort
		switch m := r.msg.(type) {
		case *listenerv3.Listener:
			err = n.listener(m)
			if err == nil {
				bind, err = t.bind(m, c.obj, &f)
				binds[r.name] = bind
			}
			if err == nil && t.opts.UpstreamMark != 0 {
				err = checkOriginalSrcMark(m, t.opts.UpstreamMark)
			}
			if err == nil && inject && redirected[r.name] {
				err = withOriginalSource(m, t.opts.OriginalSourceMark)
			}
		case *routev3.RouteConfiguration:
			n.routes(m, true)
		case *clusterv3.Cluster:
			err = n.cluster(m)
			if err == nil && t.opts.UpstreamMark != 0 {
				err = withUpstreamMark(m, t.opts.UpstreamMark)
			}
		case *endpointv3.ClusterLoadAssignment:
			n.endpoints(m)
		case *tlsv3.Secret:
			n.secret(m)
		}
		if err != nil {
			f.add(ReasonInvalid, fmt.Errorf("%s: %w", where, err))
			continue
		}
		if err := validate(r.msg); err != nil {
			f.add(ReasonInvalid, fmt.Errorf("%s: %w", where, err))
			continue
		}
		if err := builtinProxyRuns(r.msg); err != nil {
			f.add(ReasonUnsupported, fmt.Errorf("%s: the builtin proxy cannot run it: %w", where, err))
			continue
		}
		res, err := newResource(r.msg, bind)
		if err != nil {
			f.add(ReasonInvalid, fmt.Errorf("%s: %w", where, err))
			continue
		}
		out = append(out, res)
	}

	// Every reference must land on a resource of the config: names are
	// qualified, so one to anything else (another config's resource)
	// would dangle, and the proxy would answer its traffic with errors.
	// The one exception is the proxy's own admin cluster (builtin above).
	kinds := map[string]string{typeRoutes: "RouteConfiguration", typeCluster: "Cluster", typeSecret: "Secret"}
	for _, url := range []string{typeRoutes, typeCluster, typeSecret} {
		seen := map[string]bool{}
		for _, name := range n.refs[url] {
			if !own[url][name] && !seen[name] {
				seen[name] = true
				f.add(ReasonInvalid, fmt.Errorf("%s %q is referred to but is not among the config's resources", kinds[url], name))
			}
		}
	}

	// Service redirects.
	var redirects []Redirect
	for i, sl := range c.spec.Services {
		k := input.Key{Namespace: sl.Namespace, Name: sl.Name}
		if k.Namespace == "" {
			k.Namespace = defaultNamespace(c.obj)
		}
		rd := Redirect{Owner: c.obj, Service: k}
		if svc := t.svcs.services[k]; svc != nil {
			for _, sp := range servicePorts(svc, nil) {
				if len(sl.Ports) == 0 || slices.Contains(sl.Ports, uint16(sp.Port)) {
					rd.Ports = append(rd.Ports, uint16(sp.Port))
				}
			}
		}
		ln := sl.Listener
		if ln == "" {
			ln = firstListener
		}
		if ln == "" {
			f.add(ReasonInvalid, fmt.Errorf("spec.services[%d]: the config has no listener to send Service %s to", i, k))
		} else if _, ok := own[ir.TypeListener][ln]; !ok {
			f.add(ReasonInvalid, fmt.Errorf("spec.services[%d]: listener %q is not among the config's resources", i, ln))
		} else {
			rd.Listener, rd.Bind = p+ln, binds[ln]
		}
		for _, port := range rd.Ports {
			if other, dup := t.claimed[svcPort{k, port}]; dup {
				f.add(ReasonConflict, fmt.Errorf("spec.services[%d]: Service %s port %d is already redirected by %s", i, k, port, other))
			}
		}
		redirects = append(redirects, rd)
	}

	if len(f.errs) > 0 {
		st.Reason = f.reason
		st.Message = errors.Join(f.errs...).Error()
		for i := range redirects {
			rd := &redirects[i]
			rd.Listener, rd.Bind, rd.Refused = "", netip.AddrPort{}, true
			// A port another config already redirects stays with it.
			rd.Ports = slices.DeleteFunc(rd.Ports, func(port uint16) bool { _, dup := t.claimed[svcPort{rd.Service, port}]; return dup })
		}
		t.out.Redirects = append(t.out.Redirects, redirects...)
		t.out.Statuses = append(t.out.Statuses, st)
		return
	}
	// Accepted: claim what it binds and redirects, and publish.
	for _, ap := range binds {
		t.binds[ap] = c.obj.String()
	}
	for _, rd := range redirects {
		for _, port := range rd.Ports {
			t.claimed[svcPort{rd.Service, port}] = c.obj
		}
	}
	for _, e := range wantEDS {
		name := e.String()
		if t.eds[name] != nil {
			continue
		}
		cla, err := t.svcs.loadAssignment(e, nil)
		if err != nil {
			// The Service lost the port since it was asked for: serve no
			// endpoints rather than another port's.
			cla = &endpointv3.ClusterLoadAssignment{ClusterName: name}
		}
		t.eds[name] = cla
	}
	t.out.Resources = append(t.out.Resources, out...)
	t.out.Redirects = append(t.out.Redirects, redirects...)
	st.Valid, st.Reason = true, ReasonAccepted
	st.Message = originalSourceMessage(origSrc && len(c.spec.Services) > 0, inject, origNote)
	t.out.Statuses = append(t.out.Statuses, st)
}

// defaultNamespace is where a Service entry without a namespace is: the
// config's own, or "default" for a clusterwide config (as in Cilium).
func defaultNamespace(o Object) string {
	if o.Namespace != "" {
		return o.Namespace
	}
	return "default"
}

// serviceRefs checks spec.services and spec.backendServices and returns,
// per Service, the ports its entry selects (numbers or names; empty for
// all). A namespaced config may only name Services of its own namespace:
// redirecting another namespace's traffic is for a clusterwide config.
func (t *translation) serviceRefs(c config, f *failure) (services, backends map[input.Key][]string) {
	services, backends = map[input.Key][]string{}, map[input.Key][]string{}
	check := func(field string, i int, ns, name string) (input.Key, bool) {
		k := input.Key{Namespace: ns, Name: name}
		if k.Namespace == "" {
			k.Namespace = defaultNamespace(c.obj)
		}
		if name == "" {
			f.add(ReasonInvalid, fmt.Errorf("spec.%s[%d]: no name", field, i))
			return k, false
		}
		if c.obj.Namespace != "" && k.Namespace != c.obj.Namespace {
			f.add(ReasonInvalid, fmt.Errorf("spec.%s[%d]: Service %s is in another namespace than the %s", field, i, k, c.obj.Kind))
			return k, false
		}
		return k, true
	}
	for i, s := range c.spec.Services {
		if k, ok := check("services", i, s.Namespace, s.Name); ok {
			var sel []string
			for _, p := range s.Ports {
				sel = append(sel, strconv.Itoa(int(p)))
			}
			services[k] = sel
		}
	}
	for i, s := range c.spec.BackendServices {
		if k, ok := check("backendServices", i, s.Namespace, s.Name); ok {
			backends[k] = s.Ports
		}
	}
	return services, backends
}

// bind decides the socket a listener binds: its own address, or, when it
// has none, ListenAddress and a port from the range (see doc.go, Ports).
func (t *translation) bind(l *listenerv3.Listener, owner Object, f *failure) (netip.AddrPort, error) {
	if l.GetAddress() == nil {
		if !t.opts.ListenAddress.IsValid() {
			return netip.AddrPort{}, errors.New("no address, and this node has no address for listeners without one")
		}
		ap, ok := t.freePort(l.GetName())
		if !ok {
			return netip.AddrPort{}, fmt.Errorf("no address, and every port of %d-%d is taken", t.opts.FirstPort, t.opts.LastPort)
		}
		l.Address = &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
			Address:       ap.Addr().String(),
			PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(ap.Port())},
		}}}
		return ap, nil
	}
	sa := l.GetAddress().GetSocketAddress()
	if sa == nil {
		return netip.AddrPort{}, errors.New("address: only socket_address is supported")
	}
	a, err := netip.ParseAddr(sa.GetAddress())
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("address.socket_address.address: %w", err)
	}
	if sa.GetPortValue() == 0 || sa.GetPortValue() > 65535 {
		return netip.AddrPort{}, fmt.Errorf("address.socket_address.port_value: %d out of range 1-65535", sa.GetPortValue())
	}
	ap := netip.AddrPortFrom(a, uint16(sa.GetPortValue()))
	if who, taken := t.binds[ap]; taken {
		f.add(ReasonConflict, fmt.Errorf("listener %q: %s is already bound by %s", l.GetName(), ap, who))
	}
	return ap, nil
}

// freePort picks the first free port at or after the hash of name in the
// range, so a listener keeps its port while the listeners before it come
// and go (unless one of them lands exactly on it).
func (t *translation) freePort(name string) (netip.AddrPort, bool) {
	size := uint32(t.opts.LastPort) - uint32(t.opts.FirstPort) + 1
	h := fnv.New32a()
	_, _ = h.Write([]byte(name))
	start := h.Sum32() % size
	for i := uint32(0); i < size; i++ {
		ap := netip.AddrPortFrom(t.opts.ListenAddress, uint16(uint32(t.opts.FirstPort)+(start+i)%size))
		if _, taken := t.binds[ap]; !taken {
			t.binds[ap] = name // held for the rest of this translation
			return ap, true
		}
	}
	return netip.AddrPort{}, false
}

// selects matches a node selector against this node's labels.
func selects(sel *ciliumv2.EndpointSelector, nodeLabels map[string]string) (bool, error) {
	ls := &metav1.LabelSelector{MatchLabels: map[string]string{}}
	for k, v := range sel.MatchLabels {
		ls.MatchLabels[stripSource(k)] = v
	}
	for _, e := range sel.MatchExpressions {
		ls.MatchExpressions = append(ls.MatchExpressions, metav1.LabelSelectorRequirement{
			Key: stripSource(e.Key), Operator: metav1.LabelSelectorOperator(e.Operator), Values: e.Values})
	}
	s, err := metav1.LabelSelectorAsSelector(ls)
	if err != nil {
		return false, err
	}
	return s.Matches(labels.Set(nodeLabels)), nil
}

// stripSource drops a Cilium label source ("k8s:", "any:") from a key:
// node labels come from the Node object, whatever source the key names.
func stripSource(k string) string {
	for _, src := range []string{"any:", "k8s:"} {
		if rest, ok := strings.CutPrefix(k, src); ok {
			return rest
		}
	}
	return k
}

// validate runs Envoy's generated validation.
func validate(m proto.Message) error {
	v, ok := m.(interface{ ValidateAll() error })
	if !ok {
		return nil
	}
	return v.ValidateAll()
}

// builtinProxyRuns asks the builtin proxy's own decoder whether it would
// run m: its answer is the NACK the proxy would send, so the user reads
// it on the config before anything is delivered.
func builtinProxyRuns(m proto.Message) error {
	a, err := anypb.New(m)
	if err != nil {
		return err
	}
	switch m.(type) {
	case *listenerv3.Listener:
		_, err = resource.DecodeListener(a)
	case *routev3.RouteConfiguration:
		_, err = resource.DecodeRouteConfig(a)
	case *clusterv3.Cluster:
		_, err = resource.DecodeCluster(a)
	case *endpointv3.ClusterLoadAssignment:
		_, err = resource.DecodeEndpoints(a)
	case *tlsv3.Secret:
		_, err = resource.DecodeSecret(a)
	}
	return err
}

func newResource(m proto.Message, bind netip.AddrPort) (*ir.Resource, error) {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encoding: %w", err)
	}
	r := &ir.Resource{TypeURL: "type.googleapis.com/" + string(m.ProtoReflect().Descriptor().FullName()), Value: b}
	switch x := m.(type) {
	case *listenerv3.Listener:
		r.Name, r.Bind = x.GetName(), bind.String()
	case *routev3.RouteConfiguration:
		r.Name = x.GetName()
	case *clusterv3.Cluster:
		r.Name = x.GetName()
	case *endpointv3.ClusterLoadAssignment:
		r.Name = x.GetClusterName()
	case *tlsv3.Secret:
		r.Name = x.GetName()
	}
	return r, nil
}

// mustResource wraps a message this package built itself; encoding a
// valid message does not fail.
func mustResource(m proto.Message, name string, bind netip.AddrPort) *ir.Resource {
	r, err := newResource(m, bind)
	if err != nil {
		panic(fmt.Sprintf("encoding %s: %v", name, err))
	}
	return r
}
