package translator

import (
	"fmt"
	"net/netip"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	origdstv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/original_dst/v3"
	origsrcv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/original_src/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/nodemesh/nodemesh/mesh/ir"
)

// Socket option numbers of SO_MARK (Linux), for the ORIGINAL_DST cluster's
// upstream sockets.
const (
	solSocket = 1
	soMark    = 36
)

// alsConnectTimeout bounds connecting to the agent's Unix socket.
const alsConnectTimeout = time.Second

// policy emits the proxy half of L7 network policy: one transparent
// listener per direction and protocol in use, the route table of each
// HTTP one, the ORIGINAL_DST cluster they all forward to, the access log
// cluster, and the filter configurations (RBAC, Kafka policy) delivered
// through ECDS so that a policy change never touches a listener.
func (b *builder) policy(p *ir.Policy) error {
	if p == nil {
		return nil
	}
	for _, name := range []string{originalDstCluster, accessLogCluster} {
		if _, taken := b.clusterNames[name]; taken {
			return fmt.Errorf("%w: cluster name %q is reserved for L7 policy", ErrInvalidOutput, name)
		}
	}
	for _, l := range p.Listeners {
		if err := b.policyListener(p, l); err != nil {
			return err
		}
	}
	if len(p.Listeners) == 0 {
		return nil
	}
	if err := b.originalDstCluster(p); err != nil {
		return err
	}
	if p.AccessLogSocket != "" {
		if err := b.accessLogCluster(p.AccessLogSocket); err != nil {
			return err
		}
	}
	return nil
}

func (b *builder) policyListener(p *ir.Policy, l *ir.PolicyListener) error {
	name := policyListenerName(l)
	addr, _ := netip.ParseAddr(l.Address) // validated by ir.Config.Validate
	origDst, err := typedConfig("listener", name, &origdstv3.OriginalDst{})
	if err != nil {
		return err
	}
	out := &listenerv3.Listener{
		Name:        name,
		Address:     socketAddress(addr.String(), l.Port),
		Transparent: wrapperspb.Bool(true),
		ListenerFilters: []*listenerv3.ListenerFilter{{
			Name:       filterOriginalDst,
			ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: origDst},
		}},
	}
	limitListener(out)
	if l.OriginalSource {
		src, err := typedConfig("listener", name, &origsrcv3.OriginalSrc{Mark: p.UpstreamMark})
		if err != nil {
			return err
		}
		out.ListenerFilters = append(out.ListenerFilters, &listenerv3.ListenerFilter{
			Name:       filterOriginalSrc,
			ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: src},
		})
	}
	var filters []*listenerv3.Filter
	switch l.Protocol {
	case ir.L7HTTP:
		hcm, err := b.policyHCM(p, l)
		if err != nil {
			return err
		}
		filters = []*listenerv3.Filter{{Name: filterHTTPConnectionManager, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: hcm}}}
		if err := b.policyRoutes(l); err != nil {
			return err
		}
		if err := b.rbacConfig(p, l); err != nil {
			return err
		}
		if hasHeaderActions(p, l.Direction) {
			if err := b.headerMatchConfig(p, l.Direction); err != nil {
				return err
			}
		}
	case ir.L7Kafka:
		tcp, err := b.policyTCPProxy(p, l)
		if err != nil {
			return err
		}
		filters = []*listenerv3.Filter{
			{Name: kafkaExtensionName(l.Direction), ConfigType: &listenerv3.Filter_ConfigDiscovery{ConfigDiscovery: &corev3.ExtensionConfigSource{
				ConfigSource: adsConfigSource(), TypeUrls: []string{kafkaTypeURL},
			}}},
			{Name: filterTCPProxy, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: tcp}},
		}
		if err := b.kafkaConfig(p, l); err != nil {
			return err
		}
	}
	out.FilterChains = []*listenerv3.FilterChain{{Name: name, Filters: filters}}
	if err := checked("listener", name, out); err != nil {
		return err
	}
	b.out.Listeners = append(b.out.Listeners, out)
	return nil
}

