package e2e

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/nodemesh/nodemesh/gateway"
)

// startIngressMesh starts a node whose Ingress listeners use free ports
// (80 and 443 may be taken, and other tests run beside this one).
func startIngressMesh(t *testing.T, backends []string, o gateway.IngressOptions) (m *mesh, httpPort, httpsPort int) {
	httpPort, httpsPort = freePort(t), freePort(t)
	o.HTTPPort, o.HTTPSPort = int32(httpPort), int32(httpsPort)
	return startMesh(t, true, backends, withIngress(o)), httpPort, httpsPort
}

// serviceOn is m.service with the Service port of the caller's choice.
func (m *mesh) serviceOn(ns, name, backend string, port int) string {
	return strings.Replace(m.service(ns, name, backend), "port: 80,", fmt.Sprintf("port: %d,", port), 1)
}

// TestIngressBasic runs Cilium's basic Ingress example (bookinfo, no
// host): /details goes to details, everything else to productpage, over
// the builtin proxy at the address the agent assigned. The example's
// "/ratings answers 404" is bookinfo's productpage answering for a page it
// does not have: the request reaches productpage here too. The backend
// sees the client in X-Forwarded-For and X-Envoy-External-Address.
func TestIngressBasic(t *testing.T) {
	m, httpPort, _ := startIngressMesh(t, []string{"details", "productpage"}, gateway.IngressOptions{})
	m.apply(m.serviceOn("default", "details", "details", 9080) + m.serviceOn("default", "productpage", "productpage", 9080) + `
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: basic-ingress
  namespace: default
spec:
  ingressClassName: nodemesh
  rules:
  - http:
      paths:
      - backend:
          service:
            name: details
            port:
              number: 9080
        path: /details
        pathType: Prefix
      - backend:
          service:
            name: productpage
            port:
              number: 9080
        path: /
        pathType: Prefix
`)
	addr := netip.AddrPortFrom(gatewayPool.Addr().Next(), uint16(httpPort)).String()
	for _, c := range []struct{ path, want string }{
		{"/", "productpage"},
		{"/details/1", "details"},
		{"/details", "details"},
		{"/detailsx", "productpage"},
		{"/ratings", "productpage"},
	} {
		r := get(t, addr, "GET", "bookinfo.example", c.path)
		if r.status != 200 || r.backend != c.want || r.body.Path != c.path {
			t.Errorf("GET %s: %d from %q (path %q), want 200 from %s", c.path, r.status, r.backend, r.body.Path, c.want)
		}
	}
	r := get(t, addr, "GET", "bookinfo.example", "/details/1", "X-Forwarded-For", "203.0.113.7")
	h := r.body.Headers
	// No trusted hops: the client's own X-Forwarded-For is kept and an
	// address appended (Envoy's: the peer's, or for a loopback peer the
	// node's own), and the connection's address is the external one.
	xff := h["x-forwarded-for"]
	if len(xff) != 1 || len(strings.Split(xff[0], ",")) != 2 || !strings.HasPrefix(xff[0], "203.0.113.7,") || net.ParseIP(strings.Split(xff[0], ",")[1]) == nil {
		t.Errorf("x-forwarded-for = %q, want the client's entry followed by one address", xff)
	}
	if got := h["x-envoy-external-address"]; len(got) != 1 || got[0] != "127.0.0.1" {
		t.Errorf("x-envoy-external-address = %q, want [127.0.0.1]", got)
	}

	// An Ingress of another class changes nothing.
	m.apply(m.serviceOn("default", "details", "details", 9080) + m.serviceOn("default", "productpage", "productpage", 9080) + `
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: basic-ingress, namespace: default}
spec:
  ingressClassName: cilium
  defaultBackend: {service: {name: details, port: {number: 9080}}}
`)
	if _, err := net.Dial("tcp", addr); err == nil {
		t.Errorf("%s still accepts connections after the Ingress moved to another class", addr)
	}
}

