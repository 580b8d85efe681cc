package gateway

import (
	"net/netip"
	"slices"
	"sync"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/runtime"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/nodemesh/nodemesh/mesh/input"
	"github.com/nodemesh/nodemesh/mesh/ir"
)

// Translator translates successive snapshots and reuses the work of the
// previous call where its inputs did not change, so an edit to one route
// costs about that route, not the whole configuration:
//
//   - a route of any kind with the same kind, namespace/name and content
//     hash as last time, while the objects route compilation reads
//     (Services, EndpointSlices, ReferenceGrants, Namespaces, Secrets) all
//     have the hashes they had too, is not compiled again; its IR routes
//     are the same objects;
//   - a virtual host whose gathered routes are the same compiled matches in
//     the same order on the same port keeps its sorted route list and its
//     IR object.
//
// Change is detected by the content hashes providers compute once per
// object as it enters and carry in the snapshot (input.Snapshot.HashOf):
// a re-decoded object with the same content is unchanged, whatever its
// address. While the Gateways and those objects are unchanged, the
// listeners keep the previous call's attachments and only the routes that
// changed are attached or detached (takeAttachments). The Result is always
// deep-equal to Translate's for the same input; a test holds that over
// random edits.
//
// Successive Results share IR objects. They are read-only, as every
// Result's IR is; the input objects must not be modified after they were
// translated (replace an object to change it, as providers do).
type Translator struct {
	mu     sync.Mutex
	prev   *memo
	sorter itemSorter
}

// NewTranslator returns a Translator with nothing remembered.
func NewTranslator() *Translator { return &Translator{} }

// Translate is Translate with reuse of the previous call's work.
func (x *Translator) Translate(in *input.Snapshot, opts Options) *Result {
	x.mu.Lock()
	defer x.mu.Unlock()
	t := newTranslator(in, opts, x.prev, true)
	t.sorter = &x.sorter
	t.run()
	x.prev = t.next
	return t.result()
}

// memo is what one translation compiled, for the next one.
type memo struct {
	world world
	ix    *index
	// gateways is the content of what parentRef resolution reads besides
	// the route and the index.
	gateways gatewayWorld
	// order holds the compiled routes of each kind in the order the
	// snapshot listed them, so an unchanged route is found by position;
	// byID indexes them by kind and key, built when a route is not where
	// it was (see reusedRoute). clusters are the clusters they share,
	// secrets the IR form of TLS Secrets.
	order          [][]*routeState
	byID           map[routeID]*routeState
	clusters       map[clusterKey]*ir.Cluster
	clientClusters map[clientClusterKey]*ir.Cluster
	secrets        map[input.Key]*ir.Secret
	vhosts         map[vhostKey]*vhostMemo
	// gatewayStates are its Gateways, whose listeners' attachments the
	// next translation may take over (takeAttachments).
	gatewayStates map[input.Key]*gatewayState
	// epoch numbers translations; a route state carries the epoch of the
	// last translation that served it. served is how many routes it
	// served, sorted whether they were in key order as listed.
	epoch  int
	served int
	sorted bool
	// addrs are the Gateway addresses the listeners were built with.
	addrs map[input.Key]netip.Addr
	// hostNetwork is the Options.HostNetwork they were built with.
	hostNetwork bool
	// clusterRefs counts the virtual hosts using each cluster, and
	// clusterSorted lists those clusters by name (see clusterList).
	clusterRefs   map[*ir.Cluster]int
	clusterSorted []*ir.Cluster
}

// gatewayWorld is the content of the GatewayClasses, Gateways and
// ListenerSets and the controller name: while it is the same, so is every Gateway's listeners
// and so the resolution of every parentRef.
type gatewayWorld struct {
	controller gwv1.GatewayController
	classes    []input.Hash
	gateways   []input.Hash
	sets       []input.Hash
	// params decide the classes' acceptance.
	params []input.Hash
}

func gatewayWorldOf(in *input.Snapshot, controller gwv1.GatewayController) gatewayWorld {
	return gatewayWorld{controller: controller, classes: input.HashesOf(in, in.GatewayClasses), gateways: input.HashesOf(in, in.Gateways),
		sets: input.HashesOf(in, in.ListenerSets), params: input.HashesOf(in, in.GatewayClassConfigs)}
}

// matches reports whether in and controller are what w was taken from.
func (w gatewayWorld) matches(in *input.Snapshot, controller gwv1.GatewayController) bool {
	return w.controller == controller && input.HashesMatch(in, w.classes, in.GatewayClasses) && input.HashesMatch(in, w.gateways, in.Gateways) &&
		input.HashesMatch(in, w.sets, in.ListenerSets) && input.HashesMatch(in, w.params, in.GatewayClassConfigs)
}

// world is the content of every input route compilation reads besides
// the route itself (the index is built from exactly these): each kind's
// objects and their hashes in snapshot order. A hash covers an object's
// namespace and name, so equal lists mean the same objects with the same
// content.
type world struct {
	services   objectHashes[corev1.Service, *corev1.Service]
	slices     objectHashes[discoveryv1.EndpointSlice, *discoveryv1.EndpointSlice]
	grants     objectHashes[gwv1.ReferenceGrant, *gwv1.ReferenceGrant]
	namespaces objectHashes[corev1.Namespace, *corev1.Namespace]
	secrets    objectHashes[corev1.Secret, *corev1.Secret]
	policies   objectHashes[gwv1.BackendTLSPolicy, *gwv1.BackendTLSPolicy]
	configMaps objectHashes[corev1.ConfigMap, *corev1.ConfigMap]
}

