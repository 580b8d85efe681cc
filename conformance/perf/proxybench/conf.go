package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"math/big"
	"strings"
	"time"
)

// serverName is the TLS name every proxy's certificate carries.
const serverName = "bench.example"

func nginxCommon(dir, name string, workers int) string {
	return fmt.Sprintf(`daemon off;
user root;
worker_processes %[3]d;
pid %[1]s/nginx-%[2]s.pid;
error_log %[1]s/nginx-%[2]s-error.log warn;
events { worker_connections 8192; }
`, dir, name, workers)
}

func nginxTemps(dir string) string {
	return fmt.Sprintf(`  access_log off;
  client_body_temp_path %[1]s/tmp-body;
  proxy_temp_path %[1]s/tmp-proxy;
  fastcgi_temp_path %[1]s/tmp-fastcgi;
  uwsgi_temp_path %[1]s/tmp-uwsgi;
  scgi_temp_path %[1]s/tmp-scgi;
  keepalive_requests 10000000;
  keepalive_timeout 300s;
  http2_max_requests 10000000;
`, dir)
}

func nginxBackend(dir, name, addr string, workers, body int) string {
	return nginxCommon(dir, name, workers) + "http {\n" + nginxTemps(dir) +
		fmt.Sprintf("  server {\n    listen %s;\n    location / { return 200 \"%s\"; }\n  }\n}\n", addr, strings.Repeat("x", body))
}

// nginxListen is one listen directive of the proxy: plain HTTP/1.1,
// HTTP/2 with prior knowledge (h2c) or TLS with ALPN h2.
type nginxListen struct {
	addr string
	kind string // "h1", "h2c" or "tls"
}

func nginxProxy(dir, name string, workers int, backend string, listens []nginxListen, certFile, keyFile string) string {
	var servers strings.Builder
	for _, l := range listens {
		listen := l.addr
		switch l.kind {
		case "h2c":
			listen += " http2"
		case "tls":
			listen += " ssl http2"
		}
		fmt.Fprintf(&servers, "  server {\n    listen %s;\n", listen)
		if l.kind == "tls" {
			fmt.Fprintf(&servers, "    ssl_certificate %s;\n    ssl_certificate_key %s;\n    ssl_protocols TLSv1.3;\n", certFile, keyFile)
		}
		servers.WriteString("    location / {\n      proxy_pass http://backend;\n      proxy_http_version 1.1;\n      proxy_set_header Connection \"\";\n    }\n  }\n")
	}
	return nginxCommon(dir, name, workers) + "http {\n" + nginxTemps(dir) + fmt.Sprintf(`  upstream backend {
    server %s;
    keepalive 512;
  }
`, backend) + servers.String() + "}\n"
}

func haproxyConf(threads int, addr, backend string) string {
	return fmt.Sprintf(`global
  nbthread %d
  maxconn 4000
defaults
  mode http
  timeout connect 5s
  timeout client 120s
  timeout server 120s
  http-reuse always
frontend fe
  bind %s
  default_backend be
backend be
  server s1 %s
`, threads, addr, backend)
}

// gateway describes the Gateway API configuration of one nodemesh
// instance: an HTTP listener (HTTP/1.1 and h2c), optionally an HTTPS
// listener, and routes to the backend.
type gateway struct {
	ip          string
	httpPort    int
	httpsPort   int    // 0: no HTTPS listener
	certPEM     []byte // the HTTPS listener's certificate and key
	keyPEM      []byte
	backendPort int
	routes      int // HTTPRoutes: 1 matches every request; n > 1 adds hosts r0..r(n-1).example
}

func (g gateway) yaml() string {
	var b strings.Builder
	fmt.Fprintf(&b, `apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: nodemesh}
spec: {controllerName: nodemesh.io/gateway-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: bench, namespace: default}
spec:
  gatewayClassName: nodemesh
  addresses: [{type: IPAddress, value: %s}]
  listeners:
  - {name: http, protocol: HTTP, port: %d}
`, g.ip, g.httpPort)
	if g.httpsPort != 0 {
		fmt.Fprintf(&b, `  - name: https
    protocol: HTTPS
    port: %d
    tls: {certificateRefs: [{name: bench-cert}]}
---
apiVersion: v1
kind: Secret
metadata: {name: bench-cert, namespace: default}
type: kubernetes.io/tls
data:
  tls.crt: %s
  tls.key: %s
`, g.httpsPort, base64.StdEncoding.EncodeToString(g.certPEM), base64.StdEncoding.EncodeToString(g.keyPEM))
	}
	fmt.Fprintf(&b, `---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: bench, namespace: default}
spec:
  parentRefs: [{name: bench}]
  rules: [{backendRefs: [{name: backend, port: 80}]}]
---
apiVersion: v1
kind: Service
metadata: {name: backend, namespace: default}
spec: {ports: [{name: http, port: 80, targetPort: %[1]d}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: backend, namespace: default, labels: {kubernetes.io/service-name: backend}}
addressType: IPv4
ports: [{name: http, port: %[1]d}]
endpoints: [{addresses: [127.0.0.1], conditions: {ready: true}}]
`, g.backendPort)
	// Each further route is a host of its own with a path match and a
	// header added, so the proxy holds one virtual host per route.
	for i := range max(g.routes-1, 0) {
		fmt.Fprintf(&b, `---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r%[1]d, namespace: default}
spec:
  parentRefs: [{name: bench}]
  hostnames: [r%[1]d.example]
  rules:
  - matches: [{path: {type: PathPrefix, value: /r%[1]d}}]
    filters: [{type: RequestHeaderModifier, requestHeaderModifier: {add: [{name: x-route, value: r%[1]d}]}}]
    backendRefs: [{name: backend, port: 80}]
`, i)
	}
	return b.String()
}

// selfSigned makes the run's ECDSA P-256 certificate for serverName.
func selfSigned() (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: serverName},
		DNSNames:     []string{serverName},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	kd, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd}), nil
}
