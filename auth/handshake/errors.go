package handshake

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
)

// Reasons a handshake ends, the counter names of Stats. Every failure is
// logged with one of them.
const (
	ReasonOK            = "ok"
	ReasonTimeout       = "timeout"        // the handshake did not finish in time (slow or stalled peer)
	ReasonNotTLS        = "not_tls"        // the first bytes were not a TLS record
	ReasonTLSVersion    = "tls_version"    // the client does not offer TLS 1.3
	ReasonServerName    = "server_name"    // SNI missing, not <id>.<trust domain>, or not a local identity
	ReasonNoCertificate = "no_certificate" // the peer presented no certificate
	ReasonExpired       = "expired"        // a certificate of the peer's chain is expired or not yet valid
	ReasonTrustDomain   = "trust_domain"   // the peer's SPIFFE ID is of another trust domain
	ReasonSAN           = "san"            // not exactly one URI SAN, or it names no identity
	ReasonBadLeaf       = "bad_leaf"       // the leaf is a CA or may sign certificates
	ReasonUntrusted     = "untrusted"      // the chain does not lead to the trust bundle
	ReasonIdentity      = "identity"       // a valid SVID of another identity than expected
	ReasonRefused       = "refused"        // the peer refused our certificate (TLS alert)
	ReasonNoSVID        = "no_svid"        // this node has no SVID for the identity to present
	ReasonOverload      = "overload"       // the server's concurrency limit was reached
	ReasonPeerLimit     = "peer_limit"     // the per-peer concurrency limit was reached
	ReasonNetwork       = "network"        // connection refused, reset or closed
	ReasonTLS           = "tls"            // any other TLS failure
)

// alertProtocolVersion is TLS alert 70, protocol_version (RFC 8446 6.2).
const alertProtocolVersion = 70

var reasons = []string{ReasonOK, ReasonTimeout, ReasonNotTLS, ReasonTLSVersion, ReasonServerName,
	ReasonNoCertificate, ReasonExpired, ReasonTrustDomain, ReasonSAN, ReasonBadLeaf, ReasonUntrusted,
	ReasonIdentity, ReasonRefused, ReasonNoSVID, ReasonOverload, ReasonPeerLimit, ReasonNetwork, ReasonTLS}

// Error is a failed handshake with its reason.
type Error struct {
	Reason string
	Err    error
}

func (e *Error) Error() string { return e.Reason + ": " + e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// Rejected reports whether the peer's credentials were judged and found
// wanting (or it judged ours so), as opposed to the handshake not getting
// that far (network, timeout, overload). The auth manager drops an entry
// at once on a rejection and keeps it until expiry otherwise.
func (e *Error) Rejected() bool {
	switch e.Reason {
	case ReasonNoCertificate, ReasonExpired, ReasonTrustDomain, ReasonSAN, ReasonBadLeaf,
		ReasonUntrusted, ReasonIdentity, ReasonRefused, ReasonServerName:
		return true
	}
	return false
}

func fail(reason string, format string, args ...any) *Error {
	return &Error{Reason: reason, Err: fmt.Errorf(format, args...)}
}

// classify names the reason of a handshake error that is not already an
// *Error (those come from our own callbacks and pass through).
func classify(err error) *Error {
	var he *Error
	if errors.As(err, &he) {
		return he
	}
	var rh tls.RecordHeaderError
	var op *net.OpError
	var ne net.Error
	switch {
	case errors.As(err, &rh):
		return &Error{Reason: ReasonNotTLS, Err: err}
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded),
		errors.As(err, &ne) && ne.Timeout():
		return &Error{Reason: ReasonTimeout, Err: err}
	case errors.As(err, &op) && op.Op == "remote error":
		// crypto/tls reports a received alert this way; the alert
		// type itself is unexported, its text is not.
		if op.Err.Error() == tls.AlertError(alertProtocolVersion).Error() {
			return &Error{Reason: ReasonTLSVersion, Err: err}
		}
		return &Error{Reason: ReasonRefused, Err: err}
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed), errors.As(err, &op):
		return &Error{Reason: ReasonNetwork, Err: err}
	}
	return &Error{Reason: ReasonTLS, Err: err}
}
