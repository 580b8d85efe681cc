package resource

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/anypb"

	// Register every message type an allowed Any may hold.
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"

	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/grpc/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/original_dst/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/original_src/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/udp/udp_proxy/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/retry/host/previous_hosts/v3"

	_ "github.com/nodemesh/nodemesh/proxylib/api/datapath/v1"
	_ "github.com/nodemesh/nodemesh/proxylib/api/headermatch/v1"
	_ "github.com/nodemesh/nodemesh/proxylib/api/kafka/v1"
)

// Message full names used in the allowlist.
const (
	hcmName    = "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
	routerName = "envoy.extensions.filters.http.router.v3.Router"
	tlsInspect = "envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector"
	dtlsName   = "envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext"
	utlsName   = "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"
	hpoName    = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"

	origDstName  = "envoy.extensions.filters.listener.original_dst.v3.OriginalDst"
	origSrcName  = "envoy.extensions.filters.listener.original_src.v3.OriginalSrc"
	tcpProxyName = "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"
	rbacName     = "envoy.extensions.filters.http.rbac.v3.RBAC"
	netRBACName  = "envoy.extensions.filters.network.rbac.v3.RBAC"
	kafkaName    = "nodemesh.filters.network.kafka.v1.KafkaPolicy"
	hmName       = "nodemesh.filters.http.header_match.v1.HeaderMatchPolicy"
	dpIDName     = "nodemesh.filters.listener.datapath_identity.v1.DatapathIdentity"
	httpALSName  = "envoy.extensions.access_loggers.grpc.v3.HttpGrpcAccessLogConfig"
	tcpALSName   = "envoy.extensions.access_loggers.grpc.v3.TcpGrpcAccessLogConfig"

	previousHostsName = "envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate"

	corsName       = "envoy.extensions.filters.http.cors.v3.Cors"
	corsPolicyName = "envoy.extensions.filters.http.cors.v3.CorsPolicy"

	udpProxyName = "envoy.extensions.filters.udp.udp_proxy.v3.UdpProxyConfig"
	udpRouteName = "envoy.extensions.filters.udp.udp_proxy.v3.Route"
)

