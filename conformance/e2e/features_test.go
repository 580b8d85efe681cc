package e2e

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"

	"golang.org/x/net/http2"
	"k8s.io/apimachinery/pkg/api/meta"

	"github.com/nodemesh/nodemesh/internal/agent/api"
)

// featureConfig is one configuration exercising every Gateway API feature
// the foundation supports, each on its own hostname.
func featureConfig(m *mesh, certs *testCerts) string {
	var b strings.Builder
	b.WriteString(`apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: nodemesh}
spec: {controllerName: nodemesh.io/gateway-controller}
---
apiVersion: v1
kind: Namespace
metadata: {name: default}
---
apiVersion: v1
kind: Namespace
metadata: {name: other}
---
`)
	fmt.Fprintf(&b, `apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: web, namespace: default}
spec:
  gatewayClassName: nodemesh
  addresses: [{type: IPAddress, value: 127.0.101.1}]
  listeners:
  - {name: http, protocol: HTTP, port: %[1]d, allowedRoutes: {namespaces: {from: All}}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: tls, namespace: default}
spec:
  gatewayClassName: nodemesh
  addresses: [{type: IPAddress, value: 127.0.101.2}]
  listeners:
  - name: wild
    protocol: HTTPS
    port: %[1]d
    hostname: "*.secure.test"
    tls: {certificateRefs: [{name: wild-cert}]}
  - name: api
    protocol: HTTPS
    port: %[1]d
    hostname: api.other.test
    tls: {certificateRefs: [{name: api-cert}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: second, namespace: default}
spec:
  gatewayClassName: nodemesh
  addresses: [{type: IPAddress, value: 127.0.101.3}]
  listeners:
  - {name: http, protocol: HTTP, port: %[1]d}
---
`, m.port)
	b.WriteString(certs.secret("wild-cert", certs.wild) + certs.secret("api-cert", certs.api))
	b.WriteString(m.service("default", "v1", "v1") + m.service("default", "v2", "v2") + m.service("default", "v3", "v3"))
	b.WriteString(m.service("other", "v1", "v1"))
	b.WriteString(`apiVersion: v1
kind: Service
metadata: {name: empty, namespace: default}
spec: {ports: [{name: http, port: 80}]}
---
`)
	b.WriteString(routesYAML)
	return b.String()
}

