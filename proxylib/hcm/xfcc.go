package hcm

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"strings"

	"github.com/nodemesh/nodemesh/proxylib/listener"
	"github.com/nodemesh/nodemesh/proxylib/rbac"
	"github.com/nodemesh/nodemesh/proxylib/resource"
)

// Client certificates (listener.TLSInfo) reach the connection manager in
// two ways, with Envoy's semantics:
//
//   - x-forwarded-client-cert by forward_client_cert_details: SANITIZE
//     (the default) removes it from every request; FORWARD_ONLY keeps it on
//     mTLS connections (a client certificate was presented) and removes it
//     otherwise; APPEND_FORWARD appends this hop's element to it on mTLS
//     connections; SANITIZE_SET replaces it by this hop's element there;
//     ALWAYS_FORWARD_ONLY never touches it. An element is
//     "By=<URI SAN of the proxy's certificate>" (one per SAN), "Hash=<hex
//     SHA-256 of the client certificate>", then what
//     set_current_client_cert_details asks for, in Envoy's order: Cert and
//     Chain (URL-encoded PEM, quoted), Subject (quoted, present even when
//     empty), URI (each URI SAN, "URI=" without one), DNS (each DNS SAN),
//     joined by ";".
//   - RBAC authenticated principals match the client certificate's URI
//     SANs, then DNS SANs, then subject, whenever one was presented (as in
//     Envoy, also when ACCEPT_UNTRUSTED let an unverified one through).

// hXFCC is x-forwarded-client-cert.
var hXFCC = []byte("x-forwarded-client-cert")

// setTLS records the connection's TLS session: the RBAC principal names of
// its client certificate.
func (s *stream) setTLS(t *listener.TLSInfo) {
	s.tlsInfo = t
	s.peerNames = s.peerNames[:0]
	if t == nil || len(t.PeerCertificates) == 0 {
		return
	}
	s.peerNames = rbac.AppendPeerNames(s.peerNames, t.PeerCertificates[0])
}

// mtls reports whether the client presented a certificate.
func (s *stream) mtls() bool { return s.tlsInfo != nil && len(s.tlsInfo.PeerCertificates) > 0 }

// dropXFCC says whether sanitize removes x-forwarded-client-cert.
func (s *stream) dropXFCC() bool {
	switch m := s.h.cfg.ForwardClientCert; m {
	case resource.XFCCSanitize:
		return true
	case resource.XFCCAlwaysForwardOnly:
		return false
	default:
		return !s.mtls() || m == resource.XFCCSanitizeSet
	}
}

// setXFCC writes this hop's element for APPEND_FORWARD and SANITIZE_SET on
// an mTLS connection (after sanitize removed what SANITIZE_SET replaces).
func (s *stream) setXFCC() {
	m := s.h.cfg.ForwardClientCert
	if m != resource.XFCCAppendForward && m != resource.XFCCSanitizeSet || !s.mtls() {
		return
	}
	el := xfccElement(s.tlsInfo, s.h.cfg.ClientCertDetails)
	if m == resource.XFCCAppendForward {
		if v, _, ok := s.headers.Joined("x-forwarded-client-cert", nil); ok {
			el = string(v) + "," + el
		}
	}
	s.headers.Set(hXFCC, []byte(el))
}

// xfccElement renders this hop's x-forwarded-client-cert element.
func xfccElement(t *listener.TLSInfo, d resource.ClientCertDetails) string {
	var parts []string
	if t.Local != nil {
		for _, u := range t.Local.URIs {
			parts = append(parts, "By="+u.String())
		}
	}
	peer := t.PeerCertificates[0]
	sum := sha256.Sum256(peer.Raw)
	parts = append(parts, "Hash="+hex.EncodeToString(sum[:]))
	if d.Cert {
		parts = append(parts, `Cert="`+urlEncodePEM(peer.Raw)+`"`)
	}
	if d.Chain {
		var b strings.Builder
		for _, c := range t.PeerCertificates {
			b.WriteString(urlEncodePEM(c.Raw))
		}
		parts = append(parts, `Chain="`+b.String()+`"`)
	}
	if d.Subject {
		parts = append(parts, `Subject="`+peer.Subject.String()+`"`)
	}
	if d.URI {
		if len(peer.URIs) == 0 {
			parts = append(parts, "URI=")
		}
		for _, u := range peer.URIs {
			parts = append(parts, "URI="+u.String())
		}
	}
	if d.DNS {
		for _, n := range peer.DNSNames {
			parts = append(parts, "DNS="+n)
		}
	}
	return strings.Join(parts, ";")
}

// urlEncodePEM renders a DER certificate as PEM, percent-encoding every
// byte but unreserved characters (as Envoy encodes a query parameter).
func urlEncodePEM(der []byte) string {
	p := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	const hexdig = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(p) * 3 / 2)
	for _, c := range p {
		switch {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '.', c == '_', c == '~':
			b.WriteByte(c)
		default:
			b.WriteByte('%')
			b.WriteByte(hexdig[c>>4])
			b.WriteByte(hexdig[c&15])
		}
	}
	return b.String()
}