func worldOf(in *input.Snapshot) world {
	return world{
		services:   hashesOf(in, in.Services),
		slices:     hashesOf(in, in.EndpointSlices),
		grants:     hashesOf(in, in.ReferenceGrants),
		namespaces: hashesOf(in, in.Namespaces),
		secrets:    hashesOf(in, in.Secrets),
		policies:   hashesOf(in, in.BackendTLSPolicies),
		configMaps: hashesOf(in, in.ConfigMaps),
	}
}

// matches reports whether in holds objects of the content w was taken
// from (without allocating: this runs on every translation).
func (w world) matches(in *input.Snapshot) bool {
	return w.services.match(in, in.Services) && w.slices.match(in, in.EndpointSlices) &&
		w.grants.match(in, in.ReferenceGrants) && w.namespaces.match(in, in.Namespaces) &&
		w.secrets.match(in, in.Secrets) && w.policies.match(in, in.BackendTLSPolicies) &&
		w.configMaps.match(in, in.ConfigMaps)
}

// adopt returns w holding the objects of in, which matches w: after a
// re-list (new objects, same content) the next translation then finds
// them by identity again, and the objects replaced are no longer kept.
func (w world) adopt(in *input.Snapshot) world {
	return world{
		services:   w.services.adopt(in.Services),
		slices:     w.slices.adopt(in.EndpointSlices),
		grants:     w.grants.adopt(in.ReferenceGrants),
		namespaces: w.namespaces.adopt(in.Namespaces),
		secrets:    w.secrets.adopt(in.Secrets),
		policies:   w.policies.adopt(in.BackendTLSPolicies),
		configMaps: w.configMaps.adopt(in.ConfigMaps),
	}
}

// same reports whether w holds the very objects of in.
func (w world) same(in *input.Snapshot) bool {
	return w.services.same(in.Services) && w.slices.same(in.EndpointSlices) &&
		w.grants.same(in.ReferenceGrants) && w.namespaces.same(in.Namespaces) &&
		w.secrets.same(in.Secrets) && w.policies.same(in.BackendTLSPolicies) &&
		w.configMaps.same(in.ConfigMaps)
}

// objectHashes are objects of one kind and their content hashes, in
// snapshot order.
type objectHashes[E any, T interface {
	*E
	runtime.Object
}] struct {
	objs   []T
	hashes []input.Hash
}

func hashesOf[E any, T interface {
	*E
	runtime.Object
}](in *input.Snapshot, objs []T) objectHashes[E, T] {
	return objectHashes[E, T]{objs: slices.Clone(objs), hashes: input.HashesOf(in, objs)}
}

// match reports whether objs have the hashes of o, in order. An object
// that is the very one o holds has its hash (objects never change once
// translated), found without the snapshot's table of hashes: checking
// thousands of Services and EndpointSlices on every translation then
// reads no object and no table, and a snapshot that records no hashes
// computes none.
func (o objectHashes[E, T]) match(in *input.Snapshot, objs []T) bool {
	if len(objs) != len(o.hashes) {
		return false
	}
	for i, obj := range objs {
		if obj != o.objs[i] && input.ObjectHash(in, obj) != o.hashes[i] {
			return false
		}
	}
	return true
}

// same reports whether objs are the very objects of o, in order.
func (o objectHashes[E, T]) same(objs []T) bool {
	return slices.Equal(o.objs, objs)
}

// adopt returns o holding objs, objects of the same content (o.match).
func (o objectHashes[E, T]) adopt(objs []T) objectHashes[E, T] {
	if o.same(objs) {
		return o
	}
	return objectHashes[E, T]{objs: slices.Clone(objs), hashes: o.hashes}
}

// vhostMemo is one virtual host as built: the routes gathered for it, the
// port, and what they produced.
type vhostMemo struct {
	port int32
	// cert is the client certificate its Gateway presents to backends.
	cert     *input.Key
	refs     []routeRef
	vh       *ir.VirtualHost
	clusters []*ir.Cluster // distinct clusters its routes use
	// cors: a route of vh carries a CORS policy (vhostCORS).
	cors bool
}

// reusedRoute returns the previous translation's compiled route for r, of
// kind k and content hash h, when nothing it was compiled from changed,
// ready to be attached again. at is r's position among the routes of its
// kind this translation processed so far; an unchanged route is usually
// where it was, shifted by the routes added and removed before it.
func (t *translator) reusedRoute(k *routeKind, r route, h input.Hash, at int) *routeState {
	if t.prev == nil || !t.sameWorld {
		return nil
	}
	order := t.prev.order[k.rank]
	i := at + t.shift[k.rank]
	// The hash covers the namespace and name, so an equal hash is the
	// same route unchanged, found without reading the object.
	if i >= 0 && i < len(order) && order[i].hash == h {
		return order[i].reuse(r)
	}
	m := r.meta()
	if i >= 0 && i < len(order) && order[i].key.Name == m.Name && order[i].key.Namespace == m.Namespace {
		return nil // the route changed: compile it again
	}
	// Routes were added or removed before this one.
	t.moved = true
	rs := t.prev.lookup(routeID{k, input.Key{Namespace: m.Namespace, Name: m.Name}})
	if rs == nil {
		return nil
	}
	t.shift[k.rank] = rs.pos - at
	if rs.hash != h {
		return nil
	}
	// Virtual host assembly starts over; attachment is reused when the
	// Gateways it was resolved against are unchanged (processRoutes).
	return rs.reuse(r)
}

// reuse readies a compiled route for another translation, from r, an
// object of the same content as the one it was compiled from (holding the
// newer object lets the older one go).
func (rs *routeState) reuse(r route) *routeState {
	rs.src, rs.mark = r, 0
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
