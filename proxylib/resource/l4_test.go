package resource

import (
	"strings"
	"testing"
	"time"

	xdscorev3 "github.com/cncf/xds/go/xds/core/v3"
	xdsmatcherv3 "github.com/cncf/xds/go/xds/type/matcher/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	corsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	rbacfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	tlsinspectorv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	udpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/udp/udp_proxy/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func udpListener(t testing.TB, cfg *udpproxyv3.UdpProxyConfig, mod func(*listenerv3.Listener)) *listenerv3.Listener {
	l := &listenerv3.Listener{Name: "udp",
		Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
			Protocol: corev3.SocketAddress_UDP, Address: "127.0.0.1", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 5353}}}},
		ListenerFilters: []*listenerv3.ListenerFilter{{Name: "envoy.filters.udp_listener.udp_proxy",
			ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: mustAny(t, cfg)}}},
	}
	if mod != nil {
		mod(l)
	}
	return l
}

// udpMatcher is the route Envoy Gateway emits: a matcher with only an
// on_no_match action.
func udpMatcher(t testing.TB, cluster string) *udpproxyv3.UdpProxyConfig_Matcher {
	return &udpproxyv3.UdpProxyConfig_Matcher{Matcher: &xdsmatcherv3.Matcher{OnNoMatch: &xdsmatcherv3.Matcher_OnMatch{
		OnMatch: &xdsmatcherv3.Matcher_OnMatch_Action{Action: &xdscorev3.TypedExtensionConfig{Name: "route",
			TypedConfig: mustAny(t, &udpproxyv3.Route{Cluster: cluster})}}}}}
}