// TestIngressPathTypes runs Cilium's path-types example: every request
// lands where the example says, including after /impl.+ becomes /impl.*,
// which sorts before /impl and takes it over.
func TestIngressPathTypes(t *testing.T) {
	names := []string{"exactpath", "prefixpath", "prefixpath2", "implpath", "implpath2"}
	m, httpPort, _ := startIngressMesh(t, names, gateway.IngressOptions{})
	var svcs string
	for _, n := range names {
		svcs += m.service("default", n, n)
	}
	ingress := func(implRegex string) string {
		return svcs + fmt.Sprintf(`
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: multiple-path-types, namespace: default}
spec:
  ingressClassName: nodemesh
  rules:
  - host: pathtypes.example.com
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: prefixpath, port: {number: 80}}}}
      - {path: /impl, pathType: ImplementationSpecific, backend: {service: {name: implpath, port: {number: 80}}}}
      - {path: /exact, pathType: Exact, backend: {service: {name: exactpath, port: {number: 80}}}}
      - {path: /prefix, pathType: Prefix, backend: {service: {name: prefixpath2, port: {number: 80}}}}
      - {path: %q, pathType: ImplementationSpecific, backend: {service: {name: implpath2, port: {number: 80}}}}
`, implRegex)
	}
	addr := netip.AddrPortFrom(gatewayPool.Addr().Next(), uint16(httpPort)).String()
	check := func(path, want string) {
		t.Helper()
		if r := get(t, addr, "GET", "pathtypes.example.com", path); r.backend != want {
			t.Errorf("%s: served by %q (%d), want %s", path, r.backend, r.status, want)
		}
	}
	m.apply(ingress("/impl.+"))
	check("/", "prefixpath")
	check("/exact", "exactpath")
	check("/exact/more", "prefixpath")
	check("/prefix", "prefixpath2")
	check("/prefix/a", "prefixpath2")
	check("/prefixed", "prefixpath")
	check("/impl", "implpath")
	check("/implementation", "implpath2")
	if r := get(t, addr, "GET", "other.example.com", "/exact"); r.status != 404 {
		t.Errorf("another host: %d, want 404", r.status)
	}
	m.apply(ingress("/impl.*"))
	check("/impl", "implpath2")
}

// TestIngressTLS: an Ingress with TLS serves its host on the HTTPS port
// with the Secret's certificate (verified against the test CA, by SNI),
// and force-https redirects plaintext requests for that host to it; a
// host without TLS stays plaintext.
func TestIngressTLS(t *testing.T) {
	m, httpPort, httpsPort := startIngressMesh(t, []string{"app"}, gateway.IngressOptions{})
	certs := newTestCerts(t)
	m.apply(m.service("default", "app", "app") + certs.secret("wild", certs.wild) + `
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: tls
  namespace: default
  annotations: {ingress.cilium.io/force-https: enabled}
spec:
  ingressClassName: nodemesh
  tls:
  - hosts: [app.secure.test]
    secretName: wild
  rules:
  - host: app.secure.test
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: app, port: {number: 80}}}}
  - host: plain.test
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: app, port: {number: 80}}}}
`)
	ip := gatewayPool.Addr().Next()
	plain := netip.AddrPortFrom(ip, uint16(httpPort)).String()
	r := get(t, plain, "GET", "app.secure.test", "/a?b=1")
	if want := fmt.Sprintf("https://app.secure.test:%d/a?b=1", httpsPort); r.status != 301 || r.header.Get("Location") != want {
		t.Errorf("plaintext request for the TLS host: %d Location %q, want 301 to %s", r.status, r.header.Get("Location"), want)
	}
	if r := get(t, plain, "GET", "plain.test", "/"); r.status != 200 || r.backend != "app" {
		t.Errorf("host without TLS: %d from %q, want 200 from app", r.status, r.backend)
	}

	secure := netip.AddrPortFrom(ip, uint16(httpsPort)).String()
	tr := &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: certs.pool, ServerName: "app.secure.test"},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, secure)
		},
	}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequest("GET", "https://app.secure.test/x", nil)
	if err != nil {
		t.Fatal(err)
	}
	r = do(t, &http.Client{Transport: tr}, req)
	if r.status != 200 || r.backend != "app" || r.body.Path != "/x" {
		t.Errorf("HTTPS: %d from %q path %q, want 200 from app for /x", r.status, r.backend, r.body.Path)
	}
	if got := r.body.Headers["x-forwarded-proto"]; len(got) != 1 || got[0] != "https" {
		t.Errorf("x-forwarded-proto = %q, want [https]", got)
	}
}

