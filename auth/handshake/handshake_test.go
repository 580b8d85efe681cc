package handshake

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/nodemesh/nodemesh/auth"
	"github.com/nodemesh/nodemesh/auth/issuer"
)

var td = spiffeid.RequireTrustDomainFromString("cluster.local")

type localSet map[auth.Identity]bool

func (s localSet) IsLocal(id auth.Identity) bool { return s[id] }

// fixture: a handshake server on 127.0.0.1 (one node, hosting identities
// 100 and 101), a client node with its own issuer of the same trust domain
// (each trusts the other's authorities, as the composition root arranges),
// and a hand-made authority both trust, for malformed certificates.
type fixture struct {
	srvIss, cliIss *issuer.Issuer
	ca             *testCA
	srv            *Server
	cli            *Client
	addr           netip.AddrPort
}

const testTimeout = 2 * time.Second

func newFixture(t *testing.T, opts ...Option) *fixture {
	t.Helper()
	srvIss, err := issuer.New(td, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cliIss, err := issuer.New(td, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ca := newTestCA(t, td)
	if err := srvIss.SetPeerAuthorities(append(cliIss.Authorities(), ca.cert)); err != nil {
		t.Fatal(err)
	}
	if err := cliIss.SetPeerAuthorities(append(srvIss.Authorities(), ca.cert)); err != nil {
		t.Fatal(err)
	}
	f := &fixture{srvIss: srvIss, cliIss: cliIss, ca: ca}
	f.srv = NewServer(srvIss, localSet{100: true, 101: true}, append([]Option{WithTimeout(testTimeout)}, opts...)...)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go f.srv.Serve(l)
	t.Cleanup(func() { f.srv.Close() })
	f.addr = netip.MustParseAddrPort(l.Addr().String())
	f.cli = NewClient(cliIss, WithTimeout(testTimeout))
	return f
}

func TestHandshakeMutual(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	res, err := f.cli.Authenticate(ctx, 200, 100, f.addr)
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Peer.URIs[0].String(); got != "spiffe://cluster.local/identity/100" {
		t.Errorf("peer proved %s", got)
	}
	local, err := f.cliIss.SVID(ctx, 200)
	if err != nil {
		t.Fatal(err)
	}
	remote, err := f.srvIss.SVID(ctx, 100)
	if err != nil {
		t.Fatal(err)
	}
	want := local.Certificates[0].NotAfter
	if r := remote.Certificates[0].NotAfter; r.Before(want) {
		want = r
	}
	if !res.Expiry.Equal(want) {
		t.Errorf("expiry %s, want the earlier NotAfter of both SVIDs %s", res.Expiry, want)
	}
	if !res.Local.Equal(local.Certificates[0]) || !res.Peer.Equal(remote.Certificates[0]) {
		t.Error("result does not carry the two leaves of the handshake")
	}
	if got := f.srv.Stats()[ReasonOK]; got != 1 {
		t.Errorf("server ok counter %d, want 1", got)
	}
	if got := f.cli.Stats()[ReasonOK]; got != 1 {
		t.Errorf("client ok counter %d, want 1", got)
	}
	// The server picks its SVID by server name.
	res, err = f.cli.Authenticate(ctx, 200, 101, f.addr)
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Peer.URIs[0].String(); got != "spiffe://cluster.local/identity/101" {
		t.Errorf("asked for 101, peer proved %s", got)
	}
}

// rawHandshake runs a hand-configured TLS client against the server and
// returns the first error it sees (handshake or confirmation byte); it
// then waits for the server to close the connection, so the server's
// counters are final.
func rawHandshake(t *testing.T, addr netip.AddrPort, cfg *tls.Config) error {
	t.Helper()
	raw, err := net.Dial("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	_ = raw.SetDeadline(time.Now().Add(3 * testTimeout))
	tc := tls.Client(raw, cfg)
	err = tc.Handshake()
	if err == nil {
		var b [1]byte
		_, err = io.ReadFull(tc, b[:])
		if err == nil && b[0] != okByte {
			err = errors.New("unexpected confirmation byte")
		}
	}
	waitClosed(t, raw)
	return err
}

// waitClosed reads until the server closes the connection.
func waitClosed(t *testing.T, c net.Conn) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(3 * testTimeout))
	buf := make([]byte, 4096)
	for {
		if _, err := c.Read(buf); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatal("server did not close the connection")
			}
			return
		}
	}
}

