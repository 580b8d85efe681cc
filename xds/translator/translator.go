package translator

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/nodemesh/nodemesh/mesh/ir"
)

// Resources is the Envoy configuration for one node: every slice is sorted
// by resource name, so equal IR yields equal Resources. The caller owns the
// value; the translator keeps no reference to it.
type Resources struct {
	Listeners              []*listenerv3.Listener
	RouteConfigurations    []*routev3.RouteConfiguration
	Clusters               []*clusterv3.Cluster
	ClusterLoadAssignments []*endpointv3.ClusterLoadAssignment
	Secrets                []*tlsv3.Secret
	// ExtensionConfigs are the filter configurations served over ECDS
	// (L7 policy: RBAC and Kafka policy per direction).
	ExtensionConfigs []*corev3.TypedExtensionConfig

	// Warnings list the parts of a valid IR that stock Envoy cannot carry
	// and what was emitted instead (see the package comment). They name the
	// IR object and field so a status writer can surface them.
	Warnings []Warning

	// versions holds the version of every resource above (Version):
	// those of clusters and their load assignments, which the next
	// translation may share while they are unchanged, and the others.
	clusterVersions, versions map[proto.Message]string
	// wires make the serialized form of route configurations (Serialized).
	wires map[proto.Message]*routesWire
}

// Warning is one part of the IR the translator could not express as-is.
type Warning struct {
	// Object is the innermost named IR object, e.g.
	// `route "httproute/default/web/rule/0/match/0"`.
	Object string
	// Field is the path inside Object, e.g. "match.headers[0].value".
	Field string
	// Message says what is wrong and what the translator did instead.
	Message string
}

func (w Warning) String() string {
	if w.Field == "" {
		return w.Object + ": " + w.Message
	}
	return w.Object + ": " + w.Field + ": " + w.Message
}

// ErrInvalidOutput is wrapped by the error Translate returns when a
// generated resource fails Envoy's own validation. It is a translator bug,
// never a user error: the caller keeps serving the last good configuration.
var ErrInvalidOutput = errors.New("generated Envoy resource failed validation")

// Translate turns a Config into Envoy resources. It validates cfg first (an
// invalid Config is rejected whole, never half-translated), is pure and
// deterministic, and may be called from any goroutine; cfg is only read.
func Translate(cfg *ir.Config) (*Resources, error) {
	if cfg == nil {
		return nil, errors.New("translating IR: nil config")
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("translating IR: %w", err)
	}
	b := newBuilder(cfg, &ir.Hashes{}, nil)
	if err := b.build(); err != nil {
		return nil, fmt.Errorf("translating IR: %w", err)
	}
	return b.out, nil
}

