package resource

import (
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tracev3 "github.com/envoyproxy/go-control-plane/envoy/config/trace/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func mustAny(t testing.TB, m proto.Message) *anypb.Any {
	t.Helper()
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func ads() *corev3.ConfigSource {
	return &corev3.ConfigSource{
		ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
		ResourceApiVersion:    corev3.ApiVersion_V3,
	}
}

func testHCM(t testing.TB, mod func(*hcmv3.HttpConnectionManager)) *hcmv3.HttpConnectionManager {
	h := &hcmv3.HttpConnectionManager{
		StatPrefix: "x",
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
			RouteConfigName: "rc", ConfigSource: ads(),
		}},
		HttpFilters: []*hcmv3.HttpFilter{{
			Name:       "envoy.filters.http.router",
			ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(t, &routerv3.Router{})},
		}},
	}
	if mod != nil {
		mod(h)
	}
	return h
}

func testListener(t testing.TB, h *hcmv3.HttpConnectionManager) *listenerv3.Listener {
	return &listenerv3.Listener{
		Name: "x",
		Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
			Address: "127.0.0.1", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 8080},
		}}},
		FilterChains: []*listenerv3.FilterChain{{
			Filters: []*listenerv3.Filter{{
				Name:       "envoy.filters.network.http_connection_manager",
				ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(t, h)},
			}},
		}},
	}
}

func TestDecodeListener(t *testing.T) {
	l, err := DecodeListener(mustAny(t, testListener(t, testHCM(t, func(h *hcmv3.HttpConnectionManager) {
		h.UseRemoteAddress = wrapperspb.Bool(true)
		h.ServerName = "nodemesh"
		h.StreamIdleTimeout = durationpb.New(time.Second)
	}))))
	if err != nil {
		t.Fatal(err)
	}
	h := l.Chains[0].HCM
	if l.Address != "127.0.0.1:8080" || h.RouteConfigName != "rc" || !h.UseRemoteAddress || h.ServerName != "nodemesh" ||
		h.StreamIdleTimeout != time.Second || h.IdleTimeout != time.Hour || !h.GenerateRequestID {
		t.Fatalf("decoded %+v %+v", l, h)
	}
}

