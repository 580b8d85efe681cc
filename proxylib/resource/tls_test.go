package resource

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// testCAPEM is a self-signed CA certificate in PEM.
func testCAPEM(t testing.TB) []byte {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ca"}, IsCA: true, BasicConstraintsValid: true,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func inline(b []byte) *corev3.DataSource {
	return &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: b}}
}

func sdsConfig(name string) *tlsv3.SdsSecretConfig {
	return &tlsv3.SdsSecretConfig{Name: name, SdsConfig: ads()}
}

func tlsCluster(t testing.TB, ts proto.Message) *clusterv3.Cluster {
	c := &clusterv3.Cluster{Name: "c", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig: &clusterv3.Cluster_EdsClusterConfig{EdsConfig: ads()}, ConnectTimeout: durationpb.New(time.Second)}
	if ts != nil {
		c.TransportSocket = &corev3.TransportSocket{Name: "envoy.transport_sockets.tls",
			ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(t, ts)}}
	}
	return c
}

func TestDecodeUpstreamTLS(t *testing.T) {
	ca := testCAPEM(t)
	c, err := DecodeCluster(mustAny(t, tlsCluster(t, &tlsv3.UpstreamTlsContext{Sni: "backend.example", AutoSniSanValidation: true,
		CommonTlsContext: &tlsv3.CommonTlsContext{
			TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{sdsConfig("client")},
			AlpnProtocols:                  []string{"h2"},
			ValidationContextType: &tlsv3.CommonTlsContext_CombinedValidationContext{CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
				DefaultValidationContext: &tlsv3.CertificateValidationContext{MatchTypedSubjectAltNames: []*tlsv3.SubjectAltNameMatcher{{
					SanType: tlsv3.SubjectAltNameMatcher_DNS, Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "backend.example"}}}}},
				ValidationContextSdsSecretConfig: sdsConfig("ca"),
			}},
		}})))
	if err != nil {
		t.Fatal(err)
	}
	u := c.TLS
	if u == nil || u.SNI != "backend.example" || !u.AutoSNISAN || u.CertSecret != "client" || len(u.ALPN) != 1 || u.Validation.Secret != "ca" ||
		len(u.Validation.Inline.SANs) != 1 || u.Validation.Inline.SANs[0].Exact != "backend.example" || len(u.Key) != 32 {
		t.Fatalf("decoded %+v", u)
	}
	if got := strings.Join(u.Secrets(), ","); got != "client,ca" {
		t.Fatalf("secrets %q", got)
	}
	// The Secret's context merges over the inline one.
	s, err := DecodeSecret(mustAny(t, &tlsv3.Secret{Name: "ca", Type: &tlsv3.Secret_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
		TrustedCa: inline(ca), TrustChainVerification: tlsv3.CertificateValidationContext_ACCEPT_UNTRUSTED}}}))
	if err != nil {
		t.Fatal(err)
	}
	v := u.Validation.Resolve(s.Validation)
	if v.Roots == nil || len(v.SANs) != 1 || !v.AcceptUntrusted {
		t.Fatalf("merged %+v", v)
	}
	if u.Validation.Resolve(nil) != nil {
		t.Fatal("a missing Secret resolved to a context")
	}
}

