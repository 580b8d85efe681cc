package resource

import (
	"strconv"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	grpclogv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/grpc/v3"
)

func itoa(i int) string { return strconv.Itoa(i) }

// Access logger names.
const (
	httpGRPCLogger = "envoy.access_loggers.http_grpc"
	tcpGRPCLogger  = "envoy.access_loggers.tcp_grpc"
)

// decodeAccessLogs decodes a chain's access_log list; want is the kind the
// position allows (HTTP in the connection manager, TCP in tcp_proxy).
func decodeAccessLogs(logs []*accesslogv3.AccessLog, want AccessLogKind, p path) ([]*AccessLog, error) {
	var out []*AccessLog
	for i, l := range logs {
		lp := append(p, "access_log", "["+itoa(i)+"]")
		var common *grpclogv3.CommonGrpcAccessLogConfig
		kind := AccessLogHTTP
		switch l.GetTypedConfig().GetTypeUrl() {
		case "type.googleapis.com/" + httpALSName:
			var c grpclogv3.HttpGrpcAccessLogConfig
			if err := l.GetTypedConfig().UnmarshalTo(&c); err != nil {
				return nil, fieldErr(append(lp, "typed_config"), "decoding: %v", err)
			}
			common = c.GetCommonConfig()
		case "type.googleapis.com/" + tcpALSName:
			var c grpclogv3.TcpGrpcAccessLogConfig
			if err := l.GetTypedConfig().UnmarshalTo(&c); err != nil {
				return nil, fieldErr(append(lp, "typed_config"), "decoding: %v", err)
			}
			common, kind = c.GetCommonConfig(), AccessLogTCP
		default:
			return nil, fieldErr(append(lp, "typed_config"), "an http_grpc or tcp_grpc access logger is required")
		}
		if kind != want {
			return nil, fieldErr(append(lp, "typed_config"), "this position needs the %s access logger", map[AccessLogKind]string{AccessLogHTTP: httpGRPCLogger, AccessLogTCP: tcpGRPCLogger}[want])
		}
		cp := append(lp, "typed_config", "common_config")
		if common.GetLogName() == "" {
			return nil, fieldErr(append(cp, "log_name"), "must not be empty")
		}
		if common.GetTransportApiVersion() != corev3.ApiVersion_V3 {
			return nil, fieldErr(append(cp, "transport_api_version"), "must be V3")
		}
		cluster := common.GetGrpcService().GetEnvoyGrpc().GetClusterName()
		if cluster == "" {
			return nil, fieldErr(append(cp, "grpc_service", "envoy_grpc", "cluster_name"), "must not be empty")
		}
		a := &AccessLog{Kind: kind, LogName: common.GetLogName(), Cluster: cluster,
			FlushInterval: duration(common.GetBufferFlushInterval(), DefaultALSFlushInterval), BufferBytes: DefaultALSBufferBytes}
		if v := common.GetBufferSizeBytes(); v != nil {
			a.BufferBytes = v.GetValue()
		}
		if a.FlushInterval <= 0 {
			return nil, fieldErr(append(cp, "buffer_flush_interval"), "must be positive")
		}
		out = append(out, a)
	}
	return out, nil
}
