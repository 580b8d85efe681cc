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
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/nodemesh/nodemesh/mesh/ir"
	datapathv1 "github.com/nodemesh/nodemesh/proxylib/api/datapath/v1"
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
	dep := b.policyInputs(p)
	for _, l := range p.Listeners {
		if err := b.policyListener(p, l, dep); err != nil {
			return err
		}
	}
	if len(p.Listeners) == 0 {
		return nil
	}
	if err := b.policyResource("cluster", originalDstCluster, b.ver.start("original-dst cluster").uint(uint64(p.UpstreamMark)).sum(),
		func() (proto.Message, error) { return originalDstClusterOf(p) }); err != nil {
		return err
	}
	if p.AccessLogSocket != "" {
		if err := b.policyResource("cluster", accessLogCluster, b.ver.start("access log cluster").str(p.AccessLogSocket).sum(),
			func() (proto.Message, error) { return accessLogClusterOf(p.AccessLogSocket) }); err != nil {
			return err
		}
	}
	return nil
}

// policyDeps are the hashes of what the policy resources are built from:
// each direction's HTTP and Kafka policies in order, and the policy-wide
// facts a listener's filters depend on.
type policyDeps struct {
	http, kafka map[ir.PolicyDirection][]ir.Hash
	ingressHTTP bool
	// headerActions: whether a direction's HTTP policies carry header
	// actions (the listener then runs that direction's header match
	// filter).
	headerActions map[ir.PolicyDirection]bool
}

func (b *builder) policyInputs(p *ir.Policy) policyDeps {
	d := policyDeps{http: map[ir.PolicyDirection][]ir.Hash{}, kafka: map[ir.PolicyDirection][]ir.Hash{}, ingressHTTP: hasIngressHTTP(p),
		headerActions: map[ir.PolicyDirection]bool{
			ir.PolicyIngress: hasHeaderActions(p, ir.PolicyIngress),
			ir.PolicyEgress:  hasHeaderActions(p, ir.PolicyEgress),
		}}
	for _, h := range p.HTTP {
		d.http[h.Direction] = append(d.http[h.Direction], b.hashes.HTTPPolicy(h))
	}
	for _, k := range p.Kafka {
		d.kafka[k.Direction] = append(d.kafka[k.Direction], b.hashes.KafkaPolicy(k))
	}
	return d
}

// hashes composes a version over a list of hashes.
func (v *version) hashes(hs []ir.Hash) *version {
	v.uint(uint64(len(hs)))
	for _, h := range hs {
		v.hash(h)
	}
	return v
}

// policyResource emits one L7 policy resource of the given kind, whose
// content is a function of what version was composed from: the previous
// translation's object when the version is unchanged, else build's, which
// validates it.
func (b *builder) policyResource(kind, name string, v ir.Hash, build func() (proto.Message, error)) error {
	key := kind + "\x00" + name
	ver := versionString(v)
	pm := b.prev.policyResource(key, ver)
	if pm != nil {
		b.out.Warnings = append(b.out.Warnings, pm.warnings...)
	} else {
		mark := len(b.out.Warnings)
		out, err := build()
		if err != nil {
			return err
		}
		pm = &policyMemo{version: ver, out: out, warnings: b.warningsSince(mark)}
	}
	switch m := pm.out.(type) {
	case *listenerv3.Listener:
		b.out.Listeners = append(b.out.Listeners, m)
	case *routev3.RouteConfiguration:
		b.out.RouteConfigurations = append(b.out.RouteConfigurations, m)
	case *clusterv3.Cluster:
		b.out.Clusters = append(b.out.Clusters, m)
	case *corev3.TypedExtensionConfig:
		b.out.ExtensionConfigs = append(b.out.ExtensionConfigs, m)
	default:
		return fmt.Errorf("%w: policy resource %q of unexpected type %T", ErrInvalidOutput, name, pm.out)
	}
	b.emit(pm.out, ver)
	b.next.put(key, pm)
	return nil
}

