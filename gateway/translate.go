package gateway

import (
	"bytes"
	"cmp"
	"maps"
	"net/netip"
	"slices"
	"sort"
	"strings"

	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/nodemesh/nodemesh/mesh/input"
	"github.com/nodemesh/nodemesh/mesh/ir"
)

// ControllerName is the GatewayClass controllerName nodemesh answers to.
const ControllerName gwv1.GatewayController = "nodemesh.io/gateway-controller"

// Options tune one translation.
type Options struct {
	// ControllerName selects the GatewayClasses to process; empty means
	// ControllerName.
	ControllerName gwv1.GatewayController
	// Addresses holds the address assigned to each Gateway. A Gateway
	// without a (valid) address is reported Programmed=False with reason
	// AddressNotAssigned and produces no listeners.
	Addresses map[input.Key]netip.Addr
	// AddressProblems optionally explains why a Gateway has no address; the
	// text becomes the AddressNotAssigned condition's message.
	AddressProblems map[input.Key]string
	// HostNetwork serves Gateways on the node proxies' own node addresses
	// (host-network mode): each caller assigns its node's address, so a
	// Gateway asking for specific addresses cannot be honoured and is
	// Programmed=False/AddressNotUsable everywhere alike.
	HostNetwork bool
	// Ingress tunes Ingress support (ingress.go).
	Ingress IngressOptions
	// Mesh places the listeners of GAMMA routes (mesh.go).
	Mesh MeshOptions
	// SystemCAs is the PEM bundle of well-known CA certificates a
	// BackendTLSPolicy with wellKnownCACertificates System trusts (read
	// from the host by the caller); empty refuses such policies.
	SystemCAs []byte
}

// Result is everything one translation produces. It shares no memory with
// the input snapshot except read-only strings, and the caller owns it.
type Result struct {
	// Config is the L7 configuration; it always passes Config.Validate.
	// Routes may be shared between virtual hosts: treat it as read-only.
	Config *ir.Config `json:"config"`
	// Status of every GatewayClass whose controllerName is ours, by name.
	GatewayClasses []GatewayClassStatus `json:"gatewayClasses,omitempty"`
	// Status of every Gateway of such a class, by namespace/name.
	Gateways []GatewayStatus `json:"gateways,omitempty"`
	// Status of every ListenerSet whose parentRef names such a Gateway,
	// by namespace/name.
	ListenerSets []ListenerSetStatus `json:"listenerSets,omitempty"`
	// Status of every route, of every supported kind, with at least one
	// parentRef to such a Gateway: the kinds in a fixed order (HTTPRoute
	// first), each by namespace/name. Parents lists only this controller's
	// entries; the status writer merges them with other controllers'.
	Routes []RouteStatus `json:"routes,omitempty"`
	// Ingresses holds the outcome for every Ingress of our class, by
	// namespace/name.
	Ingresses []IngressStatus `json:"ingresses,omitempty"`
	// Policies holds this controller's part of the status of every
	// BackendTLSPolicy targeting a Service, by namespace/name: ancestors
	// lists only our Gateways; the status writer merges them with other
	// controllers' entries.
	Policies []PolicyStatus `json:"policies,omitempty"`
	// Mesh lists the Service ports GAMMA routes steer, by Service and
	// port: the datapath sends their connections to the listener named
	// (empty without Options.Mesh.ListenAddress).
	Mesh []MeshRedirect `json:"mesh,omitempty"`
}

// PolicyStatus is this controller's part of one policy's status.
type PolicyStatus struct {
	// Kind is the policy's kind, e.g. BackendTLSPolicy.
	Kind   gwv1.Kind         `json:"kind"`
	Key    input.Key         `json:"key"`
	Status gwv1.PolicyStatus `json:"status"`
}

// GatewayClassStatus is the status this controller computes for one
// GatewayClass. SupportedFeatures is left to the controller that owns the
// class lifecycle.
type GatewayClassStatus struct {
	Name   string                  `json:"name"`
	Status gwv1.GatewayClassStatus `json:"status"`
}

// GatewayStatus is the status of one Gateway.
type GatewayStatus struct {
	Key    input.Key          `json:"key"`
	Status gwv1.GatewayStatus `json:"status"`
}

// RouteStatus is this controller's part of one route's status. The
// parents and their conditions have the same shape for every route kind
// (each kind's status embeds gwv1.RouteStatus), so one type serves all.
type RouteStatus struct {
	// Kind is the route's kind, e.g. HTTPRoute.
	Kind   gwv1.Kind        `json:"kind"`
	Key    input.Key        `json:"key"`
	Status gwv1.RouteStatus `json:"status"`
}