// allowed lists, per message, the fields the proxy implements. Every
// populated field of a received resource must appear here; anything else is
// NACKed with its path. Keep proxylib/doc.go in sync (a test renders this
// table into it).
var allowed = map[protoreflect.FullName][]protoreflect.Name{
	"envoy.config.listener.v3.Listener": {"name", "address", "listener_filters", "filter_chains", "per_connection_buffer_limit_bytes", "transparent",
		"listener_filters_timeout", "continue_on_listener_filters_timeout", "udp_listener_config"},
	"envoy.config.listener.v3.UdpListenerConfig": {"downstream_socket_config"},
	"envoy.config.core.v3.UdpSocketConfig":       {"max_rx_datagram_size"},
	udpProxyName:                                 {"stat_prefix", "cluster", "matcher", "idle_timeout", "upstream_socket_config"},
	"xds.type.matcher.v3.Matcher":                {"on_no_match"},
	"xds.type.matcher.v3.Matcher.OnMatch":        {"action"},
	"xds.core.v3.TypedExtensionConfig":           {"name", "typed_config"},
	udpRouteName:                                 {"cluster"},
	"envoy.config.core.v3.Address":               {"socket_address", "pipe"},
	"envoy.config.core.v3.Pipe":                  {"path"},
	origDstName:                                  {},
	origSrcName:                                  {"bind_port", "mark"},
	dpIDName:                                     {"conntrack_map"},
	"envoy.config.core.v3.SocketAddress":         {"protocol", "address", "port_value", "ipv4_compat"},
	"envoy.config.listener.v3.ListenerFilter":    {"name", "typed_config"},
	tlsInspect:                                   {"initial_read_buffer_size", "close_connection_on_client_hello_parsing_errors", "max_client_hello_size"},
	"envoy.config.listener.v3.FilterChain":       {"name", "filter_chain_match", "transport_socket", "filters"},
	"envoy.config.listener.v3.FilterChainMatch":  {"destination_port", "server_names", "source_prefix_ranges", "transport_protocol"},
	"envoy.config.core.v3.TransportSocket":       {"name", "typed_config"},
	dtlsName:                                     {"common_tls_context", "require_client_certificate"},
	utlsName:                                     {"common_tls_context", "sni", "auto_sni_san_validation"},
	"envoy.extensions.transport_sockets.tls.v3.CommonTlsContext": {"tls_certificate_sds_secret_configs", "alpn_protocols",
		"validation_context", "validation_context_sds_secret_config", "combined_validation_context"},
	"envoy.extensions.transport_sockets.tls.v3.CommonTlsContext.CombinedCertificateValidationContext": {"default_validation_context",
		"validation_context_sds_secret_config"},
	"envoy.extensions.transport_sockets.tls.v3.CertificateValidationContext": {"trusted_ca", "match_typed_subject_alt_names",
		"trust_chain_verification"},
	"envoy.extensions.transport_sockets.tls.v3.SubjectAltNameMatcher": {"san_type", "matcher"},
	"envoy.extensions.transport_sockets.tls.v3.SdsSecretConfig":       {"name", "sds_config"},
	"envoy.config.core.v3.ConfigSource":                               {"ads", "resource_api_version"},
	"envoy.config.core.v3.AggregatedConfigSource":                     {},
	"envoy.config.listener.v3.Filter":                                 {"name", "typed_config", "config_discovery"},
	"envoy.config.core.v3.ExtensionConfigSource":                      {"config_source", "type_urls"},
	tcpProxyName: {"stat_prefix", "cluster", "weighted_clusters", "access_log", "idle_timeout", "max_connect_attempts"},
	"envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy.WeightedCluster":               {"clusters"},
	"envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy.WeightedCluster.ClusterWeight": {"name", "weight"},
	hcmName: {"stat_prefix", "codec_type", "rds", "http_filters", "use_remote_address", "xff_num_trusted_hops",
		"skip_xff_append", "strip_any_host_port", "normalize_path", "merge_slashes",
		"path_with_escaped_slashes_action", "server_name",
		"common_http_protocol_options", "stream_idle_timeout", "request_timeout", "request_headers_timeout",
		"max_request_headers_kb", "generate_request_id", "preserve_external_request_id", "upgrade_configs",
		"local_reply_config", "access_log", "http2_protocol_options", "forward_client_cert_details",
		"set_current_client_cert_details"},
	"envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.SetCurrentClientCertDetails": {"subject",
		"cert", "chain", "dns", "uri"},
	"envoy.extensions.filters.network.http_connection_manager.v3.LocalReplyConfig": {"mappers"},
	"envoy.extensions.filters.network.http_connection_manager.v3.ResponseMapper":   {"filter", "status_code", "body"},
	"envoy.config.accesslog.v3.AccessLogFilter":                                    {"response_flag_filter", "status_code_filter"},
	"envoy.config.accesslog.v3.StatusCodeFilter":                                   {"comparison"},
	"envoy.config.accesslog.v3.ComparisonFilter":                                   {"op", "value"},
	"envoy.config.core.v3.RuntimeUInt32":                                           {"default_value", "runtime_key"},
	"envoy.config.accesslog.v3.ResponseFlagFilter":                                 {"flags"},
	"envoy.config.accesslog.v3.AccessLog":                                          {"name", "typed_config"},
	httpALSName:                                                                    {"common_config"},
	tcpALSName:                                                                     {"common_config"},
	"envoy.extensions.access_loggers.grpc.v3.CommonGrpcAccessLogConfig": {"log_name", "grpc_service", "transport_api_version",
		"buffer_flush_interval", "buffer_size_bytes"},
	"envoy.config.core.v3.GrpcService":                                                                {"envoy_grpc"},
	"envoy.config.core.v3.GrpcService.EnvoyGrpc":                                                      {"cluster_name"},
	"envoy.extensions.filters.network.http_connection_manager.v3.Rds":                                 {"route_config_name", "config_source"},
	"envoy.extensions.filters.network.http_connection_manager.v3.HttpFilter":                          {"name", "typed_config", "config_discovery"},
	"envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.UpgradeConfig": {"upgrade_type", "enabled"},
	routerName: {},
	"envoy.config.core.v3.HttpProtocolOptions": {"idle_timeout", "max_headers_count"},

	"envoy.config.route.v3.RouteConfiguration": {"name", "virtual_hosts", "ignore_port_in_host_matching"},
	"envoy.config.route.v3.VirtualHost":        {"name", "domains", "routes", "typed_per_filter_config"},
	"envoy.config.route.v3.Route": {"name", "match", "route", "redirect", "direct_response",
		"request_headers_to_add", "request_headers_to_remove", "response_headers_to_add", "response_headers_to_remove",
		"typed_per_filter_config"},
	corsName: {},
	corsPolicyName: {"allow_origin_string_match", "allow_methods", "allow_headers", "expose_headers", "max_age",
		"allow_credentials", "allow_private_network_access", "forward_not_matching_preflights"},
	"envoy.config.route.v3.RouteMatch":             {"prefix", "path", "safe_regex", "path_separated_prefix", "headers", "query_parameters"},
	"envoy.type.matcher.v3.RegexMatcher":           {"regex", "google_re2"},
	"envoy.type.matcher.v3.RegexMatcher.GoogleRE2": {},
	"envoy.config.route.v3.HeaderMatcher":          {"name", "string_match", "present_match", "invert_match"},
	"envoy.config.route.v3.QueryParameterMatcher":  {"name", "string_match", "present_match"},
	"envoy.type.matcher.v3.StringMatcher":          {"exact", "prefix", "suffix", "contains", "safe_regex", "ignore_case"},
	"envoy.type.matcher.v3.PathMatcher":            {"path"},
	"envoy.config.route.v3.RouteAction": {"cluster", "weighted_clusters", "cluster_not_found_response_code",
		"prefix_rewrite", "regex_rewrite", "host_rewrite_literal", "timeout", "retry_policy", "request_mirror_policies"},
	"envoy.config.route.v3.RetryPolicy": {"retry_on", "num_retries", "per_try_timeout", "retry_host_predicate",
		"host_selection_retry_max_attempts", "retriable_status_codes", "retry_back_off"},
	"envoy.config.route.v3.RetryPolicy.RetryBackOff":       {"base_interval", "max_interval"},
	"envoy.config.route.v3.RetryPolicy.RetryHostPredicate": {"name", "typed_config"},
	previousHostsName: {},
	"envoy.config.route.v3.RouteAction.RequestMirrorPolicy": {"cluster", "runtime_fraction",
		"disable_shadow_host_suffix_append", "host_rewrite_literal"},
	"envoy.config.core.v3.RuntimeFractionalPercent": {"default_value", "runtime_key"},
	"envoy.type.v3.FractionalPercent":               {"numerator", "denominator"},
	"envoy.config.route.v3.WeightedCluster":         {"clusters"},
	"envoy.config.route.v3.WeightedCluster.ClusterWeight": {"name", "weight", "request_headers_to_add",
		"request_headers_to_remove", "response_headers_to_add", "response_headers_to_remove"},
	"envoy.type.matcher.v3.RegexMatchAndSubstitute": {"pattern", "substitution"},
	"envoy.config.route.v3.RedirectAction": {"scheme_redirect", "host_redirect", "port_redirect", "path_redirect",
		"prefix_rewrite", "regex_rewrite", "response_code", "strip_query"},
	"envoy.config.route.v3.DirectResponseAction": {"status", "body"},
	"envoy.config.core.v3.DataSource":            {"inline_bytes", "inline_string"},
	"envoy.config.core.v3.HeaderValueOption":     {"header", "append_action"},
	"envoy.config.core.v3.HeaderValue":           {"key", "value"},

	"envoy.config.cluster.v3.Cluster": {"name", "type", "eds_cluster_config", "connect_timeout", "lb_policy",
		"typed_extension_protocol_options", "per_connection_buffer_limit_bytes", "load_assignment", "upstream_bind_config",
		"circuit_breakers", "transport_socket", "outlier_detection"},
	"envoy.config.cluster.v3.OutlierDetection": {"consecutive_5xx", "interval", "base_ejection_time", "max_ejection_percent",
		"enforcing_consecutive_5xx", "enforcing_success_rate", "success_rate_minimum_hosts", "success_rate_request_volume",
		"success_rate_stdev_factor", "split_external_local_origin_errors", "consecutive_local_origin_failure",
		"enforcing_consecutive_local_origin_failure", "enforcing_local_origin_success_rate", "max_ejection_time"},
	"envoy.config.cluster.v3.CircuitBreakers": {"thresholds"},
	"envoy.config.cluster.v3.CircuitBreakers.Thresholds": {"priority", "max_connections", "max_pending_requests",
		"max_requests", "max_retries"},
	"envoy.config.core.v3.BindConfig":                  {"source_address", "socket_options"},
	"envoy.config.core.v3.SocketOption":                {"description", "level", "name", "int_value", "buf_value", "state"},
	"envoy.config.cluster.v3.Cluster.EdsClusterConfig": {"eds_config", "service_name"},
	hpoName: {"explicit_http_config", "use_downstream_protocol_config", "common_http_protocol_options"},
	"envoy.extensions.upstreams.http.v3.HttpProtocolOptions.UseDownstreamHttpConfig": {"http_protocol_options", "http2_protocol_options"},
	"envoy.extensions.upstreams.http.v3.HttpProtocolOptions.ExplicitHttpConfig":      {"http_protocol_options", "http2_protocol_options"},
	"envoy.config.core.v3.Http1ProtocolOptions":                                      {},
	"envoy.config.core.v3.Http2ProtocolOptions": {"max_concurrent_streams", "initial_stream_window_size",
		"initial_connection_window_size", "override_stream_error_on_invalid_http_message"},

	"envoy.config.endpoint.v3.ClusterLoadAssignment": {"cluster_name", "endpoints"},
	"envoy.config.endpoint.v3.LocalityLbEndpoints":   {"lb_endpoints"},
	"envoy.config.endpoint.v3.LbEndpoint":            {"endpoint", "health_status", "load_balancing_weight"},
	"envoy.config.endpoint.v3.Endpoint":              {"address"},

	"envoy.extensions.transport_sockets.tls.v3.Secret":         {"name", "tls_certificate", "validation_context"},
	"envoy.extensions.transport_sockets.tls.v3.TlsCertificate": {"certificate_chain", "private_key"},

	"envoy.config.core.v3.TypedExtensionConfig": {"name", "typed_config"},
	rbacName:                      {"rules"},
	netRBACName:                   {"stat_prefix", "rules", "enforcement_type"},
	"envoy.config.rbac.v3.RBAC":   {"action", "policies"},
	"envoy.config.rbac.v3.Policy": {"permissions", "principals"},
	"envoy.config.rbac.v3.Permission": {"and_rules", "or_rules", "any", "header", "url_path", "destination_ip",
		"destination_port", "destination_port_range", "not_rule", "requested_server_name"},
	"envoy.config.rbac.v3.Permission.Set": {"rules"},
	"envoy.config.rbac.v3.Principal": {"and_ids", "or_ids", "any", "authenticated", "source_ip", "direct_remote_ip", "remote_ip", "not_id",
		"filter_state"},
	"envoy.type.matcher.v3.FilterStateMatcher":           {"key", "string_match"},
	"envoy.config.rbac.v3.Principal.Set":                 {"ids"},
	"envoy.config.rbac.v3.Principal.Authenticated":       {"principal_name"},
	"envoy.config.core.v3.CidrRange":                     {"address_prefix", "prefix_len"},
	"envoy.type.v3.Int32Range":                           {"start", "end"},
	kafkaName:                                            {"destinations", "max_request_bytes"},
	"nodemesh.filters.network.kafka.v1.KafkaDestination": {"name", "addresses", "port", "end_port", "rules"},
	"nodemesh.filters.network.kafka.v1.KafkaRule":        {"name", "principals", "role", "api_keys", "api_version", "client_id", "topic"},
	hmName: {"rules"},
	"nodemesh.filters.http.header_match.v1.HeaderMatchRule": {"name", "destinations", "destination_port", "sources",
		"method", "path", "authority", "headers", "header_matches"},
	"nodemesh.filters.http.header_match.v1.AddressTerm":       {"prefix", "except"},
	"nodemesh.filters.http.header_match.v1.HeaderRequirement": {"name", "value", "present"},
	"nodemesh.filters.http.header_match.v1.HeaderMatch":       {"name", "value", "mismatch_action", "redact"},
}

