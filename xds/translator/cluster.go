package translator

import (
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/nodemesh/nodemesh/mesh/ir"
)

// defaultConnectTimeout is Envoy's own default, written out when the IR
// leaves it unset so both proxies agree without relying on defaults.
const defaultConnectTimeout = 5 * time.Second

// cluster emits the EDS Cluster and the ClusterLoadAssignment of one IR
// cluster.
func (b *builder) cluster(c *ir.Cluster) error {
	if m := b.prev.cluster(c); m != nil {
		b.out.Clusters = append(b.out.Clusters, m.cluster)
		b.out.ClusterLoadAssignments = append(b.out.ClusterLoadAssignments, m.cla)
		b.out.Warnings = append(b.out.Warnings, m.warnings...)
		b.next.put(m)
		return nil
	}
	mark := len(b.out.Warnings)
	name := b.clusterNames[c.Name]
	timeout := c.ConnectTimeout
	if timeout <= 0 {
		timeout = defaultConnectTimeout
	}
	out := &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig: &clusterv3.Cluster_EdsClusterConfig{
			EdsConfig:   adsConfigSource(),
			ServiceName: name,
		},
		ConnectTimeout: durationpb.New(timeout),
		LbPolicy:       lbPolicy(c.LBPolicy),
	}
	if c.Protocol == ir.ProtocolH2C {
		opts, err := typedConfig("cluster", name, &httpv3.HttpProtocolOptions{
			UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{
				ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
					ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{
						Http2ProtocolOptions: &corev3.Http2ProtocolOptions{},
					},
				},
			},
		})
		if err != nil {
			return err
		}
		out.TypedExtensionProtocolOptions = map[string]*anypb.Any{httpProtocolOptionsKey: opts}
	}
	if err := checked("cluster", name, out); err != nil {
		return err
	}
	cla, err := b.loadAssignment(c, name)
	if err != nil {
		return err
	}
	b.out.Clusters = append(b.out.Clusters, out)
	b.out.ClusterLoadAssignments = append(b.out.ClusterLoadAssignments, cla)
	b.next.put(&clusterMemo{in: c, cluster: out, cla: cla, warnings: b.warningsSince(mark)})
	return nil
}

func lbPolicy(p ir.LBPolicy) clusterv3.Cluster_LbPolicy {
	switch p {
	case ir.LBRandom:
		return clusterv3.Cluster_RANDOM
	case ir.LBLeastRequest:
		return clusterv3.Cluster_LEAST_REQUEST
	default:
		return clusterv3.Cluster_ROUND_ROBIN
	}
}

// adsConfigSource says "over the same ADS stream, v3 API": how every
// dynamic reference (RDS, EDS, SDS) is resolved.
func adsConfigSource() *corev3.ConfigSource {
	return &corev3.ConfigSource{
		ResourceApiVersion:    corev3.ApiVersion_V3,
		ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
	}
}
