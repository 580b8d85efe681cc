package resource

import (
	"net/netip"
	"strings"
	"testing"

	xdsmatcherv3 "github.com/cncf/xds/go/xds/type/matcher/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	rbacfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	netrbacv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	kafkav1 "github.com/nodemesh/nodemesh/proxylib/api/kafka/v1"
)

func netRBACFilter(t testing.TB, r *netrbacv3.RBAC) *listenerv3.Filter {
	return &listenerv3.Filter{Name: "envoy.filters.network.rbac", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(t, r)}}
}

func tcpProxyFilter(t testing.TB) *listenerv3.Filter {
	return &listenerv3.Filter{Name: "envoy.filters.network.tcp_proxy", ConfigType: &listenerv3.Filter_TypedConfig{
		TypedConfig: mustAny(t, &tcpproxyv3.TcpProxy{StatPrefix: "tcp", ClusterSpecifier: &tcpproxyv3.TcpProxy_Cluster{Cluster: "c"}})}}
}

func kafkaDiscovered() *listenerv3.Filter {
	return &listenerv3.Filter{Name: "kafka-policy", ConfigType: &listenerv3.Filter_ConfigDiscovery{ConfigDiscovery: &corev3.ExtensionConfigSource{
		ConfigSource: &corev3.ConfigSource{ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
			ResourceApiVersion: corev3.ApiVersion_V3},
		TypeUrls: []string{kafkav1.TypeURL}}}}
}

func tcpListenerWith(filters ...*listenerv3.Filter) *listenerv3.Listener {
	return &listenerv3.Listener{Name: "tcp", Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address: "127.0.0.1", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 9443}}}},
		FilterChains: []*listenerv3.FilterChain{{Filters: filters}}}
}

func cidrRange(s string) *corev3.CidrRange {
	p := netip.MustParsePrefix(s)
	return &corev3.CidrRange{AddressPrefix: p.Addr().String(), PrefixLen: wrapperspb.UInt32(uint32(p.Bits()))}
}

// policyOf is one ALLOW/DENY rule set with a single policy.
func policyOf(action rbacv3.RBAC_Action, perm *rbacv3.Permission, prin *rbacv3.Principal) *rbacv3.RBAC {
	return &rbacv3.RBAC{Action: action, Policies: map[string]*rbacv3.Policy{
		"p": {Permissions: []*rbacv3.Permission{perm}, Principals: []*rbacv3.Principal{prin}}}}
}

var (
	anyPerm = &rbacv3.Permission{Rule: &rbacv3.Permission_Any{Any: true}}
	anyPrin = &rbacv3.Principal{Identifier: &rbacv3.Principal_Any{Any: true}}
)