func TestDecodeUDPListener(t *testing.T) {
	l, err := DecodeListener(mustAny(t, udpListener(t, &udpproxyv3.UdpProxyConfig{StatPrefix: "s", RouteSpecifier: udpMatcher(t, "dns"),
		IdleTimeout: durationpb.New(5 * time.Second)}, func(l *listenerv3.Listener) {
		l.UdpListenerConfig = &listenerv3.UdpListenerConfig{DownstreamSocketConfig: &corev3.UdpSocketConfig{
			MaxRxDatagramSize: wrapperspb.UInt64(9000)}}
	})))
	if err != nil {
		t.Fatal(err)
	}
	if l.UDP == nil || l.UDP.Proxy.Cluster != "dns" || l.UDP.Proxy.IdleTimeout != 5*time.Second ||
		l.UDP.MaxRxDatagramSize != 9000 || l.UDP.Proxy.MaxRxDatagramSize != DefaultMaxRxDatagramSize || l.Address != "127.0.0.1:5353" {
		t.Fatalf("decoded %+v / %+v", l, l.UDP)
	}
	// The deprecated cluster field, and Envoy's defaults.
	l, err = DecodeListener(mustAny(t, udpListener(t, &udpproxyv3.UdpProxyConfig{StatPrefix: "s",
		RouteSpecifier: &udpproxyv3.UdpProxyConfig_Cluster{Cluster: "legacy"}}, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if l.UDP.Proxy.Cluster != "legacy" || l.UDP.Proxy.IdleTimeout != time.Minute || l.UDP.MaxRxDatagramSize != 1500 {
		t.Fatalf("defaults: %+v", l.UDP.Proxy)
	}

	for _, tc := range []struct {
		name string
		l    *listenerv3.Listener
		want string
	}{
		{"use_original_src_ip", udpListener(t, &udpproxyv3.UdpProxyConfig{StatPrefix: "s", RouteSpecifier: udpMatcher(t, "c"),
			UseOriginalSrcIp: true}, nil), "typed_config(UdpProxyConfig).use_original_src_ip: field not supported"},
		{"per-packet balancing", udpListener(t, &udpproxyv3.UdpProxyConfig{StatPrefix: "s", RouteSpecifier: udpMatcher(t, "c"),
			UsePerPacketLoadBalancing: true}, nil), "use_per_packet_load_balancing: field not supported"},
		{"matcher list", udpListener(t, &udpproxyv3.UdpProxyConfig{StatPrefix: "s", RouteSpecifier: &udpproxyv3.UdpProxyConfig_Matcher{
			Matcher: &xdsmatcherv3.Matcher{MatcherType: &xdsmatcherv3.Matcher_MatcherList_{MatcherList: &xdsmatcherv3.Matcher_MatcherList{}}}}}, nil),
			"matcher.matcher_list: field not supported"},
		{"no route", udpListener(t, &udpproxyv3.UdpProxyConfig{StatPrefix: "s", RouteSpecifier: &udpproxyv3.UdpProxyConfig_Matcher{
			Matcher: &xdsmatcherv3.Matcher{}}}, nil), "on_no_match.action: a route action is required"},
		{"filter chains on UDP", udpListener(t, &udpproxyv3.UdpProxyConfig{StatPrefix: "s", RouteSpecifier: udpMatcher(t, "c")},
			func(l *listenerv3.Listener) { l.FilterChains = testListener(t, testHCM(t, nil)).FilterChains }), "filter_chains: a UDP listener takes no filter chains"},
		{"udp_proxy on TCP", udpListener(t, &udpproxyv3.UdpProxyConfig{StatPrefix: "s", RouteSpecifier: udpMatcher(t, "c")},
			func(l *listenerv3.Listener) { l.Address.GetSocketAddress().Protocol = corev3.SocketAddress_TCP }),
			"listener_filters[0].typed_config: udp_proxy needs a listener whose socket_address.protocol is UDP"},
		{"prefer_gro", udpListener(t, &udpproxyv3.UdpProxyConfig{StatPrefix: "s", RouteSpecifier: udpMatcher(t, "c")},
			func(l *listenerv3.Listener) {
				l.UdpListenerConfig = &listenerv3.UdpListenerConfig{DownstreamSocketConfig: &corev3.UdpSocketConfig{PreferGro: wrapperspb.Bool(true)}}
			}), "downstream_socket_config.prefer_gro: field not supported"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeListener(mustAny(t, tc.l))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
}

func TestDecodeTLSInspectorAndTCPProxy(t *testing.T) {
	tp := &tcpproxyv3.TcpProxy{StatPrefix: "t", MaxConnectAttempts: wrapperspb.UInt32(3),
		ClusterSpecifier: &tcpproxyv3.TcpProxy_WeightedClusters{WeightedClusters: &tcpproxyv3.TcpProxy_WeightedCluster{
			Clusters: []*tcpproxyv3.TcpProxy_WeightedCluster_ClusterWeight{{Name: "a", Weight: 1}, {Name: "b", Weight: 4}}}}}
	chain := func(port uint32, names ...string) *listenerv3.FilterChain {
		fc := &listenerv3.FilterChain{Filters: []*listenerv3.Filter{{Name: "envoy.filters.network.tcp_proxy",
			ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(t, tp)}}},
			FilterChainMatch: &listenerv3.FilterChainMatch{ServerNames: names}}
		if port != 0 {
			fc.FilterChainMatch.DestinationPort = wrapperspb.UInt32(port)
		}
		return fc
	}
	base := func() *listenerv3.Listener {
		l := testListener(t, testHCM(t, nil))
		l.FilterChains = []*listenerv3.FilterChain{chain(0, "a.example"), chain(0), chain(8443, "a.example")}
		l.ListenerFilters = []*listenerv3.ListenerFilter{{Name: "envoy.filters.listener.tls_inspector",
			ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: mustAny(t, &tlsinspectorv3.TlsInspector{
				MaxClientHelloSize: wrapperspb.UInt32(4096), InitialReadBufferSize: wrapperspb.UInt32(1024)})}}}
		l.ListenerFiltersTimeout = durationpb.New(2 * time.Second)
		l.ContinueOnListenerFiltersTimeout = true
		return l
	}
	l, err := DecodeListener(mustAny(t, base()))
	if err != nil {
		t.Fatal(err)
	}
	if !l.TLSInspector || l.Inspector != (TLSInspector{MaxClientHello: 4096, InitialRead: 1024}) ||
		l.FiltersTimeout != 2*time.Second || !l.ContinueOnFiltersTimeout {
		t.Fatalf("listener %+v", l)
	}
	c := l.Chains[2]
	if c.DestinationPort != 8443 || c.TCP.TotalWeight != 5 || len(c.TCP.Weighted) != 2 || c.TCP.MaxConnectAttempts != 3 {
		t.Fatalf("chain %+v / %+v", c, c.TCP)
	}
	// Defaults: 16 KiB hello, 15 s timeout, one connect attempt.
	plain := testListener(t, testHCM(t, nil))
	plain.ListenerFilters = base().ListenerFilters[:1]
	plain.ListenerFilters[0].ConfigType = &listenerv3.ListenerFilter_TypedConfig{TypedConfig: mustAny(t, &tlsinspectorv3.TlsInspector{})}
	l, err = DecodeListener(mustAny(t, plain))
	if err != nil {
		t.Fatal(err)
	}
	if l.Inspector.MaxClientHello != 16384 || l.Inspector.InitialRead != 16384 || l.FiltersTimeout != 15*time.Second {
		t.Fatalf("defaults %+v %v", l.Inspector, l.FiltersTimeout)
	}

	for _, tc := range []struct {
		name string
		mod  func(*listenerv3.Listener)
		want string
	}{
		{"same port and name twice", func(l *listenerv3.Listener) { l.FilterChains = append(l.FilterChains, chain(8443, "a.example")) },
			"filter_chains[3].filter_chain_match: matches the same connections as filter_chains[2]"},
		{"ja3", func(l *listenerv3.Listener) {
			l.ListenerFilters[0].ConfigType = &listenerv3.ListenerFilter_TypedConfig{TypedConfig: mustAny(t, &tlsinspectorv3.TlsInspector{
				EnableJa3Fingerprinting: wrapperspb.Bool(true)})}
		}, "typed_config(TlsInspector).enable_ja3_fingerprinting: field not supported"},
		{"application_protocols", func(l *listenerv3.Listener) { l.FilterChains[0].FilterChainMatch.ApplicationProtocols = []string{"h2"} },
			"filter_chain_match.application_protocols: field not supported"},
		{"default_filter_chain", func(l *listenerv3.Listener) { l.DefaultFilterChain = chain(0) }, "default_filter_chain: field not supported"},
		{"udp_listener_config on TCP", func(l *listenerv3.Listener) { l.UdpListenerConfig = &listenerv3.UdpListenerConfig{} },
			"udp_listener_config: only for listeners whose socket_address.protocol is UDP"},
		{"tcp_proxy on_demand", func(l *listenerv3.Listener) {
			x := proto.Clone(tp).(*tcpproxyv3.TcpProxy)
			x.OnDemand = &tcpproxyv3.TcpProxy_OnDemand{}
			l.FilterChains[0].Filters[0].ConfigType = &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(t, x)}
		}, "typed_config(TcpProxy).on_demand: field not supported"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := base()
			tc.mod(l)
			_, err := DecodeListener(mustAny(t, l))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
}

func TestDecodeCORS(t *testing.T) {
	policy := &corsv3.CorsPolicy{AllowOriginStringMatch: []*matcherv3.StringMatcher{{MatchPattern: &matcherv3.StringMatcher_SafeRegex{
		SafeRegex: &matcherv3.RegexMatcher{Regex: `https://.*\.example`}}}}, AllowMethods: "GET", AllowCredentials: wrapperspb.Bool(false)}
	rc := func(perFilter map[string]*anypb.Any) *routev3.RouteConfiguration {
		return &routev3.RouteConfiguration{Name: "rc", VirtualHosts: []*routev3.VirtualHost{{Name: "v", Domains: []string{"*"},
			TypedPerFilterConfig: perFilter,
			Routes: []*routev3.Route{{Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
				Action:               &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "c"}}},
				TypedPerFilterConfig: perFilter}}}}}
	}
	out, err := DecodeRouteConfig(mustAny(t, rc(map[string]*anypb.Any{"envoy.filters.http.cors": mustAny(t, policy)})))
	if err != nil {
		t.Fatal(err)
	}
	p := out.VirtualHosts[0].Routes[0].PerFilter["envoy.filters.http.cors"]
	if p == nil || string(p.AllowMethods) != "GET" || p.AllowCredentials != False || p.ForwardNotMatchingPreflights != Unset ||
		!p.AllowOrigins[0].Match([]byte("https://a.b.example")) || p.AllowOrigins[0].Match([]byte("http://a.example")) ||
		out.VirtualHosts[0].PerFilter["envoy.filters.http.cors"] == nil {
		t.Fatalf("decoded %+v", p)
	}
	for _, tc := range []struct {
		name string
		pf   map[string]*anypb.Any
		want string
	}{
		{"another filter's per-route config", map[string]*anypb.Any{"envoy.filters.http.rbac": mustAny(t, &rbacfilterv3.RBACPerRoute{})},
			`typed_per_filter_config["envoy.filters.http.rbac"]: type "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBACPerRoute" not supported`},
		{"filter_enabled", map[string]*anypb.Any{"envoy.filters.http.cors": mustAny(t, &corsv3.CorsPolicy{
			FilterEnabled: &corev3.RuntimeFractionalPercent{DefaultValue: &typev3.FractionalPercent{Numerator: 50}}})},
			"(CorsPolicy).filter_enabled: field not supported"},
		{"header value with a line break", map[string]*anypb.Any{"envoy.filters.http.cors": mustAny(t, &corsv3.CorsPolicy{
			ExposeHeaders: "x\r\ny: z"})}, "(CorsPolicy).expose_headers: not a valid header value"},
		{"bad regex", map[string]*anypb.Any{"envoy.filters.http.cors": mustAny(t, &corsv3.CorsPolicy{
			AllowOriginStringMatch: []*matcherv3.StringMatcher{{MatchPattern: &matcherv3.StringMatcher_SafeRegex{
				SafeRegex: &matcherv3.RegexMatcher{Regex: "("}}}}})}, "allow_origin_string_match[0]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeRouteConfig(mustAny(t, rc(tc.pf)))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
	// The filter itself: accepted before the router, with no fields.
	l := testListener(t, testHCM(t, func(h *hcmv3.HttpConnectionManager) {
		h.HttpFilters = append([]*hcmv3.HttpFilter{{Name: "envoy.filters.http.cors",
			ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(t, &corsv3.Cors{})}}}, h.HttpFilters...)
	}))
	dl, err := DecodeListener(mustAny(t, l))
	if err != nil {
		t.Fatal(err)
	}
	if f := dl.Chains[0].HCM.Filters; len(f) != 1 || f[0].Kind != FilterCORS || f[0].Name != "envoy.filters.http.cors" {
		t.Fatalf("filters %+v", f)
	}
}
