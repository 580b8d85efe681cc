package handshake

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/nodemesh/nodemesh/auth/issuer"
)

// fakeNode listens on loopback and answers every connection with serve.
func fakeNode(t *testing.T, serve func(net.Conn)) netip.AddrPort {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				serve(c)
			}()
		}
	}()
	return netip.MustParseAddrPort(l.Addr().String())
}

// tlsNode is a handshake server that presents whatever cfg says and
// confirms every handshake.
func tlsNode(t *testing.T, cfg *tls.Config) netip.AddrPort {
	return fakeNode(t, func(c net.Conn) {
		_ = c.SetDeadline(time.Now().Add(3 * testTimeout))
		tc := tls.Server(c, cfg)
		if tc.Handshake() != nil {
			return
		}
		tc.Write([]byte{okByte})
		tc.Close()
	})
}

func serverConfig(cert tls.Certificate) *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert}, ClientAuth: tls.RequestClientCert}
}

// TestClientRefusesBadServers: the initiator accepts only a peer proving
// exactly the identity it asked for, with a chain to its bundle.
func TestClientRefusesBadServers(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	other, err := f.srvIss.SVID(ctx, 101)
	if err != nil {
		t.Fatal(err)
	}
	good, err := f.srvIss.SVID(ctx, 100)
	if err != nil {
		t.Fatal(err)
	}
	otherIss, err := issuer.New(spiffeid.RequireTrustDomainFromString("other.example"), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := otherIss.SVID(ctx, 100)
	if err != nil {
		t.Fatal(err)
	}
	strangerIss, err := issuer.New(td, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	stranger, err := strangerIss.SVID(ctx, 100)
	if err != nil {
		t.Fatal(err)
	}
	id100 := "spiffe://cluster.local/identity/100"
	tls12 := serverConfig(*tlsCertificate(good))
	tls12.MinVersion, tls12.MaxVersion = tls.VersionTLS12, tls.VersionTLS12
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := netip.MustParseAddrPort(closed.Addr().String())
	closed.Close()

	for _, tc := range []struct {
		name     string
		addr     netip.AddrPort
		reason   string
		rejected bool
	}{
		{"valid SVID of the wrong identity", tlsNode(t, serverConfig(*tlsCertificate(other))), ReasonIdentity, true},
		{"expired SVID", tlsNode(t, serverConfig(f.ca.leaf(t, leafSpec{uris: []string{id100}, notBefore: time.Now().Add(-2 * time.Hour), notAfter: time.Now().Add(-time.Minute)}))), ReasonExpired, true},
		{"two URI SANs", tlsNode(t, serverConfig(f.ca.leaf(t, leafSpec{uris: []string{id100, "spiffe://cluster.local/identity/101"}}))), ReasonSAN, true},
		{"SVID of another trust domain", tlsNode(t, serverConfig(*tlsCertificate(foreign))), ReasonTrustDomain, true},
		{"untrusted authority", tlsNode(t, serverConfig(*tlsCertificate(stranger))), ReasonUntrusted, true},
		{"TLS 1.2 only server", tlsNode(t, tls12), ReasonTLSVersion, false},
		{"plain TCP server", fakeNode(t, func(c net.Conn) { c.Write([]byte("HTTP/1.1 400 Bad Request\r\n\r\n")) }), ReasonNotTLS, false},
		{"silent server", fakeNode(t, func(c net.Conn) { time.Sleep(2 * testTimeout) }), ReasonTimeout, false},
		{"nothing listening", closedAddr, ReasonNetwork, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := f.cli.Stats()[tc.reason]
			start := time.Now()
			_, err := f.cli.Authenticate(ctx, 200, 100, tc.addr)
			var he *Error
			if !errors.As(err, &he) {
				t.Fatalf("Authenticate = %v, want a handshake error", err)
			}
			if he.Reason != tc.reason {
				t.Errorf("reason %s (%v), want %s", he.Reason, he.Err, tc.reason)
			}
			if he.Rejected() != tc.rejected {
				t.Errorf("Rejected() = %v, want %v", he.Rejected(), tc.rejected)
			}
			if got := f.cli.Stats()[tc.reason]; got != before+1 {
				t.Errorf("client counter %s %d → %d, want +1", tc.reason, before, got)
			}
			if d := time.Since(start); d > testTimeout+time.Second {
				t.Errorf("took %s with a %s timeout", d, testTimeout)
			}
		})
	}
}

// TestClientLearnsServerRefusal: a server that does not trust the client's
// authority refuses it, and the client hears so (the confirmation byte
// never comes) even though its own TLS 1.3 handshake completed.
func TestClientLearnsServerRefusal(t *testing.T) {
	f := newFixture(t)
	if err := f.srvIss.SetPeerAuthorities(nil); err != nil {
		t.Fatal(err)
	}
	_, err := f.cli.Authenticate(context.Background(), 200, 100, f.addr)
	var he *Error
	if !errors.As(err, &he) || he.Reason != ReasonRefused || !he.Rejected() {
		t.Fatalf("Authenticate = %v, want refused", err)
	}
	// The alert reaches the client before the server's failure is
	// counted, so give the server a moment.
	deadline := time.Now().Add(testTimeout)
	for f.srv.Stats()[ReasonUntrusted] != 1 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if got := f.srv.Stats()[ReasonUntrusted]; got != 1 {
		t.Errorf("server untrusted counter %d, want 1", got)
	}
	if _, err := f.cli.Authenticate(context.Background(), 0, 100, f.addr); !errors.As(err, &he) || he.Reason != ReasonNoSVID {
		t.Errorf("identity 0: %v, want no_svid", err)
	}
}
