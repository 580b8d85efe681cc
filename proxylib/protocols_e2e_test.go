package proxylib_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"golang.org/x/net/http2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

func h2cClient() *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http2.Transport{
		AllowHTTP: true,
		DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	}}
}

func TestH2CPriorKnowledge(t *testing.T) {
	be := startBackend(t, "a", nil)
	x := startXDS(t, "", nil)
	addr := freeAddr(t)
	x.set(httpListener(t, "l", addr, "rc", nil), routeConfig("rc", vh("v", "*", prefixRoute("/", "a"))),
		edsCluster(t, "a", false, nil), cla("a", be.addr))
	startProxy(t, x.sock)
	url := "http://" + addr + "/h2c?x=1"
	waitServing(t, url, "h2.example")
	resp, err := h2cClient().Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	e := decodeEcho(t, string(body))
	if resp.ProtoMajor != 2 || e.Proto != "HTTP/1.1" || e.Path != "/h2c?x=1" || resp.Header.Get("Server") != "envoy" {
		t.Fatalf("proto %s → backend %s path %q server %q", resp.Proto, e.Proto, e.Path, resp.Header.Get("Server"))
	}
	if e.Header.Get("X-Forwarded-Proto") != "http" || len(e.Header.Get("X-Request-Id")) != 36 {
		t.Fatalf("headers %v", e.Header)
	}
}

// selfSigned returns PEM certificate and key for names.
func selfSigned(t testing.TB, names ...string) (certPEM, keyPEM []byte, cert *x509.Certificate) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: names[0]},
		DNSNames: names, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	cert, _ = x509.ParseCertificate(der)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), cert
}

func secret(name string, certPEM, keyPEM []byte) *tlsv3.Secret {
	return &tlsv3.Secret{Name: name, Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
		CertificateChain: &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: certPEM}},
		PrivateKey:       &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: string(keyPEM)}},
	}}}
}

func TestTLSWithTwoSNICertificates(t *testing.T) {
	be := startBackend(t, "a", nil)
	certA, keyA, x509A := selfSigned(t, "a.example")
	certB, keyB, x509B := selfSigned(t, "*.b.example", "*.x.b.example")
	pool := x509.NewCertPool()
	pool.AddCert(x509A)
	pool.AddCert(x509B)
	x := startXDS(t, "", nil)
	addr := freeAddr(t)
	l := &listenerv3.Listener{Name: "tls", Address: sockAddr(addr), ListenerFilters: []*listenerv3.ListenerFilter{tlsInspector(t)},
		FilterChains: []*listenerv3.FilterChain{
			tlsChain(t, hcmFor(t, "rc", nil), "secret-a", []string{"h2", "http/1.1"}, "a.example"),
			tlsChain(t, hcmFor(t, "rc", nil), "secret-b", []string{"h2", "http/1.1"}, "*.b.example"),
		}}
	x.set(l, routeConfig("rc", vh("v", "*", prefixRoute("/", "a"))), edsCluster(t, "a", false, nil), cla("a", be.addr),
		secret("secret-a", certA, keyA), secret("secret-b", certB, keyB))
	startProxy(t, x.sock)

	get := func(t *testing.T, sni string, h2 bool) (*http.Response, echo) {
		t.Helper()
		cfg := &tls.Config{ServerName: sni, RootCAs: pool}
		var rt http.RoundTripper
		if h2 {
			rt = &http2.Transport{TLSClientConfig: cfg, DialTLSContext: func(ctx context.Context, network, _ string, c *tls.Config) (net.Conn, error) {
				return (&tls.Dialer{Config: c}).DialContext(ctx, network, addr)
			}}
		} else {
			rt = &http.Transport{TLSClientConfig: cfg, DialTLSContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return (&tls.Dialer{Config: cfg}).DialContext(ctx, network, addr)
			}}
		}
		c := &http.Client{Transport: rt, Timeout: 5 * time.Second}
		var resp *http.Response
		var err error
		for i := 0; i < 200; i++ {
			if resp, err = c.Get("https://" + sni + "/tls"); err == nil {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if err != nil {
			t.Fatalf("GET via SNI %s: %v", sni, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, decodeEcho(t, string(b))
	}
	for _, tc := range []struct {
		sni  string
		want *x509.Certificate
		h2   bool
	}{{"a.example", x509A, false}, {"x.b.example", x509B, false}, {"deep.x.b.example", x509B, true}} {
		resp, e := get(t, tc.sni, tc.h2)
		if !resp.TLS.PeerCertificates[0].Equal(tc.want) {
			t.Errorf("SNI %s: served certificate %s", tc.sni, resp.TLS.PeerCertificates[0].Subject)
		}
		if tc.h2 != (resp.ProtoMajor == 2) {
			t.Errorf("SNI %s: protocol %s", tc.sni, resp.Proto)
		}
		if e.Header.Get("X-Forwarded-Proto") != "https" {
			t.Errorf("x-forwarded-proto %q", e.Header.Get("X-Forwarded-Proto"))
		}
	}
	// An unknown server name has no chain: the handshake fails.
	conn, err := tls.Dial("tcp", addr, &tls.Config{ServerName: "c.example", RootCAs: pool})
	if err == nil {
		conn.Close()
		t.Fatal("handshake with an unmatched SNI succeeded")
	}
}

func TestGRPCThroughH2CUpstream(t *testing.T) {
	gaddr := freeAddr(t)
	gln, err := net.Listen("tcp", gaddr)
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	hs := health.NewServer()
	hs.SetServingStatus("svc", healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(gs, hs)
	go func() { _ = gs.Serve(gln) }()
	t.Cleanup(gs.Stop)

	x := startXDS(t, "", nil)
	addr := freeAddr(t)
	x.set(httpListener(t, "l", addr, "rc", nil),
		routeConfig("rc", vh("v", "*", prefixRoute("/grpc.health.v1.Health/", "g"), prefixRoute("/", "missing"))),
		edsCluster(t, "g", true, nil), cla("g", gaddr))
	startProxy(t, x.sock)
	waitServing(t, "http://"+addr+"/", "x")

	cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	hc := healthpb.NewHealthClient(cc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: "svc"})
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("unary: %v %v", resp, err)
	}
	// The error status travels in trailers.
	if _, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: "unknown"}); status.Code(err) != codes.NotFound {
		t.Fatalf("unknown service: %v", err)
	}
	// Server streaming: the update arrives while the stream is open.
	w, err := hc.Watch(ctx, &healthpb.HealthCheckRequest{Service: "svc"})
	if err != nil {
		t.Fatal(err)
	}
	if m, err := w.Recv(); err != nil || m.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("watch first: %v %v", m, err)
	}
	hs.SetServingStatus("svc", healthpb.HealthCheckResponse_NOT_SERVING)
	if m, err := w.Recv(); err != nil || m.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("watch update: %v %v", m, err)
	}
	// A local reply to a gRPC request is a gRPC status: no route's cluster
	// exists → UNAVAILABLE.
	other := grpc.NewClient
	cc2, err := other("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc2.Close()
	err = cc2.Invoke(ctx, "/pkg.Missing/Call", &healthpb.HealthCheckRequest{}, &healthpb.HealthCheckResponse{})
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("missing cluster via gRPC: %v", err)
	}
}
