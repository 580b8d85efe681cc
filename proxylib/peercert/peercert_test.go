package peercert

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"net/url"
	"testing"
	"time"

	"github.com/nodemesh/nodemesh/proxylib/resource"
)

type authority struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newAuthority(t *testing.T, name string, parent *authority) *authority {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	signer, signKey := tmpl, key
	if parent != nil {
		signer, signKey = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signKey)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return &authority{cert: c, key: key}
}

func (a *authority) leaf(t *testing.T, mod func(*x509.Certificate)) *x509.Certificate {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "leaf"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	if mod != nil {
		mod(tmpl)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.cert, &key.PublicKey, a.key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c
}

func pool(cs ...*x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range cs {
		p.AddCert(c)
	}
	return p
}

func exact(kind resource.SANType, v string) resource.SANMatcher {
	m := resource.SANMatcher{Type: kind, Match: resource.StringMatch{Exact: v}}
	if kind == resource.SANDNS {
		m.Exact = v
	}
	return m
}

func TestVerify(t *testing.T) {
	root := newAuthority(t, "root", nil)
	inter := newAuthority(t, "intermediate", root)
	stranger := newAuthority(t, "stranger", nil)
	server := inter.leaf(t, func(c *x509.Certificate) {
		c.DNSNames = []string{"api.example.com", "*.wild.example.com"}
		c.URIs = []*url.URL{{Scheme: "spiffe", Host: "td", Path: "/ns/a/sa/b"}}
		c.IPAddresses = []net.IP{net.ParseIP("10.0.0.1")}
		c.EmailAddresses = []string{"ops@example.com"}
	})
	client := inter.leaf(t, func(c *x509.Certificate) { c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth} })
	expired := inter.leaf(t, func(c *x509.Certificate) {
		c.NotBefore, c.NotAfter = time.Now().Add(-2*time.Hour), time.Now().Add(-time.Hour)
	})
	foreign := stranger.leaf(t, nil)
	now := time.Now()
	chain := []*x509.Certificate{server, inter.cert}
	for _, tc := range []struct {
		name      string
		chain     []*x509.Certificate
		v         *resource.ValidationContext
		client    bool
		validated bool
		fails     bool
	}{
		{"no validation context", []*x509.Certificate{foreign}, nil, false, false, false},
		{"no trusted CA: anything goes", []*x509.Certificate{foreign}, &resource.ValidationContext{}, false, false, false},
		{"chain to the root", chain, &resource.ValidationContext{Roots: pool(root.cert)}, false, true, false},
		{"intermediate as anchor", []*x509.Certificate{server}, &resource.ValidationContext{Roots: pool(inter.cert)}, false, true, false},
		{"missing intermediate", []*x509.Certificate{server}, &resource.ValidationContext{Roots: pool(root.cert)}, false, false, true},
		{"untrusted", []*x509.Certificate{foreign}, &resource.ValidationContext{Roots: pool(root.cert)}, false, false, true},
		{"expired", []*x509.Certificate{expired, inter.cert}, &resource.ValidationContext{Roots: pool(root.cert)}, false, false, true},
		{"server certificate as a client", chain, &resource.ValidationContext{Roots: pool(root.cert)}, true, false, true},
		{"client certificate as a client", []*x509.Certificate{client, inter.cert}, &resource.ValidationContext{Roots: pool(root.cert)}, true, true, false},
		{"no certificate", nil, &resource.ValidationContext{Roots: pool(root.cert)}, true, false, true},
		{"DNS SAN", chain, &resource.ValidationContext{Roots: pool(root.cert), SANs: []resource.SANMatcher{exact(resource.SANDNS, "API.example.com")}}, false, true, false},
		{"DNS wildcard SAN", chain, &resource.ValidationContext{Roots: pool(root.cert), SANs: []resource.SANMatcher{exact(resource.SANDNS, "x.wild.example.com")}}, false, true, false},
		{"DNS wildcard covers one label", chain, &resource.ValidationContext{Roots: pool(root.cert), SANs: []resource.SANMatcher{exact(resource.SANDNS, "a.b.wild.example.com")}}, false, false, true},
		{"DNS wildcard needs a label", chain, &resource.ValidationContext{Roots: pool(root.cert), SANs: []resource.SANMatcher{exact(resource.SANDNS, "wild.example.com")}}, false, false, true},
		{"URI SAN", chain, &resource.ValidationContext{Roots: pool(root.cert), SANs: []resource.SANMatcher{exact(resource.SANURI, "spiffe://td/ns/a/sa/b")}}, false, true, false},
		{"IP SAN", chain, &resource.ValidationContext{Roots: pool(root.cert), SANs: []resource.SANMatcher{exact(resource.SANIP, "10.0.0.1")}}, false, true, false},
		{"email SAN", chain, &resource.ValidationContext{Roots: pool(root.cert), SANs: []resource.SANMatcher{exact(resource.SANEmail, "ops@example.com")}}, false, true, false},
		{"any SAN matcher", chain, &resource.ValidationContext{Roots: pool(root.cert), SANs: []resource.SANMatcher{
			exact(resource.SANURI, "spiffe://elsewhere"), exact(resource.SANDNS, "api.example.com")}}, false, true, false},
		{"no SAN matched", chain, &resource.ValidationContext{Roots: pool(root.cert), SANs: []resource.SANMatcher{exact(resource.SANDNS, "other.example.com")}}, false, false, true},
		{"URI matcher ignores DNS", chain, &resource.ValidationContext{Roots: pool(root.cert), SANs: []resource.SANMatcher{exact(resource.SANURI, "api.example.com")}}, false, false, true},
		{"accept untrusted", []*x509.Certificate{foreign}, &resource.ValidationContext{Roots: pool(root.cert), AcceptUntrusted: true}, false, false, false},
		{"accept untrusted, trusted", chain, &resource.ValidationContext{Roots: pool(root.cert), AcceptUntrusted: true}, false, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ok, err := Verify(tc.chain, tc.v, tc.client, now)
			var pe *Error
			if tc.fails != (err != nil) || err != nil && !errors.As(err, &pe) || ok != tc.validated {
				t.Fatalf("validated %v, err %v; want validated %v, failure %v", ok, err, tc.validated, tc.fails)
			}
		})
	}
}