// Translate turns Gateway API intent into the IR and the status of every
// object this controller owns. It is a pure function: it reads the
// snapshot without modifying it, never fails (user errors become status
// conditions) and may run concurrently with other calls.
func Translate(in *input.Snapshot, opts Options) *Result {
	t := newTranslator(in, opts, nil, false)
	t.run()
	return t.result()
}

// newTranslator prepares one translation; prev, when not nil, is the
// previous translation's memo (see Translator), and remember makes it
// record its own for the next.
func newTranslator(in *input.Snapshot, opts Options, prev *memo, remember bool) *translator {
	if in == nil {
		in = &input.Snapshot{}
	}
	if opts.ControllerName == "" {
		opts.ControllerName = ControllerName
	}
	t := &translator{opts: opts, in: in, prev: prev}
	if prev != nil && prev.world.matches(in) && bytes.Equal(prev.ix.systemCAs, opts.SystemCAs) {
		t.sameWorld = true
		t.ix = prev.ix
		if !prev.world.same(in) {
			// Re-listed objects of the same content: index them, so
			// that the objects they replace are not kept alive, and
			// keep the verdicts on certificates (the Secrets are the
			// same content).
			t.ix = newIndex(in, opts.SystemCAs)
			t.ix.certs = prev.ix.certs
		}
		t.clusters = prev.clusters
		t.clientClusters = prev.clientClusters
		t.secrets = prev.secrets
	} else {
		t.ix = newIndex(in, opts.SystemCAs)
	}
	t.sameGateways = prev != nil && prev.gateways.matches(in, opts.ControllerName)
	// Every listener is what it was: the same Gateway objects, the same
	// Secrets and Namespaces (certificates and route namespaces) and the
	// same addresses. Only then is a virtual host all of whose hostnames
	// kept their routes the same as before.
	t.sameListeners = t.sameGateways && t.sameWorld && maps.Equal(prev.addrs, opts.Addresses) && prev.hostNetwork == opts.HostNetwork
	t.shift = make([]int, len(routeKinds))
	if prev != nil {
		t.epoch = prev.epoch + 1
	}
	if remember {
		t.next = &memo{ix: t.ix, order: make([][]*routeState, len(routeKinds)), vhosts: map[vhostKey]*vhostMemo{},
			epoch: t.epoch, addrs: maps.Clone(opts.Addresses), hostNetwork: opts.HostNetwork}
		if t.sameWorld {
			t.next.world = prev.world.adopt(in)
		} else {
			t.next.world = worldOf(in)
		}
		if t.sameGateways {
			t.next.gateways = prev.gateways
		} else {
			t.next.gateways = gatewayWorldOf(in, opts.ControllerName)
		}
	}
	if t.secrets == nil {
		t.secrets = map[input.Key]*ir.Secret{}
	}
	return t
}

func (t *translator) run() {
	t.processClasses()
	t.processGateways()
	t.processRoutes()
	t.processMesh()
	t.processIngresses()
}

// translator is the state of one Translate call.
type translator struct {
	opts Options
	in   *input.Snapshot
	ix   *index

	classes  map[string]*classState
	gateways map[input.Key]*gatewayState
	// gatewayOrder lists our Gateways oldest first; earlier Gateways win
	// address/port clashes.
	gatewayOrder []*gatewayState
	// listenerSets are the ListenerSets whose parent is one of our
	// Gateways, by key and in snapshot order.
	listenerSets     map[input.Key]*listenerSetState
	listenerSetOrder []*listenerSetState
	routes           []*routeState
	ingresses        []*ingressState
	// mesh holds the Service ports with GAMMA routes, and meshOnly the
	// routes whose only parents are Services (processMesh).
	mesh     map[meshPortKey]*meshPort
	meshOnly []*routeState
	// meshRoutes are the routes with Service parentRefs, in snapshot
	// order (noteMesh).
	meshRoutes []meshRoute

	// sorter puts the items of virtual hosts in precedence order; a
	// Translator lends its own, so that its buffers serve every
	// translation (nil: made when first needed, itemSorter).
	sorter *itemSorter

	clusters map[clusterKey]*ir.Cluster
	// servicePorts are the Service ports backendRefs named, as found
	// (see servicePort).
	servicePorts map[servicePortKey]servicePort
	// clientClusters are the copies of TLS clusters presenting a
	// Gateway's client certificate (backendcert.go).
	clientClusters map[clientClusterKey]*ir.Cluster
	// secrets are the IR Secrets made of TLS Secrets, by Secret.
	secrets map[input.Key]*ir.Secret

	// prev is the previous translation's memo and next this one's (both
	// nil for Translate); sameWorld says prev's compiled routes and
	// clusters are valid for this input, sameGateways that prev's
	// resolution of parentRefs is, and sameListeners that its listeners
	// are the same.
	prev, next    *memo
	sameWorld     bool
	sameGateways  bool
	sameListeners bool
	// delta: the listeners hold the previous translation's attachments,
	// which processRoutes updates (takeAttachments).
	delta bool
	// epoch numbers this translation; shift is, per route kind, how far
	// the routes moved in the snapshot since the previous one, and moved
	// says some did (or came or went).
	epoch int
	shift []int
	moved bool
	// dirty holds the hostnames whose routes are not those of the
	// previous translation (meaningful with sameListeners).
	dirty map[string]bool
}