// policyRoutes is the single route of a policy HTTP listener: everything
// goes to the original destination, without a timeout (gRPC streams).
func (b *builder) policyRoutes(l *ir.PolicyListener) error {
	name := policyListenerName(l)
	rc := &routev3.RouteConfiguration{
		Name: name,
		VirtualHosts: []*routev3.VirtualHost{{
			Name:    "original-destination",
			Domains: []string{"*"},
			Routes: []*routev3.Route{{
				Name:  "original-destination",
				Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
				Action: &routev3.Route_Route{Route: &routev3.RouteAction{
					ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: originalDstCluster},
					Timeout:          durationpb.New(0),
				}},
			}},
		}},
	}
	if err := checked("route configuration", name, rc); err != nil {
		return err
	}
	b.out.RouteConfigurations = append(b.out.RouteConfigurations, rc)
	return nil
}

// originalDstCluster forwards to each connection's original destination
// from sockets carrying the proxy mark, so the datapath never redirects
// the proxy's own connections. The upstream protocol follows the
// downstream one (h2c for gRPC).
func (b *builder) originalDstCluster(p *ir.Policy) error {
	opts, err := protocolOptions(originalDstCluster, &httpv3.HttpProtocolOptions{
		UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_UseDownstreamProtocolConfig{
			UseDownstreamProtocolConfig: &httpv3.HttpProtocolOptions_UseDownstreamHttpConfig{
				HttpProtocolOptions:  &corev3.Http1ProtocolOptions{},
				Http2ProtocolOptions: &corev3.Http2ProtocolOptions{},
			},
		},
	})
	if err != nil {
		return err
	}
	c := &clusterv3.Cluster{
		Name:                 originalDstCluster,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_ORIGINAL_DST},
		LbPolicy:             clusterv3.Cluster_CLUSTER_PROVIDED,
		ConnectTimeout:       durationpb.New(defaultConnectTimeout),
		UpstreamBindConfig: &corev3.BindConfig{
			SourceAddress: &corev3.SocketAddress{Address: "0.0.0.0", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 0}},
			SocketOptions: []*corev3.SocketOption{{
				Description: "proxy mark: never redirect the proxy's own connections",
				Level:       solSocket,
				Name:        soMark,
				Value:       &corev3.SocketOption_IntValue{IntValue: int64(p.UpstreamMark)},
				State:       corev3.SocketOption_STATE_PREBIND,
			}},
		},
		TypedExtensionProtocolOptions: opts,
	}
	upstreamLimits(c)
	if err := checked("cluster", originalDstCluster, c); err != nil {
		return err
	}
	b.out.Clusters = append(b.out.Clusters, c)
	return nil
}

// accessLogCluster reaches the agent's AccessLogService over its Unix
// socket (gRPC, so HTTP/2).
func (b *builder) accessLogCluster(socket string) error {
	opts, err := protocolOptions(accessLogCluster, explicitHTTP(true))
	if err != nil {
		return err
	}
	c := &clusterv3.Cluster{
		Name:                 accessLogCluster,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
		ConnectTimeout:       durationpb.New(alsConnectTimeout),
		LoadAssignment: &endpointv3.ClusterLoadAssignment{
			ClusterName: accessLogCluster,
			Endpoints: []*endpointv3.LocalityLbEndpoints{{LbEndpoints: []*endpointv3.LbEndpoint{{
				HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
					Address: &corev3.Address{Address: &corev3.Address_Pipe{Pipe: &corev3.Pipe{Path: socket}}},
				}},
			}}}},
		},
		TypedExtensionProtocolOptions: opts,
	}
	upstreamLimits(c)
	if err := checked("cluster", accessLogCluster, c); err != nil {
		return err
	}
	b.out.Clusters = append(b.out.Clusters, c)
	return nil
}
