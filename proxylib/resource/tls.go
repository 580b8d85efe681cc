package resource

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/proto"
)

// SANType is the kind of subject alternative name a matcher reads.
type SANType uint8

// Subject alternative name kinds (SubjectAltNameMatcher.san_type).
const (
	SANDNS SANType = iota
	SANURI
	SANEmail
	SANIP
)

// SANMatcher is a decoded SubjectAltNameMatcher.
type SANMatcher struct {
	Type  SANType
	Match StringMatch
	// Exact is the exact operand of a DNS matcher, which also matches a
	// wildcard SAN covering it ("*.example.com" matches
	// "api.example.com"), as Envoy evaluates DNS SANs (RFC 6125 6.4.3).
	Exact string
}

// Matches reports whether a certificate's subject alternative names
// satisfy the matcher.
func (m *SANMatcher) Matches(c *x509.Certificate) bool {
	switch m.Type {
	case SANDNS:
		for _, n := range c.DNSNames {
			if m.Exact != "" && dnsNameMatch(m.Exact, n) || m.Exact == "" && m.Match.Match([]byte(n)) {
				return true
			}
		}
	case SANURI:
		for _, u := range c.URIs {
			if m.Match.Match([]byte(u.String())) {
				return true
			}
		}
	case SANEmail:
		for _, e := range c.EmailAddresses {
			if m.Match.Match([]byte(e)) {
				return true
			}
		}
	case SANIP:
		for _, ip := range c.IPAddresses {
			if m.Match.Match([]byte(ip.String())) {
				return true
			}
		}
	}
	return false
}

// dnsNameMatch reports whether name matches a DNS SAN, which may be a
// "*.suffix" wildcard standing for exactly one label; both compare
// case-insensitively.
func dnsNameMatch(name, san string) bool {
	name, san = strings.ToLower(name), strings.ToLower(san)
	if name == san {
		return true
	}
	if rest, ok := strings.CutPrefix(san, "*"); ok && strings.HasPrefix(rest, ".") {
		label, suffix, found := strings.Cut(name, ".")
		return found && label != "" && "."+suffix == rest
	}
	return false
}

// ValidationContext is a decoded CertificateValidationContext: how a peer's
// certificate is verified.
type ValidationContext struct {
	// Roots verify the peer's chain (trusted_ca); nil: the chain is not
	// verified, as in Envoy without trusted_ca.
	Roots *x509.CertPool
	// SANs must match (any of them) when set
	// (match_typed_subject_alt_names).
	SANs []SANMatcher
	// AcceptUntrusted permits a connection whose certificate fails
	// verification (trust_chain_verification ACCEPT_UNTRUSTED); it then
	// counts as not validated.
	AcceptUntrusted bool
}

// PeerValidation is where a TLS context's validation context comes from:
// inline (validation_context, or combined_validation_context's default),
// and an SDS Secret merged over it as Envoy merges the two (the Secret's
// trusted_ca replaces the inline one, SAN matchers add up, its
// trust_chain_verification wins when set).
type PeerValidation struct {
	Inline *ValidationContext
	Secret string // SDS name of a validation_context Secret; "" none
}

// Resolve returns the validation context in force, given the Secret's
// (nil when it has not arrived, or none is referenced).
func (p *PeerValidation) Resolve(secret *ValidationContext) *ValidationContext {
	switch {
	case p.Secret == "":
		return p.Inline
	case secret == nil:
		return nil
	case p.Inline == nil:
		return secret
	}
	out := *p.Inline
	if secret.Roots != nil {
		out.Roots = secret.Roots
	}
	out.SANs = append(append([]SANMatcher(nil), p.Inline.SANs...), secret.SANs...)
	out.AcceptUntrusted = out.AcceptUntrusted || secret.AcceptUntrusted
	return &out
}

// UpstreamTLS is a decoded UpstreamTlsContext: the cluster connects to its
// endpoints with TLS.
type UpstreamTLS struct {
	// SNI is sent as the server name ("" sends none); it is not checked
	// against the server's certificate unless AutoSNISAN.
	SNI  string
	ALPN []string
	// CertSecret names the SDS Secret with the client certificate ("":
	// none).
	CertSecret string
	// Validation verifies the server; nil: the server is not verified, as
	// in Envoy without a validation context.
	Validation *PeerValidation
	// AutoSNISAN replaces the SAN matchers by a DNS SAN matching SNI
	// (auto_sni_san_validation).
	AutoSNISAN bool
	// Key fingerprints the configuration: connections made under another
	// key are never shared.
	Key string
}

