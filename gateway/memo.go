package gateway

import (
	"net/netip"
	"slices"
	"sync"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/nodemesh/nodemesh/mesh/input"
	"github.com/nodemesh/nodemesh/mesh/ir"
)

// Translator translates successive snapshots and reuses the work of the
// previous call where its inputs did not change, so an edit to one route
// costs about that route, not the whole configuration:
//
//   - a route of any kind whose object is the very same (pointer-equal) as
//     last time, while the objects route compilation reads (Services,
//     EndpointSlices, ReferenceGrants, Namespaces, Secrets) are all the
//     same too, is not compiled again; its IR routes are the same objects;
//   - a virtual host whose gathered routes are the same compiled matches in
//     the same order on the same port keeps its sorted route list and its
//     IR object.
//
// Providers hand over the same object for an unchanged resource (informer
// caches do; the file provider keeps the objects of unchanged files), so
// reuse follows the input's own identity: nothing is hashed or compared
// deeply. Status is always computed afresh (attachment depends on every
// Gateway). The Result is always deep-equal to Translate's for the same
// input; a test holds that over random edits.
//
// Successive Results share IR objects. They are read-only, as every
// Result's IR is; the input objects must not be modified after they were
// translated (replace an object to change it, as providers do).
type Translator struct {
	mu   sync.Mutex
	prev *memo
}

// NewTranslator returns a Translator with nothing remembered.
func NewTranslator() *Translator { return &Translator{} }

// Translate is Translate with reuse of the previous call's work.
func (x *Translator) Translate(in *input.Snapshot, opts Options) *Result {
	x.mu.Lock()
	defer x.mu.Unlock()
	t := newTranslator(in, opts, x.prev, true)
	t.run()
	x.prev = t.next
	return t.result()
}

// memo is what one translation compiled, for the next one.
type memo struct {
	world world
	ix    *index
	// gateways is the identity of what parentRef resolution reads besides
	// the route and the index.
	gateways gatewayWorld
	// order holds the compiled routes of each kind in the order the
	// snapshot listed them, so an unchanged route is found by position;
	// byID indexes them by kind and key, built when a route is not where
	// it was (see reusedRoute). clusters are the clusters they share,
	// secrets the IR form of TLS Secrets.
	order    [][]*routeState
	byID     map[routeID]*routeState
	clusters map[clusterKey]*ir.Cluster
	secrets  map[*corev1.Secret]*ir.Secret
	vhosts   map[string]*vhostMemo
	// epoch numbers translations; a route state carries the epoch of the
	// last translation that served it. served is how many routes it
	// served, sorted whether they were in key order as listed.
	epoch  int
	served int
	sorted bool
	// addrs are the Gateway addresses the listeners were built with.
	addrs map[input.Key]netip.Addr
	// clusterRefs counts the virtual hosts using each cluster, and
	// clusterSorted lists those clusters by name (see clusterList).
	clusterRefs   map[*ir.Cluster]int
	clusterSorted []*ir.Cluster
}

// gatewayWorld is the identity of the GatewayClasses and Gateways and the
// controller name: while they are the same, so is every Gateway's
// listeners and so the resolution of every parentRef.
type gatewayWorld struct {
	controller gwv1.GatewayController
	classes    []*gwv1.GatewayClass
	gateways   []*gwv1.Gateway
}

func gatewayWorldOf(in *input.Snapshot, controller gwv1.GatewayController) gatewayWorld {
	return gatewayWorld{controller: controller, classes: slices.Clone(in.GatewayClasses), gateways: slices.Clone(in.Gateways)}
}

func (w gatewayWorld) same(in *input.Snapshot, controller gwv1.GatewayController) bool {
	return w.controller == controller && slices.Equal(w.classes, in.GatewayClasses) && slices.Equal(w.gateways, in.Gateways)
}

// world is the identity of every input route compilation reads besides
// the route itself (the index is built from exactly these).
type world struct {
	services   []*corev1.Service
	slices     []*discoveryv1.EndpointSlice
	grants     []*gwv1.ReferenceGrant
	namespaces []*corev1.Namespace
	secrets    []*corev1.Secret
}

func worldOf(in *input.Snapshot) world {
	return world{
		services:   slices.Clone(in.Services),
		slices:     slices.Clone(in.EndpointSlices),
		grants:     slices.Clone(in.ReferenceGrants),
		namespaces: slices.Clone(in.Namespaces),
		secrets:    slices.Clone(in.Secrets),
	}
}

// same reports whether in holds the very objects w was taken from.
func (w world) same(in *input.Snapshot) bool {
	return slices.Equal(w.services, in.Services) && slices.Equal(w.slices, in.EndpointSlices) &&
		slices.Equal(w.grants, in.ReferenceGrants) && slices.Equal(w.namespaces, in.Namespaces) &&
		slices.Equal(w.secrets, in.Secrets)
}

// vhostMemo is one virtual host as built: the routes gathered for it, the
// port, and what they produced.
type vhostMemo struct {
	port     int32
	refs     []routeRef
	vh       *ir.VirtualHost
	clusters []*ir.Cluster // distinct clusters its routes use
}

// reusedRoute returns the previous translation's compiled route for r, of
// kind k, when nothing it was compiled from changed, ready to be attached
// again. at is r's position among the routes of its kind this translation
// processed so far; an unchanged route is usually where it was, shifted
// by the routes added and removed before it.
func (t *translator) reusedRoute(k *routeKind, r route, at int) *routeState {
	if t.prev == nil || !t.sameWorld {
		return nil
	}
	order := t.prev.order[k.rank]
	i := at + t.shift[k.rank]
	if i >= 0 && i < len(order) && order[i].src == r {
		order[i].mark = 0
		return order[i]
	}
	m := r.meta()
	if i >= 0 && i < len(order) && order[i].key.Name == m.Name && order[i].key.Namespace == m.Namespace {
		return nil // the route was replaced: compile it again
	}
	// Routes were added or removed before this one.
	t.moved = true
	rs := t.prev.lookup(routeID{k, input.Key{Namespace: m.Namespace, Name: m.Name}})
	if rs == nil {
		return nil
	}
	t.shift[k.rank] = rs.pos - at
	if rs.src != r {
		return nil
	}
	// Virtual host assembly starts over; attachment is reused when the
	// Gateways it was resolved against are unchanged (processRoutes).
	rs.mark = 0
	return rs
}

// lookup finds a compiled route by kind and key.
func (m *memo) lookup(id routeID) *routeState {
	if m.byID == nil {
		n := 0
		for _, o := range m.order {
			n += len(o)
		}
		m.byID = make(map[routeID]*routeState, n)
		for _, o := range m.order {
			for _, rs := range o {
				m.byID[rs.id()] = rs
			}
		}
	}
	return m.byID[id]
}
