package proxylib_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	rbacfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	rsrc "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/h2c"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// Path normalisation end to end: one connection manager per
// path_with_escaped_slashes_action (and one with normalisation off), each
// running an RBAC filter that admits only "/public/.*" and "/admin/status"
// (a Cilium-style :path rule) before a router with "/public/" → public
// (HTTP/1.1 upstream) and "/admin" → admin (h2c upstream). Requests go in
// over HTTP/1.1 (raw bytes) and h2c; the test checks the status, which
// backend answered and the path it received, so RBAC, the route match and
// the upstream are all seen to act on the same normalised path.

// pnListener names a connection manager's path settings.
type pnListener struct {
	name      string
	normalize bool
	action    hcmv3.HttpConnectionManager_PathWithEscapedSlashesAction
}

var pnListeners = []pnListener{
	{"off", false, hcmv3.HttpConnectionManager_IMPLEMENTATION_SPECIFIC_DEFAULT},
	{"keep", true, hcmv3.HttpConnectionManager_KEEP_UNCHANGED},
	{"reject", true, hcmv3.HttpConnectionManager_REJECT_REQUEST},
	{"redirect", true, hcmv3.HttpConnectionManager_UNESCAPE_AND_REDIRECT},
	{"forward", true, hcmv3.HttpConnectionManager_UNESCAPE_AND_FORWARD},
}

// pnWant is an expected outcome: status, then for 200 the backend and the
// path it received, for 307 the Location.
type pnWant struct {
	status  int
	backend string
	path    string
}

func pnOK(backend, path string) pnWant { return pnWant{200, backend, path} }

var (
	pnDenied   = pnWant{status: 403}
	pnRejected = pnWant{status: 400}
)

func pnRedirect(loc string) pnWant { return pnWant{307, "", loc} }

// pnCases: a raw path and its outcome per listener; listeners not named
// get the "keep" outcome (which all normalising listeners share unless the
// path holds an escaped slash).
type pnCase struct {
	path string
	want map[string]pnWant
	// h2Refused: the HTTP/2 server refuses this :path (not a valid URI)
	// with a stream error before the connection manager sees it.
	h2Refused bool
}

var pnCases = []pnCase{
	// An allowed prefix climbed out of: the policy and the route see /admin.
	{path: "/public/%2e%2e/admin", want: map[string]pnWant{"keep": pnDenied, "off": pnOK("public", "/public/%2e%2e/admin")}},
	{path: "/public/%2E%2E/admin", want: map[string]pnWant{"keep": pnDenied, "off": pnOK("public", "/public/%2E%2E/admin")}},
	{path: "/public/./../admin", want: map[string]pnWant{"keep": pnDenied, "off": pnOK("public", "/public/./../admin")}},
	// Allowed after normalising, and routed by the normalised path.
	{path: "/public/%2e%2e/admin/status", want: map[string]pnWant{"keep": pnOK("admin", "/admin/status"), "off": pnOK("public", "/public/%2e%2e/admin/status")}},
	{path: "/admin/../public/x", want: map[string]pnWant{"keep": pnOK("public", "/public/x"), "off": pnDenied}},
	{path: "/../admin/status", want: map[string]pnWant{"keep": pnOK("admin", "/admin/status"), "off": pnDenied}},
	// Escaped slashes, per action.
	{path: "/public/..%2fadmin", want: map[string]pnWant{
		"off": pnOK("public", "/public/..%2fadmin"), "keep": pnOK("public", "/public/..%2fadmin"),
		"reject": pnRejected, "redirect": pnRedirect("/admin"), "forward": pnDenied}},
	{path: "/public/..%2Fadmin%5Cstatus", want: map[string]pnWant{
		"off": pnOK("public", "/public/..%2Fadmin%5Cstatus"), "keep": pnOK("public", "/public/..%2Fadmin%5Cstatus"),
		"reject": pnRejected, "redirect": pnRedirect("/admin/status"), "forward": pnOK("admin", "/admin/status")}},
	// merge_slashes (on in every normalising listener here).
	{path: "//admin/status", want: map[string]pnWant{"keep": pnOK("admin", "/admin/status"), "off": pnDenied}},
	{path: "/public//x", want: map[string]pnWant{"keep": pnOK("public", "/public/x"), "off": pnOK("public", "/public//x")}},
	// The query is left alone, reserved escapes stay, unreserved ones are
	// decoded.
	{path: "/public/x?q=/../admin", want: map[string]pnWant{"keep": pnOK("public", "/public/x?q=/../admin"), "off": pnOK("public", "/public/x?q=/../admin")}},
	{path: "/public/a%3Fb%2520c%2F", want: map[string]pnWant{
		"off": pnOK("public", "/public/a%3Fb%2520c%2F"), "keep": pnOK("public", "/public/a%3Fb%2520c%2F"),
		"reject": pnRejected, "redirect": pnRedirect("/public/a%3Fb%2520c/"), "forward": pnOK("public", "/public/a%3Fb%2520c/")}},
	{path: "/public/%7euser/%41", want: map[string]pnWant{"keep": pnOK("public", "/public/~user/A"), "off": pnOK("public", "/public/%7euser/%41")}},
	// A malformed escape: 400 when normalising (unchecked with
	// normalisation off: the proxy forwards it and the Go backend refuses
	// it).
	{path: "/public/%zz", want: map[string]pnWant{"keep": pnRejected, "off": {}}, h2Refused: true},
}

