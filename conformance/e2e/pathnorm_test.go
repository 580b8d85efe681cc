package e2e

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/h2c"

	"github.com/nodemesh/nodemesh/internal/echo"
)

// Path normalisation as the translator configures it (normalize_path,
// merge_slashes, UNESCAPE_AND_REDIRECT on every connection manager), seen
// through an HTTPRoute on a Gateway and through a CiliumNetworkPolicy path
// rule: both must act on the same normalised path, and the backend must
// receive that path. Each case names the normalised path once; the route
// and the policy outcomes are derived from it.

// normCase is a raw request path and what normalisation makes of it:
// norm is the path everything downstream of it sees (status 0), the
// Location of a 307, or unused for a 400.
type normCase struct {
	raw    string
	norm   string
	status int
	// h2Refused: the HTTP/2 server refuses this :path (not a valid URI)
	// with a stream error before the connection manager sees it.
	h2Refused bool
}

var normCases = []normCase{
	{raw: "/public/%2e%2e/admin", norm: "/admin"},
	{raw: "/public/%2E%2E/admin", norm: "/admin"},
	{raw: "/public/./../admin", norm: "/admin"},
	{raw: "/public/..%2fadmin", norm: "/admin", status: 307},
	{raw: "/public/..%2Fadmin", norm: "/admin", status: 307},
	{raw: "//admin", norm: "/admin"},
	{raw: "/../admin", norm: "/admin"},
	{raw: "/admin/../public/x", norm: "/public/x"},
	{raw: "/public/./x", norm: "/public/x"},
	{raw: "/public/x?q=/../admin", norm: "/public/x?q=/../admin"},
	{raw: "/public/a%3Fb%20c", norm: "/public/a%3Fb%20c"},
	{raw: "/public/%7euser/%41", norm: "/public/~user/A"},
	{raw: "/public/%zz", status: 400, h2Refused: true},
	{raw: "/public/%00", status: 400},
}

// normResult is what a client saw.
type normResult struct {
	status         int
	location       string
	backend        string
	path, rawQuery string // as the echo backend decoded them
}

func readNormResult(t *testing.T, resp *http.Response) normResult {
	t.Helper()
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	r := normResult{status: resp.StatusCode, location: resp.Header.Get("Location"), backend: resp.Header.Get("X-Echo-Backend")}
	if r.backend != "" {
		var e echo.Response
		if err := json.Unmarshal(body, &e); err != nil {
			t.Fatalf("decoding echo response: %v\n%s", err, body)
		}
		r.path, r.rawQuery = e.Path, e.Query
	}
	return r
}

// forwardedAs checks that the backend received the normalised path norm.
func (r normResult) forwardedAs(backend, norm string) bool {
	u, err := url.Parse(norm)
	if err != nil {
		return false
	}
	return r.status == 200 && r.backend == backend && r.path == u.Path && r.rawQuery == u.RawQuery
}

// normH1 sends the request line as given over conn.
func normH1(t *testing.T, dial func() (net.Conn, error), path string) normResult {
	t.Helper()
	c, err := dial()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: paths.test\r\nConnection: close\r\n\r\n", path)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("HTTP/1.1 GET %s: %v", path, err)
	}
	return readNormResult(t, resp)
}

// h2cNormClient speaks h2c with prior knowledge over dial and does not
// follow redirects.
func h2cNormClient(dial func(ctx context.Context) (net.Conn, error)) *http.Client {
	return &http.Client{
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Transport: &http2.Transport{AllowHTTP: true, DialTLSContext: func(ctx context.Context, _, _ string, _ *tls.Config) (net.Conn, error) {
			return dial(ctx)
		}},
	}
}