func TestTLSNACKs(t *testing.T) {
	ca := testCAPEM(t)
	vc := func(v *tlsv3.CertificateValidationContext) *tlsv3.CommonTlsContext {
		return &tlsv3.CommonTlsContext{ValidationContextType: &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: v}}
	}
	dns := &tlsv3.SubjectAltNameMatcher{SanType: tlsv3.SubjectAltNameMatcher_DNS, Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "a"}}}
	for _, tc := range []struct {
		name string
		any  *anypb.Any
		want string
	}{
		{"SAN matchers without a CA", mustAny(t, tlsCluster(t, &tlsv3.UpstreamTlsContext{CommonTlsContext: vc(&tlsv3.CertificateValidationContext{
			MatchTypedSubjectAltNames: []*tlsv3.SubjectAltNameMatcher{dns}})})),
			`cluster "c": transport_socket.typed_config(UpstreamTlsContext).common_tls_context.validation_context.match_typed_subject_alt_names: SAN-based verification`},
		{"CA from a file", mustAny(t, tlsCluster(t, &tlsv3.UpstreamTlsContext{CommonTlsContext: vc(&tlsv3.CertificateValidationContext{
			TrustedCa: &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: "/etc/ssl/ca.pem"}}})})),
			`cluster "c": transport_socket.typed_config(UpstreamTlsContext).common_tls_context.validation_context.trusted_ca.filename: field not supported`},
		{"CA not PEM", mustAny(t, tlsCluster(t, &tlsv3.UpstreamTlsContext{CommonTlsContext: vc(&tlsv3.CertificateValidationContext{
			TrustedCa: inline([]byte("not a certificate"))})})),
			`cluster "c": transport_socket.typed_config(UpstreamTlsContext).common_tls_context.validation_context.trusted_ca: loading trusted CA certificates: data that is not PEM`},
		{"CA with a key", mustAny(t, tlsCluster(t, &tlsv3.UpstreamTlsContext{CommonTlsContext: vc(&tlsv3.CertificateValidationContext{
			TrustedCa: inline(append(append([]byte{}, ca...), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1}})...))})})),
			`cluster "c": transport_socket.typed_config(UpstreamTlsContext).common_tls_context.validation_context.trusted_ca: loading trusted CA certificates: unexpected PEM block "PRIVATE KEY"`},
		{"other name SAN", mustAny(t, tlsCluster(t, &tlsv3.UpstreamTlsContext{CommonTlsContext: vc(&tlsv3.CertificateValidationContext{TrustedCa: inline(ca),
			MatchTypedSubjectAltNames: []*tlsv3.SubjectAltNameMatcher{{SanType: tlsv3.SubjectAltNameMatcher_OTHER_NAME, Oid: "1.2.3",
				Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "a"}}}}})})),
			`cluster "c": transport_socket.typed_config(UpstreamTlsContext).common_tls_context.validation_context.match_typed_subject_alt_names[0].oid: field not supported`},
		{"expired certificates", mustAny(t, tlsCluster(t, &tlsv3.UpstreamTlsContext{CommonTlsContext: vc(&tlsv3.CertificateValidationContext{TrustedCa: inline(ca),
			AllowExpiredCertificate: true})})),
			`cluster "c": transport_socket.typed_config(UpstreamTlsContext).common_tls_context.validation_context.allow_expired_certificate: field not supported`},
		{"TLS parameters", mustAny(t, tlsCluster(t, &tlsv3.UpstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{TlsParams: &tlsv3.TlsParameters{
			TlsMinimumProtocolVersion: tlsv3.TlsParameters_TLSv1_3}}})),
			`cluster "c": transport_socket.typed_config(UpstreamTlsContext).common_tls_context.tls_params: field not supported`},
		{"two client certificates", mustAny(t, tlsCluster(t, &tlsv3.UpstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
			TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{sdsConfig("a"), sdsConfig("b")}}})),
			`cluster "c": transport_socket.typed_config(UpstreamTlsContext).common_tls_context.tls_certificate_sds_secret_configs: a client context takes one certificate`},
		{"auto host SNI", mustAny(t, tlsCluster(t, &tlsv3.UpstreamTlsContext{AutoHostSni: true})),
			`cluster "c": transport_socket.typed_config(UpstreamTlsContext).auto_host_sni: field not supported`},
		{"SNI SAN check without validation", mustAny(t, tlsCluster(t, &tlsv3.UpstreamTlsContext{Sni: "a.example", AutoSniSanValidation: true})),
			`cluster "c": transport_socket.typed_config(UpstreamTlsContext).auto_sni_san_validation: needs a validation context`},
		{"IP as SNI", mustAny(t, tlsCluster(t, &tlsv3.UpstreamTlsContext{Sni: "10.0.0.1"})),
			`cluster "c": transport_socket.typed_config(UpstreamTlsContext).sni: "10.0.0.1" is not a host name`},
		{"server context on a cluster", mustAny(t, tlsCluster(t, &tlsv3.DownstreamTlsContext{})),
			`cluster "c": transport_socket.typed_config: a cluster's transport socket must be an UpstreamTlsContext`},
		{"client context on a listener", mustAny(t, func() *listenerv3.Listener {
			l := testListener(t, testHCM(t, nil))
			l.FilterChains[0].TransportSocket = &corev3.TransportSocket{Name: "tls", ConfigType: &corev3.TransportSocket_TypedConfig{
				TypedConfig: mustAny(t, &tlsv3.UpstreamTlsContext{})}}
			return l
		}()), `listener "x": filter_chains[0].transport_socket.typed_config: a listener's transport socket must be a DownstreamTlsContext`},
		{"client certificates required without validation", mustAny(t, func() *listenerv3.Listener {
			l := testListener(t, testHCM(t, nil))
			l.FilterChains[0].TransportSocket = &corev3.TransportSocket{Name: "tls", ConfigType: &corev3.TransportSocket_TypedConfig{
				TypedConfig: mustAny(t, &tlsv3.DownstreamTlsContext{RequireClientCertificate: wrapperspb.Bool(true),
					CommonTlsContext: &tlsv3.CommonTlsContext{TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{sdsConfig("s")}}})}}
			return l
		}()), `listener "x": filter_chains[0].transport_socket.typed_config(DownstreamTlsContext).require_client_certificate: needs a validation context`},
		{"secret with neither", mustAny(t, &tlsv3.Secret{Name: "s", Type: &tlsv3.Secret_GenericSecret{GenericSecret: &tlsv3.GenericSecret{}}}),
			`secret "s": generic_secret: field not supported`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			switch tc.any.GetTypeUrl() {
			case ClusterType:
				_, err = DecodeCluster(tc.any)
			case ListenerType:
				_, err = DecodeListener(tc.any)
			case SecretType:
				_, err = DecodeSecret(tc.any)
			}
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("error\n got: %v\nwant: %s", err, tc.want)
			}
		})
	}
}

func TestDecodeClientCertForwarding(t *testing.T) {
	l, err := DecodeListener(mustAny(t, testListener(t, testHCM(t, func(h *hcmv3.HttpConnectionManager) {
		h.ForwardClientCertDetails = hcmv3.HttpConnectionManager_APPEND_FORWARD
		h.SetCurrentClientCertDetails = &hcmv3.HttpConnectionManager_SetCurrentClientCertDetails{Subject: wrapperspb.Bool(true), Chain: true, Uri: true}
	}))))
	if err != nil {
		t.Fatal(err)
	}
	h := l.Chains[0].HCM
	if h.ForwardClientCert != XFCCAppendForward || h.ClientCertDetails != (ClientCertDetails{Subject: true, Chain: true, URI: true}) {
		t.Fatalf("decoded %v %+v", h.ForwardClientCert, h.ClientCertDetails)
	}
	l, err = DecodeListener(mustAny(t, testListener(t, testHCM(t, nil))))
	if err != nil || l.Chains[0].HCM.ForwardClientCert != XFCCSanitize {
		t.Fatalf("default mode %v %v, want SANITIZE", l.Chains[0].HCM.ForwardClientCert, err)
	}
}