// TestIngressTLSPassthrough: with ingress.cilium.io/tls-passthrough the
// proxy relays each TLS connection, untouched, to the backend of the host
// its SNI names: the client completes its handshake with the backend's own
// certificate (the proxy holds none), and each host reaches its own
// backend; an SNI no rule names, and a connection without TLS, get no
// backend.
func TestIngressTLSPassthrough(t *testing.T) {
	m, _, httpsPort := startIngressMesh(t, nil, gateway.IngressOptions{})
	certs := newTestCerts(t)
	kp, err := tls.X509KeyPair(certs.wild.cert, certs.wild.key)
	if err != nil {
		t.Fatal(err)
	}
	// Two TLS backends, each answering its own name over the bytes it
	// decrypted itself.
	backend := func(name string) (host, port string) {
		ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{kp}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go func() {
					defer c.Close()
					_ = c.SetDeadline(time.Now().Add(10 * time.Second))
					sni := ""
					if tc, ok := c.(*tls.Conn); ok && tc.Handshake() == nil {
						sni = tc.ConnectionState().ServerName
					}
					fmt.Fprintf(c, "%s saw %s\n", name, sni)
				}()
			}
		}()
		h, p, _ := net.SplitHostPort(ln.Addr().String())
		return h, p
	}
	svc := func(name string) string {
		host, port := backend(name)
		return fmt.Sprintf(`apiVersion: v1
kind: Service
metadata: {name: %[1]s, namespace: default}
spec: {ports: [{name: https, port: 443, targetPort: %[3]s}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: %[1]s, namespace: default, labels: {kubernetes.io/service-name: %[1]s}}
addressType: IPv4
ports: [{name: https, port: %[3]s}]
endpoints: [{addresses: [%[2]s], conditions: {ready: true}}]
---
`, name, host, port)
	}
	m.apply(svc("vault") + svc("shop") + `
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: pass
  namespace: default
  annotations: {ingress.cilium.io/tls-passthrough: enabled}
spec:
  ingressClassName: nodemesh
  rules:
  - host: vault.secure.test
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: vault, port: {number: 443}}}}
  - host: shop.secure.test
    http:
      paths:
      - {path: /, pathType: ImplementationSpecific, backend: {service: {name: shop, port: {number: 443}}}}
`)
	addr := netip.AddrPortFrom(gatewayPool.Addr().Next(), uint16(httpsPort)).String()
	dial := func(sni string) (string, error) {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			return "", err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		tc := tls.Client(c, &tls.Config{RootCAs: certs.pool, ServerName: sni})
		if err := tc.Handshake(); err != nil {
			return "", err
		}
		b, err := io.ReadAll(tc)
		if err != nil && len(b) == 0 {
			return "", err
		}
		return strings.TrimSpace(string(b)), nil
	}
	for _, tc := range []struct{ sni, want string }{
		{"vault.secure.test", "vault saw vault.secure.test"},
		{"shop.secure.test", "shop saw shop.secure.test"},
	} {
		var got string
		deadline := time.Now().Add(20 * time.Second)
		for {
			got, err = dial(tc.sni)
			if err == nil && got == tc.want {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("SNI %s: got %q (err %v), want %q", tc.sni, got, err, tc.want)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	if got, err := dial("other.secure.test"); err == nil {
		t.Errorf("an SNI no rule names reached %q", got)
	}
	// Plain HTTP to the TLS port reaches nothing.
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: vault.secure.test\r\n\r\n")
	if b, _ := io.ReadAll(c); strings.Contains(string(b), "saw") {
		t.Errorf("plaintext on the passthrough port reached a backend: %q", b)
	}
}
