package issuer

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net/url"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/nodemesh/nodemesh/auth"
)

// clockSkew backdates every certificate's NotBefore, so a peer whose clock
// runs a little behind ours does not reject a certificate minted just now.
// Lifetimes and schedules count from the real issue time, not NotBefore.
const clockSkew = 10 * time.Second

// authority is one CA key pair of the trust domain. The active one signs
// SVIDs; a prepared one is already in the bundle, so every verifier knows
// it before it signs anything; retired ones no longer sign and stay in the
// bundle until the last SVID they signed has expired.
type authority struct {
	cert    *x509.Certificate
	key     *ecdsa.PrivateKey // nil once retired
	created time.Time         // issue time; the rotation schedule counts from it
	// maxSVIDTTL is the longest SVID lifetime this authority signed
	// with, across restarts with different settings: what a retired
	// authority must outlive its retirement by.
	maxSVIDTTL  time.Duration
	retireAfter time.Time // retired only: drop from the bundle after this
}

// newAuthority creates a self-signed ECDSA P-256 CA for td. It may sign
// leaf certificates only (path length 0) and carries the trust domain's
// SPIFFE ID as its one URI SAN, as the X.509-SVID spec recommends for
// signing certificates.
func newAuthority(td spiffeid.TrustDomain, now time.Time, ttl, svidTTL time.Duration) (*authority, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating CA key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{"nodemesh"}, CommonName: "nodemesh " + td.Name() + " authority"},
		URIs:                  []*url.URL{td.ID().URL()},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(ttl),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("signing CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parsing CA certificate: %w", err)
	}
	return &authority{cert: cert, key: key, created: now, maxSVIDTTL: svidTTL}, nil
}

// mint signs an X.509-SVID for id: a fresh P-256 key, exactly one URI SAN
// (the identity's SPIFFE ID), usable for TLS client and server auth, never
// a CA, and never valid beyond the authority itself.
func (a *authority) mint(td spiffeid.TrustDomain, id auth.Identity, now time.Time, ttl time.Duration) (*x509svid.SVID, error) {
	sid, err := auth.SPIFFEID(td, id)
	if err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating SVID key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	notAfter := now.Add(ttl)
	if notAfter.After(a.cert.NotAfter) {
		notAfter = a.cert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{"nodemesh"}},
		URIs:                  []*url.URL{sid.URL()},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.cert, &key.PublicKey, a.key)
	if err != nil {
		return nil, fmt.Errorf("signing SVID for %s: %w", sid, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parsing SVID for %s: %w", sid, err)
	}
	return &x509svid.SVID{ID: sid, Certificates: []*x509.Certificate{cert}, PrivateKey: key}, nil
}

func randomSerial() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("generating serial number: %w", err)
	}
	return n.Add(n, big.NewInt(1)), nil
}
