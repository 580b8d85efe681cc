package proxylib_test

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	rbacfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"golang.org/x/net/http2"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// mtlsChain is a TLS filter chain for serverName whose context verifies
// client certificates with v (a validation_context) or, when sds is set,
// the named validation Secret.
func mtlsChain(t testing.TB, h *hcmv3.HttpConnectionManager, serverName string, require bool, v *tlsv3.CertificateValidationContext, sds string) *listenerv3.FilterChain {
	fc := chainFor(t, h)
	fc.FilterChainMatch = &listenerv3.FilterChainMatch{ServerNames: []string{serverName}}
	common := &tlsv3.CommonTlsContext{TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{sdsRef("server-cert")},
		AlpnProtocols: []string{"h2", "http/1.1"}}
	if sds != "" {
		common.ValidationContextType = &tlsv3.CommonTlsContext_ValidationContextSdsSecretConfig{ValidationContextSdsSecretConfig: sdsRef(sds)}
	} else {
		common.ValidationContextType = &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: v}
	}
	ctx := &tlsv3.DownstreamTlsContext{CommonTlsContext: common, RequireClientCertificate: wrapperspb.Bool(require)}
	fc.TransportSocket = &corev3.TransportSocket{Name: "envoy.transport_sockets.tls",
		ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: anyOf(t, ctx)}}
	return fc
}

// rbacAuthenticated is an RBAC filter allowing only the authenticated
// principal name.
func rbacAuthenticated(t testing.TB, name string) *hcmv3.HttpFilter {
	r := &rbacfilterv3.RBAC{Rules: &rbacv3.RBAC{Action: rbacv3.RBAC_ALLOW, Policies: map[string]*rbacv3.Policy{
		"client": {Permissions: []*rbacv3.Permission{{Rule: &rbacv3.Permission_Any{Any: true}}},
			Principals: []*rbacv3.Principal{{Identifier: &rbacv3.Principal_Authenticated_{Authenticated: &rbacv3.Principal_Authenticated{
				PrincipalName: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: name}}}}}}},
	}}}
	return &hcmv3.HttpFilter{Name: "envoy.filters.http.rbac", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: anyOf(t, r)}}
}

