package handshake

import (
	"context"
	"crypto/x509"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/nodemesh/nodemesh/auth"
	"github.com/nodemesh/nodemesh/auth/issuer"
)

// FuzzVerifyPeer feeds arbitrary certificate chains (DER, as a peer
// sends them) to the verifier: it never panics, and whatever it accepts
// go-spiffe's own verifier accepts too, for the same identity.
func FuzzVerifyPeer(f *testing.F) {
	iss, err := issuer.New(td, f.TempDir())
	if err != nil {
		f.Fatal(err)
	}
	svid, err := iss.SVID(context.Background(), 42)
	if err != nil {
		f.Fatal(err)
	}
	bundle, err := iss.Bundle()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(svid.Certificates[0].Raw)
	f.Add(append(svid.Certificates[0].Raw, bundle.X509Authorities()[0].Raw...))
	f.Add([]byte{0x30, 0x03, 0x02, 0x01, 0x00})
	now := time.Now()
	f.Fuzz(func(t *testing.T, der []byte) {
		certs, err := x509.ParseCertificates(der)
		if err != nil {
			return
		}
		id, until, err := verifyPeer(certs, bundle, td, now)
		if err != nil {
			return
		}
		sid, _, err := x509svid.Verify(certs, bundle, x509svid.WithTime(now))
		if err != nil {
			t.Fatalf("accepted a chain go-spiffe rejects: %v", err)
		}
		if want, _ := auth.SPIFFEID(td, id); sid != want {
			t.Fatalf("identity %d, go-spiffe says %s", id, sid)
		}
		if until.After(certs[0].NotAfter) {
			t.Fatalf("proof lasts until %s, beyond the leaf's %s", until, certs[0].NotAfter)
		}
	})
}