func TestNACKMessages(t *testing.T) {
	cases := []struct {
		name string
		any  func(t *testing.T) *anypb.Any
		want string
	}{
		{
			name: "unsupported hcm field",
			any: func(t *testing.T) *anypb.Any {
				return mustAny(t, testListener(t, testHCM(t, func(h *hcmv3.HttpConnectionManager) {
					h.Tracing = &hcmv3.HttpConnectionManager_Tracing{Provider: &tracev3.Tracing_Http{Name: "z"}}
				})))
			},
			want: `listener "x": filter_chains[0].filters[0].typed_config(HttpConnectionManager).tracing: field not supported by nodemesh-proxy`,
		},
		{
			name: "unsupported listener field",
			any: func(t *testing.T) *anypb.Any {
				l := testListener(t, testHCM(t, nil))
				l.StatPrefix = "s"
				return mustAny(t, l)
			},
			want: `listener "x": stat_prefix: field not supported by nodemesh-proxy`,
		},
		{
			name: "unsupported http filter type",
			any: func(t *testing.T) *anypb.Any {
				return mustAny(t, testListener(t, testHCM(t, func(h *hcmv3.HttpConnectionManager) {
					h.HttpFilters[0].ConfigType = &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(t, &hcmv3.Rds{})}
				})))
			},
			want: `listener "x": filter_chains[0].filters[0].typed_config(HttpConnectionManager).http_filters[0].typed_config: type "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.Rds" not supported by nodemesh-proxy`,
		},
		{
			name: "static cluster without endpoints",
			any: func(t *testing.T) *anypb.Any {
				return mustAny(t, &clusterv3.Cluster{Name: "c", ConnectTimeout: durationpb.New(time.Second)})
			},
			want: `cluster "c": load_assignment: required for a STATIC cluster`,
		},
		{
			name: "maglev",
			any: func(t *testing.T) *anypb.Any {
				return mustAny(t, &clusterv3.Cluster{Name: "c", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
					EdsClusterConfig: &clusterv3.Cluster_EdsClusterConfig{EdsConfig: ads()}, LbPolicy: clusterv3.Cluster_MAGLEV})
			},
			want: `cluster "c": lb_policy: MAGLEV not supported by nodemesh-proxy`,
		},
		{
			name: "bad regex",
			any: func(t *testing.T) *anypb.Any {
				return mustAny(t, &routev3.RouteConfiguration{Name: "rc", VirtualHosts: []*routev3.VirtualHost{{
					Name: "v", Domains: []string{"*"}, Routes: []*routev3.Route{{
						Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: "(a"}}},
						Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "c"}}},
					}},
				}}})
			},
			want: `route configuration "rc": virtual_hosts[0].routes[0].match.safe_regex.regex: invalid RE2 regex "(a"`,
		},
		{
			name: "duplicate domain",
			any: func(t *testing.T) *anypb.Any {
				return mustAny(t, &routev3.RouteConfiguration{Name: "rc", VirtualHosts: []*routev3.VirtualHost{
					{Name: "a", Domains: []string{"A.example"}}, {Name: "b", Domains: []string{"a.example"}},
				}})
			},
			want: `route configuration "rc": virtual_hosts[1].domains[0]: domain "a.example" is already used by virtual_hosts[0]`,
		},
		{
			name: "substitution group",
			any: func(t *testing.T) *anypb.Any {
				return mustAny(t, &routev3.RouteConfiguration{Name: "rc", VirtualHosts: []*routev3.VirtualHost{{
					Name: "v", Domains: []string{"*"}, Routes: []*routev3.Route{{
						Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
						Action: &routev3.Route_Route{Route: &routev3.RouteAction{
							ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "c"},
							RegexRewrite:     &matcherv3.RegexMatchAndSubstitute{Pattern: &matcherv3.RegexMatcher{Regex: "^/(a)"}, Substitution: `/\2`},
						}},
					}},
				}}})
			},
			want: `route configuration "rc": virtual_hosts[0].routes[0].route.regex_rewrite.substitution: "/\\2" refers to group \2 but the pattern has 1`,
		},
		{
			name: "retry on response headers",
			any: func(t *testing.T) *anypb.Any {
				return timeoutRoute(t, nil, &routev3.RetryPolicy{RetryOn: "5xx,retriable-headers", PerTryTimeout: durationpb.New(time.Second)})
			},
			want: `route configuration "rc": virtual_hosts[0].routes[0].route.retry_policy.retry_on: condition "retriable-headers" not supported by nodemesh-proxy`,
		},
		{
			name: "negative per-try timeout",
			any: func(t *testing.T) *anypb.Any {
				return timeoutRoute(t, nil, &routev3.RetryPolicy{PerTryTimeout: durationpb.New(-time.Second)})
			},
			want: `route configuration "rc": virtual_hosts[0].routes[0].route.retry_policy.per_try_timeout: -1s is negative`,
		},
		{
			name: "negative route timeout",
			any: func(t *testing.T) *anypb.Any {
				return timeoutRoute(t, durationpb.New(-time.Millisecond), nil)
			},
			want: `route configuration "rc": virtual_hosts[0].routes[0].route.timeout: -1ms is negative`,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := tc.any(t)
			var err error
			switch a.GetTypeUrl() {
			case ListenerType:
				_, err = DecodeListener(a)
			case ClusterType:
				_, err = DecodeCluster(a)
			case RouteType:
				_, err = DecodeRouteConfig(a)
			}
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("error\n got: %v\nwant: %s", err, tc.want)
			}
		})
	}
}

// timeoutRoute is a route configuration with one forwarding route carrying
// the given timeout and retry policy.
func timeoutRoute(t testing.TB, timeout *durationpb.Duration, rp *routev3.RetryPolicy) *anypb.Any {
	return mustAny(t, &routev3.RouteConfiguration{Name: "rc", VirtualHosts: []*routev3.VirtualHost{{
		Name: "v", Domains: []string{"*"}, Routes: []*routev3.Route{{
			Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
			Action: &routev3.Route_Route{Route: &routev3.RouteAction{
				ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "c"}, Timeout: timeout, RetryPolicy: rp,
			}},
		}},
	}}})
}

// TestDecodeRouteTimeouts checks the route and per-try timeouts the router
// applies and the x-envoy-expected-rq-timeout-ms it sends, as Envoy derives
// them: the per-try timeout only counts below a non-zero route timeout.
func TestDecodeRouteTimeouts(t *testing.T) {
	d := durationpb.New
	for _, tc := range []struct {
		name            string
		timeout, perTry *durationpb.Duration
		wantTimeout     time.Duration
		wantPerTry      time.Duration
		wantMS          string
	}{
		{"default", nil, nil, 15 * time.Second, 0, "15000"},
		{"disabled", d(0), nil, 0, 0, ""},
		{"route only", d(90 * time.Second), nil, 90 * time.Second, 0, "90000"},
		{"both", d(10 * time.Second), d(500 * time.Millisecond), 10 * time.Second, 500 * time.Millisecond, "500"},
		{"per-try without route timeout", d(0), d(2 * time.Second), 0, 2 * time.Second, "2000"},
		{"per-try with the default route timeout", nil, d(time.Second), 15 * time.Second, time.Second, "1000"},
		{"per-try equal to the route timeout", d(3 * time.Second), d(3 * time.Second), 3 * time.Second, 0, "3000"},
		{"per-try above the route timeout", d(time.Second), d(2 * time.Second), time.Second, 0, "1000"},
		{"empty retry policy", d(time.Second), d(0), time.Second, 0, "1000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var rp *routev3.RetryPolicy
			if tc.perTry != nil {
				rp = &routev3.RetryPolicy{PerTryTimeout: tc.perTry}
			}
			rc, err := DecodeRouteConfig(timeoutRoute(t, tc.timeout, rp))
			if err != nil {
				t.Fatal(err)
			}
			f := rc.VirtualHosts[0].Routes[0].Forward
			if f.Timeout != tc.wantTimeout || f.PerTryTimeout != tc.wantPerTry || string(f.TimeoutMS) != tc.wantMS ||
				(tc.wantMS == "") != (f.TimeoutMS == nil) {
				t.Fatalf("timeout %v per-try %v expected-ms %q, want %v %v %q", f.Timeout, f.PerTryTimeout, f.TimeoutMS,
					tc.wantTimeout, tc.wantPerTry, tc.wantMS)
			}
		})
	}
}