// TestDownstreamClientCertificates checks DownstreamTlsContext client
// certificate validation: require_client_certificate, trusted_ca and SAN
// matchers (inline and from SDS), ACCEPT_UNTRUSTED (Gateway API's
// AllowInsecureFallback: any client gets through, unverified), the
// x-forwarded-client-cert modes and RBAC authenticated principals.
func TestDownstreamClientCertificates(t *testing.T) {
	ca, other := newCA(t, "client CA"), newCA(t, "stranger CA")
	serverPEM, serverKey, _ := ca.issue(t, leaf{cn: "gateway", dns: []string{"strict.example", "lenient.example", "sds.example", "forward.example", "fallback.example"},
		uris: []string{"spiffe://td/gateway"}})
	_, _, goodClient := ca.issue(t, leaf{cn: "client", client: true, uris: []string{"spiffe://td/client"}, dns: []string{"client.example"}})
	_, _, wrongSAN := ca.issue(t, leaf{cn: "intruder", client: true, uris: []string{"spiffe://td/intruder"}})
	_, _, stranger := other.issue(t, leaf{cn: "stranger", client: true, uris: []string{"spiffe://td/client"}})
	be := startBackend(t, "be", nil)
	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)

	x := startXDS(t, "", nil)
	addr := freeAddr(t)
	clientSAN := sanExact(tlsv3.SubjectAltNameMatcher_URI, "spiffe://td/client")
	untrusted := validation(ca.pem)
	untrusted.TrustChainVerification = tlsv3.CertificateValidationContext_ACCEPT_UNTRUSTED
	setXFCC := func(h *hcmv3.HttpConnectionManager) {
		h.ForwardClientCertDetails = hcmv3.HttpConnectionManager_SANITIZE_SET
		h.SetCurrentClientCertDetails = &hcmv3.HttpConnectionManager_SetCurrentClientCertDetails{
			Subject: wrapperspb.Bool(true), Uri: true, Dns: true}
	}
	appendXFCC := func(h *hcmv3.HttpConnectionManager) {
		h.ForwardClientCertDetails = hcmv3.HttpConnectionManager_APPEND_FORWARD
		h.SetCurrentClientCertDetails = &hcmv3.HttpConnectionManager_SetCurrentClientCertDetails{Cert: true}
	}
	withRBAC := func(h *hcmv3.HttpConnectionManager) {
		h.HttpFilters = append([]*hcmv3.HttpFilter{rbacAuthenticated(t, "spiffe://td/client")}, h.HttpFilters...)
	}
	l := &listenerv3.Listener{Name: "tls", Address: sockAddr(addr), ListenerFilters: []*listenerv3.ListenerFilter{tlsInspector(t)},
		FilterChains: []*listenerv3.FilterChain{
			mtlsChain(t, hcmFor(t, "rc", setXFCC), "strict.example", true, validation(ca.pem, clientSAN), ""),
			mtlsChain(t, hcmFor(t, "rc", withRBAC), "lenient.example", false, untrusted, ""),
			mtlsChain(t, hcmFor(t, "rc", nil), "sds.example", true, nil, "client-ca"),
			mtlsChain(t, hcmFor(t, "rc", appendXFCC), "forward.example", false, validation(ca.pem), ""),
			// What the Gateway translation emits for AllowInsecureFallback:
			// ACCEPT_UNTRUSTED, no RBAC, forward_client_cert_details unset.
			mtlsChain(t, hcmFor(t, "rc", nil), "fallback.example", false, untrusted, ""),
		}}
	x.set(l, routeConfig("rc", vh("v", "*", prefixRoute("/", "be"))), edsCluster(t, "be", false, nil), cla("be", be.addr),
		secret("server-cert", serverPEM, serverKey), validationSecret("client-ca", validation(ca.pem, clientSAN)))
	startProxy(t, x.sock)
	x.waitApplied()

	// get sends one request with SNI sni, presenting cert (nil: none), over
	// HTTP/2 when h2.
	get := func(t *testing.T, sni string, cert *tls.Certificate, h2 bool, hdr map[string]string) (int, echo, error) {
		t.Helper()
		cfg := &tls.Config{ServerName: sni, RootCAs: roots}
		if cert != nil {
			// Present it whatever CAs the server names: the proxy must
			// judge it.
			cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
		}
		dial := func(ctx context.Context) (net.Conn, error) {
			return (&tls.Dialer{Config: cfg}).DialContext(ctx, "tcp", addr)
		}
		var rt http.RoundTripper = &http.Transport{DialTLSContext: func(ctx context.Context, _, _ string) (net.Conn, error) { return dial(ctx) }}
		if h2 {
			cfg.NextProtos = []string{"h2"}
			rt = &http2.Transport{DialTLSContext: func(ctx context.Context, _, _ string, _ *tls.Config) (net.Conn, error) { return dial(ctx) }}
		}
		req, _ := http.NewRequest("GET", "https://"+sni+"/x", nil)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := (&http.Client{Transport: rt, Timeout: 5 * time.Second}).Do(req)
		if err != nil {
			return 0, echo{}, err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			return resp.StatusCode, echo{}, nil
		}
		return resp.StatusCode, decodeEcho(t, string(b)), nil
	}
	waitFor(t, func() bool { _, _, err := get(t, "strict.example", &goodClient, false, nil); return err == nil }, "the TLS listener")

	sum := sha256.Sum256(goodClient.Leaf.Raw)
	if goodClient.Leaf == nil {
		t.Fatal("no leaf")
	}
	hash := hex.EncodeToString(sum[:])
	for _, h2 := range []bool{false, true} {
		// strict: a valid certificate with the right SAN only.
		code, e, err := get(t, "strict.example", &goodClient, h2, map[string]string{"X-Forwarded-Client-Cert": "By=forged"})
		if err != nil || code != 200 {
			t.Fatalf("h2=%v strict, valid certificate: %d %v", h2, code, err)
		}
		want := `By=spiffe://td/gateway;Hash=` + hash + `;Subject="CN=client";URI=spiffe://td/client;DNS=client.example`
		if got := e.Header.Values("X-Forwarded-Client-Cert"); len(got) != 1 || got[0] != want {
			t.Fatalf("h2=%v SANITIZE_SET x-forwarded-client-cert %q, want %q", h2, got, want)
		}
		for name, cert := range map[string]*tls.Certificate{"none": nil, "wrong SAN": &wrongSAN, "untrusted CA": &stranger} {
			if code, _, err := get(t, "strict.example", cert, h2, nil); err == nil {
				t.Fatalf("h2=%v strict, %s: %d, want the handshake refused", h2, name, code)
			}
			if code, _, err := get(t, "sds.example", cert, h2, nil); err == nil {
				t.Fatalf("h2=%v validation from SDS, %s: %d, want the handshake refused", h2, name, code)
			}
		}
		if code, _, err := get(t, "sds.example", &goodClient, h2, nil); err != nil || code != 200 {
			t.Fatalf("h2=%v validation from SDS, valid certificate: %d %v", h2, code, err)
		}
		// lenient (ACCEPT_UNTRUSTED, not required): everyone connects; RBAC
		// matches the authenticated principal of any presented certificate,
		// as Envoy's does; without one the request is denied. The default
		// SANITIZE drops a client's x-forwarded-client-cert.
		for name, tc := range map[string]struct {
			cert *tls.Certificate
			code int
		}{"none": {nil, 403}, "valid": {&goodClient, 200}, "untrusted CA": {&stranger, 200}, "wrong SAN": {&wrongSAN, 403}} {
			code, e, err := get(t, "lenient.example", tc.cert, h2, map[string]string{"X-Forwarded-Client-Cert": "By=forged"})
			if err != nil || code != tc.code {
				t.Fatalf("h2=%v lenient, %s: %d %v, want %d", h2, name, code, err, tc.code)
			}
			if code == 200 && e.Header.Get("X-Forwarded-Client-Cert") != "" {
				t.Fatalf("h2=%v lenient: SANITIZE forwarded x-forwarded-client-cert %q", h2, e.Header.Get("X-Forwarded-Client-Cert"))
			}
		}
		// fallback (AllowInsecureFallback as the Gateway translation
		// emits it): every client gets through, and whatever it presents,
		// a certificate or none, the x-forwarded-client-cert it sends is
		// removed (SANITIZE), so the backend never sees a forged one.
		for name, cert := range map[string]*tls.Certificate{"none": nil, "valid": &goodClient, "untrusted CA": &stranger, "wrong SAN": &wrongSAN} {
			code, e, err := get(t, "fallback.example", cert, h2, map[string]string{"X-Forwarded-Client-Cert": "By=spiffe://td/admin;Hash=forged;URI=spiffe://td/admin"})
			if err != nil || code != 200 {
				t.Fatalf("h2=%v fallback, %s: %d %v, want 200", h2, name, code, err)
			}
			if got := e.Header.Values("X-Forwarded-Client-Cert"); len(got) != 0 {
				t.Fatalf("h2=%v fallback, %s: the backend got x-forwarded-client-cert %q", h2, name, got)
			}
		}
		// APPEND_FORWARD: this hop's element after the client's.
		code, e, err = get(t, "forward.example", &goodClient, h2, map[string]string{"X-Forwarded-Client-Cert": "By=spiffe://upstream;Hash=00"})
		if err != nil || code != 200 {
			t.Fatalf("h2=%v forward: %d %v", h2, code, err)
		}
		got := e.Header.Get("X-Forwarded-Client-Cert")
		prefix := "By=spiffe://upstream;Hash=00,By=spiffe://td/gateway;Hash=" + hash + `;Cert="-----BEGIN%20CERTIFICATE-----%0A`
		if !strings.HasPrefix(got, prefix) || !strings.HasSuffix(got, `-----END%20CERTIFICATE-----%0A"`) {
			t.Fatalf("h2=%v APPEND_FORWARD x-forwarded-client-cert %q, want %q...", h2, got, prefix)
		}
		// Without a client certificate APPEND_FORWARD sanitizes.
		code, e, err = get(t, "forward.example", nil, h2, map[string]string{"X-Forwarded-Client-Cert": "By=forged"})
		if err != nil || code != 200 || e.Header.Get("X-Forwarded-Client-Cert") != "" {
			t.Fatalf("h2=%v forward without a certificate: %d %v xfcc %q", h2, code, err, e.Header.Get("X-Forwarded-Client-Cert"))
		}
	}
}
