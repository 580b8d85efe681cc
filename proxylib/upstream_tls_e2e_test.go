package proxylib_test

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"golang.org/x/net/http2"
	"google.golang.org/protobuf/proto"
)

// tlsBackend is an HTTPS server on loopback answering "<name> <proto>
// sni=<server name> client=<client certificate CN>" and counting the
// connections it accepted.
type tlsBackend struct {
	addr  string
	conns atomic.Int64
}

func startTLSBackend(t *testing.T, name string, cert tls.Certificate, h2 bool, clientCAs *x509.CertPool) *tlsBackend {
	t.Helper()
	b := &tlsBackend{}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"http/1.1"}}
	if h2 {
		cfg.NextProtos = []string{"h2"}
	}
	if clientCAs != nil {
		cfg.ClientCAs, cfg.ClientAuth = clientCAs, tls.RequireAndVerifyClientCert
	}
	ln, err := net.Listen("tcp", freeAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	b.addr = ln.Addr().String()
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			cn := ""
			if len(r.TLS.PeerCertificates) > 0 {
				cn = r.TLS.PeerCertificates[0].Subject.CommonName
			}
			fmt.Fprintf(w, "%s %s sni=%s client=%s", name, r.Proto, r.TLS.ServerName, cn)
		}),
		TLSConfig: cfg,
		ErrorLog:  log.New(io.Discard, "", 0),
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				b.conns.Add(1)
			}
		},
	}
	if h2 {
		_ = http2.ConfigureServer(srv, &http2.Server{})
	}
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	t.Cleanup(func() { _ = srv.Close() })
	return b
}

func upstreamTLS(t testing.TB, ctx *tlsv3.UpstreamTlsContext) func(*clusterv3.Cluster) {
	return func(c *clusterv3.Cluster) {
		c.TransportSocket = &corev3.TransportSocket{Name: "envoy.transport_sockets.tls",
			ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: anyOf(t, ctx)}}
	}
}

func sdsRef(name string) *tlsv3.SdsSecretConfig {
	return &tlsv3.SdsSecretConfig{Name: name, SdsConfig: adsSource()}
}