const routesYAML = `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: paths, namespace: default}
spec:
  parentRefs: [{name: web}]
  hostnames: [paths.test]
  rules:
  - matches: [{path: {type: PathPrefix, value: /}}]
    backendRefs: [{name: v3, port: 80}]
  - matches: [{path: {type: Exact, value: /exact}}]
    backendRefs: [{name: v1, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /prefix/}}]
    backendRefs: [{name: v2, port: 80}]
  - matches: [{path: {type: RegularExpression, value: "/re/[0-9]+"}}]
    backendRefs: [{name: v1, port: 80}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: matches, namespace: default}
spec:
  parentRefs: [{name: web}]
  hostnames: [matches.test]
  rules:
  - backendRefs: [{name: v1, port: 80}]
  - matches: [{headers: [{name: X-Version, value: "2"}]}]
    backendRefs: [{name: v2, port: 80}]
  - matches: [{headers: [{name: X-Tier, type: RegularExpression, value: "gold|silver"}]}]
    backendRefs: [{name: v2, port: 80}]
  - matches: [{queryParams: [{name: q, value: "3"}]}]
    backendRefs: [{name: v3, port: 80}]
  - matches: [{method: DELETE}]
    backendRefs: [{name: v3, port: 80}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: wildcard, namespace: default}
spec:
  parentRefs: [{name: web}]
  hostnames: ["*.wild.test"]
  rules: [{backendRefs: [{name: v2, port: 80}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: exact-host, namespace: default}
spec:
  parentRefs: [{name: web}]
  hostnames: [exact.wild.test]
  rules: [{backendRefs: [{name: v3, port: 80}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: headers, namespace: default}
spec:
  parentRefs: [{name: web}]
  hostnames: [headers.test]
  rules:
  - filters:
    - type: RequestHeaderModifier
      requestHeaderModifier:
        set: [{name: X-Set, value: set-value}]
        add: [{name: X-Add, value: added}]
        remove: [X-Remove]
    - type: ResponseHeaderModifier
      responseHeaderModifier:
        set: [{name: X-Resp, value: resp-value}]
        remove: [Content-Type]
    backendRefs: [{name: v1, port: 80}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: redirects, namespace: default}
spec:
  parentRefs: [{name: web}]
  hostnames: [redirect.test]
  rules:
  - matches: [{path: {type: PathPrefix, value: /to-https}}]
    filters: [{type: RequestRedirect, requestRedirect: {scheme: https}}]
  - matches: [{path: {type: PathPrefix, value: /to-host}}]
    filters: [{type: RequestRedirect, requestRedirect: {hostname: new.test, statusCode: 302}}]
  - matches: [{path: {type: PathPrefix, value: /full}}]
    filters: [{type: RequestRedirect, requestRedirect: {path: {type: ReplaceFullPath, replaceFullPath: /new}}}]
  - matches: [{path: {type: PathPrefix, value: /prefix}}]
    filters: [{type: RequestRedirect, requestRedirect: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /replaced}, port: 8443}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: rewrites, namespace: default}
spec:
  parentRefs: [{name: web}]
  hostnames: [rewrite.test]
  rules:
  - matches: [{path: {type: PathPrefix, value: /api}}]
    filters: [{type: URLRewrite, urlRewrite: {hostname: rewritten.test, path: {type: ReplacePrefixMatch, replacePrefixMatch: /}}}]
    backendRefs: [{name: v1, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /full}}]
    filters: [{type: URLRewrite, urlRewrite: {path: {type: ReplaceFullPath, replaceFullPath: /exact-path}}}]
    backendRefs: [{name: v1, port: 80}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: split, namespace: default}
spec:
  parentRefs: [{name: web}]
  hostnames: [split.test]
  rules:
  - backendRefs:
    - {name: v1, port: 80, weight: 90}
    - {name: v2, port: 80, weight: 10}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: broken, namespace: default}
spec:
  parentRefs: [{name: web}]
  hostnames: [broken.test]
  rules: [{backendRefs: [{name: missing, port: 80}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: no-endpoints, namespace: default}
spec:
  parentRefs: [{name: web}]
  hostnames: [empty.test]
  rules: [{backendRefs: [{name: empty, port: 80}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: crossns, namespace: default}
spec:
  parentRefs: [{name: web}]
  hostnames: [crossns.test]
  rules: [{backendRefs: [{name: v1, namespace: other, port: 80}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: granted, namespace: other}
spec:
  parentRefs: [{name: web, namespace: default}]
  hostnames: [granted.test]
  rules: [{backendRefs: [{name: v2, namespace: default, port: 80}]}]
---
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {name: allow-other, namespace: default}
spec:
  from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: other}]
  to: [{group: "", kind: Service}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: bad-regex, namespace: default}
spec:
  parentRefs: [{name: web}]
  hostnames: [badregex.test]
  rules:
  - matches: [{path: {type: RegularExpression, value: "/(unclosed"}}]
    backendRefs: [{name: v1, port: 80}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: secure, namespace: default}
spec:
  parentRefs: [{name: tls}]
  rules: [{backendRefs: [{name: v2, port: 80}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: second, namespace: default}
spec:
  parentRefs: [{name: second}]
  rules: [{backendRefs: [{name: v3, port: 80}]}]
`

// TestGatewayFeatures drives every feature of the foundation through the
// whole pipeline and checks what clients and backends see.
func TestGatewayFeatures(t *testing.T) {
	for _, delta := range []bool{false, true} {
		t.Run(map[bool]string{false: "sotw", true: "delta"}[delta], func(t *testing.T) {
			testGatewayFeatures(t, delta)
		})
	}
}