// policyListener emits a policy listener and what it needs of its own:
// its route table (HTTP) and its filter configurations.
func (b *builder) policyListener(p *ir.Policy, l *ir.PolicyListener, dep policyDeps) error {
	name := policyListenerName(l)
	// The listener's filters depend on these policy-wide facts: the
	// upstream mark when it keeps the original source, whether access
	// logs go out, for HTTP whether its direction has header actions, and
	// for egress HTTP whether local destinations have ingress HTTP rules
	// (destination RBAC) with header actions (policyHTTPFilters).
	v := b.ver.start("policy listener").hash(b.hashes.PolicyListener(l)).bool(p.AccessLogSocket != "")
	if l.OriginalSource {
		v.uint(uint64(p.UpstreamMark))
	}
	if l.Protocol == ir.L7HTTP {
		v.bool(dep.headerActions[l.Direction])
		if l.Direction == ir.PolicyEgress {
			v.bool(dep.ingressHTTP).bool(dep.headerActions[ir.PolicyIngress])
		}
	}
	if err := b.policyResource("listener", name, v.sum(), func() (proto.Message, error) { return b.buildPolicyListener(p, l) }); err != nil {
		return err
	}
	switch l.Protocol {
	case ir.L7HTTP:
		if err := b.policyResource("route configuration", name, b.ver.start("policy routes").str(name).sum(),
			func() (proto.Message, error) { return policyRoutes(l) }); err != nil {
			return err
		}
		rbac := rbacExtensionName(l.Direction)
		if err := b.policyResource("extension config", rbac, b.ver.start("rbac").str(string(l.Direction)).hashes(dep.http[l.Direction]).sum(),
			func() (proto.Message, error) { return b.rbacConfig(p, l) }); err != nil {
			return err
		}
		if l.Direction == ir.PolicyEgress && dep.ingressHTTP {
			if err := b.policyResource("extension config", destinationRBACName, b.ver.start("destination rbac").hashes(dep.http[ir.PolicyIngress]).sum(),
				func() (proto.Message, error) { return b.extensionConfig(destinationRBACName, destinationRBAC(p)) }); err != nil {
				return err
			}
		}
		if dep.headerActions[l.Direction] {
			return b.policyResource("extension config", headerMatchExtensionName(l.Direction), b.ver.start("header match").str(string(l.Direction)).hashes(dep.http[l.Direction]).sum(),
				func() (proto.Message, error) { return b.headerMatchConfig(p, l.Direction) })
		}
	case ir.L7Kafka:
		return b.policyResource("extension config", kafkaExtensionName(l.Direction), b.ver.start("kafka").str(string(l.Direction)).hashes(dep.kafka[l.Direction]).sum(),
			func() (proto.Message, error) { return b.kafkaConfig(p, l) })
	}
	return nil
}

// originalSrc is the original_src listener filter: upstream connections
// bind the client's address and carry mark (the port stays the kernel's
// choice).
func originalSrc(listener string, mark uint32) (*listenerv3.ListenerFilter, error) {
	src, err := typedConfig("listener", listener, &origsrcv3.OriginalSrc{Mark: mark})
	if err != nil {
		return nil, err
	}
	return &listenerv3.ListenerFilter{Name: filterOriginalSrc, ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: src}}, nil
}