func clientConfig(sni string, certs ...tls.Certificate) *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS13, ServerName: sni, InsecureSkipVerify: true, Certificates: certs}
}

// TestServerRefusesBadClients: every malformed or untrusted client is
// refused (no confirmation byte), counted under its own reason and logged.
func TestServerRefusesBadClients(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	good, err := f.cliIss.SVID(ctx, 200)
	if err != nil {
		t.Fatal(err)
	}
	goodCert := *tlsCertificate(good)
	otherIss, err := issuer.New(spiffeid.RequireTrustDomainFromString("other.example"), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := otherIss.SVID(ctx, 200)
	if err != nil {
		t.Fatal(err)
	}
	strangerIss, err := issuer.New(td, t.TempDir()) // same trust domain, not trusted
	if err != nil {
		t.Fatal(err)
	}
	stranger, err := strangerIss.SVID(ctx, 200)
	if err != nil {
		t.Fatal(err)
	}
	id200 := "spiffe://cluster.local/identity/200"
	sni := auth.ServerName(td, 100)
	tls12 := clientConfig(sni, goodCert)
	tls12.MinVersion, tls12.MaxVersion = tls.VersionTLS12, tls.VersionTLS12
	for _, tc := range []struct {
		name   string
		cfg    *tls.Config
		reason string
	}{
		{"expired SVID", clientConfig(sni, f.ca.leaf(t, leafSpec{uris: []string{id200}, notBefore: time.Now().Add(-2 * time.Hour), notAfter: time.Now().Add(-time.Hour)})), ReasonExpired},
		{"not yet valid SVID", clientConfig(sni, f.ca.leaf(t, leafSpec{uris: []string{id200}, notBefore: time.Now().Add(time.Hour), notAfter: time.Now().Add(2 * time.Hour)})), ReasonExpired},
		{"SVID of another trust domain", clientConfig(sni, *tlsCertificate(foreign)), ReasonTrustDomain},
		{"two URI SANs", clientConfig(sni, f.ca.leaf(t, leafSpec{uris: []string{id200, "spiffe://cluster.local/identity/201"}})), ReasonSAN},
		{"no URI SAN", clientConfig(sni, f.ca.leaf(t, leafSpec{})), ReasonSAN},
		{"not an identity path", clientConfig(sni, f.ca.leaf(t, leafSpec{uris: []string{"spiffe://cluster.local/ns/default/sa/x"}})), ReasonSAN},
		{"leading zero identity", clientConfig(sni, f.ca.leaf(t, leafSpec{uris: []string{"spiffe://cluster.local/identity/0200"}})), ReasonSAN},
		{"CA as leaf", clientConfig(sni, f.ca.leaf(t, leafSpec{uris: []string{id200}, isCA: true})), ReasonBadLeaf},
		{"untrusted authority", clientConfig(sni, *tlsCertificate(stranger)), ReasonUntrusted},
		{"no client certificate", clientConfig(sni), ReasonNoCertificate},
		{"server name of a non-local identity", clientConfig(auth.ServerName(td, 999), goodCert), ReasonServerName},
		{"server name of another trust domain", clientConfig("100.other.example", goodCert), ReasonServerName},
		{"no server name", clientConfig("", goodCert), ReasonServerName},
		{"TLS 1.2 only client", tls12, ReasonTLSVersion},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := f.srv.Stats()
			if err := rawHandshake(t, f.addr, tc.cfg); err == nil {
				t.Fatal("the server confirmed the handshake")
			}
			after := f.srv.Stats()
			if after[tc.reason] != before[tc.reason]+1 {
				t.Errorf("counter %s: %d → %d, want +1 (all: %v)", tc.reason, before[tc.reason], after[tc.reason], after)
			}
			if after[ReasonOK] != before[ReasonOK] {
				t.Error("counted as ok")
			}
		})
	}
	// The good certificate still works over the same raw path.
	if err := rawHandshake(t, f.addr, clientConfig(sni, goodCert)); err != nil {
		t.Fatalf("good client: %v", err)
	}
}