// allowedAny lists, per Any-typed field, the message types it may hold.
var allowedAny = map[protoreflect.FullName][]protoreflect.FullName{
	"envoy.config.listener.v3.ListenerFilter.typed_config":                                {tlsInspect, origDstName, origSrcName, udpProxyName, dpIDName},
	"xds.core.v3.TypedExtensionConfig.typed_config":                                       {udpRouteName},
	"envoy.config.core.v3.TransportSocket.typed_config":                                   {dtlsName, utlsName},
	"envoy.config.listener.v3.Filter.typed_config":                                        {hcmName, tcpProxyName, netRBACName},
	"envoy.extensions.filters.network.http_connection_manager.v3.HttpFilter.typed_config": {routerName, rbacName, corsName},
	"envoy.config.route.v3.Route.typed_per_filter_config":                                 {corsPolicyName},
	"envoy.config.route.v3.VirtualHost.typed_per_filter_config":                           {corsPolicyName},
	"envoy.config.accesslog.v3.AccessLog.typed_config":                                    {httpALSName, tcpALSName},
	"envoy.config.core.v3.TypedExtensionConfig.typed_config":                              {rbacName, kafkaName, hmName},
	"envoy.config.cluster.v3.Cluster.typed_extension_protocol_options":                    {hpoName},
	"envoy.config.route.v3.RetryPolicy.RetryHostPredicate.typed_config":                   {previousHostsName},
}

