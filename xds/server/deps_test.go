package server

import (
	"slices"
	"sort"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/nodemesh/nodemesh/mesh/ir"
	"github.com/nodemesh/nodemesh/xds/translator"
)

// TestClusterDependenciesAsGoControlPlane: what a cluster refers to is
// what go-control-plane's GetResourceReferences says, for every kind of
// cluster discovery and for the clusters the translator emits.
func TestClusterDependenciesAsGoControlPlane(t *testing.T) {
	eds := func(service string) *clusterv3.Cluster_EdsClusterConfig {
		return &clusterv3.Cluster_EdsClusterConfig{ServiceName: service, EdsConfig: &corev3.ConfigSource{}}
	}
	clusters := []*clusterv3.Cluster{
		{Name: "eds-by-name", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS}},
		{Name: "eds-by-service", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS}, EdsClusterConfig: eds("service")},
		{Name: "eds-empty-service", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS}, EdsClusterConfig: eds("")},
		{Name: "static", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC}, EdsClusterConfig: eds("service")},
		{Name: "strict-dns", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STRICT_DNS}},
		{Name: "original-dst", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_ORIGINAL_DST}},
		{Name: "custom", ClusterDiscoveryType: &clusterv3.Cluster_ClusterType{ClusterType: &clusterv3.Cluster_CustomClusterType{Name: "x"}}, EdsClusterConfig: eds("service")},
		{Name: "no-discovery-type", EdsClusterConfig: eds("service")},
	}
	res, err := translator.Translate(&ir.Config{Clusters: []*ir.Cluster{
		{Name: "service/ns/svc/80", Protocol: ir.ProtocolHTTP1, LBPolicy: ir.LBRoundRobin, Endpoints: []ir.Endpoint{{Address: "10.0.0.1", Port: 8080, Ready: true}}},
		{Name: "service/ns/h2/80", Protocol: ir.ProtocolH2C, LBPolicy: ir.LBRoundRobin},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Clusters) == 0 {
		t.Fatal("the translator emitted no cluster")
	}
	clusters = append(clusters, res.Clusters...)
	for _, c := range clusters {
		refs := cachev3.GetResourceReferences(map[string]types.ResourceWithTTL{c.GetName(): {Resource: c}})[resource.EndpointType]
		var want []string
		for r := range refs {
			want = append(want, r)
		}
		sort.Strings(want)
		if got := dependencies(kindCluster, c.GetName(), c); !slices.Equal(got, want) {
			t.Errorf("cluster %s: dependencies %q, go-control-plane %q", c.GetName(), got, want)
		}
	}
}

// TestClusterDependenciesAllocations: a cluster's dependencies take one
// allocation, their list: clusters come by the thousand on a cold
// snapshot. The bound counts allocations, not time.
func TestClusterDependenciesAllocations(t *testing.T) {
	c := &clusterv3.Cluster{Name: "eds", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS}}
	if n := testing.AllocsPerRun(100, func() { dependencies(kindCluster, "eds", c) }); n > 1 {
		t.Errorf("%.0f allocations, want at most 1", n)
	}
}
