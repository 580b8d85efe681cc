package server

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/nodemesh/nodemesh/mesh/ir"
	"github.com/nodemesh/nodemesh/xds/translator"
)

// spec is a small node configuration for tests.
type spec struct {
	// clusters to define; each gets one endpoint on port.
	clusters []string
	port     uint32
	// route is the cluster every listener's route forwards to ("" for a
	// direct response).
	route string
	// listeners to define (default: one named "l0").
	listeners []string
	// secret, if set, makes every listener terminate TLS with it.
	secret string
	// routeTag changes the route's name to force a route update.
	routeTag string
	// clientSecret, if set, makes every cluster speak TLS presenting it.
	clientSecret string
}

func resources(t testing.TB, sp spec) *translator.Resources {
	t.Helper()
	cfg := &ir.Config{}
	port := sp.port
	if port == 0 {
		port = 8080
	}
	var clientCert, clientKey []byte
	if sp.clientSecret != "" {
		clientCert, clientKey = testKeyPair(t)
		cfg.Secrets = append(cfg.Secrets, &ir.Secret{Name: sp.clientSecret, Certificate: clientCert, PrivateKey: clientKey})
	}
	for _, c := range sp.clusters {
		cl := &ir.Cluster{Name: c, Protocol: ir.ProtocolHTTP1, LBPolicy: ir.LBRoundRobin,
			Endpoints: []ir.Endpoint{{Address: "127.0.0.1", Port: port, Ready: true}}}
		if sp.clientSecret != "" {
			cl.UpstreamTLS = &ir.UpstreamTLS{SNI: "backend.example", TrustedCA: clientCert, ClientCertificate: sp.clientSecret}
		}
		cfg.Clusters = append(cfg.Clusters, cl)
	}
	sort.Slice(cfg.Clusters, func(i, j int) bool { return cfg.Clusters[i].Name < cfg.Clusters[j].Name })
	listeners := sp.listeners
	if listeners == nil {
		listeners = []string{"l0"}
	}
	for i, l := range listeners {
		r := &ir.Route{Name: "route" + sp.routeTag}
		if sp.route != "" {
			r.Backends = []*ir.WeightedBackend{{Cluster: sp.route, Weight: 1}}
		} else {
			r.DirectResponse = &ir.DirectResponse{Status: 200}
		}
		ch := &ir.HTTPChain{Name: "chain", Routes: &ir.RouteTable{Name: l + "/routes", VirtualHosts: []*ir.VirtualHost{{
			Name: "any", Domains: []string{"*"}, Routes: []*ir.Route{r},
		}}}}
		if sp.secret != "" {
			ch.TLS = &ir.TLS{Certificates: []string{sp.secret}, ALPN: []string{"h2"}}
		}
		cfg.Listeners = append(cfg.Listeners, &ir.Listener{Name: l, Address: "127.0.0.1", Port: uint32(10000 + i), Chains: []*ir.HTTPChain{ch}})
	}
	if sp.secret != "" {
		cert, key := testKeyPair(t)
		cfg.Secrets = append(cfg.Secrets, &ir.Secret{Name: sp.secret, Certificate: cert, PrivateKey: key})
		sort.Slice(cfg.Secrets, func(i, j int) bool { return cfg.Secrets[i].Name < cfg.Secrets[j].Name })
	}
	res, err := translator.Translate(cfg)
	if err != nil {
		t.Fatalf("translating test config: %v", err)
	}
	return res
}

// startServer serves a new Server on a Unix socket in a fresh directory
// (the socket's parent is created by ListenUnix).
func startServer(t testing.TB, opts ...Option) (*Server, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "run", "xds.sock")
	return startServerAt(t, path, opts...), path
}

func startServerAt(t testing.TB, path string, opts ...Option) *Server {
	t.Helper()
	l, err := ListenUnix(path)
	if err != nil {
		t.Fatal(err)
	}
	opts = append([]Option{WithLogger(testLogger(t))}, opts...)
	s := New(opts...)
	done := make(chan error, 1)
	go func() { done <- s.Serve(l) }()
	t.Cleanup(func() {
		s.Stop(time.Second)
		<-done
	})
	return s
}

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

// dial starts a proxy on the server's Unix socket.
func dial(t testing.TB, path string, o proxyOptions) *testProxy {
	t.Helper()
	return newProxy(t, "unix://"+path, o)
}

// dialConnected dials and waits until the server knows the node, so a
// following WaitForAck counts it.
func dialConnected(t testing.TB, s *Server, path string, o proxyOptions) *testProxy {
	t.Helper()
	p := dial(t, path, o)
	waitConnected(t, s, o.NodeID)
	return p
}

func waitConnected(t testing.TB, s *Server, node string) {
	t.Helper()
	waitFor(t, func() bool {
		for _, n := range s.Status() {
			if n.ID == node && n.Connected {
				return true
			}
		}
		return false
	})
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func update(t testing.TB, s *Server, res *translator.Resources) UpdateResult {
	t.Helper()
	r, err := s.Update(context.Background(), res)
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	return r
}

func waitAck(t testing.TB, s *Server, r UpdateResult) {
	t.Helper()
	if err := s.WaitForAck(ctxT(t), r.Version); err != nil {
		t.Fatalf("WaitForAck(%s): %v", r.Version, err)
	}
}

// modes runs a test for both protocols.
func modes(t *testing.T, f func(t *testing.T, delta bool)) {
	for _, delta := range []bool{false, true} {
		name := "sotw"
		if delta {
			name = "delta"
		}
		t.Run(name, func(t *testing.T) { f(t, delta) })
	}
}

func nodeStatus(t testing.TB, s *Server, id string) NodeStatus {
	t.Helper()
	for _, n := range s.Status() {
		if n.ID == id {
			return n
		}
	}
	t.Fatalf("node %q not in status %+v", id, s.Status())
	return NodeStatus{}
}

func typeStatus(n NodeStatus, typeURL string) TypeStatus {
	for _, ts := range n.Types {
		if ts.TypeURL == typeURL {
			return ts
		}
	}
	return TypeStatus{}
}

// testKeyPair is a self-signed certificate and its key in PEM, made once:
// proxies parse the key pair of every secret they accept.
func testKeyPair(t testing.TB) (cert, key []byte) {
	t.Helper()
	kp, err := keyPair()
	if err != nil {
		t.Fatalf("making a test certificate: %v", err)
	}
	return kp[0], kp[1]
}

var keyPair = sync.OnceValues(func() ([2][]byte, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return [2][]byte{}, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "xds-server-test"},
		DNSNames: []string{"xds-server-test"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		return [2][]byte{}, err
	}
	kder, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return [2][]byte{}, err
	}
	return [2][]byte{pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})}, nil
})

// streamsAckedLocked merges what the delta streams are recorded to hold
// of kind k, by resource name.
func (s *Server) streamsAckedLocked(k kind) map[string]string {
	out := map[string]string{}
	for _, st := range s.streams {
		if st.delta {
			for n, v := range st.types[k].deltaAcked {
				out[n] = v
			}
		}
	}
	return out
}
