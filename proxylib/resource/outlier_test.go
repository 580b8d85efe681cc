package resource

import (
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
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
