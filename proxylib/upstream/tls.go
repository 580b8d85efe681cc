package upstream

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/nodemesh/nodemesh/proxylib/peercert"
	"github.com/nodemesh/nodemesh/proxylib/resource"
)

// Secrets looks SDS Secrets up by name (nil: not received).
type Secrets func(name string) *resource.Secret

// clientTLS originates TLS to a cluster's endpoints (UpstreamTlsContext).
// Certificates and validation contexts are looked up at every handshake,
// so a rotated Secret applies to the next connection.
type clientTLS struct {
	cfg     *resource.UpstreamTLS
	secrets Secrets
	h2      bool
}

// newClientTLS returns the TLS settings of a cluster's pools, nil without
// TLS.
func newClientTLS(cfg *resource.Cluster, secrets Secrets, h2 bool) *clientTLS {
	if cfg.TLS == nil {
		return nil
	}
	return &clientTLS{cfg: cfg.TLS, secrets: secrets, h2: h2}
}

// TLSError is a failed TLS handshake with an upstream endpoint; Reason is
// Envoy's transport failure reason for it.
type TLSError struct {
	Reason string
	Err    error
}

func (e *TLSError) Error() string { return "upstream TLS handshake: " + e.Err.Error() }
func (e *TLSError) Unwrap() error { return e.Err }

// TransportFailure returns Envoy's transport failure reason of an upstream
// connection error ("" when the failure was not TLS's).
func TransportFailure(err error) string {
	var te *TLSError
	if errors.As(err, &te) {
		return te.Reason
	}
	return ""
}

// Transport failure reasons as Envoy (BoringSSL) words them, for the
// failures clients tell apart; others carry Go's description.
const (
	reasonVerifyFailed  = "TLS_error:|268435581:SSL routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED:TLS_error_end"
	reasonWrongVersion  = "TLS_error:|268435703:SSL routines:OPENSSL_internal:WRONG_VERSION_NUMBER:TLS_error_end"
	reasonUnavailableFn = "TLS_error:|%s:TLS_error_end"
)

func failureReason(err error) string {
	var pe *peercert.Error
	var rh tls.RecordHeaderError
	switch {
	case errors.As(err, &pe):
		return reasonVerifyFailed
	case errors.As(err, &rh):
		return reasonWrongVersion
	}
	msg := strings.TrimPrefix(err.Error(), "tls: ")
	return fmt.Sprintf(reasonUnavailableFn, msg)
}

// config builds the handshake's settings from the Secrets in force.
func (t *clientTLS) config() (*tls.Config, error) {
	c := &tls.Config{
		ServerName: t.cfg.SNI,
		MinVersion: tls.VersionTLS12,
		NextProtos: t.cfg.ALPN,
		// Verification is Envoy's (VerifyConnection below): the chain
		// against trusted_ca and SAN matchers, never the host name.
		InsecureSkipVerify: true,
	}
	if len(c.NextProtos) == 0 {
		// Envoy offers the cluster's protocol when the context names none.
		c.NextProtos = []string{"http/1.1"}
		if t.h2 {
			c.NextProtos = []string{"h2"}
		}
	}
	if name := t.cfg.CertSecret; name != "" {
		s := t.secrets(name)
		if s == nil || s.Certificate == nil {
			return nil, fmt.Errorf("client certificate Secret %q not available", name)
		}
		c.Certificates = []tls.Certificate{*s.Certificate}
	}
	var v *resource.ValidationContext
	if pv := t.cfg.Validation; pv != nil {
		var sec *resource.ValidationContext
		if pv.Secret != "" {
			s := t.secrets(pv.Secret)
			if s == nil || s.Validation == nil {
				return nil, fmt.Errorf("validation context Secret %q not available", pv.Secret)
			}
			sec = s.Validation
		}
		v = pv.Resolve(sec)
		if len(v.SANs) > 0 && v.Roots == nil {
			return nil, errors.New("SAN matchers without trusted_ca: refusing to verify the server by name only")
		}
		if t.cfg.AutoSNISAN && t.cfg.SNI != "" {
			vv := *v
			vv.SANs = []resource.SANMatcher{{Type: resource.SANDNS, Exact: t.cfg.SNI}}
			v = &vv
		}
	}
	c.VerifyConnection = func(cs tls.ConnectionState) error {
		_, err := peercert.Verify(cs.PeerCertificates, v, false, time.Now())
		return err
	}
	return c, nil
}

// handshake runs the client handshake on nc before deadline (the cluster's
// connect timeout covers the TCP and the TLS handshake, as in Envoy).
func (t *clientTLS) handshake(ctx context.Context, nc net.Conn, deadline time.Time) (*tls.Conn, error) {
	cfg, err := t.config()
	if err != nil {
		return nil, &TLSError{Reason: fmt.Sprintf(reasonUnavailableFn, err.Error()), Err: err}
	}
	tc := tls.Client(nc, cfg)
	hctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	if err := tc.HandshakeContext(hctx); err != nil {
		return nil, &TLSError{Reason: failureReason(err), Err: err}
	}
	return tc, nil
}
