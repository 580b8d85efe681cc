package translator

import (
	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	alsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/grpc/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/nodemesh/nodemesh/mesh/ir"
)

// accessDenied is the body of a request L7 policy denies, as Cilium's
// proxy writes it.
const accessDenied = "Access denied\r\n"

// deniedStatusRuntimeKey names the (never set) runtime value Envoy's
// status comparison requires.
const deniedStatusRuntimeKey = "nodemesh.policy.denied_status"

// policyHCM is the connection manager of a policy HTTP listener. It
// forwards requests as unchanged as it can (no request id, no
// x-forwarded-for added, Host kept with its port so host rules see it as
// sent) but normalises paths so "/a/../b" cannot slip past a path rule.
// The RBAC filter's configuration arrives over ECDS: a filter configured
// through config_discovery is named after its ECDS resource, as Envoy
// requires. A denial is answered 403 "Access denied" (gRPC clients get
// status 7, PERMISSION_DENIED, from the local reply). The body mapper
// selects local replies with status 403: Envoy's response-flag filter
// does not accept RBAC's flag (its validation lists an older flag set),
// and in this connection manager only the RBAC filter (and a refused
// non-WebSocket upgrade) answers 403 locally.
func (b *builder) policyHCM(p *ir.Policy, l *ir.PolicyListener) (*anypb.Any, error) {
	name := policyListenerName(l)
	router, err := typedConfig("listener", name, &routerv3.Router{})
	if err != nil {
		return nil, err
	}
	hcm := &hcmv3.HttpConnectionManager{
		StatPrefix: statSafe(name),
		CodecType:  hcmv3.HttpConnectionManager_AUTO,
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
			RouteConfigName: name,
			ConfigSource:    adsConfigSource(),
		}},
		HttpFilters:       httpFilters(append(policyHTTPFilters(p, l), routerFilter(router))),
		UpgradeConfigs:    []*hcmv3.HttpConnectionManager_UpgradeConfig{{UpgradeType: upgradeWebSocket}},
		UseRemoteAddress:  wrapperspb.Bool(true),
		SkipXffAppend:     true,
		GenerateRequestId: wrapperspb.Bool(false),
		// The same HTTP/2 bounds as every connection manager.
		Http2ProtocolOptions: http2Options(),
		LocalReplyConfig: &hcmv3.LocalReplyConfig{Mappers: []*hcmv3.ResponseMapper{{
			Filter: &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_StatusCodeFilter{
				StatusCodeFilter: &accesslogv3.StatusCodeFilter{Comparison: &accesslogv3.ComparisonFilter{
					Op:    accesslogv3.ComparisonFilter_EQ,
					Value: &corev3.RuntimeUInt32{DefaultValue: 403, RuntimeKey: deniedStatusRuntimeKey},
				}},
			}},
			Body: &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: accessDenied}},
		}}},
	}
	setPathNormalization(hcm)
	limitHCM(hcm)
	if p.AccessLogSocket != "" {
		als, err := typedConfig("listener", name, &alsv3.HttpGrpcAccessLogConfig{CommonConfig: alsCommon(name)})
		if err != nil {
			return nil, err
		}
		hcm.AccessLog = []*accesslogv3.AccessLog{{Name: accessLoggerHTTP, ConfigType: &accesslogv3.AccessLog_TypedConfig{TypedConfig: als}}}
	}
	return typedConfig("listener", name, hcm)
}

// policyTCPProxy relays a Kafka policy listener's connections to their
// original destination after the Kafka filter judged each request.
func (b *builder) policyTCPProxy(p *ir.Policy, l *ir.PolicyListener) (*anypb.Any, error) {
	name := policyListenerName(l)
	tp := &tcpproxyv3.TcpProxy{
		StatPrefix:       statSafe(name),
		ClusterSpecifier: &tcpproxyv3.TcpProxy_Cluster{Cluster: originalDstCluster},
	}
	if p.AccessLogSocket != "" {
		als, err := typedConfig("listener", name, &alsv3.TcpGrpcAccessLogConfig{CommonConfig: alsCommon(name)})
		if err != nil {
			return nil, err
		}
		tp.AccessLog = []*accesslogv3.AccessLog{{Name: accessLoggerTCP, ConfigType: &accesslogv3.AccessLog_TypedConfig{TypedConfig: als}}}
	}
	return typedConfig("listener", name, tp)
}

func alsCommon(logName string) *alsv3.CommonGrpcAccessLogConfig {
	return &alsv3.CommonGrpcAccessLogConfig{
		LogName:             logName,
		TransportApiVersion: corev3.ApiVersion_V3,
		GrpcService: &corev3.GrpcService{TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{
			EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: accessLogCluster},
		}},
	}
}

// extensionConfig validates a filter configuration and wraps it as an
// ECDS resource.
func (b *builder) extensionConfig(name string, m interface {
	proto.Message
	validator
}) (*corev3.TypedExtensionConfig, error) {
	tc, err := typedConfig("extension config", name, m)
	if err != nil {
		return nil, err
	}
	ext := &corev3.TypedExtensionConfig{Name: name, TypedConfig: tc}
	if err := checked("extension config", name, ext); err != nil {
		return nil, err
	}
	return ext, nil
}

// policyHTTPFilters are a policy HTTP listener's filters before the
// router, configured over ECDS: the direction's RBAC rules and, when its
// rules carry header actions, its header match filter; on the egress
// listener also the local destinations' ingress RBAC rules
// (destinationRBAC) and their header match filter, as a second hop. A
// request passes only if every RBAC filter allows it; the header match
// filters never deny. httpFilters decides their order.
func policyHTTPFilters(p *ir.Policy, l *ir.PolicyListener) []httpFilter {
	out := []httpFilter{discoveredFilter(roleRBAC, hopListener, rbacExtensionName(l.Direction), rbacTypeURL)}
	if hasHeaderActions(p, l.Direction) {
		out = append(out, discoveredFilter(roleHeaderMatch, hopListener, headerMatchExtensionName(l.Direction), headerMatchTypeURL))
	}
	if l.Direction == ir.PolicyEgress && hasIngressHTTP(p) {
		out = append(out, discoveredFilter(roleRBAC, hopDestination, destinationRBACName, rbacTypeURL))
		if hasHeaderActions(p, ir.PolicyIngress) {
			out = append(out, discoveredFilter(roleHeaderMatch, hopDestination, headerMatchExtensionName(ir.PolicyIngress), headerMatchTypeURL))
		}
	}
	return out
}
