package resource

import (
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// TestDecodeLimits checks the connection manager's head limits, timeouts
// and the listener's buffer limit: Envoy's defaults when absent, the
// configured values when present.
func TestDecodeLimits(t *testing.T) {
	l, err := DecodeListener(mustAny(t, testListener(t, testHCM(t, nil))))
	if err != nil {
		t.Fatal(err)
	}
	h := l.Chains[0].HCM
	if h.MaxRequestHeadersBytes != 60<<10 || h.MaxHeadersCount != 100 || h.RequestHeadersTimeout != 0 ||
		h.BufferLimit != 1<<20 || l.BufferLimit != 1<<20 {
		t.Fatalf("defaults: %+v", h)
	}

	lis := testListener(t, testHCM(t, func(h *hcmv3.HttpConnectionManager) {
		h.MaxRequestHeadersKb = wrapperspb.UInt32(8)
		h.CommonHttpProtocolOptions = &corev3.HttpProtocolOptions{
			MaxHeadersCount: wrapperspb.UInt32(5),
			IdleTimeout:     durationpb.New(3 * time.Second),
		}
		h.RequestHeadersTimeout = durationpb.New(2 * time.Second)
	}))
	lis.PerConnectionBufferLimitBytes = wrapperspb.UInt32(4096)
	l2, err := DecodeListener(mustAny(t, lis))
	if err != nil {
		t.Fatal(err)
	}
	h = l2.Chains[0].HCM
	if h.MaxRequestHeadersBytes != 8192 || h.MaxHeadersCount != 5 || h.RequestHeadersTimeout != 2*time.Second ||
		h.IdleTimeout != 3*time.Second || h.BufferLimit != 4096 {
		t.Fatalf("configured: %+v", h)
	}

	// The same chain under another buffer limit is another chain.
	lis.PerConnectionBufferLimitBytes = wrapperspb.UInt32(8192)
	l3, err := DecodeListener(mustAny(t, lis))
	if err != nil {
		t.Fatal(err)
	}
	if l3.Chains[0].Key == l2.Chains[0].Key {
		t.Fatal("chain key ignores the buffer limit")
	}
}

func TestDecodeLimitsNACK(t *testing.T) {
	const hcm = `listener "x": filter_chains[0].filters[0].typed_config(HttpConnectionManager).`
	cases := []struct {
		name string
		mod  func(h *hcmv3.HttpConnectionManager)
		want string
	}{
		{"zero header size", func(h *hcmv3.HttpConnectionManager) { h.MaxRequestHeadersKb = wrapperspb.UInt32(0) },
			hcm + "max_request_headers_kb: 0 is outside 1..8192"},
		{"huge header size", func(h *hcmv3.HttpConnectionManager) { h.MaxRequestHeadersKb = wrapperspb.UInt32(8193) },
			hcm + "max_request_headers_kb: 8193 is outside 1..8192"},
		{"zero header count", func(h *hcmv3.HttpConnectionManager) {
			h.CommonHttpProtocolOptions = &corev3.HttpProtocolOptions{MaxHeadersCount: wrapperspb.UInt32(0)}
		}, hcm + "common_http_protocol_options.max_headers_count: must be at least 1"},
		{"negative header timeout", func(h *hcmv3.HttpConnectionManager) {
			h.RequestHeadersTimeout = durationpb.New(-time.Second)
		}, hcm + "request_headers_timeout: must not be negative"},
		{"unsupported protocol option", func(h *hcmv3.HttpConnectionManager) {
			h.CommonHttpProtocolOptions = &corev3.HttpProtocolOptions{MaxStreamDuration: durationpb.New(time.Second)}
		}, hcm + "common_http_protocol_options.max_stream_duration: field not supported by nodemesh-proxy"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeListener(mustAny(t, testListener(t, testHCM(t, tc.mod))))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
	// The same message is a cluster's upstream protocol options, where the
	// header count is not honoured.
	_, err := DecodeCluster(mustAny(t, &clusterv3.Cluster{Name: "c", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig: &clusterv3.Cluster_EdsClusterConfig{EdsConfig: ads()}, ConnectTimeout: durationpb.New(time.Second),
		TypedExtensionProtocolOptions: map[string]*anypb.Any{hpoName: mustAny(t, &httpv3.HttpProtocolOptions{
			CommonHttpProtocolOptions: &corev3.HttpProtocolOptions{MaxHeadersCount: wrapperspb.UInt32(5)},
			UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
				ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_HttpProtocolOptions{HttpProtocolOptions: &corev3.Http1ProtocolOptions{}}}},
		})}}))
	if want := "common_http_protocol_options.max_headers_count: upstream header limits not supported"; err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("cluster max_headers_count: err = %v, want %q", err, want)
	}
}