func testGatewayFeatures(t *testing.T, delta bool) {
	m := startMesh(t, delta, []string{"v1", "v2", "v3"})
	certs := newTestCerts(t)
	st := m.apply(featureConfig(m, certs))
	web := m.gateway(1)

	backendCases := []struct {
		name, method, host, path string
		headers                  []string
		want                     string
	}{
		{"exact path", "GET", "paths.test", "/exact", nil, "v1"},
		{"exact path does not match longer", "GET", "paths.test", "/exact/more", nil, "v3"},
		{"prefix path (trailing slash ignored)", "GET", "paths.test", "/prefix", nil, "v2"},
		{"prefix path matches sub-path", "GET", "paths.test", "/prefix/a/b", nil, "v2"},
		{"prefix matches whole segments only", "GET", "paths.test", "/prefixed", nil, "v3"},
		{"regex path", "GET", "paths.test", "/re/123", nil, "v1"},
		{"regex path must match whole path", "GET", "paths.test", "/re/123x", nil, "v3"},
		{"default rule", "GET", "matches.test", "/", nil, "v1"},
		{"header exact", "GET", "matches.test", "/", []string{"X-Version", "2"}, "v2"},
		{"header exact mismatch", "GET", "matches.test", "/", []string{"X-Version", "22"}, "v1"},
		{"header regex", "GET", "matches.test", "/", []string{"X-Tier", "silver"}, "v2"},
		{"query param", "GET", "matches.test", "/?q=3", nil, "v3"},
		{"method", "DELETE", "matches.test", "/", nil, "v3"},
		{"wildcard host", "GET", "a.wild.test", "/", nil, "v2"},
		{"wildcard host, several labels", "GET", "a.b.wild.test", "/", nil, "v2"},
		{"exact host beats wildcard", "GET", "exact.wild.test", "/", nil, "v3"},
		{"host header port ignored", "GET", "exact.wild.test:1234", "/", nil, "v3"},
		{"cross-namespace backend with ReferenceGrant", "GET", "granted.test", "/", nil, "v2"},
	}
	for _, tc := range backendCases {
		t.Run(tc.name, func(t *testing.T) {
			r := get(t, web, tc.method, tc.host, tc.path, tc.headers...)
			if r.status != 200 || r.backend != tc.want {
				t.Errorf("%s %s%s: status %d from %q, want 200 from %q\n%s", tc.method, tc.host, tc.path, r.status, r.backend, tc.want, r.raw)
			}
		})
	}

	statusCases := []struct {
		name, host, path string
		want             int
	}{
		{"host matching no route", "wild.test", "/", 404},
		{"unknown host", "nowhere.test", "/", 404},
		{"missing backend Service", "broken.test", "/", 500},
		{"cross-namespace backend without ReferenceGrant", "crossns.test", "/", 500},
		{"Service without endpoints", "empty.test", "/", 503},
		{"route with an invalid regex is not programmed", "badregex.test", "/(unclosed", 404},
	}
	for _, tc := range statusCases {
		t.Run(tc.name, func(t *testing.T) {
			if r := get(t, web, "GET", tc.host, tc.path); r.status != tc.want {
				t.Errorf("%s%s: status %d, want %d\n%s", tc.host, tc.path, r.status, tc.want, r.raw)
			}
		})
	}

	t.Run("route status reasons", func(t *testing.T) {
		for route, want := range map[string][2]string{
			"default/broken":    {"ResolvedRefs", "BackendNotFound"},
			"default/crossns":   {"ResolvedRefs", "RefNotPermitted"},
			"default/bad-regex": {"Accepted", "UnsupportedValue"},
		} {
			c := routeCondition(t, st, route, want[0])
			if c.status != "False" || c.reason != want[1] {
				t.Errorf("%s %s = %s/%s, want False/%s", route, want[0], c.status, c.reason, want[1])
			}
		}
		if c := routeCondition(t, st, "default/paths", "Accepted"); c.status != "True" {
			t.Errorf("default/paths Accepted = %s, want True", c.status)
		}
	})

	t.Run("request header modifier", func(t *testing.T) {
		r := get(t, web, "GET", "headers.test", "/", "X-Set", "original", "X-Add", "first", "X-Remove", "gone")
		h := r.body.Headers
		if got := h["x-set"]; len(got) != 1 || got[0] != "set-value" {
			t.Errorf("x-set = %q, want [set-value]", got)
		}
		if got := strings.Join(h["x-add"], ","); got != "first,added" {
			t.Errorf("x-add = %q, want first,added", got)
		}
		if _, ok := h["x-remove"]; ok {
			t.Errorf("x-remove reached the backend: %q", h["x-remove"])
		}
		if r.header.Get("X-Resp") != "resp-value" || r.header.Get("Content-Type") != "" {
			t.Errorf("response headers X-Resp=%q Content-Type=%q, want resp-value and removed", r.header.Get("X-Resp"), r.header.Get("Content-Type"))
		}
	})

	t.Run("host port ignored for matching, kept upstream", func(t *testing.T) {
		r := get(t, web, "GET", "exact.wild.test:1234", "/")
		if r.backend != "v3" || r.body.Host != "exact.wild.test:1234" {
			t.Errorf("Host exact.wild.test:1234: backend %q saw Host %q, want v3 to see exact.wild.test:1234", r.backend, r.body.Host)
		}
	})

	t.Run("forwarding headers", func(t *testing.T) {
		r := get(t, web, "GET", "paths.test", "/exact")
		h := r.body.Headers
		// Envoy appends the peer address, or for a loopback peer the node's
		// own address; either way exactly one IP.
		if got := h["x-forwarded-for"]; len(got) != 1 || net.ParseIP(got[0]) == nil {
			t.Errorf("x-forwarded-for = %q, want one IP address", got)
		}
		if got := h["x-envoy-external-address"]; len(got) != 1 || got[0] != "127.0.0.1" {
			t.Errorf("x-envoy-external-address = %q, want [127.0.0.1]", got)
		}
		if got := h["x-forwarded-proto"]; len(got) != 1 || got[0] != "http" {
			t.Errorf("x-forwarded-proto = %q, want [http]", got)
		}
		if got := h["x-request-id"]; len(got) != 1 || len(got[0]) != 36 {
			t.Errorf("x-request-id = %q, want one UUID", got)
		}
		if r.body.Host != "paths.test" {
			t.Errorf("backend saw Host %q, want paths.test", r.body.Host)
		}
	})

	t.Run("redirects", func(t *testing.T) {
		for path, want := range map[string]struct {
			status   int
			location string
		}{
			// Gateway API's statusCode defaults to 302.
			"/to-https/x?y=1": {302, "https://redirect.test/to-https/x?y=1"},
			"/to-host":        {302, fmt.Sprintf("http://new.test:%d/to-host", m.port)},
			"/full/x":         {302, fmt.Sprintf("http://redirect.test:%d/new", m.port)},
			"/prefix/a":       {302, "http://redirect.test:8443/replaced/a"},
		} {
			r := get(t, web, "GET", "redirect.test", path)
			// A scheme's default port may be spelled out (Envoy does).
			loc := strings.Replace(r.header.Get("Location"), "https://redirect.test:443/", "https://redirect.test/", 1)
			if r.status != want.status || loc != want.location {
				t.Errorf("%s: %d Location %q, want %d %q", path, r.status, r.header.Get("Location"), want.status, want.location)
			}
		}
	})

	t.Run("rewrites", func(t *testing.T) {
		r := get(t, web, "GET", "rewrite.test", "/api/users?id=7")
		if r.body.Path != "/users" || r.body.Query != "id=7" || r.body.Host != "rewritten.test" {
			t.Errorf("backend saw %s %s?%s, want rewritten.test /users?id=7", r.body.Host, r.body.Path, r.body.Query)
		}
		r = get(t, web, "GET", "rewrite.test", "/api")
		if r.body.Path != "/" {
			t.Errorf("/api rewrote to %q, want /", r.body.Path)
		}
		r = get(t, web, "GET", "rewrite.test", "/full/anything")
		if r.body.Path != "/exact-path" {
			t.Errorf("full rewrite gave %q, want /exact-path", r.body.Path)
		}
	})

	t.Run("weighted split 90/10", func(t *testing.T) {
		counts := map[string]int{}
		for range 200 {
			counts[get(t, web, "GET", "split.test", "/").backend]++
		}
		// Binomial(200, 0.9): 160..197 holds with probability > 0.9998.
		if counts["v1"] < 160 || counts["v1"] > 197 || counts["v1"]+counts["v2"] != 200 {
			t.Errorf("split = %v, want about 180 v1 and 20 v2", counts)
		}
	})

	t.Run("h2c prior knowledge", func(t *testing.T) {
		c := &http.Client{Transport: &http2.Transport{AllowHTTP: true,
			DialTLS: func(network, addr string, _ *tls.Config) (net.Conn, error) { return net.Dial(network, addr) }}}
		req, _ := http.NewRequest("GET", "http://"+web+"/exact", nil)
		req.Host = "paths.test"
		r := do(t, c, req)
		if r.status != 200 || r.backend != "v1" {
			t.Errorf("h2c: %d from %q, want 200 from v1", r.status, r.backend)
		}
	})

	t.Run("https with SNI-selected certificates", func(t *testing.T) {
		for host, wantCert := range map[string]string{"app.secure.test": "*.secure.test", "api.other.test": "api.other.test"} {
			tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: certs.pool, ServerName: host}, ForceAttemptHTTP2: true}
			c := &http.Client{Transport: tr}
			req, _ := http.NewRequest("GET", "https://"+m.gateway(2)+"/", nil)
			req.Host = host
			resp, err := c.Do(req)
			if err != nil {
				t.Fatalf("%s: %v", host, err)
			}
			resp.Body.Close()
			if resp.StatusCode != 200 || resp.Header.Get("X-Echo-Backend") != "v2" || resp.Proto != "HTTP/2.0" {
				t.Errorf("%s: %d from %q over %s, want 200 from v2 over HTTP/2.0", host, resp.StatusCode, resp.Header.Get("X-Echo-Backend"), resp.Proto)
			}
			if got := resp.TLS.PeerCertificates[0].DNSNames[0]; got != wantCert {
				t.Errorf("%s: served certificate for %q, want %q", host, got, wantCert)
			}
		}
	})

	// HTTP/2 connection coalescing: the *.secure.test certificate does
	// not cover api.other.test, but a client may still send that host
	// on a connection whose SNI chose the *.secure.test listener; it must
	// get 421, not that listener's routes, and the right listener serves
	// it on a connection of its own.
	t.Run("misdirected requests get 421", func(t *testing.T) {
		for _, tc := range []struct{ sni, host string }{
			{"app.secure.test", "api.other.test"},
			{"api.other.test", "app.secure.test"},
			{"app.secure.test", "unknown.test"},
		} {
			tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: certs.pool, ServerName: tc.sni}, ForceAttemptHTTP2: true}
			req, _ := http.NewRequest("GET", "https://"+m.gateway(2)+"/", nil)
			req.Host = tc.host
			resp, err := (&http.Client{Transport: tr}).Do(req)
			if err != nil {
				t.Fatalf("SNI %s, Host %s: %v", tc.sni, tc.host, err)
			}
			resp.Body.Close()
			tr.CloseIdleConnections()
			if resp.StatusCode != http.StatusMisdirectedRequest || resp.Proto != "HTTP/2.0" {
				t.Errorf("SNI %s, Host %s: %d over %s, want 421 over HTTP/2.0", tc.sni, tc.host, resp.StatusCode, resp.Proto)
			}
		}
	})

	t.Run("second gateway on the same port", func(t *testing.T) {
		if r := get(t, m.gateway(3), "GET", "any.test", "/"); r.status != 200 || r.backend != "v3" {
			t.Errorf("second gateway: %d from %q, want 200 from v3", r.status, r.backend)
		}
	})

	t.Run("gateways programmed", func(t *testing.T) {
		for _, g := range m.agent.Status().Gateways {
			c := meta.FindStatusCondition(g.Status.Conditions, "Programmed")
			if c == nil || c.Status != "True" {
				t.Errorf("gateway %s Programmed = %+v, want True", g.Key, c)
			}
		}
	})
}

type condition struct{ status, reason string }

func routeCondition(t *testing.T, st *api.Status, route, typ string) condition {
	t.Helper()
	for _, r := range st.Routes {
		if r.Kind != "HTTPRoute" || r.Key.String() != route {
			continue
		}
		for _, p := range r.Status.Parents {
			if c := meta.FindStatusCondition(p.Conditions, typ); c != nil {
				return condition{string(c.Status), c.Reason}
			}
		}
	}
	t.Fatalf("no %s condition for HTTPRoute %s", typ, route)
	return condition{}
}
