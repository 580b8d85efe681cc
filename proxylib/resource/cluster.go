package resource

import (
	"crypto/tls"
	"strconv"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
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
	if c.GetType() != clusterv3.Cluster_EDS {
		return nil, fieldErr(path{"type"}, "%s not supported by nodemesh-proxy (only EDS)", c.GetType())
	}
	eds := c.GetEdsClusterConfig()
	if eds == nil {
		return nil, fieldErr(path{"eds_cluster_config"}, "required for an EDS cluster")
	}
	if err := adsSource(eds.GetEdsConfig(), path{"eds_cluster_config", "eds_config"}); err != nil {
		return nil, err
	}
	out := &Cluster{
		Name:           c.GetName(),
		ServiceName:    eds.GetServiceName(),
		ConnectTimeout: duration(c.GetConnectTimeout(), DefaultConnectTimeout),
		BufferLimit:    DefaultBufferLimit,
	}
	if out.ServiceName == "" {
		out.ServiceName = c.GetName()
	}
	if v := c.GetPerConnectionBufferLimitBytes(); v != nil {
		out.BufferLimit = v.GetValue()
	}
	switch c.GetLbPolicy() {
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
		ex := hpo.GetExplicitHttpConfig()
		if ex == nil {
			return nil, fieldErr(append(p, "(HttpProtocolOptions)"), "explicit_http_config is required")
		}
		out.HTTP2 = ex.GetHttp2ProtocolOptions() != nil
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
	out := &Endpoints{ClusterName: cla.GetClusterName()}
	for i, loc := range cla.GetEndpoints() {
		for j, lb := range loc.GetLbEndpoints() {
			p := path{"endpoints", "[" + strconv.Itoa(i) + "]", "lb_endpoints", "[" + strconv.Itoa(j) + "]"}
			ep := lb.GetEndpoint()
			if ep == nil {
				return nil, fieldErr(append(p, "endpoint"), "required")
			}
			addr, err := socketAddress(ep.GetAddress(), append(p, "endpoint", "address"))
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
	tc := s.GetTlsCertificate()
	if tc == nil {
		return nil, fieldErr(path{"tls_certificate"}, "required")
	}
	cert, err := tls.X509KeyPair(dataSource(tc.GetCertificateChain()), dataSource(tc.GetPrivateKey()))
	if err != nil {
		return nil, fieldErr(path{"tls_certificate"}, "parsing key pair: %v", err)
	}
	return &Secret{Name: s.GetName(), Certificate: &cert}, nil
}

func dataSource(d *corev3.DataSource) []byte {
	if s, ok := d.GetSpecifier().(*corev3.DataSource_InlineString); ok {
		return []byte(s.InlineString)
	}
	return d.GetInlineBytes()
}
