package server

import (
	"fmt"
	"sort"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
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
		t.buildCacheMaps()
		return t.versionMap
	}
	return nil
}

func (t *typeSet) buildCacheMaps() {
	t.cacheOnce.Do(func() {
		t.withTTL = make(map[string]types.ResourceWithTTL, len(t.items))
		t.plain = make(map[string]types.Resource, len(t.items))
		t.versionMap = make(map[string]string, len(t.items))
		for n, e := range t.items {
			t.withTTL[n] = types.ResourceWithTTL{Resource: e.res}
			t.plain[n] = e.res
			t.versionMap[n] = e.version
		}
	})
}

// Delta versions. go-control-plane decides what a delta client needs by
// comparing the versions in the snapshot's version map (ours) with those
// it returned to the client before, which are ours too. Into each delta
// response, though, it writes its own version of each resource: the hash
// of its serialized form. A client reports those back only when it
// reconnects (initial_resource_versions); they do not match ours, so a
// reconnecting client is sent everything again, once. The ACK table
// records our versions for what a response carried (table.go), so
// nothing is marshalled to version a resource.

// dependencies lists what a new entry's resource refers to and Consistent
// checks: a cluster's endpoints, a listener's route configurations, as
// go-control-plane determines them.
func dependencies(k kind, name string, res types.Resource) []string {
	var want string
	switch k {
	case kindCluster:
		if c, ok := res.(*clusterv3.Cluster); ok {
			return clusterDependencies(c)
		}
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

// clusterDependencies is go-control-plane's rule for what a cluster
// refers to (GetResourceReferences): an EDS cluster its endpoints, named
// by eds_cluster_config.service_name or else by the cluster's name; any
// other cluster nothing. Written out, it takes none of the maps that
// function builds per call, and clusters come by the thousand;
// TestClusterDependenciesAsGoControlPlane holds the two equal.
func clusterDependencies(c *clusterv3.Cluster) []string {
	if _, ok := c.GetClusterDiscoveryType().(*clusterv3.Cluster_Type); !ok || c.GetType() != clusterv3.Cluster_EDS {
		return nil
	}
	if n := c.GetEdsClusterConfig().GetServiceName(); n != "" {
		return []string{n}
	}
	return []string{c.GetName()}
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
