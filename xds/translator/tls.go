package translator

import (
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tlsinspectorv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"

	"github.com/nodemesh/nodemesh/mesh/ir"
)

// downstreamTLS terminates TLS on a filter chain. Certificates are not
// inlined: the context names SDS secrets delivered over the same ADS
// stream, so a certificate rotation updates one Secret and never drains the
// listener.
//
// It returns the IR names of the secrets the context uses.
func (b *builder) downstreamTLS(obj, field, listener string, t *ir.TLS) (*corev3.TransportSocket, []string, error) {
	ctx := &tlsv3.CommonTlsContext{}
	seen := make(map[string]bool, len(t.Certificates))
	var refs []string
	for _, cert := range t.Certificates {
		if seen[cert] {
			continue
		}
		seen[cert] = true
		refs = append(refs, cert)
		ctx.TlsCertificateSdsSecretConfigs = append(ctx.TlsCertificateSdsSecretConfigs, &tlsv3.SdsSecretConfig{
			Name:      secretName(cert),
			SdsConfig: adsConfigSource(),
		})
	}
	for i, p := range t.ALPN {
		if p == "" || len(p) > maxALPNBytes || !protoText(p) {
			b.warn(obj, fieldf("%s.alpn[%d]", field, i), "not a valid ALPN protocol name; ignored")
			continue
		}
		ctx.AlpnProtocols = append(ctx.AlpnProtocols, p)
	}
	tc, err := typedConfig("listener", listener, &tlsv3.DownstreamTlsContext{CommonTlsContext: ctx})
	if err != nil {
		return nil, nil, err
	}
	return &corev3.TransportSocket{
		Name:       transportSocketTLS,
		ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: tc},
	}, refs, nil
}

// tlsInspector reads the ClientHello so filter chains can match on SNI.
func tlsInspector(listener string) (*listenerv3.ListenerFilter, error) {
	tc, err := typedConfig("listener", listener, &tlsinspectorv3.TlsInspector{})
	if err != nil {
		return nil, err
	}
	return &listenerv3.ListenerFilter{
		Name:       filterTLSInspector,
		ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: tc},
	}, nil
}
