package translator

import (
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"

	"github.com/nodemesh/nodemesh/mesh/ir"
)

// secret emits a certificate and key for SDS. Bytes are inlined as bytes
// (not strings) so any PEM the producer hands over survives unchanged. Only
// secrets some TLS chain refers to are emitted: an SDS client only asks for
// the names its listeners mention, and a Secret nobody asks for would keep
// an ADS server from ever answering the others.
func (b *builder) secret(s *ir.Secret) error {
	h := b.hashes.Secret(s)
	if m := b.prev.secret(s.Name, h); m != nil {
		b.out.Secrets = append(b.out.Secrets, m.out)
		b.emit(m.out, m.version)
		b.next.put(s.Name, m)
		return nil
	}
	name := secretName(s.Name)
	out := &tlsv3.Secret{
		Name: name,
		Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
			CertificateChain: &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: s.Certificate}},
			PrivateKey:       &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: s.PrivateKey}},
		}},
	}
	if err := checked("secret", name, out); err != nil {
		return err
	}
	b.out.Secrets = append(b.out.Secrets, out)
	v := versionString(b.ver.start("secret").hash(h).sum())
	b.emit(out, v)
	b.next.put(s.Name, &secretMemo{hash: h, version: v, out: out})
	return nil
}