// TestUpstreamTLS checks clusters whose transport_socket is an
// UpstreamTlsContext, with Envoy's semantics: SNI as configured; the
// server's chain verified against trusted_ca (inline, from SDS, or
// combined) and its SANs against match_typed_subject_alt_names, never its
// host name otherwise; no verification at all without trusted_ca; a
// client certificate from SDS; HTTP/2 by ALPN; connections pooled. A
// server failing verification gets Envoy's 503 naming
// CERTIFICATE_VERIFY_FAILED.
func TestUpstreamTLS(t *testing.T) {
	ca, other := newCA(t, "trusted CA"), newCA(t, "untrusted CA")
	_, _, good := ca.issue(t, leaf{cn: "backend", dns: []string{"backend.example"}, uris: []string{"spiffe://td/ns/app/sa/backend"}})
	_, _, wrongSAN := ca.issue(t, leaf{cn: "other", dns: []string{"other.example"}})
	_, _, untrusted := other.issue(t, leaf{cn: "backend", dns: []string{"backend.example"}})
	_, _, expired := ca.issue(t, leaf{cn: "old", dns: []string{"backend.example"}, notBefore: time.Now().Add(-48 * time.Hour), notAfter: time.Now().Add(-24 * time.Hour)})
	_, _, wild := ca.issue(t, leaf{cn: "wild", dns: []string{"*.wild.example"}})
	clientPEM, clientKey, _ := ca.issue(t, leaf{cn: "proxy-client", client: true})
	clientCAs := x509.NewCertPool()
	clientCAs.AddCert(ca.cert)

	bGood := startTLSBackend(t, "good", good, false, nil)
	bWrong := startTLSBackend(t, "wrong-san", wrongSAN, false, nil)
	bUntrusted := startTLSBackend(t, "untrusted", untrusted, false, nil)
	bExpired := startTLSBackend(t, "expired", expired, false, nil)
	bWild := startTLSBackend(t, "wild", wild, false, nil)
	bH2 := startTLSBackend(t, "h2", good, true, nil)
	bMTLS := startTLSBackend(t, "mtls", good, false, clientCAs)

	dnsBackend := sanExact(tlsv3.SubjectAltNameMatcher_DNS, "backend.example")
	strict := func() *tlsv3.UpstreamTlsContext {
		return &tlsv3.UpstreamTlsContext{Sni: "backend.example", CommonTlsContext: &tlsv3.CommonTlsContext{
			ValidationContextType: &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: validation(ca.pem, dnsBackend)}}}
	}
	noSAN := &tlsv3.UpstreamTlsContext{Sni: "backend.example", CommonTlsContext: &tlsv3.CommonTlsContext{
		ValidationContextType: &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: validation(ca.pem)}}}
	noVerify := &tlsv3.UpstreamTlsContext{}
	viaSDS := &tlsv3.UpstreamTlsContext{Sni: "backend.example", CommonTlsContext: &tlsv3.CommonTlsContext{
		ValidationContextType: &tlsv3.CommonTlsContext_ValidationContextSdsSecretConfig{ValidationContextSdsSecretConfig: sdsRef("ca-spiffe")}}}
	combined := func() *tlsv3.UpstreamTlsContext {
		return &tlsv3.UpstreamTlsContext{Sni: "backend.example", CommonTlsContext: &tlsv3.CommonTlsContext{
			ValidationContextType: &tlsv3.CommonTlsContext_CombinedValidationContext{CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
				DefaultValidationContext:         validation(nil, dnsBackend),
				ValidationContextSdsSecretConfig: sdsRef("ca-only"),
			}}}}
	}
	wildcard := &tlsv3.UpstreamTlsContext{Sni: "api.wild.example", CommonTlsContext: &tlsv3.CommonTlsContext{
		ValidationContextType: &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: validation(ca.pem,
			sanExact(tlsv3.SubjectAltNameMatcher_DNS, "api.wild.example"))}}}
	withCert := strict()
	withCert.CommonTlsContext.TlsCertificateSdsSecretConfigs = []*tlsv3.SdsSecretConfig{sdsRef("client-cert")}
	autoSNI := func(sni string) *tlsv3.UpstreamTlsContext {
		return &tlsv3.UpstreamTlsContext{Sni: sni, AutoSniSanValidation: true, CommonTlsContext: &tlsv3.CommonTlsContext{
			ValidationContextType: &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: validation(ca.pem,
				sanExact(tlsv3.SubjectAltNameMatcher_DNS, "nothing.example"))}}}
	}

	clusters := []struct {
		name, addr string
		ctx        *tlsv3.UpstreamTlsContext
		h2         bool
		want       string // body prefix; "" expects the verification failure
	}{
		{"good", bGood.addr, strict(), false, "good HTTP/1.1 sni=backend.example client="},
		{"wrong-san", bWrong.addr, strict(), false, ""},
		{"untrusted", bUntrusted.addr, strict(), false, ""},
		{"expired", bExpired.addr, strict(), false, ""},
		{"no-san", bWrong.addr, noSAN, false, "wrong-san HTTP/1.1 sni=backend.example"},
		{"no-verify", bUntrusted.addr, noVerify, false, "untrusted HTTP/1.1 sni= "},
		{"sds", bGood.addr, viaSDS, false, "good HTTP/1.1"},
		{"sds-wrong", bWrong.addr, viaSDS, false, ""},
		{"combined", bGood.addr, combined(), false, "good HTTP/1.1"},
		{"combined-wrong", bWrong.addr, combined(), false, ""},
		{"wildcard", bWild.addr, wildcard, false, "wild HTTP/1.1 sni=api.wild.example"},
		{"h2", bH2.addr, strict(), true, "h2 HTTP/2.0 sni=backend.example"},
		{"mtls", bMTLS.addr, withCert, false, "mtls HTTP/1.1 sni=backend.example client=proxy-client"},
		// Under TLS 1.3 the server refuses the missing certificate after
		// the client's handshake completed: the refusal ends the exchange.
		{"mtls-nocert", bMTLS.addr, strict(), false, "refused"},
		{"auto-sni", bGood.addr, autoSNI("backend.example"), false, "good HTTP/1.1"},
		{"auto-sni-wrong", bGood.addr, autoSNI("elsewhere.example"), false, ""},
	}
	x := startXDS(t, "", nil)
	addr := freeAddr(t)
	var routes []*routev3.Route
	var res []proto.Message
	for _, c := range clusters {
		routes = append(routes, prefixRoute("/"+c.name+"/", c.name))
		res = append(res, edsCluster(t, c.name, c.h2, upstreamTLS(t, c.ctx)), cla(c.name, c.addr))
	}
	caSDS := validation(ca.pem, sanPrefix(tlsv3.SubjectAltNameMatcher_URI, "spiffe://td/"))
	all := append([]proto.Message{httpListener(t, "l", addr, "rc", nil), routeConfig("rc", vh("v", "*", routes...)),
		validationSecret("ca-spiffe", caSDS), validationSecret("ca-only", validation(ca.pem)), secret("client-cert", clientPEM, clientKey)}, res...)
	x.set(all...)
	startProxy(t, x.sock)
	x.waitApplied()
	waitServing(t, "http://"+addr+"/", "")

	c := client()
	for _, tc := range clusters {
		for _, cl := range []*http.Client{c, h2cClient()} {
			code, _, body := do(t, cl, "GET", "http://"+addr+"/"+tc.name+"/x", "", nil, nil)
			switch {
			case tc.want == "":
				want := "upstream connect error or disconnect/reset before headers. reset reason: connection failure, " +
					"transport failure reason: TLS_error:|268435581:SSL routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED:TLS_error_end"
				if code != 503 || body != want {
					t.Errorf("%s: %d %q, want 503 %q", tc.name, code, body, want)
				}
			case tc.want == "refused":
				if code != 503 || !strings.HasPrefix(body, "upstream connect error or disconnect/reset before headers.") {
					t.Errorf("%s: %d %q, want a 503 upstream failure", tc.name, code, body)
				}
			default:
				if code != 200 || !strings.HasPrefix(body, tc.want) {
					t.Errorf("%s: %d %q, want 200 %q...", tc.name, code, body, tc.want)
				}
			}
		}
	}
	// Connections are pooled: more requests, no new handshakes.
	before := bGood.conns.Load()
	for range 20 {
		if code, _, _ := do(t, c, "GET", "http://"+addr+"/good/x", "", nil, nil); code != 200 {
			t.Fatalf("pooled request: %d", code)
		}
	}
	if n := bGood.conns.Load() - before; n > 1 {
		t.Errorf("20 sequential requests opened %d new TLS connections, want them reused", n)
	}
}

