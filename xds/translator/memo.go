package translator

import (
	"errors"
	"fmt"
	"slices"
	"sync"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/proto"

	"github.com/nodemesh/nodemesh/mesh/ir"
)

// Translator translates successive Configs and reuses the output of every
// IR object whose content (ir.Hash) did not change since the previous
// call: the very same Envoy objects are returned with the same versions,
// so they are neither rebuilt nor validated again, and xds/server sees
// them unchanged. A one-route change builds and validates that route,
// plus new wrappers for its virtual host and RouteConfiguration that hold
// the other routes and virtual hosts unchanged. The result is always
// proto-equal to Translate's.
//
// The agent keeps one Translator and calls Translate from one goroutine at
// a time (calls are serialised). A Config must not be modified after it
// was translated (IR values are immutable once built): hashes are
// remembered per object. A failed call leaves the memory of the last good
// translation in place.
type Translator struct {
	mu     sync.Mutex
	hashes ir.Hashes
	prev   *memo
	// valid remembers the virtual hosts that passed validation, so an
	// unchanged one is not checked route by route again.
	valid ir.Validator
}

// New returns a Translator with nothing remembered.
func New() *Translator {
	t := &Translator{}
	t.valid.Hashes = &t.hashes
	return t
}

// Translate is Translate with reuse of unchanged output.
func (t *Translator) Translate(cfg *ir.Config) (*Resources, error) {
	if cfg == nil {
		return nil, errors.New("translating IR: nil config")
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.hashes.Next()
	if err := t.valid.Validate(cfg); err != nil {
		return nil, fmt.Errorf("translating IR: %w", err)
	}
	b := newBuilder(cfg, &t.hashes, t.prev)
	b.next = newMemo(cfg)
	if err := b.build(); err != nil {
		return nil, fmt.Errorf("translating IR: %w", err)
	}
	t.prev = b.next
	return b.out, nil
}

// memo is what one translation produced, by IR object name and content
// hash. Every method is nil-safe: a nil memo remembers nothing and
// records nothing.
type memo struct {
	// clusterList is the output of the whole list of clusters.
	clusterList *clusterList
	clusters    map[string]*clusterMemo
	// clusterCap sizes clusters (put).
	clusterCap int
	listeners  map[string]*listenerMemo
	tables     map[string]*tableMemo
	secrets    map[string]*secretMemo
	policy     map[string]*policyMemo
}

// clusterList is what a Config's list of clusters produced, for reuse
// when the next Config lists the very same cluster objects.
type clusterList struct {
	// ingress is the hash of the ingress policy the endpoints were
	// filtered with.
	ingress  ir.Hash
	in       []*ir.Cluster
	viaNames map[string]string
	denied   map[string]bool // read-only once built
	clusters []*clusterv3.Cluster
	clas     []*endpointv3.ClusterLoadAssignment
	// sorted: clusters and clas are in name order (sortClusterList).
	sorted   bool
	versions map[proto.Message]string // read-only once built
	warnings []Warning
	names    map[string]string // read-only once built
	invalid  string
}

// clusterMemo is an IR cluster as built: the Cluster from its settings,
// the ClusterLoadAssignment from its endpoints, each with its version.
type clusterMemo struct {
	settings, endpoints ir.Hash
	version, claVersion string
	cluster             *clusterv3.Cluster
	cla                 *endpointv3.ClusterLoadAssignment
	// via and viaCLA are the variant for Gateway and Ingress routes while
	// ingress → backend is enforced (ingresspolicy.go), else nil.
	via           *clusterv3.Cluster
	viaCLA        *endpointv3.ClusterLoadAssignment
	viaVersion    string
	viaCLAVersion string
	// denied: the cluster has ready endpoints and ingress → backend
	// admits none of them (its variant's assignment is empty).
	denied   bool
	warnings []Warning
}

type listenerMemo struct {
	hash     ir.Hash
	version  string
	out      *listenerv3.Listener // nil: the listener was dropped
	warnings []Warning
	refs     []string // secrets its chains use
	kept     []int    // chains emitted (their route tables follow)
	// invalid is the invalid-backend cluster name its TCP chains use
	// ("" when they use none).
	invalid string
}

type tableMemo struct {
	version string
	out     *routev3.RouteConfiguration
	wire    *routesWire
	vhosts  map[string]*vhostMemo
}

// vhostMemo is one virtual host as built. Its output depends on the IR
// virtual host, the domains left to it in its table and, when one of its
// routes names it (usesInvalid), the invalid-backend cluster name; version
// combines them.
type vhostMemo struct {
	hash        ir.Hash
	version     ir.Hash
	usesInvalid bool
	domains     []string
	out         *routev3.VirtualHost
	wire        *serialized
	warnings    []Warning
	routes      []*routeMemo // one per IR route, in order
}

// routeMemo is one route as built: out is nil when the route was dropped.
// A route's output depends on the route and on invalid, the
// invalid-backend cluster name when the route names it ("" otherwise).
type routeMemo struct {
	hash     ir.Hash
	invalid  string
	out      *routev3.Route
	warnings []Warning
}

type secretMemo struct {
	hash    ir.Hash
	version string
	out     *tlsv3.Secret
}

// policyMemo is one L7 policy resource, by kind and name.
type policyMemo struct {
	version  string
	out      proto.Message
	warnings []Warning
}

func newMemo(cfg *ir.Config) *memo {
	return &memo{
		clusterCap: len(cfg.Clusters),
		listeners:  make(map[string]*listenerMemo, len(cfg.Listeners)),
		tables:     make(map[string]*tableMemo, len(cfg.Listeners)),
		secrets:    make(map[string]*secretMemo, len(cfg.Secrets)),
		policy:     map[string]*policyMemo{},
	}
}

func (m *memo) cluster(name string) *clusterMemo {
	if m == nil {
		return nil
	}
	return m.clusters[name]
}

func (m *memo) listener(name string, h ir.Hash, invalid string) *listenerMemo {
	if m == nil {
		return nil
	}
	if lm := m.listeners[name]; lm != nil && lm.hash == h && lm.invalid == invalid {
		return lm
	}
	return nil
}

func (m *memo) table(name string) *tableMemo {
	if m == nil {
		return nil
	}
	return m.tables[name]
}

func (m *memo) secret(name string, h ir.Hash) *secretMemo {
	if m == nil {
		return nil
	}
	if sm := m.secrets[name]; sm != nil && sm.hash == h {
		return sm
	}
	return nil
}

func (m *memo) policyResource(key, version string) *policyMemo {
	if m == nil {
		return nil
	}
	if pm := m.policy[key]; pm != nil && pm.version == version {
		return pm
	}
	return nil
}

// vhost returns the previous build of a virtual host when its version is
// unchanged.
func (t *tableMemo) vhost(name string, version ir.Hash) *vhostMemo {
	if t == nil {
		return nil
	}
	if vm := t.vhosts[name]; vm != nil && vm.version == version {
		return vm
	}
	return nil
}

// oldRoutes indexes by content hash the routes of the previous virtual
// host of the same name, for a virtual host that changed: its unchanged
// routes are reused one by one.
func (b *builder) oldRoutes(t *tableMemo, name string) map[ir.Hash]*routeMemo {
	if t == nil {
		return nil
	}
	vm := t.vhosts[name]
	if vm == nil {
		return nil
	}
	out := make(map[ir.Hash]*routeMemo, len(vm.routes))
	for _, rm := range vm.routes {
		out[rm.hash] = rm
	}
	return out
}

func (m *memo) put(name string, v any) {
	if m == nil {
		return
	}
	switch x := v.(type) {
	case *clusterMemo:
		if m.clusters == nil {
			// Made when the clusters are built, not when a translation
			// takes the previous list whole (clusters): that one's memo
			// is taken too.
			m.clusters = make(map[string]*clusterMemo, m.clusterCap)
		}
		m.clusters[name] = x
	case *listenerMemo:
		m.listeners[name] = x
	case *secretMemo:
		m.secrets[name] = x
	case *tableMemo:
		m.tables[name] = x
	case *policyMemo:
		m.policy[name] = x
	}
}

// warningsSince copies the warnings recorded since mark, for a memo: a
// reused part repeats its warnings.
func (b *builder) warningsSince(mark int) []Warning {
	if len(b.out.Warnings) == mark {
		return nil
	}
	return slices.Clone(b.out.Warnings[mark:])
}