// builder holds the indexes one translation needs. It is used once.
type builder struct {
	cfg *ir.Config
	out *Resources

	// clusterNames holds the emitted name of every cluster, so routes never
	// search a list and the invalid-backend name never collides.
	clusterNames map[string]string
	// viaIngressNames holds the names of the filtered cluster variants
	// (ingresspolicy.go) while ingress → backend is enforced, else nil;
	// viaIngress is set while the chains and routes of a Gateway or
	// Ingress listener are built with them.
	viaIngressNames map[string]string
	viaIngress      bool
	// denied holds the IR clusters whose endpoints ingress → backend all
	// denies (memo.go clusterMemo.denied), and ingressSalt, derived from
	// it, is mixed into the memo keys of viaIngress routes (route.go).
	denied      map[string]bool
	ingressSalt ir.Hash
	// invalidBackend is the never-defined cluster for unresolved backends.
	invalidBackend string
	// secrets indexes IR secrets by name; referenced marks the ones some
	// emitted TLS context refers to (only those are emitted).
	secrets    map[string]*ir.Secret
	referenced map[string]bool

	// hashes gives the content hash of every IR object.
	hashes *ir.Hashes
	// prev is what the previous translation produced (reused where the IR
	// is unchanged); next records this one. Both nil for Translate.
	prev, next *memo
	// routes are the routes built or reused so far in this translation,
	// by content hash: a route served in several virtual hosts (an HTTP
	// and an HTTPS listener of one Gateway) is built once.
	routes map[ir.Hash]*routeMemo
	// lists are the virtual hosts built in this translation by their
	// list of routes (ir.Hashes.RouteList), whose routes another virtual
	// host holding the same list shares.
	lists map[ir.Hash]*vhostMemo
	// listsInvalid says, by the same hash, whether a list names the
	// invalid-backend cluster (usesInvalid).
	listsInvalid map[ir.Hash]bool
	// actions are the forwarding routes built in this translation, by
	// the first of their IR backends (action.go): the routes of one rule
	// share their action.
	actions map[**ir.WeightedBackend]actionFrom
	// lastAction is the action remembered last (its entry in actions;
	// enterListener keeps the two together).
	lastAction actionFrom
	// ingressActions are actions for viaIngress routes, kept apart since
	// they name other clusters.
	ingressActions map[**ir.WeightedBackend]actionFrom
	// weights and timeouts are the weighted_clusters entries and route
	// timeouts made in this translation, which actions share (backend.go).
	weights  map[weightKey]*routev3.WeightedCluster_ClusterWeight
	timeouts map[time.Duration]*durationpb.Duration
	// headers are the header matchers made in this translation, which
	// routes share (match.go).
	headers map[headerKey]*sharedHeader
	// cold is set when there is no previous translation: every route
	// is built, and the messages each route or action has come from
	// chunks (chunk.go).
	cold          bool
	routeParts    chunked[routeParts]
	routeMemos    chunked[routeMemo]
	forwardParts  chunked[forwardParts]
	weightedParts chunked[weightedParts]
	headerBlocks  chunked[headerBlock]
	// unchecked are the routes built in this translation, to be
	// validated (checkRoutes).
	unchecked []uncheckedRoute
	// ver composes versions.
	ver version
	// ingressHash is the content hash of cfg.IngressPolicy (zero for
	// none), part of the memo keys of listeners and endpoints.
	ingressHash ir.Hash
	// httpOptions are the typed_extension_protocol_options shared by the
	// HTTP/1.1 [0] and h2c [1] clusters (httpProtocolOptions), and shared
	// the other messages every cluster holds alike (clusterShared).
	httpOptions [2]map[string]*anypb.Any
	shared      *clusterShared
	// reusedClusters is the previous translation's list of clusters
	// when this one took it whole (clusters).
	reusedClusters *clusterList
}

// newBuilder prepares a translation of cfg; prev, when not nil, is what
// the previous one produced.
func newBuilder(cfg *ir.Config, hashes *ir.Hashes, prev *memo) *builder {
	b := &builder{
		cfg:    cfg,
		hashes: hashes,
		routes: map[ir.Hash]*routeMemo{},
		out: &Resources{versions: make(map[proto.Message]string, 2*len(cfg.Listeners)+len(cfg.Secrets)),
			wires: make(map[proto.Message]*routesWire, len(cfg.Listeners))},
		prev:       prev,
		secrets:    make(map[string]*ir.Secret, len(cfg.Secrets)),
		referenced: make(map[string]bool, len(cfg.Secrets)),
	}
	if prev != nil && prev.clusterList != nil && slices.Equal(prev.clusterList.in, cfg.Clusters) {
		b.clusterNames, b.invalidBackend = prev.clusterList.names, prev.clusterList.invalid
	} else {
		b.clusterNames, b.invalidBackend = clusterNamesOf(cfg.Clusters)
	}
	if prev == nil {
		// Every route is built and checked. (A later translation only
		// visits the routes of virtual hosts that changed.)
		b.cold = true
		n := cfg.LargestRouteTable()
		b.routes = make(map[ir.Hash]*routeMemo, n)
		b.unchecked = make([]uncheckedRoute, 0, n)
		b.actions = make(map[**ir.WeightedBackend]actionFrom, n)
	}
	for _, s := range cfg.Secrets {
		b.secrets[s.Name] = s
	}
	b.ingressHash = ingressPolicyHash(cfg.IngressPolicy)
	if b.egressEnforced() {
		if prev != nil && prev.clusterList != nil && slices.Equal(prev.clusterList.in, cfg.Clusters) && prev.clusterList.viaNames != nil {
			b.viaIngressNames = prev.clusterList.viaNames
		} else {
			b.viaIngressNames = viaIngressNamesOf(cfg.Clusters, b.clusterNames, b.invalidBackend)
		}
	}
	return b
}

