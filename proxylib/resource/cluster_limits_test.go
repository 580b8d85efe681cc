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

func limitsCluster(t *testing.T, mod func(*clusterv3.Cluster)) *anypb.Any {
	c := &clusterv3.Cluster{Name: "c", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig: &clusterv3.Cluster_EdsClusterConfig{EdsConfig: ads()}, ConnectTimeout: durationpb.New(time.Second)}
	if mod != nil {
		mod(c)
	}
	return mustAny(t, c)
}

func hpoWith(t *testing.T, common *corev3.HttpProtocolOptions) map[string]*anypb.Any {
	return map[string]*anypb.Any{hpoName: mustAny(t, &httpv3.HttpProtocolOptions{
		CommonHttpProtocolOptions: common,
		UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
			ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_HttpProtocolOptions{HttpProtocolOptions: &corev3.Http1ProtocolOptions{}}}},
	})}
}

func TestClusterLimitsDecode(t *testing.T) {
	// Unset: Envoy's defaults.
	c, err := DecodeCluster(limitsCluster(t, nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.Limits != (Thresholds{1024, 1024, 1024, 3}) || c.IdleTimeout != time.Hour || c.BufferLimit != 1<<20 {
		t.Fatalf("defaults: limits %+v idle %v buffer %d", c.Limits, c.IdleTimeout, c.BufferLimit)
	}
	// Set: taken as given, unset thresholds keep their defaults.
	c, err = DecodeCluster(limitsCluster(t, func(c *clusterv3.Cluster) {
		c.CircuitBreakers = &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{
			Priority:           corev3.RoutingPriority_DEFAULT,
			MaxConnections:     wrapperspb.UInt32(7),
			MaxPendingRequests: wrapperspb.UInt32(0),
			MaxRetries:         wrapperspb.UInt32(9),
		}}}
		c.TypedExtensionProtocolOptions = hpoWith(t, &corev3.HttpProtocolOptions{IdleTimeout: durationpb.New(90 * time.Second)})
		c.PerConnectionBufferLimitBytes = wrapperspb.UInt32(32768)
	}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Limits != (Thresholds{7, 0, 1024, 9}) || c.IdleTimeout != 90*time.Second || c.BufferLimit != 32768 || c.HTTP2 {
		t.Fatalf("set: limits %+v idle %v buffer %d", c.Limits, c.IdleTimeout, c.BufferLimit)
	}
	c, err = DecodeCluster(limitsCluster(t, func(c *clusterv3.Cluster) {
		c.TypedExtensionProtocolOptions = hpoWith(t, &corev3.HttpProtocolOptions{IdleTimeout: durationpb.New(0)})
	}))
	if err != nil || c.IdleTimeout != 0 {
		t.Fatalf("idle_timeout 0 (disabled): %v %v", c, err)
	}
}

func TestClusterLimitsNACK(t *testing.T) {
	th := func(mod func(*clusterv3.CircuitBreakers_Thresholds)) func(*clusterv3.Cluster) {
		return func(c *clusterv3.Cluster) {
			t := &clusterv3.CircuitBreakers_Thresholds{MaxConnections: wrapperspb.UInt32(1)}
			mod(t)
			c.CircuitBreakers = &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{t}}
		}
	}
	cases := []struct {
		name string
		mod  func(*clusterv3.Cluster)
		want string
	}{
		{"priority HIGH", th(func(t *clusterv3.CircuitBreakers_Thresholds) { t.Priority = corev3.RoutingPriority_HIGH }),
			`cluster "c": circuit_breakers.thresholds[0].priority: HIGH not supported by nodemesh-proxy`},
		{"retry budget", th(func(t *clusterv3.CircuitBreakers_Thresholds) {
			t.RetryBudget = &clusterv3.CircuitBreakers_Thresholds_RetryBudget{}
		}), `cluster "c": circuit_breakers.thresholds[0].retry_budget: field not supported by nodemesh-proxy`},
		{"track remaining", th(func(t *clusterv3.CircuitBreakers_Thresholds) { t.TrackRemaining = true }),
			`cluster "c": circuit_breakers.thresholds[0].track_remaining: field not supported by nodemesh-proxy`},
		{"max connection pools", th(func(t *clusterv3.CircuitBreakers_Thresholds) { t.MaxConnectionPools = wrapperspb.UInt32(1) }),
			`cluster "c": circuit_breakers.thresholds[0].max_connection_pools: field not supported by nodemesh-proxy`},
		{"per host thresholds", func(c *clusterv3.Cluster) {
			c.CircuitBreakers = &clusterv3.CircuitBreakers{PerHostThresholds: []*clusterv3.CircuitBreakers_Thresholds{{}}}
		}, `cluster "c": circuit_breakers.per_host_thresholds: field not supported by nodemesh-proxy`},
		{"DEFAULT twice", func(c *clusterv3.Cluster) {
			c.CircuitBreakers = &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{}, {}}}
		}, `cluster "c": circuit_breakers.thresholds[1].priority: DEFAULT given twice`},
		{"max_connection_duration", func(c *clusterv3.Cluster) {
			c.TypedExtensionProtocolOptions = hpoWith(t, &corev3.HttpProtocolOptions{MaxConnectionDuration: durationpb.New(time.Second)})
		}, `cluster "c": typed_extension_protocol_options["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"](HttpProtocolOptions).common_http_protocol_options.max_connection_duration: field not supported by nodemesh-proxy`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeCluster(limitsCluster(t, tc.mod))
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("got %v\nwant %s", err, tc.want)
			}
		})
	}
}