func (c pnCase) outcome(listener string) pnWant {
	if w, ok := c.want[listener]; ok {
		return w
	}
	return c.want["keep"]
}

func pathRBAC(t *testing.T) *hcmv3.HttpFilter {
	cfg := &rbacfilterv3.RBAC{Rules: &rbacv3.RBAC{Action: rbacv3.RBAC_ALLOW, Policies: map[string]*rbacv3.Policy{
		"cnp/default/paths/ingress/0/port/80/http/0": {
			Permissions: []*rbacv3.Permission{{Rule: &rbacv3.Permission_OrRules{OrRules: &rbacv3.Permission_Set{Rules: []*rbacv3.Permission{
				permHeader(":path", "/public/.*"), permHeader(":path", "/admin/status"),
			}}}}},
			Principals: []*rbacv3.Principal{{Identifier: &rbacv3.Principal_Any{Any: true}}},
		},
	}}}
	return &hcmv3.HttpFilter{Name: "envoy.filters.http.rbac", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: anyOf(t, cfg)}}
}

// startPathNormFixture serves pnListeners and returns their addresses.
func startPathNormFixture(t *testing.T) map[string]string {
	t.Helper()
	public := startBackend(t, "public", nil)
	admin := startH2CBackend(t, "admin")
	x := startXDS(t, "", nil)
	res := []proto.Message{
		routeConfig("pn", vh("pn", "*", prefixRoute("/public/", "public"), prefixRoute("/admin", "admin"))),
		edsCluster(t, "public", false, nil), cla("public", public.addr),
		edsCluster(t, "admin", true, nil), cla("admin", admin),
	}
	addrs := map[string]string{}
	for _, l := range pnListeners {
		addr := freeAddr(t)
		addrs[l.name] = addr
		res = append(res, httpListener(t, "pn-"+l.name, addr, "pn", func(h *hcmv3.HttpConnectionManager) {
			h.HttpFilters = append([]*hcmv3.HttpFilter{pathRBAC(t)}, &hcmv3.HttpFilter{Name: "envoy.filters.http.router",
				ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: anyOf(t, &routerv3.Router{})}})
			h.NormalizePath = wrapperspb.Bool(l.normalize)
			h.MergeSlashes = l.normalize
			h.PathWithEscapedSlashesAction = l.action
		}))
	}
	v := x.set(res...)
	startProxy(t, x.sock)
	x.waitACK(rsrc.ListenerType, v)
	for _, a := range addrs {
		waitServing(t, "http://"+a+"/public/ready", "")
	}
	return addrs
}

// startH2CBackend runs an h2c backend that echoes what it received and
// returns its address.
func startH2CBackend(t *testing.T, name string) string {
	t.Helper()
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Backend", name)
		_ = json.NewEncoder(w).Encode(echo{Backend: name, Method: r.Method, Path: r.RequestURI, Proto: r.Proto})
	})
	return startBackend(t, name, h2c.NewHandler(h, &http2.Server{})).addr
}

// pnResult is what a client saw.
type pnResult struct {
	status           int
	backend, path    string
	location, grpcSt string
}

func (r pnResult) matches(w pnWant) bool {
	switch w.status {
	case 0:
		return true
	case 200:
		return r.status == 200 && r.backend == w.backend && r.path == w.path
	case 307:
		return r.status == 307 && r.location == w.path && r.backend == ""
	}
	return r.status == w.status && r.backend == ""
}

func readPNResult(t *testing.T, resp *http.Response) pnResult {
	t.Helper()
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	r := pnResult{status: resp.StatusCode, backend: resp.Header.Get("X-Backend"), location: resp.Header.Get("Location"),
		grpcSt: resp.Header.Get("Grpc-Status")}
	if r.backend != "" {
		r.path = decodeEcho(t, string(body)).Path
	}
	return r
}

// h1Raw sends the request line exactly as given.
func h1Raw(t *testing.T, addr, path string, hdr ...string) pnResult {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	req := "GET " + path + " HTTP/1.1\r\nHost: pn.example\r\n" + strings.Join(hdr, "") + "Connection: close\r\n\r\n"
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return readPNResult(t, resp)
}