// Secrets returns the SDS names the context references.
func (u *UpstreamTLS) Secrets() []string {
	var out []string
	if u.CertSecret != "" {
		out = append(out, u.CertSecret)
	}
	if u.Validation != nil && u.Validation.Secret != "" {
		out = append(out, u.Validation.Secret)
	}
	return out
}

// decodeCommon decodes the CommonTlsContext fields both directions share:
// the SDS certificate names, ALPN and the validation context.
func decodeCommon(c *tlsv3.CommonTlsContext, p path) (certs []string, alpn []string, v *PeerValidation, err error) {
	for k, sds := range c.GetTlsCertificateSdsSecretConfigs() {
		sp := append(p, "tls_certificate_sds_secret_configs", "["+strconv.Itoa(k)+"]")
		if err := adsSource(sds.GetSdsConfig(), append(sp, "sds_config")); err != nil {
			return nil, nil, nil, err
		}
		certs = append(certs, sds.GetName())
	}
	switch vc := c.GetValidationContextType().(type) {
	case nil:
	case *tlsv3.CommonTlsContext_ValidationContext:
		inline, err := decodeValidation(vc.ValidationContext, append(p, "validation_context"))
		if err != nil {
			return nil, nil, nil, err
		}
		if err := needCA(inline, append(p, "validation_context")); err != nil {
			return nil, nil, nil, err
		}
		v = &PeerValidation{Inline: inline}
	case *tlsv3.CommonTlsContext_ValidationContextSdsSecretConfig:
		sp := append(p, "validation_context_sds_secret_config")
		if err := adsSource(vc.ValidationContextSdsSecretConfig.GetSdsConfig(), append(sp, "sds_config")); err != nil {
			return nil, nil, nil, err
		}
		v = &PeerValidation{Secret: vc.ValidationContextSdsSecretConfig.GetName()}
	case *tlsv3.CommonTlsContext_CombinedValidationContext:
		cp := append(p, "combined_validation_context")
		inline, err := decodeValidation(vc.CombinedValidationContext.GetDefaultValidationContext(), append(cp, "default_validation_context"))
		if err != nil {
			return nil, nil, nil, err
		}
		sds := vc.CombinedValidationContext.GetValidationContextSdsSecretConfig()
		if err := adsSource(sds.GetSdsConfig(), append(cp, "validation_context_sds_secret_config", "sds_config")); err != nil {
			return nil, nil, nil, err
		}
		v = &PeerValidation{Inline: inline, Secret: sds.GetName()}
	default:
		return nil, nil, nil, fieldErr(p, "validation context %T not supported by nodemesh-proxy", vc)
	}
	return certs, c.GetAlpnProtocols(), v, nil
}

// needCA refuses SAN matchers without a trusted CA, as Envoy does: SANs
// are easily spoofed, so checking only them would be no verification.
func needCA(v *ValidationContext, p path) error {
	if len(v.SANs) > 0 && v.Roots == nil {
		return fieldErr(append(p, "match_typed_subject_alt_names"), "SAN-based verification of peer certificates without trusted_ca is insecure and not allowed")
	}
	return nil
}

