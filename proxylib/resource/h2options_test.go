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

func TestDecodeHTTP2ProtocolOptions(t *testing.T) {
	decode := func(t *testing.T, o *corev3.Http2ProtocolOptions) (*HCM, error) {
		l, err := DecodeListener(mustAny(t, testListener(t, testHCM(t, func(h *hcmv3.HttpConnectionManager) {
			h.Http2ProtocolOptions = o
		}))))
		if err != nil {
			return nil, err
		}
		return l.Chains[0].HCM, nil
	}
	t.Run("defaults", func(t *testing.T) {
		h, err := decode(t, nil)
		if err != nil {
			t.Fatal(err)
		}
		want := H2Options{MaxConcurrentStreams: 100, InitialStreamWindowSize: 65536, InitialConnectionWindowSize: 1 << 20}
		if h.HTTP2 != want || h.MaxRequestHeadersBytes != 60<<10 || h.MaxHeadersCount != 100 {
			t.Fatalf("got %+v, head limits %d/%d", h.HTTP2, h.MaxRequestHeadersBytes, h.MaxHeadersCount)
		}
	})
	t.Run("set", func(t *testing.T) {
		h, err := decode(t, &corev3.Http2ProtocolOptions{
			MaxConcurrentStreams:                    wrapperspb.UInt32(7),
			InitialStreamWindowSize:                 wrapperspb.UInt32(70000),
			InitialConnectionWindowSize:             wrapperspb.UInt32(1 << 21),
			OverrideStreamErrorOnInvalidHttpMessage: wrapperspb.Bool(true),
		})
		if err != nil {
			t.Fatal(err)
		}
		want := H2Options{MaxConcurrentStreams: 7, InitialStreamWindowSize: 70000, InitialConnectionWindowSize: 1 << 21, StreamErrorOnInvalidMessage: true}
		if h.HTTP2 != want {
			t.Fatalf("got %+v", h.HTTP2)
		}
	})
	const prefix = `listener "x": filter_chains[0].filters[0].typed_config(HttpConnectionManager).http2_protocol_options.`
	for _, tc := range []struct {
		name string
		o    *corev3.Http2ProtocolOptions
		want string
	}{
		{"zero streams", &corev3.Http2ProtocolOptions{MaxConcurrentStreams: wrapperspb.UInt32(0)},
			prefix + "max_concurrent_streams: 0 is outside [1, 2147483647]"},
		{"small window", &corev3.Http2ProtocolOptions{InitialStreamWindowSize: wrapperspb.UInt32(1000)},
			prefix + "initial_stream_window_size: 1000 is outside [65535, 2147483647]"},
		{"huge connection window", &corev3.Http2ProtocolOptions{InitialConnectionWindowSize: wrapperspb.UInt32(1 << 31)},
			prefix + "initial_connection_window_size: 2147483648 is outside [65535, 2147483647]"},
		{"unimplemented field", &corev3.Http2ProtocolOptions{HpackTableSize: wrapperspb.UInt32(0)},
			prefix + "hpack_table_size: field not supported by nodemesh-proxy"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decode(t, tc.o)
			if err == nil || err.Error() != tc.want {
				t.Fatalf("error\n got: %v\nwant: %s", err, tc.want)
			}
		})
	}
}

// The Http2ProtocolOptions fields the connection manager honours are
// refused on clusters, where the proxy does not implement them.
func TestUpstreamHTTP2OptionsRefused(t *testing.T) {
	hpo := &httpv3.HttpProtocolOptions{UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{
		ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
			ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{
				Http2ProtocolOptions: &corev3.Http2ProtocolOptions{MaxConcurrentStreams: wrapperspb.UInt32(10)}}}}}
	c := &clusterv3.Cluster{Name: "c", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig: &clusterv3.Cluster_EdsClusterConfig{EdsConfig: ads()}, ConnectTimeout: durationpb.New(time.Second),
		TypedExtensionProtocolOptions: map[string]*anypb.Any{hpoName: mustAny(t, hpo)}}
	_, err := DecodeCluster(mustAny(t, c))
	want := `cluster "c": typed_extension_protocol_options["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"](HttpProtocolOptions).explicit_http_config.http2_protocol_options: upstream HTTP/2 settings not supported by nodemesh-proxy`
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("error\n got: %v\nwant: %s", err, want)
	}
	hpo.GetExplicitHttpConfig().ProtocolConfig = &httpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{Http2ProtocolOptions: &corev3.Http2ProtocolOptions{}}
	c.TypedExtensionProtocolOptions[hpoName] = mustAny(t, hpo)
	out, err := DecodeCluster(mustAny(t, c))
	if err != nil || !out.HTTP2 {
		t.Fatalf("plain h2c cluster: %v %+v", err, out)
	}
}
