// Package peercert verifies TLS peer certificates as Envoy's default
// certificate validator does, for both directions: servers the proxy
// connects to (UpstreamTlsContext) and clients of its listeners
// (DownstreamTlsContext).
//
// Envoy's semantics, from the decoded CertificateValidationContext
// (package resource):
//   - Without trusted_ca nothing is verified: any certificate is accepted,
//     and the connection does not count as validated.
//   - With trusted_ca the peer's chain must lead to one of its
//     certificates (any certificate in it is a trust anchor, as with
//     X509_V_FLAG_PARTIAL_CHAIN), be within its validity period and allow
//     the peer's role (server or client authentication) where the leaf
//     restricts its extended key usage. The host name is never compared
//     with the certificate: only SAN matchers check names.
//   - match_typed_subject_alt_names: at least one matcher must match one
//     of the leaf's names of its type; an exact DNS matcher also matches a
//     "*.suffix" wildcard SAN covering it.
//   - trust_chain_verification ACCEPT_UNTRUSTED: a failed verification does
//     not fail the handshake; the connection is just not validated.
//
// Verify runs inside the TLS handshake (tls.Config.VerifyConnection) and
// allocates only the intermediates pool of the chain it checks.
package peercert

import (
	"crypto/x509"
	"errors"
	"time"

	"github.com/nodemesh/nodemesh/proxylib/resource"
)

// Error is a peer certificate that failed verification; the handshake
// fails with it.
type Error struct {
	Reason string
}

func (e *Error) Error() string { return "verifying peer certificate: " + e.Reason }

// ErrNoCertificate is a peer that presented no certificate where one must
// be verified.
var ErrNoCertificate = &Error{Reason: "no certificate presented"}

// Verify checks a peer's certificate chain (leaf first) against v at now.
// client says the peer is a TLS client. It reports whether the chain was
// verified against trusted CAs; a non-nil error fails the handshake.
func Verify(chain []*x509.Certificate, v *resource.ValidationContext, client bool, now time.Time) (bool, error) {
	if v == nil {
		return false, nil
	}
	err := verify(chain, v, client, now)
	switch {
	case err == nil:
		return v.Roots != nil, nil
	case v.AcceptUntrusted:
		return false, nil
	}
	return false, err
}

func verify(chain []*x509.Certificate, v *resource.ValidationContext, client bool, now time.Time) error {
	if v.Roots == nil && len(v.SANs) == 0 {
		return nil
	}
	if len(chain) == 0 {
		return ErrNoCertificate
	}
	leaf := chain[0]
	if v.Roots != nil {
		opts := x509.VerifyOptions{Roots: v.Roots, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
		if client {
			opts.KeyUsages = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
		}
		if len(chain) > 1 {
			opts.Intermediates = x509.NewCertPool()
			for _, c := range chain[1:] {
				opts.Intermediates.AddCert(c)
			}
		}
		if _, err := leaf.Verify(opts); err != nil {
			return &Error{Reason: reason(err)}
		}
	}
	if len(v.SANs) > 0 {
		for i := range v.SANs {
			if v.SANs[i].Matches(leaf) {
				return nil
			}
		}
		return &Error{Reason: "no subject alternative name matched"}
	}
	return nil
}

func reason(err error) string {
	var ci x509.CertificateInvalidError
	if errors.As(err, &ci) && ci.Reason == x509.Expired {
		return "certificate has expired or is not yet valid"
	}
	var ua x509.UnknownAuthorityError
	if errors.As(err, &ua) {
		return "certificate signed by an untrusted authority"
	}
	return err.Error()
}