// leaf messages are checked as values, not walked: well-known wrappers.
var leaf = map[protoreflect.FullName]bool{
	"google.protobuf.Duration":    true,
	"google.protobuf.UInt32Value": true,
	"google.protobuf.UInt64Value": true,
	"google.protobuf.BoolValue":   true,
}

var allowedSet = func() map[protoreflect.FullName]map[protoreflect.Name]bool {
	m := make(map[protoreflect.FullName]map[protoreflect.Name]bool, len(allowed))
	for msg, fields := range allowed {
		s := make(map[protoreflect.Name]bool, len(fields))
		for _, f := range fields {
			s[f] = true
		}
		m[msg] = s
	}
	return m
}()

// Allowlist renders the supported field set, one message per line, sorted:
// "`full.Name`: field, field". proxylib/doc.go embeds exactly this text.
func Allowlist() []string {
	out := make([]string, 0, len(allowed))
	for msg, fields := range allowed {
		names := make([]string, len(fields))
		for i, f := range fields {
			names[i] = string(f)
		}
		line := "`" + string(msg) + "`"
		if len(names) > 0 {
			line += ": " + strings.Join(names, ", ")
		} else {
			line += ": (no fields)"
		}
		if anys := anyLine(msg); anys != "" {
			line += "; " + anys
		}
		out = append(out, line)
	}
	sort.Strings(out)
	return out
}