func TestServerRefusesNonTLS(t *testing.T) {
	f := newFixture(t)
	c, err := net.Dial("tcp", f.addr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, c)
	if got := f.srv.Stats()[ReasonNotTLS]; got != 1 {
		t.Errorf("not_tls counter %d, want 1", got)
	}
}

// TestServerSlowLoris: a client trickling a ClientHello one byte at a time
// is cut off at the handshake timeout, not kept forever.
func TestServerSlowLoris(t *testing.T) {
	f := newFixture(t)
	// Capture a real ClientHello to trickle.
	hello := captureClientHello(t)
	c, err := net.Dial("tcp", f.addr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		buf := make([]byte, 512)
		for {
			if _, err := c.Read(buf); err != nil {
				return
			}
		}
	}()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-closed:
			elapsed := time.Since(start)
			if elapsed < testTimeout-100*time.Millisecond {
				t.Errorf("closed after %s, before the %s timeout: not the timeout", elapsed, testTimeout)
			}
			if elapsed > testTimeout+3*time.Second {
				t.Errorf("closed only after %s with a %s timeout", elapsed, testTimeout)
			}
			if got := f.srv.Stats()[ReasonTimeout]; got != 1 {
				t.Errorf("timeout counter %d, want 1", got)
			}
			if i >= len(hello) {
				t.Error("the whole ClientHello went out; the test trickled too fast")
			}
			return
		case <-tick.C:
			if i < len(hello) {
				c.Write(hello[i : i+1])
			}
		case <-time.After(3 * testTimeout):
			t.Fatal("slow client was never cut off")
		}
	}
}

func captureClientHello(t *testing.T) []byte {
	t.Helper()
	a, b := net.Pipe()
	go func() {
		tc := tls.Client(a, clientConfig(auth.ServerName(td, 100)))
		_ = tc.Handshake()
	}()
	buf := make([]byte, 4096)
	n, err := b.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	a.Close()
	b.Close()
	return buf[:n]
}

// TestServerBounds: handshakes in progress are bounded per source address
// and in total; a connection beyond a bound is closed at once and counted.
func TestServerBounds(t *testing.T) {
	f := newFixture(t, WithMaxPerPeer(1), WithMaxConcurrent(2))
	hold := func(src string) net.Conn {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
		c, err := d.Dial("tcp", f.addr.String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	expectClosedFast := func(c net.Conn) {
		t.Helper()
		start := time.Now()
		waitClosed(t, c)
		if d := time.Since(start); d > testTimeout/2 {
			t.Errorf("refused connection closed after %s, want at once", d)
		}
	}
	// Connections are accepted in order, so the idle first one holds
	// 127.0.0.1's only slot (until the timeout) when the second arrives.
	hold("127.0.0.1")
	second := hold("127.0.0.1")
	expectClosedFast(second)
	if got := f.srv.Stats()[ReasonPeerLimit]; got < 1 {
		t.Errorf("peer_limit counter %d, want ≥ 1", got)
	}
	_ = hold("127.0.0.2")
	third := hold("127.0.0.3")
	expectClosedFast(third)
	if got := f.srv.Stats()[ReasonOverload]; got < 1 {
		t.Errorf("overload counter %d, want ≥ 1", got)
	}
}