// TestUpstreamTLSFromTCPProxy: tcp_proxy to a cluster with an
// UpstreamTlsContext originates TLS too, verified the same way.
func TestUpstreamTLSFromTCPProxy(t *testing.T) {
	ca := newCA(t, "trusted CA")
	_, _, good := ca.issue(t, leaf{cn: "backend", dns: []string{"backend.example"}})
	be := startTLSBackend(t, "good", good, false, nil)
	x := startXDS(t, "", nil)
	addr := freeAddr(t)
	tp := &tcpproxyv3.TcpProxy{StatPrefix: "tcp", ClusterSpecifier: &tcpproxyv3.TcpProxy_Cluster{Cluster: "tls"}}
	l := &listenerv3.Listener{Name: "tcp", Address: sockAddr(addr), FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{{
		Name: "envoy.filters.network.tcp_proxy", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: anyOf(t, tp)}}}}}}
	ctx := &tlsv3.UpstreamTlsContext{Sni: "backend.example", CommonTlsContext: &tlsv3.CommonTlsContext{
		ValidationContextType: &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: validation(ca.pem,
			sanExact(tlsv3.SubjectAltNameMatcher_DNS, "backend.example"))}}}
	x.set(l, edsCluster(t, "tls", false, upstreamTLS(t, ctx)), cla("tls", be.addr))
	startProxy(t, x.sock)
	x.waitApplied()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: backend.example\r\nConnection: close\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(c)
	if !strings.Contains(string(b), "good HTTP/1.1 sni=backend.example") {
		t.Fatalf("through tcp_proxy: %q", b)
	}
}