func anyLine(msg protoreflect.FullName) string {
	var parts []string
	for field, types := range allowedAny {
		if field.Parent() != msg {
			continue
		}
		ts := make([]string, len(types))
		for i, t := range types {
			ts[i] = string(t)
		}
		parts = append(parts, string(field.Name())+" holds "+strings.Join(ts, " | "))
	}
	sort.Strings(parts)
	return strings.Join(parts, "; ")
}

// path is the field path of the value being checked, rendered only on error.
type path []string

func (p path) String() string {
	var b strings.Builder
	for i, s := range p {
		if i > 0 && s[0] != '[' && s[0] != '(' {
			b.WriteByte('.')
		}
		b.WriteString(s)
	}
	return b.String()
}

// FieldError is a NACK reason: the field path inside the resource and why.
type FieldError struct {
	Path   string
	Reason string
}

func (e *FieldError) Error() string {
	if e.Path == "" {
		return e.Reason
	}
	return e.Path + ": " + e.Reason
}

func fieldErr(p path, format string, args ...any) error {
	return &FieldError{Path: p.String(), Reason: fmt.Sprintf(format, args...)}
}

// checkAllowed walks every populated field of m and fails on the first one
// outside the allowlist, on unknown fields, and on Any payloads of types not
// allowed at that position.
func checkAllowed(m protoreflect.Message, p path) error {
	desc := m.Descriptor()
	if leaf[desc.FullName()] {
		return nil
	}
	fields, ok := allowedSet[desc.FullName()]
	if !ok {
		return fieldErr(p, "message %s not supported by nodemesh-proxy", desc.FullName())
	}
	if len(m.GetUnknown()) > 0 {
		return fieldErr(p, "unknown field in %s not supported by nodemesh-proxy", desc.Name())
	}
	var err error
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		fp := append(p, string(fd.Name()))
		if !fields[fd.Name()] {
			err = fieldErr(fp, "field not supported by nodemesh-proxy")
			return false
		}
		err = checkValue(fd, v, fp)
		return err == nil
	})
	return err
}