// decodeValidation decodes a CertificateValidationContext; the allowlist
// already refused the options the proxy does not implement (CRLs, SPKI
// and hash pins, expired certificates, custom validators ...).
func decodeValidation(c *tlsv3.CertificateValidationContext, p path) (*ValidationContext, error) {
	out := &ValidationContext{}
	if ca := c.GetTrustedCa(); ca != nil {
		pool, err := parseCAs(dataSource(ca))
		if err != nil {
			return nil, fieldErr(append(p, "trusted_ca"), "%v", err)
		}
		out.Roots = pool
	}
	for i, m := range c.GetMatchTypedSubjectAltNames() {
		mp := append(p, "match_typed_subject_alt_names", "["+strconv.Itoa(i)+"]")
		sm, err := stringMatch(m.GetMatcher(), append(mp, "matcher"))
		if err != nil {
			return nil, err
		}
		sa := SANMatcher{Match: sm}
		switch m.GetSanType() {
		case tlsv3.SubjectAltNameMatcher_DNS:
			sa.Type = SANDNS
			if ex, ok := m.GetMatcher().GetMatchPattern().(*matcherv3.StringMatcher_Exact); ok {
				sa.Exact = ex.Exact
			}
		case tlsv3.SubjectAltNameMatcher_URI:
			sa.Type = SANURI
		case tlsv3.SubjectAltNameMatcher_EMAIL:
			sa.Type = SANEmail
		case tlsv3.SubjectAltNameMatcher_IP_ADDRESS:
			sa.Type = SANIP
		default:
			return nil, fieldErr(append(mp, "san_type"), "%s not supported by nodemesh-proxy", m.GetSanType())
		}
		out.SANs = append(out.SANs, sa)
	}
	switch c.GetTrustChainVerification() {
	case tlsv3.CertificateValidationContext_VERIFY_TRUST_CHAIN:
	case tlsv3.CertificateValidationContext_ACCEPT_UNTRUSTED:
		out.AcceptUntrusted = true
	default:
		return nil, fieldErr(append(p, "trust_chain_verification"), "unknown value %d", int32(c.GetTrustChainVerification()))
	}
	return out, nil
}

// parseCAs parses PEM certificates, refusing anything else, as Envoy
// refuses a trusted_ca it cannot load whole.
func parseCAs(b []byte) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	n := 0
	for rest := b; ; {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			if len(strings.TrimSpace(string(rest))) > 0 {
				return nil, errors.New("loading trusted CA certificates: data that is not PEM")
			}
			break
		}
		if blk.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("loading trusted CA certificates: unexpected PEM block %q", blk.Type)
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("loading trusted CA certificates: %w", err)
		}
		pool.AddCert(c)
		n++
	}
	if n == 0 {
		return nil, errors.New("loading trusted CA certificates: no certificate")
	}
	return pool, nil
}

// decodeUpstreamTLS decodes a cluster's transport_socket.
func decodeUpstreamTLS(ts *corev3.TransportSocket, p path) (*UpstreamTLS, error) {
	tp := append(p, "typed_config")
	var ctx tlsv3.UpstreamTlsContext
	if ts.GetTypedConfig().GetTypeUrl() != "type.googleapis.com/"+utlsName {
		return nil, fieldErr(tp, "a cluster's transport socket must be an UpstreamTlsContext")
	}
	if err := ts.GetTypedConfig().UnmarshalTo(&ctx); err != nil {
		return nil, fieldErr(tp, "decoding: %v", err)
	}
	cp := append(tp, "(UpstreamTlsContext)")
	certs, alpn, v, err := decodeCommon(ctx.GetCommonTlsContext(), append(cp, "common_tls_context"))
	if err != nil {
		return nil, err
	}
	if len(certs) > 1 {
		return nil, fieldErr(append(cp, "common_tls_context", "tls_certificate_sds_secret_configs"), "a client context takes one certificate")
	}
	raw, err := proto.MarshalOptions{Deterministic: true}.Marshal(&ctx)
	if err != nil {
		return nil, fieldErr(tp, "encoding: %v", err)
	}
	sum := sha256.Sum256(raw)
	out := &UpstreamTLS{SNI: ctx.GetSni(), ALPN: alpn, Validation: v, AutoSNISAN: ctx.GetAutoSniSanValidation(), Key: string(sum[:])}
	if len(certs) == 1 {
		out.CertSecret = certs[0]
	}
	if out.AutoSNISAN && v == nil {
		return nil, fieldErr(append(cp, "auto_sni_san_validation"), "needs a validation context with trusted_ca (a SAN alone verifies nothing)")
	}
	if out.SNI != "" && !validSNI(out.SNI) {
		return nil, fieldErr(append(cp, "sni"), "%q is not a host name", out.SNI)
	}
	return out, nil
}

// validSNI accepts a DNS name (an IP literal is no server name).
func validSNI(s string) bool {
	if net.ParseIP(s) != nil || len(s) > 253 {
		return false
	}
	for _, l := range strings.Split(s, ".") {
		if l == "" || len(l) > 63 {
			return false
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}