func (b *builder) build() error {
	if err := b.clusters(); err != nil {
		return err
	}
	// Client certificates clusters present are emitted like listeners'.
	for _, c := range b.cfg.Clusters {
		if c.UpstreamTLS != nil && c.UpstreamTLS.ClientCertificate != "" {
			b.referenced[c.UpstreamTLS.ClientCertificate] = true
		}
	}
	b.out.Listeners = make([]*listenerv3.Listener, 0, len(b.cfg.Listeners))
	for _, l := range b.cfg.Listeners {
		if err := b.listener(l); err != nil {
			return err
		}
	}
	for _, s := range b.cfg.Secrets {
		if !b.referenced[s.Name] {
			continue
		}
		if err := b.secret(s); err != nil {
			return err
		}
	}
	if err := b.policy(b.cfg.Policy); err != nil {
		return err
	}
	if err := b.checkRoutes(); err != nil {
		return err
	}
	if err := b.verbatim(b.cfg.Resources); err != nil {
		return err
	}
	b.sort()
	b.sortClusterList()
	return nil
}

// sort orders every list by resource name. The IR usually lists objects
// in name order already, so each list is checked first and only sorted
// when it is not; the clusters and load assignments of a list of clusters
// taken whole from the previous translation are in order already, unless
// something came after them.
func (b *builder) sort() {
	o := b.out
	sortByName(o.Listeners, (*listenerv3.Listener).GetName)
	sortByName(o.RouteConfigurations, (*routev3.RouteConfiguration).GetName)
	if l := b.reusedClusters; l == nil || !l.sorted || len(o.Clusters) != len(l.clusters) || len(o.ClusterLoadAssignments) != len(l.clas) {
		sortByName(o.Clusters, (*clusterv3.Cluster).GetName)
		sortByName(o.ClusterLoadAssignments, (*endpointv3.ClusterLoadAssignment).GetClusterName)
	}
	sortByName(o.Secrets, (*tlsv3.Secret).GetName)
	sortByName(o.ExtensionConfigs, (*corev3.TypedExtensionConfig).GetName)
}

// sortClusterList puts a list of clusters built in this translation in
// the order sort gave them, when they are all the output holds (no policy
// or verbatim cluster came after them): the next translation taking the
// list whole need not check its order again.
func (b *builder) sortClusterList() {
	if b.next == nil || b.reusedClusters != nil {
		return
	}
	l, o := b.next.clusterList, b.out
	if l == nil || len(o.Clusters) != len(l.clusters) || len(o.ClusterLoadAssignments) != len(l.clas) {
		return
	}
	copy(l.clusters, o.Clusters)
	copy(l.clas, o.ClusterLoadAssignments)
	l.sorted = true
}

func sortByName[T any](list []T, name func(T) string) {
	cmp := func(a, b T) int { return strings.Compare(name(a), name(b)) }
	if !slices.IsSortedFunc(list, cmp) {
		slices.SortFunc(list, cmp)
	}
}

func (b *builder) warn(object, field, format string, args ...any) {
	b.out.Warnings = append(b.out.Warnings, Warning{Object: object, Field: field, Message: fmt.Sprintf(format, args...)})
}

// validator is what go-control-plane generates for every Envoy message.
type validator interface {
	ValidateAll() error
}

// validating, set only by tests, sees every message the translator
// validates, before it does (validate_test.go counts them).
var validating func(m validator)

// checked runs Envoy's generated validation on a resource about to be
// emitted. A failure means the translator produced something Envoy would
// reject for an IR that passed validation: a bug, reported as a system error.
func checked(kind, name string, m validator) error {
	if validating != nil {
		validating(m)
	}
	if err := m.ValidateAll(); err != nil {
		return fmt.Errorf("%w: %s %q: %v", ErrInvalidOutput, kind, name, err)
	}
	return nil
}

// object names an IR object in a warning, e.g. `route "a/b"`.
func object(kind, name string) string { return kind + " " + strconv.Quote(name) }

func quote(s string) string { return strconv.Quote(s) }

func fieldf(format string, args ...any) string { return fmt.Sprintf(format, args...) }