func checkValue(fd protoreflect.FieldDescriptor, v protoreflect.Value, p path) error {
	switch {
	case fd.IsList():
		if fd.Message() == nil {
			return nil
		}
		l := v.List()
		for i := 0; i < l.Len(); i++ {
			if err := checkMessage(fd, l.Get(i).Message(), append(p, "["+strconv.Itoa(i)+"]")); err != nil {
				return err
			}
		}
	case fd.IsMap():
		if fd.MapValue().Message() == nil {
			return nil
		}
		var err error
		v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
			err = checkMessage(fd, mv.Message(), append(p, "["+strconv.Quote(k.String())+"]"))
			return err == nil
		})
		return err
	case fd.Message() != nil:
		return checkMessage(fd, v.Message(), p)
	}
	return nil
}

func checkMessage(fd protoreflect.FieldDescriptor, m protoreflect.Message, p path) error {
	if m.Descriptor().FullName() != "google.protobuf.Any" {
		return checkAllowed(m, p)
	}
	a, ok := m.Interface().(*anypb.Any)
	if !ok {
		return fieldErr(p, "malformed Any")
	}
	inner, err := unpackAllowed(fd.FullName(), a, p)
	if err != nil {
		return err
	}
	return checkAllowed(inner.ProtoReflect(), append(p[:len(p):len(p)], "("+string(inner.ProtoReflect().Descriptor().Name())+")"))
}

// unpackAllowed unmarshals an Any held by field, failing when its type is
// not one the proxy supports there.
func unpackAllowed(field protoreflect.FullName, a *anypb.Any, p path) (proto.Message, error) {
	name := a.MessageName()
	ok := false
	for _, t := range allowedAny[field] {
		if t == name {
			ok = true
		}
	}
	if !ok {
		return nil, fieldErr(p, "type %q not supported by nodemesh-proxy", a.GetTypeUrl())
	}
	mt, err := protoregistry.GlobalTypes.FindMessageByName(name)
	if err != nil {
		return nil, fieldErr(p, "resolving type %q: %v", a.GetTypeUrl(), err)
	}
	msg := mt.New().Interface()
	if err := proto.Unmarshal(a.GetValue(), msg); err != nil {
		return nil, fieldErr(p, "decoding %s: %v", name, err)
	}
	return msg, nil
}