// normH2 sends path unchanged as :path.
func normH2(t *testing.T, c *http.Client, authority, path string) (normResult, error) {
	t.Helper()
	req, err := http.NewRequest("GET", "http://"+authority+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = "paths.test"
	req.URL.Opaque = path
	if strings.HasPrefix(path, "//") {
		// Such an Opaque reads as scheme-relative; the transport strips
		// "http://<Host>" again, leaving the path as given.
		req.URL.Opaque = "//" + req.Host + path
	}
	resp, err := c.Do(req)
	if err != nil {
		return normResult{}, err
	}
	if resp.ProtoMajor != 2 {
		t.Fatalf("h2c GET %s answered over %s", path, resp.Proto)
	}
	return readNormResult(t, resp), nil
}

// checkNorm runs every case over HTTP/1.1 and h2c; forwarded(norm) is the
// outcome (status and backend) the configuration gives a normalised path.
func checkNorm(t *testing.T, dial func(ctx context.Context) (net.Conn, error), authority string, forwarded func(norm string) (int, string)) {
	t.Helper()
	h2 := h2cNormClient(dial)
	for _, c := range normCases {
		h1 := normH1(t, func() (net.Conn, error) { return dial(context.Background()) }, c.raw)
		r2, err := normH2(t, h2, authority, c.raw)
		for _, p := range []struct {
			proto string
			got   normResult
			err   error
		}{{"HTTP/1.1", h1, nil}, {"h2c", r2, err}} {
			got := p.got
			if p.err != nil {
				if !(p.proto == "h2c" && c.h2Refused) {
					t.Errorf("%s %s: %v", p.proto, c.raw, p.err)
				}
				continue
			}
			if p.proto == "h2c" && c.h2Refused {
				t.Errorf("h2c %s: got %+v, want a stream error", c.raw, got)
				continue
			}
			switch c.status {
			case 400:
				if got.status != 400 || got.backend != "" {
					t.Errorf("%s %s: got %+v, want 400 from the proxy", p.proto, c.raw, got)
				}
			case 307:
				if got.status != 307 || got.location != c.norm || got.backend != "" {
					t.Errorf("%s %s: got %+v, want 307 to %s", p.proto, c.raw, got, c.norm)
				}
			default:
				status, backend := forwarded(c.norm)
				if status == 200 && !got.forwardedAs(backend, c.norm) || status != 200 && (got.status != status || got.backend != "") {
					t.Errorf("%s %s (normalised %s): got %+v, want %d from %q", p.proto, c.raw, c.norm, got, status, backend)
				}
			}
		}
	}
}

// TestPathNormalizationHTTPRoute: an HTTPRoute with /public and /admin
// rules on a Gateway, through the agent, the translator, the xDS server
// and the proxy: the rule chosen and the path the backend receives are
// those of the normalised path.
func TestPathNormalizationHTTPRoute(t *testing.T) {
	m := startMesh(t, false, []string{"public", "admin"})
	m.apply(fmt.Sprintf(`apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: nodemesh}
spec: {controllerName: nodemesh.io/gateway-controller}
---
apiVersion: v1
kind: Namespace
metadata: {name: default}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: web, namespace: default}
spec:
  gatewayClassName: nodemesh
  addresses: [{type: IPAddress, value: 127.0.101.1}]
  listeners:
  - {name: http, protocol: HTTP, port: %d}
---
%s%sapiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: paths, namespace: default}
spec:
  parentRefs: [{name: web}]
  hostnames: [paths.test]
  rules:
  - matches: [{path: {type: PathPrefix, value: /public}}]
    backendRefs: [{name: public, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /admin}}]
    backendRefs: [{name: admin, port: 80}]
`, m.port, m.service("default", "public", "public"), m.service("default", "admin", "admin")))
	gw := m.gateway(1)
	dial := func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", gw)
	}
	checkNorm(t, dial, gw, func(norm string) (int, string) {
		switch {
		case strings.HasPrefix(norm, "/public/"):
			return 200, "public"
		case strings.HasPrefix(norm, "/admin"):
			return 200, "admin"
		}
		return 404, ""
	})
}

// TestPathNormalizationPolicy: a CiliumNetworkPolicy that allows only
// GET /public/.* on port 80, compiled by the agent into the ingress
// policy listener's RBAC filter (iptables TPROXY steers the traffic, as
// TestPolicyStarWarsThroughProxy does): a request is allowed exactly when
// its normalised path matches the rule, and the backend receives the
// normalised path (over HTTP/1.1, and over h2c upstream for h2c clients).
func TestPathNormalizationPolicy(t *testing.T) {
	n := newPolicyNode(t, 2, false)
	web, client := n.bed.Workloads[0], n.bed.Workloads[1]
	serveHTTP(t, web, 80, h2c.NewHandler(echo.Handler("web"), &http2.Server{}))
	steerWithTPROXY(t, n.bed.Node, web.IPv4.String(), int(policyPorts.IngressHTTP))
	n.apply(pod("web", web, map[string]string{"app": "web"}) + pod("client", client, map[string]string{"app": "client"}) + `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: paths}
spec:
  endpointSelector: {matchLabels: {app: web}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: client}}]
    toPorts:
    - ports: [{port: "80", protocol: TCP}]
      rules:
        http: [{method: GET, path: "/public/.*"}]
`)
	target := fmt.Sprintf("%s:80", web.IPv4)
	dial := func(ctx context.Context) (net.Conn, error) {
		return client.DialWith(ctx, &net.Dialer{Timeout: 3 * time.Second}, "tcp", target)
	}
	// Cilium's path rule is an RE2 match of the whole :path, query included.
	rule := regexp.MustCompile(`^(?:/public/.*)$`)
	checkNorm(t, dial, target, func(norm string) (int, string) {
		if rule.MatchString(norm) {
			return 200, "web"
		}
		return 403, ""
	})
}
