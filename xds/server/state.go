package server

import (
	"crypto/sha256"
	"encoding/hex"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
)

// kind indexes the six resource types the server carries, in the order
// ADS delivers them: a proxy learns a cluster before its endpoints and
// both before the routes that use them (Envoy's "eventual consistency"
// ordering); secrets and extension configurations (ECDS: the L7 policy
// filters' configurations) come last and are warmed by listeners.
type kind int

const (
	kindCluster kind = iota
	kindEndpoint
	kindListener
	kindRoute
	kindSecret
	kindExtension
	numKinds
)

var kindTypeURL = [numKinds]string{
	kindCluster:   resource.ClusterType,
	kindEndpoint:  resource.EndpointType,
	kindListener:  resource.ListenerType,
	kindRoute:     resource.RouteType,
	kindSecret:    resource.SecretType,
	kindExtension: resource.ExtensionConfigType,
}

var kindCacheType = [numKinds]types.ResponseType{
	kindCluster:   types.Cluster,
	kindEndpoint:  types.Endpoint,
	kindListener:  types.Listener,
	kindRoute:     types.Route,
	kindSecret:    types.Secret,
	kindExtension: types.ExtensionConfig,
}

func kindOf(typeURL string) (kind, bool) {
	for k, u := range kindTypeURL {
		if u == typeURL {
			return kind(k), true
		}
	}
	return 0, false
}

func (k kind) String() string { return kindTypeURL[k] }

// entry is one resource and its version, a hash of its content (see
// "Versions" in doc.go).
type entry struct {
	res     types.Resource
	version string
	// last is the object last handed to Update under this name; it may be
	// a newer object than res with the same version (res is kept, so the
	// cache sees no change).
	last types.Resource
	// refs are the SDS secrets a listener's filter chains or a cluster's
	// upstream TLS use; exts the
	// extension configurations (ECDS) its filters are configured from.
	refs []string
	exts []string
	// deps are the resources whose presence Consistent checks: the
	// endpoints of a cluster, the route configurations of a listener.
	deps []string
}

// typeSet is every resource of one kind. It is immutable once built; sets
// are shared between states.
type typeSet struct {
	// version is the hash of the sorted (name, version) pairs: the kind's
	// version on the wire, equal for equal content.
	version string
	items   map[string]entry
	// list is a copy of the typed list ([]*clusterv3.Cluster, ...) the
	// set was built from, nil for sets made otherwise: a list holding the
	// same objects again is this set, without a look at each item.
	list any

	// What the caches read, built once on first use (snapshot.go).
	cacheOnce  sync.Once
	withTTL    map[string]types.ResourceWithTTL
	plain      map[string]types.Resource
	versionMap map[string]string
	// consistentWith is the last set of the referenced kind this set was
	// found consistent with (clusters: endpoints, listeners: routes).
	consistentWith atomic.Pointer[typeSet]
}

func newTypeSet(items map[string]entry) *typeSet {
	names := make([]string, 0, len(items))
	for n := range items {
		names = append(names, n)
	}
	sort.Strings(names)
	h := sha256.New()
	for _, n := range names {
		h.Write([]byte(n))
		h.Write([]byte{0})
		h.Write([]byte(items[n].version))
		h.Write([]byte{0})
	}
	return &typeSet{version: hex.EncodeToString(h.Sum(nil)[:12]), items: items}
}

var emptySet = newTypeSet(map[string]entry{})

// lookup is nil-safe: a nil set holds nothing.
func (t *typeSet) lookup(name string) (entry, bool) {
	if t == nil {
		return entry{}, false
	}
	e, ok := t.items[name]
	return e, ok
}

// state is one complete configuration: a set per kind.
type state [numKinds]*typeSet

func emptyState() state {
	var s state
	for k := range s {
		s[k] = emptySet
	}
	return s
}

// version identifies a whole state: the hash of its kinds' versions.
func (s state) version() string {
	h := sha256.New()
	for _, t := range s {
		h.Write([]byte(t.version))
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}

func (s state) equal(o state) bool {
	for k := range s {
		if s[k].version != o[k].version {
			return false
		}
	}
	return true
}

// sotwSecrets is the secret set served to state-of-the-world proxies:
// exactly the secrets the state's listeners use. In ADS mode the cache
// answers a named request only if it names every resource of the type, and
// a proxy names the secrets of its listeners: a retained secret would block
// every secret response. State-of-the-world proxies do not need retention
// anyway, since for named types a resource missing from a response is not
// a deletion; delta proxies get explicit removals and so get the retained
// set.
//
// Extension configurations are named by listeners exactly like secrets,
// so the same holds for them (sotwExtensions).
func (s state) sotwSecrets() *typeSet { return s.sotwUsed(kindSecret) }

func (s state) sotwExtensions() *typeSet { return s.sotwUsed(kindExtension) }

func (s state) sotwUsed(k kind) *typeSet {
	used := map[string]bool{}
	for _, e := range s[kindListener].items {
		refs := e.refs
		if k == kindExtension {
			refs = e.exts
		}
		for _, r := range refs {
			used[r] = true
		}
	}
	if k == kindSecret {
		// Clusters name the client certificates of their upstream TLS.
		for _, e := range s[kindCluster].items {
			for _, r := range e.refs {
				used[r] = true
			}
		}
	}
	all := s[k]
	if len(used) >= len(all.items) {
		return all
	}
	items := make(map[string]entry, len(used))
	for n, e := range all.items {
		if used[n] {
			items[n] = e
		}
	}
	return newTypeSet(items)
}

// served is what the cache serves a proxy of the given protocol.
func (s state) served(delta bool) state {
	if !delta {
		s[kindSecret] = s.sotwSecrets()
		s[kindExtension] = s.sotwExtensions()
	}
	return s
}

func (k kind) short() string {
	return [numKinds]string{"CDS", "EDS", "LDS", "RDS", "SDS", "ECDS"}[k]
}
