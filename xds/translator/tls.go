package translator

import (
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tlsinspectorv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

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
	dt := &tlsv3.DownstreamTlsContext{CommonTlsContext: ctx}
	if t.ClientCA != nil {
		// Client certificates: asked for and verified against the CAs;
		// required unless unverified clients are let in, which
		// ACCEPT_UNTRUSTED expresses (a failed verification does not
		// fail the handshake).
		vc := &tlsv3.CertificateValidationContext{
			TrustedCa: &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: t.ClientCA}},
		}
		if t.AllowUnverifiedClients {
			vc.TrustChainVerification = tlsv3.CertificateValidationContext_ACCEPT_UNTRUSTED
		} else {
			dt.RequireClientCertificate = wrapperspb.Bool(true)
		}
		ctx.ValidationContextType = &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: vc}
	}
	tc, err := typedConfig("listener", listener, dt)
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

// upstreamTLS originates TLS on a cluster's connections and verifies the
// endpoint: the trusted CAs are inlined (they change with the policy that
// names them, which changes the cluster anyway), and the names come as
// match_typed_subject_alt_names, any one of which must match. Without
// subject alt names the SNI must be a DNS SAN of the certificate, as the
// Gateway API asks of BackendTLSPolicy's hostname; the explicit matcher
// (rather than auto_sni_san_validation) says so to stock Envoy too.
func upstreamTLS(name string, t *ir.UpstreamTLS) (*corev3.TransportSocket, error) {
	vc := &tlsv3.CertificateValidationContext{
		TrustedCa: &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: t.TrustedCA}},
	}
	sans := t.SubjectAltNames
	if len(sans) == 0 {
		sans = []ir.SubjectAltName{{Type: ir.SANDNS, Value: t.SNI}}
	}
	for _, san := range sans {
		typ := tlsv3.SubjectAltNameMatcher_DNS
		if san.Type == ir.SANURI {
			typ = tlsv3.SubjectAltNameMatcher_URI
		}
		vc.MatchTypedSubjectAltNames = append(vc.MatchTypedSubjectAltNames, &tlsv3.SubjectAltNameMatcher{
			SanType: typ,
			Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: san.Value}},
		})
	}
	ctx := &tlsv3.CommonTlsContext{ValidationContextType: &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: vc}}
	if t.ClientCertificate != "" {
		ctx.TlsCertificateSdsSecretConfigs = []*tlsv3.SdsSecretConfig{{Name: secretName(t.ClientCertificate), SdsConfig: adsConfigSource()}}
	}
	tc, err := typedConfig("cluster", name, &tlsv3.UpstreamTlsContext{CommonTlsContext: ctx, Sni: t.SNI})
	if err != nil {
		return nil, err
	}
	return &corev3.TransportSocket{
		Name:       transportSocketTLS,
		ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: tc},
	}, nil
}