// buildPolicyListener builds a transparent policy listener.
func (b *builder) buildPolicyListener(p *ir.Policy, l *ir.PolicyListener) (*listenerv3.Listener, error) {
	name := policyListenerName(l)
	addr, _ := netip.ParseAddr(l.Address) // validated by ir.Config.Validate
	origDst, err := typedConfig("listener", name, &origdstv3.OriginalDst{})
	if err != nil {
		return nil, err
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
	if l.ConntrackMap != "" {
		di, err := typedConfig("listener", name, &datapathv1.DatapathIdentity{ConntrackMap: l.ConntrackMap})
		if err != nil {
			return nil, err
		}
		out.ListenerFilters = append(out.ListenerFilters, &listenerv3.ListenerFilter{
			Name: datapathv1.FilterName, ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: di}})
	}
	if l.OriginalSource {
		src, err := originalSrc(name, p.UpstreamMark)
		if err != nil {
			return nil, err
		}
		out.ListenerFilters = append(out.ListenerFilters, src)
	}
	var filters []*listenerv3.Filter
	switch l.Protocol {
	case ir.L7HTTP:
		hcm, err := b.policyHCM(p, l)
		if err != nil {
			return nil, err
		}
		filters = []*listenerv3.Filter{{Name: filterHTTPConnectionManager, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: hcm}}}
	case ir.L7Kafka:
		tcp, err := b.policyTCPProxy(p, l)
		if err != nil {
			return nil, err
		}
		filters = []*listenerv3.Filter{
			{Name: kafkaExtensionName(l.Direction), ConfigType: &listenerv3.Filter_ConfigDiscovery{ConfigDiscovery: &corev3.ExtensionConfigSource{
				ConfigSource: adsConfigSource(), TypeUrls: []string{kafkaTypeURL},
			}}},
			{Name: filterTCPProxy, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: tcp}},
		}
	}
	out.FilterChains = []*listenerv3.FilterChain{{Name: name, Filters: filters}}
	if err := checked("listener", name, out); err != nil {
		return nil, err
	}
	return out, nil
}

// policyRoutes is the single route of a policy HTTP listener: everything
// goes to the original destination, without a timeout (gRPC streams).
func policyRoutes(l *ir.PolicyListener) (*routev3.RouteConfiguration, error) {
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
		return nil, err
	}
	return rc, nil
}

// originalDstCluster forwards to each connection's original destination
// from sockets carrying the proxy mark, so the datapath never redirects
// the proxy's own connections. The upstream protocol follows the
// downstream one (h2c for gRPC).
func originalDstClusterOf(p *ir.Policy) (*clusterv3.Cluster, error) {
	opts, err := protocolOptions(originalDstCluster, &httpv3.HttpProtocolOptions{
		UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_UseDownstreamProtocolConfig{
			UseDownstreamProtocolConfig: &httpv3.HttpProtocolOptions_UseDownstreamHttpConfig{
				HttpProtocolOptions:  &corev3.Http1ProtocolOptions{},
				Http2ProtocolOptions: &corev3.Http2ProtocolOptions{},
			},
		},
	})
	if err != nil {
		return nil, err
	}
	c := &clusterv3.Cluster{
		Name:                          originalDstCluster,
		ClusterDiscoveryType:          &clusterv3.Cluster_Type{Type: clusterv3.Cluster_ORIGINAL_DST},
		LbPolicy:                      clusterv3.Cluster_CLUSTER_PROVIDED,
		ConnectTimeout:                durationpb.New(defaultConnectTimeout),
		UpstreamBindConfig:            markBind(p.UpstreamMark, "proxy mark: never redirect the proxy's own connections"),
		TypedExtensionProtocolOptions: opts,
	}
	upstreamLimits(c)
	if err := checked("cluster", originalDstCluster, c); err != nil {
		return nil, err
	}
	return c, nil
}

// accessLogCluster reaches the agent's AccessLogService over its Unix
// socket (gRPC, so HTTP/2).
func accessLogClusterOf(socket string) (*clusterv3.Cluster, error) {
	opts, err := protocolOptions(accessLogCluster, explicitHTTP(true))
	if err != nil {
		return nil, err
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
		return nil, err
	}
	return c, nil
}

// markBind is an upstream_bind_config that binds no address (0.0.0.0:0)
// and sets SO_MARK to mark before connecting.
func markBind(mark uint32, why string) *corev3.BindConfig {
	return &corev3.BindConfig{
		SourceAddress: &corev3.SocketAddress{Address: "0.0.0.0", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 0}},
		SocketOptions: []*corev3.SocketOption{{
			Description: why,
			Level:       solSocket,
			Name:        soMark,
			Value:       &corev3.SocketOption_IntValue{IntValue: int64(mark)},
			State:       corev3.SocketOption_STATE_PREBIND,
		}},
	}
}
