package resource

import (
	"crypto/tls"
	"crypto/x509"
	"net/netip"
	"strconv"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// DecodeCluster decodes and validates a Cluster resource.
func DecodeCluster(a *anypb.Any) (*Cluster, error) {
	var c clusterv3.Cluster
	if err := unpack(a, ClusterType, &c); err != nil {
		return nil, &ResourceError{Kind: "cluster", Err: err}
	}
	out, err := decodeCluster(&c)
	if err != nil {
		return nil, &ResourceError{Kind: "cluster", Name: c.GetName(), Err: err}
	}
	return out, nil
}

func decodeCluster(c *clusterv3.Cluster) (*Cluster, error) {
	if c.GetName() == "" {
		return nil, fieldErr(path{"name"}, "must not be empty")
	}
	if err := check(c); err != nil {
		return nil, err
	}
	out := &Cluster{
		Name:           c.GetName(),
		ConnectTimeout: duration(c.GetConnectTimeout(), DefaultConnectTimeout),
		BufferLimit:    DefaultBufferLimit,
		IdleTimeout:    DefaultIdleTimeout,
		Limits:         DefaultThresholds,
	}
	if v := c.GetPerConnectionBufferLimitBytes(); v != nil {
		out.BufferLimit = v.GetValue()
	}
	if od := c.GetOutlierDetection(); od != nil {
		o, err := decodeOutlier(od, path{"outlier_detection"})
		if err != nil {
			return nil, err
		}
		out.Outlier = o
	}
	if cb := c.GetCircuitBreakers(); cb != nil {
		t, err := decodeThresholds(cb, path{"circuit_breakers"})
		if err != nil {
			return nil, err
		}
		out.Limits = t
	}
	if ts := c.GetTransportSocket(); ts != nil {
		t, err := decodeUpstreamTLS(ts, path{"transport_socket"})
		if err != nil {
			return nil, err
		}
		out.TLS = t
	}
	switch c.GetType() {
	case clusterv3.Cluster_EDS:
		eds := c.GetEdsClusterConfig()
		if eds == nil {
			return nil, fieldErr(path{"eds_cluster_config"}, "required for an EDS cluster")
		}
		if err := adsSource(eds.GetEdsConfig(), path{"eds_cluster_config", "eds_config"}); err != nil {
			return nil, err
		}
		if c.GetLoadAssignment() != nil {
			return nil, fieldErr(path{"load_assignment"}, "not allowed for an EDS cluster")
		}
		out.Kind, out.ServiceName = ClusterEDS, eds.GetServiceName()
		if out.ServiceName == "" {
			out.ServiceName = c.GetName()
		}
	case clusterv3.Cluster_STATIC:
		if c.GetLoadAssignment() == nil {
			return nil, fieldErr(path{"load_assignment"}, "required for a STATIC cluster")
		}
		eps, err := decodeEndpointList(c.GetLoadAssignment(), path{"load_assignment"}, true)
		if err != nil {
			return nil, err
		}
		out.Kind, out.Static = ClusterStatic, eps
	case clusterv3.Cluster_ORIGINAL_DST:
		if c.GetLbPolicy() != clusterv3.Cluster_CLUSTER_PROVIDED {
			return nil, fieldErr(path{"lb_policy"}, "an ORIGINAL_DST cluster needs CLUSTER_PROVIDED")
		}
		if c.GetLoadAssignment() != nil {
			return nil, fieldErr(path{"load_assignment"}, "not allowed for an ORIGINAL_DST cluster")
		}
		out.Kind = ClusterOriginalDst
	default:
		return nil, fieldErr(path{"type"}, "%s not supported by nodemesh-proxy (only EDS, STATIC and ORIGINAL_DST)", c.GetType())
	}
	if c.GetEdsClusterConfig() != nil && out.Kind != ClusterEDS {
		return nil, fieldErr(path{"eds_cluster_config"}, "only allowed for an EDS cluster")
	}
	if b := c.GetUpstreamBindConfig(); b != nil {
		bind, err := decodeBind(b, path{"upstream_bind_config"})
		if err != nil {
			return nil, err
		}
		out.Bind = bind
	}
	switch c.GetLbPolicy() {
	case clusterv3.Cluster_CLUSTER_PROVIDED:
		if out.Kind != ClusterOriginalDst {
			return nil, fieldErr(path{"lb_policy"}, "CLUSTER_PROVIDED is only valid for an ORIGINAL_DST cluster")
		}
	case clusterv3.Cluster_ROUND_ROBIN:
		out.LB = RoundRobin
	case clusterv3.Cluster_LEAST_REQUEST:
		out.LB = LeastRequest
	case clusterv3.Cluster_RANDOM:
		out.LB = Random
	default:
		return nil, fieldErr(path{"lb_policy"}, "%s not supported by nodemesh-proxy", c.GetLbPolicy())
	}
	for key, opt := range c.GetTypedExtensionProtocolOptions() {
		p := path{"typed_extension_protocol_options", "[" + strconv.Quote(key) + "]"}
		if key != hpoName {
			return nil, fieldErr(p, "extension %q not supported by nodemesh-proxy", key)
		}
		var hpo httpv3.HttpProtocolOptions
		if err := opt.UnmarshalTo(&hpo); err != nil {
			return nil, fieldErr(p, "decoding: %v", err)
		}
		if cho := hpo.GetCommonHttpProtocolOptions(); cho != nil {
			out.IdleTimeout = duration(cho.GetIdleTimeout(), DefaultIdleTimeout)
			// The field is the connection manager's; a response head is
			// held to the default count (100 fields).
			if cho.GetMaxHeadersCount() != nil {
				return nil, fieldErr(append(p, "(HttpProtocolOptions)", "common_http_protocol_options", "max_headers_count"), "upstream header limits not supported by nodemesh-proxy")
			}
		}
		// Http2ProtocolOptions fields are honoured for the downstream
		// server only; upstream, the message just selects h2c.
		if o := hpo.GetUseDownstreamProtocolConfig().GetHttp2ProtocolOptions(); proto.Size(o) > 0 {
			return nil, fieldErr(append(p, "(HttpProtocolOptions)", "use_downstream_protocol_config", "http2_protocol_options"), "upstream HTTP/2 settings not supported by nodemesh-proxy")
		}
		if o := hpo.GetExplicitHttpConfig().GetHttp2ProtocolOptions(); proto.Size(o) > 0 {
			return nil, fieldErr(append(p, "(HttpProtocolOptions)", "explicit_http_config", "http2_protocol_options"), "upstream HTTP/2 settings not supported by nodemesh-proxy")
		}
		if hpo.GetUseDownstreamProtocolConfig() != nil {
			// Only an ORIGINAL_DST cluster keeps a pool per protocol.
			if out.Kind != ClusterOriginalDst {
				return nil, fieldErr(append(p, "(HttpProtocolOptions)", "use_downstream_protocol_config"), "only for ORIGINAL_DST clusters in nodemesh-proxy")
			}
			out.DownstreamProtocol = true
			continue
		}
		ex := hpo.GetExplicitHttpConfig()
		if ex == nil {
			return nil, fieldErr(append(p, "(HttpProtocolOptions)"), "explicit_http_config or use_downstream_protocol_config is required")
		}
		out.HTTP2 = ex.GetHttp2ProtocolOptions() != nil
	}
	return out, nil
}

// decodeThresholds reads the DEFAULT priority thresholds; the allowlist
// already refused the sub-fields the proxy does not implement
// (retry_budget, track_remaining, max_connection_pools,
// per_host_thresholds).
func decodeThresholds(cb *clusterv3.CircuitBreakers, base path) (Thresholds, error) {
	out := DefaultThresholds
	seen := false
	for i, t := range cb.GetThresholds() {
		p := append(base[:len(base):len(base)], "thresholds", "["+strconv.Itoa(i)+"]")
		if t.GetPriority() != corev3.RoutingPriority_DEFAULT {
			return out, fieldErr(append(p, "priority"), "%s not supported by nodemesh-proxy (routes have no priority; only DEFAULT)", t.GetPriority())
		}
		if seen {
			return out, fieldErr(append(p, "priority"), "DEFAULT given twice")
		}
		seen = true
		if v := t.GetMaxConnections(); v != nil {
			out.MaxConnections = v.GetValue()
		}
		if v := t.GetMaxPendingRequests(); v != nil {
			out.MaxPendingRequests = v.GetValue()
		}
		if v := t.GetMaxRequests(); v != nil {
			out.MaxRequests = v.GetValue()
		}
		if v := t.GetMaxRetries(); v != nil {
			out.MaxRetries = v.GetValue()
		}
	}
	return out, nil
}

// DecodeEndpoints decodes and validates a ClusterLoadAssignment.
func DecodeEndpoints(a *anypb.Any) (*Endpoints, error) {
	var cla endpointv3.ClusterLoadAssignment
	if err := unpack(a, EndpointType, &cla); err != nil {
		return nil, &ResourceError{Kind: "cluster load assignment", Err: err}
	}
	out, err := decodeEndpoints(&cla)
	if err != nil {
		return nil, &ResourceError{Kind: "cluster load assignment", Name: cla.GetClusterName(), Err: err}
	}
	return out, nil
}

func decodeEndpoints(cla *endpointv3.ClusterLoadAssignment) (*Endpoints, error) {
	if err := check(cla); err != nil {
		return nil, err
	}
	return decodeEndpointList(cla, nil, false)
}

// decodeEndpointList decodes the endpoints of an assignment; pipes (Unix
// sockets, "unix:<path>") are allowed for STATIC clusters only.
func decodeEndpointList(cla *endpointv3.ClusterLoadAssignment, base path, pipes bool) (*Endpoints, error) {
	out := &Endpoints{ClusterName: cla.GetClusterName()}
	for i, loc := range cla.GetEndpoints() {
		for j, lb := range loc.GetLbEndpoints() {
			p := append(base[:len(base):len(base)], "endpoints", "["+strconv.Itoa(i)+"]", "lb_endpoints", "["+strconv.Itoa(j)+"]")
			ep := lb.GetEndpoint()
			if ep == nil {
				return nil, fieldErr(append(p, "endpoint"), "required")
			}
			var addr string
			var err error
			if pipe := ep.GetAddress().GetPipe(); pipe != nil && pipes {
				if pipe.GetPath() == "" {
					return nil, fieldErr(append(p, "endpoint", "address", "pipe", "path"), "must not be empty")
				}
				addr = "unix:" + pipe.GetPath()
			} else {
				addr, err = socketAddress(ep.GetAddress(), append(p, "endpoint", "address"))
			}
			if err != nil {
				return nil, err
			}
			e := Endpoint{Address: addr, Weight: 1}
			if w := lb.GetLoadBalancingWeight(); w != nil {
				e.Weight = w.GetValue()
			}
			switch lb.GetHealthStatus() {
			case corev3.HealthStatus_UNKNOWN, corev3.HealthStatus_HEALTHY:
				e.Health = Healthy
			case corev3.HealthStatus_DEGRADED:
				e.Health = Degraded
			default:
				e.Health = Unhealthy
			}
			out.Endpoints = append(out.Endpoints, e)
		}
	}
	return out, nil
}

// DecodeSecret decodes a Secret and parses its key pair.
func DecodeSecret(a *anypb.Any) (*Secret, error) {
	var s tlsv3.Secret
	if err := unpack(a, SecretType, &s); err != nil {
		return nil, &ResourceError{Kind: "secret", Err: err}
	}
	out, err := decodeSecret(&s)
	if err != nil {
		return nil, &ResourceError{Kind: "secret", Name: s.GetName(), Err: err}
	}
	return out, nil
}

func decodeSecret(s *tlsv3.Secret) (*Secret, error) {
	if s.GetName() == "" {
		return nil, fieldErr(path{"name"}, "must not be empty")
	}
	if err := check(s); err != nil {
		return nil, err
	}
	if vc := s.GetValidationContext(); vc != nil {
		v, err := decodeValidation(vc, path{"validation_context"})
		if err != nil {
			return nil, err
		}
		return &Secret{Name: s.GetName(), Validation: v}, nil
	}
	tc := s.GetTlsCertificate()
	if tc == nil {
		return nil, fieldErr(path{"tls_certificate"}, "required (or validation_context)")
	}
	cert, err := tls.X509KeyPair(dataSource(tc.GetCertificateChain()), dataSource(tc.GetPrivateKey()))
	if err != nil {
		return nil, fieldErr(path{"tls_certificate"}, "parsing key pair: %v", err)
	}
	if cert.Leaf == nil && len(cert.Certificate) > 0 {
		cert.Leaf, _ = x509.ParseCertificate(cert.Certificate[0])
	}
	return &Secret{Name: s.GetName(), Certificate: &cert}, nil
}

func dataSource(d *corev3.DataSource) []byte {
	if s, ok := d.GetSpecifier().(*corev3.DataSource_InlineString); ok {
		return []byte(s.InlineString)
	}
	return d.GetInlineBytes()
}

// Socket option constants the proxy knows how to apply.
const (
	solSocket = 1  // SOL_SOCKET
	soMark    = 36 // SO_MARK
)

func decodeBind(b *corev3.BindConfig, p path) (*Bind, error) {
	out := &Bind{}
	if sa := b.GetSourceAddress(); sa != nil {
		if sa.GetProtocol() != corev3.SocketAddress_TCP {
			return nil, fieldErr(append(p, "source_address", "protocol"), "only TCP here")
		}
		ip, err := netip.ParseAddr(sa.GetAddress())
		if err != nil {
			return nil, fieldErr(append(p, "source_address", "address"), "%q is not an IP address", sa.GetAddress())
		}
		if !ip.IsUnspecified() || sa.GetPortValue() != 0 {
			out.Source = netip.AddrPortFrom(ip.Unmap(), uint16(sa.GetPortValue()))
		}
	}
	for i, o := range b.GetSocketOptions() {
		op := append(p, "socket_options", "["+strconv.Itoa(i)+"]")
		if o.GetState() != corev3.SocketOption_STATE_PREBIND {
			return nil, fieldErr(append(op, "state"), "%s not supported by nodemesh-proxy (upstream options are set before connect)", o.GetState())
		}
		so := SocketOption{Level: o.GetLevel(), Name: o.GetName(), Int: o.GetIntValue()}
		if _, ok := o.GetValue().(*corev3.SocketOption_BufValue); ok {
			so.Buf, so.IsBuf = o.GetBufValue(), true
		}
		if so.Level == solSocket && so.Name == soMark && (so.IsBuf || so.Int < 0 || so.Int > 0xFFFFFFFF) {
			return nil, fieldErr(append(op, "int_value"), "SO_MARK needs an int_value between 0 and 2^32-1")
		}
		out.Options = append(out.Options, so)
	}
	return out, nil
}

// Mark returns the SO_MARK the options set, or 0.
func (b *Bind) Mark() uint32 {
	if b == nil {
		return 0
	}
	var m uint32
	for _, o := range b.Options {
		if o.Level == solSocket && o.Name == soMark {
			m = uint32(o.Int)
		}
	}
	return m
}
