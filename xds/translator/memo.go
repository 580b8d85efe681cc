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

	"github.com/nodemesh/nodemesh/mesh/ir"
)

// Translator translates successive Configs and reuses the output of every
// IR object that did not change since the previous call: the very same
// Envoy objects are returned, so they are not rebuilt, re-validated, or
// (by xds/server, which recognises them) re-marshalled. A one-route change
// rebuilds only that route's virtual host and its RouteConfiguration
// wrapper. The result is always proto-equal to Translate's.
//
// The agent keeps one Translator and calls Translate from one goroutine at
// a time (calls are serialised). The Translator keeps the previous Config
// to compare with the next one: a Config must not be modified after it was
// translated (IR values are immutable once built). A failed call leaves the
// memory of the last good translation in place.
type Translator struct {
	mu   sync.Mutex
	prev *memo
	// valid remembers the virtual hosts that passed validation, so an
	// unchanged one is not checked route by route again.
	valid ir.Validator
}

// New returns a Translator with nothing remembered.
func New() *Translator { return &Translator{} }

// Translate is Translate with reuse of unchanged output.
func (t *Translator) Translate(cfg *ir.Config) (*Resources, error) {
	if cfg == nil {
		return nil, errors.New("translating IR: nil config")
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.valid.Validate(cfg); err != nil {
		return nil, fmt.Errorf("translating IR: %w", err)
	}
	b := newBuilder(cfg)
	b.prev, b.next = t.prev, newMemo(cfg)
	if err := b.build(); err != nil {
		return nil, fmt.Errorf("translating IR: %w", err)
	}
	t.prev = b.next
	return b.out, nil
}

// memo is what one translation produced, by IR object. Every method is
// nil-safe: a nil memo remembers nothing and records nothing.
type memo struct {
	clusters  map[string]*clusterMemo
	listeners map[string]*listenerMemo
	tables    map[string]*tableMemo
	secrets   map[string]*secretMemo
}

type clusterMemo struct {
	in       *ir.Cluster
	cluster  *clusterv3.Cluster
	cla      *endpointv3.ClusterLoadAssignment
	warnings []Warning
}

type listenerMemo struct {
	in       *ir.Listener
	out      *listenerv3.Listener // nil: the listener was dropped
	warnings []Warning
	refs     []string // secrets its chains use
	kept     []int    // chains emitted (their route tables follow)
}

type tableMemo struct {
	out    *routev3.RouteConfiguration
	vhosts map[string]*vhostMemo
}

type vhostMemo struct {
	in       *ir.VirtualHost
	domains  []string
	invalid  string // the invalid-backend cluster name it was built with
	out      *routev3.VirtualHost
	warnings []Warning
	routes   []*routeMemo // one per IR route, in order
}

// routeMemo is one route as built: out is nil when the route was dropped.
// A route's output depends on the route and on the invalid-backend
// cluster name only.
type routeMemo struct {
	in       *ir.Route
	out      *routev3.Route
	warnings []Warning
}

type secretMemo struct {
	in  *ir.Secret
	out *tlsv3.Secret
}

func newMemo(cfg *ir.Config) *memo {
	return &memo{
		clusters:  make(map[string]*clusterMemo, len(cfg.Clusters)),
		listeners: make(map[string]*listenerMemo, len(cfg.Listeners)),
		tables:    make(map[string]*tableMemo, len(cfg.Listeners)),
		secrets:   make(map[string]*secretMemo, len(cfg.Secrets)),
	}
}

func (m *memo) cluster(c *ir.Cluster) *clusterMemo {
	if m == nil {
		return nil
	}
	if cm := m.clusters[c.Name]; cm != nil && equalCluster(cm.in, c) {
		return cm
	}
	return nil
}

func (m *memo) listener(l *ir.Listener) *listenerMemo {
	if m == nil {
		return nil
	}
	if lm := m.listeners[l.Name]; lm != nil && listenerShapeEqual(lm.in, l) {
		return lm
	}
	return nil
}

// listenerShapeEqual compares what a Listener is built from: everything
// but the contents of the route tables, which have their own memo.
func listenerShapeEqual(a, b *ir.Listener) bool {
	if a == b {
		return true
	}
	if a.Name != b.Name || a.Address != b.Address || a.Port != b.Port || len(a.Chains) != len(b.Chains) {
		return false
	}
	for i, x := range a.Chains {
		y := b.Chains[i]
		if x.Name != y.Name || !slices.Equal(x.ServerNames, y.ServerNames) || !equalTLS(x.TLS, y.TLS) || x.Routes.Name != y.Routes.Name {
			return false
		}
	}
	return true
}

func (m *memo) table(name string) *tableMemo {
	if m == nil {
		return nil
	}
	return m.tables[name]
}

func (t *tableMemo) vhost(vh *ir.VirtualHost, domains []string, invalid string) *vhostMemo {
	if t == nil {
		return nil
	}
	vm := t.vhosts[vh.Name]
	if vm == nil || vm.invalid != invalid || !slices.Equal(vm.domains, domains) {
		return nil
	}
	if equalVirtualHost(vm.in, vh) {
		return vm
	}
	return nil
}

// routes indexes by name the routes of the virtual host of the same name
// built with the same invalid-backend cluster, for a virtual host that
// changed: its unchanged routes are reused one by one. Route names are
// unique within a virtual host (ir.Config.Validate).
func (t *tableMemo) routes(vh *ir.VirtualHost, invalid string) map[string]*routeMemo {
	if t == nil {
		return nil
	}
	vm := t.vhosts[vh.Name]
	if vm == nil || vm.invalid != invalid {
		return nil
	}
	out := make(map[string]*routeMemo, len(vm.routes))
	for _, rm := range vm.routes {
		out[rm.in.Name] = rm
	}
	return out
}

func (m *memo) secret(s *ir.Secret) *secretMemo {
	if m == nil {
		return nil
	}
	if sm := m.secrets[s.Name]; sm != nil && equalSecret(sm.in, s) {
		return sm
	}
	return nil
}

func (m *memo) put(v any) {
	if m == nil {
		return
	}
	switch x := v.(type) {
	case *clusterMemo:
		m.clusters[x.in.Name] = x
	case *listenerMemo:
		m.listeners[x.in.Name] = x
	case *secretMemo:
		m.secrets[x.in.Name] = x
	}
}

func (m *memo) putTable(name string, t *tableMemo) {
	if m != nil {
		m.tables[name] = t
	}
}

// warningsSince copies the warnings recorded since mark, for a memo.
func (b *builder) warningsSince(mark int) []Warning {
	if b.next == nil || len(b.out.Warnings) == mark {
		return nil
	}
	return slices.Clone(b.out.Warnings[mark:])
}