func (t *translator) result() *Result {
	r := &Result{Config: t.buildConfig()}
	r.Mesh = t.buildMesh(&builder{t: t, clusters: map[string]*ir.Cluster{}, secrets: map[string]*ir.Secret{}}, r.Config)
	r.Ingresses = t.buildIngresses(r.Config)
	if t.next != nil {
		t.next.clusters = t.clusters
		t.next.clientClusters = t.clientClusters
		t.next.secrets = t.secrets
	}
	for _, c := range t.in.GatewayClasses {
		if cs := t.classes[c.Name]; cs != nil {
			r.GatewayClasses = append(r.GatewayClasses, GatewayClassStatus{Name: c.Name, Status: cs.status()})
		}
	}
	sort.Slice(r.GatewayClasses, func(i, j int) bool { return r.GatewayClasses[i].Name < r.GatewayClasses[j].Name })
	for _, gs := range t.gatewayOrder {
		r.Gateways = append(r.Gateways, GatewayStatus{Key: gs.key, Status: gs.status(t.opts.AddressProblems)})
	}
	sort.Slice(r.Gateways, func(i, j int) bool { return keyLess(r.Gateways[i].Key, r.Gateways[j].Key) })
	for _, lss := range t.listenerSetOrder {
		r.ListenerSets = append(r.ListenerSets, ListenerSetStatus{Key: lss.key, Status: lss.status(t.opts.AddressProblems)})
	}
	sort.Slice(r.ListenerSets, func(i, j int) bool { return keyLess(r.ListenerSets[i].Key, r.ListenerSets[j].Key) })
	// Sort the routes, not their (large) statuses; they come kind after
	// kind, and providers usually list each kind in key order already.
	byKey := func(a, b *routeState) int {
		if a.kind != b.kind {
			return cmp.Compare(a.kind.rank, b.kind.rank)
		}
		if a.key.Namespace != b.key.Namespace {
			return strings.Compare(a.key.Namespace, b.key.Namespace)
		}
		return strings.Compare(a.key.Name, b.key.Name)
	}
	// Routes in the places of sorted ones of the previous translation,
	// each with the key of the one it replaced, are sorted too.
	sorted := t.next != nil && t.sameWorld && t.prev.sorted && !t.moved && len(t.routes) == t.prev.served
	if !sorted {
		sorted = slices.IsSortedFunc(t.routes, byKey)
	}
	if t.next != nil {
		t.next.sorted, t.next.served = sorted, len(t.routes)
	}
	if !sorted {
		slices.SortFunc(t.routes, byKey)
	}
	if len(t.routes) > 0 {
		r.Routes = make([]RouteStatus, 0, len(t.routes))
	}
	r.Policies = t.backendTLSStatus()
	routes := t.routes
	if len(t.meshOnly) > 0 {
		routes = append(slices.Clip(routes), t.meshOnly...)
		slices.SortFunc(routes, byKey)
	}
	for _, rs := range routes {
		if len(rs.parents) > 0 || len(rs.meshParents) > 0 {
			// Service parents are resolved on every translation, so
			// their status is too.
			if rs.status == nil || len(rs.meshParents) > 0 {
				st := rs.renderStatus(t.opts.ControllerName)
				rs.status = &st
			}
			r.Routes = append(r.Routes, RouteStatus{Kind: rs.kind.kind, Key: rs.key, Status: *rs.status})
		}
	}
	return r
}

func keyLess(a, b input.Key) bool {
	if a.Namespace != b.Namespace {
		return a.Namespace < b.Namespace
	}
	return a.Name < b.Name
}