func TestRewriteTemplate(t *testing.T) {
	re, sub, err := rewrite(&matcherv3.RegexMatchAndSubstitute{
		Pattern: &matcherv3.RegexMatcher{Regex: "^/service/([^/]+)(/.*)$"}, Substitution: `\2/instance/\1$x`,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := re.ReplaceAll([]byte("/service/foo/v1/api"), sub)
	if string(got) != "/v1/api/instance/foo$x" {
		t.Fatalf("got %q", got)
	}
}

func TestLiteralValue(t *testing.T) {
	if v, err := literalValue("100%% sure"); err != nil || v != "100% sure" {
		t.Fatalf("got %q %v", v, err)
	}
	if _, err := literalValue("%DOWNSTREAM_REMOTE_ADDRESS%"); err == nil {
		t.Fatal("substitution accepted")
	}
	if _, err := literalValue("50%"); err == nil {
		t.Fatal("lone percent accepted")
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(0, mustBytes(f, testListener(f, testHCM(f, nil))))
	f.Add(1, mustBytes(f, &routev3.RouteConfiguration{Name: "rc", VirtualHosts: []*routev3.VirtualHost{{Name: "v", Domains: []string{"*"}}}}))
	f.Add(2, mustBytes(f, &clusterv3.Cluster{Name: "c", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig: &clusterv3.Cluster_EdsClusterConfig{EdsConfig: ads()}}))
	// Retries, mirrors, upstream TLS and validation contexts, whose CA
	// bundles are parsed PEM.
	ca := testCAPEM(f)
	f.Add(1, mustBytes(f, &routev3.RouteConfiguration{Name: "rc", VirtualHosts: []*routev3.VirtualHost{{Name: "v", Domains: []string{"*"},
		Routes: []*routev3.Route{{Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
			Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "c"},
				RetryPolicy: &routev3.RetryPolicy{RetryOn: "5xx,retriable-status-codes", RetriableStatusCodes: []uint32{429},
					RetryBackOff: &routev3.RetryPolicy_RetryBackOff{BaseInterval: durationpb.New(time.Millisecond)}},
				RequestMirrorPolicies: []*routev3.RouteAction_RequestMirrorPolicy{{Cluster: "m"}}}}}}}}}))
	f.Add(2, mustBytes(f, tlsCluster(f, &tlsv3.UpstreamTlsContext{Sni: "a.example", CommonTlsContext: &tlsv3.CommonTlsContext{
		ValidationContextType: &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
			TrustedCa: inline(ca), MatchTypedSubjectAltNames: []*tlsv3.SubjectAltNameMatcher{{SanType: tlsv3.SubjectAltNameMatcher_DNS,
				Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "a.example"}}}}}}}})))
	f.Add(4, mustBytes(f, &tlsv3.Secret{Name: "ca", Type: &tlsv3.Secret_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
		TrustedCa: inline(ca)}}}))
	types := []string{ListenerType, RouteType, ClusterType, EndpointType, SecretType}
	f.Fuzz(func(t *testing.T, kind int, b []byte) {
		if kind < 0 {
			kind = -kind
		}
		a := &anypb.Any{TypeUrl: types[kind%len(types)], Value: b}
		switch a.TypeUrl {
		case ListenerType:
			_, _ = DecodeListener(a)
		case RouteType:
			_, _ = DecodeRouteConfig(a)
		case ClusterType:
			_, _ = DecodeCluster(a)
		case EndpointType:
			_, _ = DecodeEndpoints(a)
		case SecretType:
			_, _ = DecodeSecret(a)
		}
	})
}

func mustBytes(t testing.TB, m proto.Message) []byte {
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
