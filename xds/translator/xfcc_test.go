package translator

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"testing"
	"time"

	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"

	"github.com/nodemesh/nodemesh/mesh/ir"
)

// TestClientCertChainsSanitizeXFCC: an HTTPS chain validating client
// certificates, strictly or with unverified clients let in (Gateway API's
// AllowInsecureFallback), never trusts an x-forwarded-client-cert a client
// sends: its connection manager is SANITIZE (removes the header from
// every request) and adds no element of its own. Forwarding modes would
// let a client without a certificate, or with an unverified one, present
// a forged identity to the backend.
func TestClientCertChainsSanitizeXFCC(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "client CA"}, IsCA: true, BasicConstraintsValid: true,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	for _, unverified := range []bool{false, true} {
		cfg := baseConfig()
		ch := cfg.Listeners[0].Chains[0]
		ch.TLS = &ir.TLS{Certificates: []string{"s"}, ALPN: []string{"h2", "http/1.1"}, ClientCA: ca, AllowUnverifiedClients: unverified}
		cfg.Secrets = []*ir.Secret{{Name: "s", Certificate: []byte("cert"), PrivateKey: []byte("key")}}
		res, err := Translate(cfg)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, l := range res.Listeners {
			for _, fc := range l.FilterChains {
				for _, f := range fc.Filters {
					h := &hcmv3.HttpConnectionManager{}
					if err := f.GetTypedConfig().UnmarshalTo(h); err != nil {
						continue
					}
					n++
					if m := h.GetForwardClientCertDetails(); m != hcmv3.HttpConnectionManager_SANITIZE {
						t.Errorf("unverified=%v: forward_client_cert_details %v, want SANITIZE", unverified, m)
					}
					if h.GetSetCurrentClientCertDetails() != nil {
						t.Errorf("unverified=%v: set_current_client_cert_details %v, want none", unverified, h.GetSetCurrentClientCertDetails())
					}
				}
			}
		}
		if n == 0 {
			t.Fatalf("unverified=%v: no connection manager emitted", unverified)
		}
	}
}
