package server

import (
	"fmt"
	"sort"
	"sync"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
)

// servedSnapshot is a state as go-control-plane's snapshot cache serves it.
// It replaces cachev3.Snapshot so that nothing is rebuilt per publication:
// the maps the cache reads are built once per typeSet (sets are immutable
// and shared between states), and delta versions only when a delta client
// asks for them.
type servedSnapshot struct{ s state }

var _ cachev3.ResourceSnapshot = servedSnapshot{}

func (p servedSnapshot) set(typeURL string) *typeSet {
	k, ok := kindOf(typeURL)
	if !ok {
		return nil
	}
	return p.s[k]
}

func (p servedSnapshot) GetVersion(typeURL string) string {
	if t := p.set(typeURL); t != nil {
		return t.version
	}
	return ""
}

func (p servedSnapshot) GetResourcesAndTTL(typeURL string) map[string]types.ResourceWithTTL {
	if t := p.set(typeURL); t != nil {
		t.buildCacheMaps()
		return t.withTTL
	}
	return nil
}

func (p servedSnapshot) GetResources(typeURL string) map[string]types.Resource {
	if t := p.set(typeURL); t != nil {
		t.buildCacheMaps()
		return t.plain
	}
	return nil
}

// ConstructVersionMap does nothing: GetVersionMap builds each type's map on
// first use.
func (servedSnapshot) ConstructVersionMap() error { return nil }

func (p servedSnapshot) GetVersionMap(typeURL string) map[string]string {
	if t := p.set(typeURL); t != nil {
		return t.wireVersions()
	}
	return nil
}

func (t *typeSet) buildCacheMaps() {
	t.cacheOnce.Do(func() {
		t.withTTL = make(map[string]types.ResourceWithTTL, len(t.items))
		t.plain = make(map[string]types.Resource, len(t.items))
		for n, e := range t.items {
			t.withTTL[n] = types.ResourceWithTTL{Resource: e.res}
			t.plain[n] = e.res
		}
	})
}

// Delta versions. go-control-plane compares the versions in a snapshot's
// version map with the ones a delta client holds (it learns them from the
// responses it sent and from a reconnecting client's initial versions),
// but writes into every delta response its own version of each resource:
// HashResource(MarshalResource(res)). For a resource digested whole the
// two agree; for a composed digest (a RouteConfiguration) they do not, so
// the server uses the wire version wherever a delta client is involved,
// computed on first use and only then: a node served by
// state-of-the-world clients alone never marshals a RouteConfiguration
// except to send it.

// wireVersion is a resource's delta response version, computed once.
type wireVersion struct {
	once sync.Once
	res  types.Resource
	v    string
}

func (w *wireVersion) get() string {
	w.once.Do(func() {
		b, err := cachev3.MarshalResource(w.res)
		if err != nil {
			// Every part of res was marshalled when it was digested, so
			// this does not happen; an empty version never matches what
			// a client holds, so the resource is sent again.
			return
		}
		w.v = cachev3.HashResource(b)
	})
	return w.v
}

// wireVersionOf is the entry's resource's delta response version.
func (e entry) wireVersionOf() string {
	if e.wire != nil {
		return e.wire.get()
	}
	return e.hash
}

func (t *typeSet) wireVersions() map[string]string {
	t.wireOnce.Do(func() {
		t.wireMap = make(map[string]string, len(t.items))
		for n, e := range t.items {
			t.wireMap[n] = e.wireVersionOf()
		}
	})
	return t.wireMap
}

// dependencies lists what a new entry's resource refers to and Consistent
// checks: a cluster's endpoints, a listener's route configurations, as
// go-control-plane determines them.
func dependencies(k kind, name string, res types.Resource) []string {
	var want string
	switch k {
	case kindCluster:
		want = resource.EndpointType
	case kindListener:
		want = resource.RouteType
	default:
		return nil
	}
	refs := cachev3.GetResourceReferences(map[string]types.ResourceWithTTL{name: {Resource: res}})[want]
	out := make([]string, 0, len(refs))
	for r := range refs {
		out = append(out, r)
	}
	sort.Strings(out)
	return out
}

// consistent checks what go-control-plane's Snapshot.Consistent checks:
// the endpoints are exactly those the clusters refer to, and the route
// configurations exactly those the listeners refer to. A pair of sets
// found consistent is remembered, so an unchanged pair is not checked
// again.
func (s state) consistent() error {
	for _, p := range [...]struct{ from, to kind }{{kindCluster, kindEndpoint}, {kindListener, kindRoute}} {
		if err := checkReferences(s[p.from], s[p.to], p.to); err != nil {
			return err
		}
	}
	return s.extensionsDefined()
}

func checkReferences(from, to *typeSet, k kind) error {
	if from.consistentWith.Load() == to {
		return nil
	}
	referenced := make(map[string]bool, len(to.items))
	for _, e := range from.items {
		for _, d := range e.deps {
			if _, ok := to.items[d]; !ok {
				return fmt.Errorf("%s %q is referenced but not defined", k, d)
			}
			referenced[d] = true
		}
	}
	if len(referenced) != len(to.items) {
		var extra []string
		for n := range to.items {
			if !referenced[n] {
				extra = append(extra, n)
			}
		}
		sort.Strings(extra)
		return fmt.Errorf("%s %q is defined but nothing refers to it", k, extra[0])
	}
	from.consistentWith.Store(to)
	return nil
}
