package proxylib_test

import (
	"cmp"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
)

// TestTransportProtocolOnePort serves plain HTTP and HTTPS on one port, the
// chains told apart by filter_chain_match.transport_protocol as the TLS
// inspector detects it (an Ingress host-network listener's shape): a
// plaintext request reaches the raw_buffer chain's routes, a TLS one the
// tls chains' (by SNI, then the catch-all), and no connection lands on the
// other kind of chain.
func TestTransportProtocolOnePort(t *testing.T) {
	ca := newCA(t, "ingress CA")
	certPEM, keyPEM, _ := ca.issue(t, leaf{cn: "ingress", dns: []string{"a.example", "other.example"}})
	plainBE, namedBE, anyBE := startBackend(t, "plain", nil), startBackend(t, "named", nil), startBackend(t, "any-tls", nil)
	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)

	x := startXDS(t, "", nil)
	addr := freeAddr(t)
	plain := chainFor(t, hcmFor(t, "plain", nil))
	plain.FilterChainMatch = &listenerv3.FilterChainMatch{TransportProtocol: "raw_buffer"}
	named := tlsChain(t, hcmFor(t, "named", nil), "cert", []string{"http/1.1"}, "a.example")
	named.FilterChainMatch.TransportProtocol = "tls"
	anyTLS := tlsChain(t, hcmFor(t, "any", nil), "cert", []string{"http/1.1"})
	anyTLS.FilterChainMatch.TransportProtocol = "tls"
	l := &listenerv3.Listener{Name: "shared", Address: sockAddr(addr), ListenerFilters: []*listenerv3.ListenerFilter{tlsInspector(t)},
		FilterChains: []*listenerv3.FilterChain{plain, named, anyTLS}}
	x.set(l, routeConfig("plain", vh("p", "*", prefixRoute("/", "plain"))), routeConfig("named", vh("n", "*", prefixRoute("/", "named"))),
		routeConfig("any", vh("a", "*", prefixRoute("/", "any"))),
		edsCluster(t, "plain", false, nil), cla("plain", plainBE.addr), edsCluster(t, "named", false, nil), cla("named", namedBE.addr),
		edsCluster(t, "any", false, nil), cla("any", anyBE.addr), secret("cert", certPEM, keyPEM))
	startProxy(t, x.sock)
	x.waitApplied()
	if n := x.nackMessages(); len(n) > 0 {
		t.Fatalf("NACKed: %v", n)
	}

	backendOf := func(t *testing.T, scheme, sni string) (string, error) {
		t.Helper()
		tr := &http.Transport{TLSClientConfig: &tls.Config{ServerName: sni, RootCAs: roots},
			DialContext: (&net.Dialer{}).DialContext}
		c := &http.Client{Transport: tr, Timeout: 5 * time.Second}
		defer tr.CloseIdleConnections()
		req, _ := http.NewRequest("GET", scheme+"://"+addr+"/x", nil)
		req.Host = cmp.Or(sni, "plain.example")
		resp, err := c.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var e echo
		if err := json.Unmarshal(b, &e); err != nil {
			return "", err
		}
		return e.Backend, nil
	}
	waitFor(t, func() bool { _, err := backendOf(t, "http", ""); return err == nil }, "the shared listener")
	for _, tc := range []struct {
		name, scheme, sni, want string
	}{
		{"plain text", "http", "", "plain"},
		{"TLS with a named server name", "https", "a.example", "named"},
		{"TLS with another server name", "https", "other.example", "any-tls"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := backendOf(t, tc.scheme, tc.sni)
			if err != nil || got != tc.want {
				t.Fatalf("backend %q, %v; want %q", got, err, tc.want)
			}
		})
	}

	// Without a catch-all tls chain, TLS for an unnamed server name gets no
	// chain (the plain one is raw_buffer only): the connection is closed
	// instead of HTTP reading a ClientHello.
	x.set(&listenerv3.Listener{Name: "shared", Address: sockAddr(addr), ListenerFilters: []*listenerv3.ListenerFilter{tlsInspector(t)},
		FilterChains: []*listenerv3.FilterChain{plain, named}},
		routeConfig("plain", vh("p", "*", prefixRoute("/", "plain"))), routeConfig("named", vh("n", "*", prefixRoute("/", "named"))),
		edsCluster(t, "plain", false, nil), cla("plain", plainBE.addr), edsCluster(t, "named", false, nil), cla("named", namedBE.addr),
		secret("cert", certPEM, keyPEM))
	x.waitApplied()
	waitFor(t, func() bool { _, err := backendOf(t, "https", "other.example"); return err != nil }, "the catch-all TLS chain to go")
	_, err := backendOf(t, "https", "other.example")
	if err == nil || strings.Contains(err.Error(), "malformed HTTP") {
		t.Fatalf("TLS for an unnamed server name: %v, want the connection closed", err)
	}
	if got, err := backendOf(t, "http", ""); err != nil || got != "plain" {
		t.Fatalf("plain text after the update: %q, %v", got, err)
	}
}
