package systemca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func testCert(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ca"}, NotBefore: time.Now(),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// TestLoad: SSL_CERT_FILE wins; comments, other blocks and certificates
// that do not parse are dropped; a bundle without a certificate, or too
// large, is an error.
func TestLoad(t *testing.T) {
	dir := t.TempDir()
	cert := testCert(t)
	bad := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1, 2}})
	key := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1}})
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.pem", append(append(append([]byte("# a comment\n"), cert...), bad...), key...))
	t.Setenv("SSL_CERT_FILE", good)
	b, from, err := Load()
	if err != nil || from != good || string(b) != string(cert) {
		t.Fatalf("Load() = %q, %q, %v; want the one certificate from %s", b, from, err, good)
	}
	t.Setenv("SSL_CERT_FILE", write("empty.pem", key))
	if _, _, err := Load(); err == nil || !strings.Contains(err.Error(), "no certificate") {
		t.Fatalf("a bundle without certificates: %v", err)
	}
	t.Setenv("SSL_CERT_FILE", write("big.pem", make([]byte, maxBundle+1)))
	if _, _, err := Load(); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("an oversized bundle: %v", err)
	}
	t.Setenv("SSL_CERT_FILE", filepath.Join(dir, "missing.pem"))
	if _, _, err := Load(); err == nil {
		t.Fatal("a missing SSL_CERT_FILE loaded")
	}
}
