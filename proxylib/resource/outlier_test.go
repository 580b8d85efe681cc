package resource

import (
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func TestOutlierDecode(t *testing.T) {
	c, err := DecodeCluster(limitsCluster(t, func(c *clusterv3.Cluster) {
		c.OutlierDetection = &clusterv3.OutlierDetection{SplitExternalLocalOriginErrors: true,
			ConsecutiveLocalOriginFailure: wrapperspb.UInt32(2)}
	}))
	if err != nil {
		t.Fatal(err)
	}
	want := OutlierDetection{Consecutive5xx: 5, EnforcingConsecutive5xx: 100, Split: true, ConsecutiveLocalOriginFailure: 2,
		EnforcingConsecutiveLocalOriginFailure: 100, EnforcingSuccessRate: 100, EnforcingLocalOriginSuccessRate: 100,
		SuccessRateMinimumHosts: 5, SuccessRateRequestVolume: 100, SuccessRateStdevFactor: 1900, Interval: 10 * time.Second,
		BaseEjectionTime: 30 * time.Second, MaxEjectionTime: 300 * time.Second, MaxEjectionPercent: 10}
	if c.Outlier == nil || *c.Outlier != want {
		t.Fatalf("got %+v\nwant %+v", c.Outlier, want)
	}
	if c, _ := DecodeCluster(limitsCluster(t, nil)); c.Outlier != nil {
		t.Fatal("outlier detection without outlier_detection")
	}
}

func TestOutlierNACK(t *testing.T) {
	cases := []struct {
		name string
		od   *clusterv3.OutlierDetection
		want string
	}{
		{"gateway failures", &clusterv3.OutlierDetection{ConsecutiveGatewayFailure: wrapperspb.UInt32(3)},
			`cluster "c": outlier_detection.consecutive_gateway_failure: field not supported by nodemesh-proxy`},
		{"failure percentage", &clusterv3.OutlierDetection{EnforcingFailurePercentage: wrapperspb.UInt32(100)},
			`cluster "c": outlier_detection.enforcing_failure_percentage: field not supported by nodemesh-proxy`},
		{"percentage over 100", &clusterv3.OutlierDetection{MaxEjectionPercent: wrapperspb.UInt32(101)},
			`cluster "c": validating: invalid Cluster.OutlierDetection: embedded message failed validation | caused by: invalid OutlierDetection.MaxEjectionPercent`},
		{"zero interval", &clusterv3.OutlierDetection{Interval: durationpb.New(0)},
			`cluster "c": validating: invalid Cluster.OutlierDetection: embedded message failed validation | caused by: invalid OutlierDetection.Interval`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeCluster(limitsCluster(t, func(c *clusterv3.Cluster) { c.OutlierDetection = tc.od }))
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("got %v\nwant %s", err, tc.want)
			}
		})
	}
}

// use_downstream_protocol_config is honoured by ORIGINAL_DST clusters
// only (they keep a pool per protocol); on an EDS cluster it would be
// ignored, so it is refused.
func TestUseDownstreamProtocolOnlyOriginalDst(t *testing.T) {
	hpo := map[string]*anypb.Any{hpoName: mustAny(t, &httpv3.HttpProtocolOptions{
		UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_UseDownstreamProtocolConfig{
			UseDownstreamProtocolConfig: &httpv3.HttpProtocolOptions_UseDownstreamHttpConfig{
				Http2ProtocolOptions: &corev3.Http2ProtocolOptions{}}}})}
	_, err := DecodeCluster(limitsCluster(t, func(c *clusterv3.Cluster) { c.TypedExtensionProtocolOptions = hpo }))
	want := `cluster "c": typed_extension_protocol_options["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"](HttpProtocolOptions).use_downstream_protocol_config: only for ORIGINAL_DST clusters in nodemesh-proxy`
	if err == nil || err.Error() != want {
		t.Fatalf("EDS cluster: got %v\nwant %s", err, want)
	}
	c, err := DecodeCluster(mustAny(t, &clusterv3.Cluster{Name: "o", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_ORIGINAL_DST},
		LbPolicy: clusterv3.Cluster_CLUSTER_PROVIDED, TypedExtensionProtocolOptions: hpo}))
	if err != nil || !c.DownstreamProtocol {
		t.Fatalf("ORIGINAL_DST cluster: %+v, %v", c, err)
	}
}
