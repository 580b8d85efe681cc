package handshake

import (
	"crypto/x509"
	"errors"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/nodemesh/nodemesh/auth"
)

// verifyPeer judges a peer's certificate chain (leaf first, as sent) and
// returns the identity it proves and when that proof ends: the earliest
// NotAfter along the verified chain, root included. It is written out
// rather than delegated so each refusal has its own reason:
//
//   - exactly one URI SAN, a SPIFFE ID of td with path /identity/<n>;
//   - the leaf is not a CA and may not sign certificates or CRLs;
//   - the leaf is valid at now;
//   - the chain verifies up to an authority of the bundle at now.
func verifyPeer(certs []*x509.Certificate, bundle *x509bundle.Bundle, td spiffeid.TrustDomain, now time.Time) (auth.Identity, time.Time, error) {
	if len(certs) == 0 {
		return 0, time.Time{}, fail(ReasonNoCertificate, "peer presented no certificate")
	}
	leaf := certs[0]
	if len(leaf.URIs) != 1 {
		return 0, time.Time{}, fail(ReasonSAN, "peer certificate has %d URI SANs, want exactly one", len(leaf.URIs))
	}
	sid, err := spiffeid.FromURI(leaf.URIs[0])
	if err != nil {
		return 0, time.Time{}, fail(ReasonSAN, "peer URI SAN %q is not a SPIFFE ID: %w", leaf.URIs[0], err)
	}
	if !sid.MemberOf(td) {
		return 0, time.Time{}, fail(ReasonTrustDomain, "peer %s is not in trust domain %s", sid, td)
	}
	id, err := auth.IdentityOf(td, sid)
	if err != nil {
		return 0, time.Time{}, fail(ReasonSAN, "peer SPIFFE ID: %w", err)
	}
	if leaf.IsCA || leaf.KeyUsage&(x509.KeyUsageCertSign|x509.KeyUsageCRLSign) != 0 {
		return 0, time.Time{}, fail(ReasonBadLeaf, "peer certificate of %s is a CA or may sign", sid)
	}
	if now.Before(leaf.NotBefore) || now.After(leaf.NotAfter) {
		return 0, time.Time{}, fail(ReasonExpired, "peer certificate of %s is valid %s to %s, not now (%s)",
			sid, leaf.NotBefore.UTC().Format(time.RFC3339), leaf.NotAfter.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	if bundle == nil || bundle.Empty() {
		return 0, time.Time{}, fail(ReasonUntrusted, "no trust bundle for %s", td)
	}
	roots := x509.NewCertPool()
	for _, a := range bundle.X509Authorities() {
		roots.AddCert(a)
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	chains, err := leaf.Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: inter,
		CurrentTime:   now,
		// SPIFFE does not mandate extended key usages; SVIDs of other
		// issuers may lack them.
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	if err != nil {
		var inv x509.CertificateInvalidError
		if errors.As(err, &inv) && inv.Reason == x509.Expired {
			return 0, time.Time{}, fail(ReasonExpired, "peer chain of %s: %w", sid, err)
		}
		return 0, time.Time{}, fail(ReasonUntrusted, "peer chain of %s: %w", sid, err)
	}
	// Of all chains that verify, the one valid longest decides.
	var until time.Time
	for _, ch := range chains {
		end := ch[0].NotAfter
		for _, c := range ch[1:] {
			if c.NotAfter.Before(end) {
				end = c.NotAfter
			}
		}
		if end.After(until) {
			until = end
		}
	}
	return id, until, nil
}