// TestDecodeNetworkRBAC: network RBAC filters before tcp_proxy decode
// into the chain's TCPProxy in order, with the L4 principals and
// permissions; what the proxy does not implement is NACKed naming the
// field.
func TestDecodeNetworkRBAC(t *testing.T) {
	sni := &rbacv3.Permission{Rule: &rbacv3.Permission_RequestedServerName{RequestedServerName: &matcherv3.StringMatcher{
		MatchPattern: &matcherv3.StringMatcher_Suffix{Suffix: ".example"}}}}
	prins := &rbacv3.Principal{Identifier: &rbacv3.Principal_OrIds{OrIds: &rbacv3.Principal_Set{Ids: []*rbacv3.Principal{
		{Identifier: &rbacv3.Principal_DirectRemoteIp{DirectRemoteIp: cidrRange("10.0.0.0/8")}},
		{Identifier: &rbacv3.Principal_RemoteIp{RemoteIp: cidrRange("10.1.0.0/16")}},
		{Identifier: &rbacv3.Principal_SourceIp{SourceIp: cidrRange("192.0.2.1/32")}},
		{Identifier: &rbacv3.Principal_NotId{NotId: &rbacv3.Principal{Identifier: &rbacv3.Principal_AndIds{AndIds: &rbacv3.Principal_Set{
			Ids: []*rbacv3.Principal{anyPrin}}}}}},
	}}}}
	perms := &rbacv3.Permission{Rule: &rbacv3.Permission_AndRules{AndRules: &rbacv3.Permission_Set{Rules: []*rbacv3.Permission{
		sni,
		{Rule: &rbacv3.Permission_DestinationIp{DestinationIp: cidrRange("127.0.0.1/32")}},
		{Rule: &rbacv3.Permission_DestinationPort{DestinationPort: 9443}},
	}}}}
	l, err := DecodeListener(mustAny(t, tcpListenerWith(
		netRBACFilter(t, &netrbacv3.RBAC{StatPrefix: "first", Rules: policyOf(rbacv3.RBAC_ALLOW, perms, prins)}),
		netRBACFilter(t, &netrbacv3.RBAC{StatPrefix: "second", EnforcementType: netrbacv3.RBAC_ONE_TIME_ON_FIRST_BYTE,
			Rules: policyOf(rbacv3.RBAC_DENY, anyPerm, &rbacv3.Principal{Identifier: &rbacv3.Principal_DirectRemoteIp{DirectRemoteIp: cidrRange("10.9.0.0/16")}})}),
		netRBACFilter(t, &netrbacv3.RBAC{StatPrefix: "open"}),
		kafkaDiscovered(),
		tcpProxyFilter(t),
	)))
	if err != nil {
		t.Fatal(err)
	}
	tp := l.Chains[0].TCP
	if tp == nil || len(tp.RBAC) != 3 || tp.Kafka == nil {
		t.Fatalf("decoded %+v", tp)
	}
	first, second, open := tp.RBAC[0], tp.RBAC[1], tp.RBAC[2]
	if first.StatPrefix != "first" || !first.Enforce || first.Action != RBACAllow || second.Action != RBACDeny || !second.Enforce || open.Enforce {
		t.Fatalf("filters %+v %+v %+v", first, second, open)
	}
	perm := first.Policies[0].Permissions[0]
	if perm.Kind != PermAnd || perm.Rules[0].Kind != PermRequestedServerName || !perm.Rules[0].ServerName.Match([]byte("a.example")) ||
		perm.Rules[0].ServerName.Match([]byte("a.example.org")) {
		t.Fatalf("permission %+v", perm.Rules[0])
	}
	ids := first.Policies[0].Principals[0].IDs
	for i, want := range []string{"10.0.0.0/8", "10.1.0.0/16", "192.0.2.1/32"} {
		if ids[i].Kind != PrinDirectRemoteIP || ids[i].CIDR.String() != want {
			t.Fatalf("principal %d: %+v, want the peer address in %s", i, ids[i], want)
		}
	}

	hcmFilter := func(r *rbacfilterv3.RBAC) *listenerv3.Filter {
		h := &hcmv3.HttpConnectionManager{StatPrefix: "h", RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
			RouteConfigName: "rc", ConfigSource: &corev3.ConfigSource{ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
				ResourceApiVersion: corev3.ApiVersion_V3}}},
			HttpFilters: []*hcmv3.HttpFilter{
				{Name: "envoy.filters.http.rbac", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(t, r)}},
				{Name: "envoy.filters.http.router", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(t, &routerv3.Router{})}},
			}}
		return &listenerv3.Filter{Name: "envoy.filters.network.http_connection_manager", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(t, h)}}
	}
	allowAll := func(r *rbacv3.RBAC) *netrbacv3.RBAC { return &netrbacv3.RBAC{StatPrefix: "s", Rules: r} }
	for _, tc := range []struct {
		name string
		l    *listenerv3.Listener
		want string
	}{
		{"shadow_rules", tcpListenerWith(netRBACFilter(t, &netrbacv3.RBAC{StatPrefix: "s", ShadowRules: policyOf(rbacv3.RBAC_ALLOW, anyPerm, anyPrin)}), tcpProxyFilter(t)),
			"filter_chains[0].filters[0].typed_config(RBAC).shadow_rules: field not supported by nodemesh-proxy"},
		{"shadow_rules_stat_prefix", tcpListenerWith(netRBACFilter(t, &netrbacv3.RBAC{StatPrefix: "s", ShadowRulesStatPrefix: "x"}), tcpProxyFilter(t)),
			"typed_config(RBAC).shadow_rules_stat_prefix: field not supported"},
		{"matcher", tcpListenerWith(netRBACFilter(t, &netrbacv3.RBAC{StatPrefix: "s", Matcher: &xdsmatcherv3.Matcher{}}), tcpProxyFilter(t)),
			"typed_config(RBAC).matcher: field not supported"},
		{"delay_deny", tcpListenerWith(netRBACFilter(t, &netrbacv3.RBAC{StatPrefix: "s", DelayDeny: durationpb.New(1)}), tcpProxyFilter(t)),
			"typed_config(RBAC).delay_deny: field not supported"},
		{"continuous", tcpListenerWith(netRBACFilter(t, &netrbacv3.RBAC{StatPrefix: "s", EnforcementType: netrbacv3.RBAC_CONTINUOUS}), tcpProxyFilter(t)),
			"typed_config(RBAC).enforcement_type: CONTINUOUS not supported by nodemesh-proxy"},
		{"no stat_prefix", tcpListenerWith(netRBACFilter(t, &netrbacv3.RBAC{}), tcpProxyFilter(t)),
			"typed_config(RBAC).stat_prefix: must not be empty"},
		{"header rule", tcpListenerWith(netRBACFilter(t, allowAll(policyOf(rbacv3.RBAC_ALLOW, &rbacv3.Permission{Rule: &rbacv3.Permission_Header{
			Header: &routev3.HeaderMatcher{Name: "x", HeaderMatchSpecifier: &routev3.HeaderMatcher_PresentMatch{PresentMatch: true}}}}, anyPrin))), tcpProxyFilter(t)),
			`policies["p"].permissions[0].header: a request rule; the network RBAC filter has no request`},
		{"url_path rule", tcpListenerWith(netRBACFilter(t, allowAll(policyOf(rbacv3.RBAC_ALLOW, &rbacv3.Permission{Rule: &rbacv3.Permission_UrlPath{
			UrlPath: &matcherv3.PathMatcher{Rule: &matcherv3.PathMatcher_Path{Path: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "/"}}}}}}, anyPrin))), tcpProxyFilter(t)),
			"permissions[0].url_path: a request rule"},
		{"metadata principal", tcpListenerWith(netRBACFilter(t, allowAll(policyOf(rbacv3.RBAC_ALLOW, anyPerm, &rbacv3.Principal{Identifier: &rbacv3.Principal_Metadata{
			Metadata: &matcherv3.MetadataMatcher{Filter: "f"}}}))), tcpProxyFilter(t)),
			"principals[0].metadata: field not supported"},
		{"config_discovery", tcpListenerWith(&listenerv3.Filter{Name: "rbac", ConfigType: &listenerv3.Filter_ConfigDiscovery{
			ConfigDiscovery: &corev3.ExtensionConfigSource{ConfigSource: kafkaDiscovered().GetConfigDiscovery().GetConfigSource(),
				TypeUrls: []string{"type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC"}}}}, tcpProxyFilter(t)),
			"filter_chains[0].filters[0].config_discovery"},
		{"kafka before rbac", tcpListenerWith(kafkaDiscovered(), netRBACFilter(t, &netrbacv3.RBAC{StatPrefix: "s"}), tcpProxyFilter(t)),
			"filter_chains[0].filters[0]: the Kafka policy filter must be the last filter before tcp_proxy"},
		{"rbac before hcm", tcpListenerWith(netRBACFilter(t, &netrbacv3.RBAC{StatPrefix: "s"}),
			hcmFilter(&rbacfilterv3.RBAC{})), "no network filter may precede http_connection_manager (the network RBAC filter is supported before tcp_proxy only)"},
		{"remote_ip in the HTTP filter", tcpListenerWith(hcmFilter(&rbacfilterv3.RBAC{Rules: policyOf(rbacv3.RBAC_ALLOW, anyPerm,
			&rbacv3.Principal{Identifier: &rbacv3.Principal_RemoteIp{RemoteIp: cidrRange("10.0.0.0/8")}})})),
			"principals[0].remote_ip: only supported by nodemesh-proxy in the network RBAC filter; use direct_remote_ip"},
		{"requested_server_name in the HTTP filter", tcpListenerWith(hcmFilter(&rbacfilterv3.RBAC{Rules: policyOf(rbacv3.RBAC_ALLOW, sni, anyPrin)})),
			"permissions[0].requested_server_name: only supported by nodemesh-proxy in the network RBAC filter"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeListener(mustAny(t, tc.l))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to contain %q", err, tc.want)
			}
		})
	}
}