// h2cRequest sends path as the :path of an h2c request, unchanged.
func h2cRequest(t *testing.T, c *http.Client, addr, path string, hdr ...string) (pnResult, error) {
	t.Helper()
	req, err := http.NewRequest("GET", "http://"+addr+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = "pn.example"
	req.URL.Opaque = path
	if strings.HasPrefix(path, "//") {
		// Such an Opaque reads as scheme-relative; the transport strips
		// "http://<Host>" again, leaving the path as given.
		req.URL.Opaque = "//" + req.Host + path
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		return pnResult{}, err
	}
	if resp.ProtoMajor != 2 {
		t.Fatalf("h2c GET %s answered over %s", path, resp.Proto)
	}
	return readPNResult(t, resp), nil
}

// TestPathNormalizationRBACAndRoute: for every listener and case, over
// HTTP/1.1 and h2c, the RBAC verdict, the route and the backend's path all
// follow from the same normalised path.
func TestPathNormalizationRBACAndRoute(t *testing.T) {
	addrs := startPathNormFixture(t)
	h2 := h2cClient()
	h2.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	for _, l := range pnListeners {
		for _, c := range pnCases {
			want := c.outcome(l.name)
			if got := h1Raw(t, addrs[l.name], c.path); !got.matches(want) {
				t.Errorf("%s, HTTP/1.1 %s: got %+v, want %+v", l.name, c.path, got, want)
			}
			got, err := h2cRequest(t, h2, addrs[l.name], c.path)
			switch {
			case c.h2Refused:
				if err == nil {
					t.Errorf("%s, h2c %s: got %+v, want a stream error", l.name, c.path, got)
				}
			case err != nil:
				t.Errorf("%s, h2c %s: %v", l.name, c.path, err)
			case !got.matches(want):
				t.Errorf("%s, h2c %s: got %+v, want %+v", l.name, c.path, got, want)
			}
		}
	}

	// gRPC clients cannot follow the redirect: 400, as gRPC status 13.
	grpcH2, err := h2cRequest(t, h2, addrs["redirect"], "/public/..%2fadmin", "Content-Type", "application/grpc")
	if err != nil {
		t.Fatal(err)
	}
	for _, got := range []pnResult{
		h1Raw(t, addrs["redirect"], "/public/..%2fadmin", "Content-Type: application/grpc\r\n"),
		grpcH2,
	} {
		if got.status != 200 || got.grpcSt != "13" || got.backend != "" || got.location != "" {
			t.Errorf("gRPC request with an escaped slash under UNESCAPE_AND_REDIRECT: %+v, want grpc-status 13", got)
		}
	}

	// Keep-alive survives a rejected path and a redirect on HTTP/1.1.
	conn, err := net.Dial("tcp", addrs["redirect"])
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	br := bufio.NewReader(conn)
	for _, p := range []string{"/public/%zz", "/public/..%2fadmin", "/public/./x"} {
		fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: pn.example\r\n\r\n", p)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("keep-alive request %s: %v", p, err)
		}
		got := readPNResult(t, resp)
		if resp.Close {
			t.Errorf("%s closed the connection (%+v)", p, got)
		}
		if p == "/public/./x" && !got.matches(pnOK("public", "/public/x")) {
			t.Errorf("third request on the connection: %+v", got)
		}
	}
}

// TestPathForwardedAsIsWithoutNormalization: with normalisation off, the
// path reaches both kinds of upstream byte for byte, including one that
// starts with "//" (which a URL would read as scheme-relative).
func TestPathForwardedAsIsWithoutNormalization(t *testing.T) {
	h1be := startBackend(t, "h1", nil)
	h2be := startH2CBackend(t, "h2")
	x := startXDS(t, "", nil)
	addr := freeAddr(t)
	v := x.set(httpListener(t, "l", addr, "rc", nil),
		routeConfig("rc", vh("v", "*", prefixRoute("/h2/", "h2"), prefixRoute("//h2/", "h2"), prefixRoute("/", "h1"))),
		edsCluster(t, "h1", false, nil), cla("h1", h1be.addr), edsCluster(t, "h2", true, nil), cla("h2", h2be))
	startProxy(t, x.sock)
	x.waitACK(rsrc.ListenerType, v)
	waitServing(t, "http://"+addr+"/", "")
	h2 := h2cClient()
	for _, p := range []string{"//h2/x/../y?a=//b", "/h2//x/%2e%2e/%2F", "//h1/./z", "/h1/%2e/"} {
		want := pnOK("h1", p)
		if strings.Contains(p, "/h2/") {
			want = pnOK("h2", p)
		}
		if got := h1Raw(t, addr, p); !got.matches(want) {
			t.Errorf("HTTP/1.1 %s: got %+v, want %+v", p, got, want)
		}
		got, err := h2cRequest(t, h2, addr, p)
		if err != nil || !got.matches(want) {
			t.Errorf("h2c %s: got %+v %v, want %+v", p, got, err, want)
		}
	}
}
