package proxylib_test

import (
	"net/http"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/nodemesh/nodemesh/proxylib/resource"
)

// routingFixture serves one listener with a rich route table over two
// backends.
type routingFixture struct {
	x      *xdsServer
	url    string
	a, b   *backend
	client *http.Client
}

func exact(s string) *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: s}}
}

func regex(s string) *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: s}}}
}

func newRoutingFixture(t *testing.T) *routingFixture {
	f := &routingFixture{client: client()}
	f.a = startBackend(t, "a", nil)
	f.b = startBackend(t, "b", nil)
	f.x = startXDS(t, "", nil)
	addr := freeAddr(t)
	f.url = "http://" + addr
	match := func(m *routev3.RouteMatch, c string) *routev3.Route {
		return &routev3.Route{Match: m, Action: toCluster(c)}
	}
	pre := func(p string) *routev3.RouteMatch {
		return &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: p}}
	}
	routes := []*routev3.Route{
		match(&routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Path{Path: "/exact"}}, "b"),
		match(&routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: "/re/[0-9]+"}}}, "b"),
		match(&routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_PathSeparatedPrefix{PathSeparatedPrefix: "/sep"}}, "b"),
		match(&routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/hdr"}, Headers: []*routev3.HeaderMatcher{
			{Name: "x-env", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: exact("canary")}},
			{Name: ":method", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: exact("POST")}},
		}}, "b"),
		match(&routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/hdrre"}, Headers: []*routev3.HeaderMatcher{
			{Name: "x-ver", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: regex("v[2-9]")}},
		}}, "b"),
		match(&routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/inv"}, Headers: []*routev3.HeaderMatcher{
			{Name: "x-block", HeaderMatchSpecifier: &routev3.HeaderMatcher_PresentMatch{PresentMatch: true}, InvertMatch: true},
		}}, "b"),
		match(&routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/q"}, QueryParameters: []*routev3.QueryParameterMatcher{
			{Name: "tier", QueryParameterMatchSpecifier: &routev3.QueryParameterMatcher_StringMatch{StringMatch: exact("gold")}},
		}}, "b"),
		{Match: pre("/direct"), Action: &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{
			Status: 418, Body: &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: "teapot"}}}},
			ResponseHeadersToAdd: []*corev3.HeaderValueOption{hv("x-direct", "1", corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD)}},
		{Match: pre("/redir/https"), Action: &routev3.Route_Redirect{Redirect: &routev3.RedirectAction{
			SchemeRewriteSpecifier: &routev3.RedirectAction_SchemeRedirect{SchemeRedirect: "https"}}}},
		{Match: pre("/redir/port"), Action: &routev3.Route_Redirect{Redirect: &routev3.RedirectAction{
			HostRedirect: "other.example", PortRedirect: 8443, ResponseCode: routev3.RedirectAction_FOUND}}},
		{Match: pre("/redir/prefix"), Action: &routev3.Route_Redirect{Redirect: &routev3.RedirectAction{
			PathRewriteSpecifier: &routev3.RedirectAction_PrefixRewrite{PrefixRewrite: "/new"}, StripQuery: true,
			ResponseCode: routev3.RedirectAction_PERMANENT_REDIRECT}}},
		{Match: pre("/redir/path"), Action: &routev3.Route_Redirect{Redirect: &routev3.RedirectAction{
			PathRewriteSpecifier: &routev3.RedirectAction_PathRedirect{PathRedirect: "/landing"}, ResponseCode: routev3.RedirectAction_TEMPORARY_REDIRECT}}},
		{Match: pre("/redir/regex"), Action: &routev3.Route_Redirect{Redirect: &routev3.RedirectAction{
			PathRewriteSpecifier: &routev3.RedirectAction_RegexRewrite{RegexRewrite: &matcherv3.RegexMatchAndSubstitute{
				Pattern: &matcherv3.RegexMatcher{Regex: "^/redir/regex/([a-z]+)$"}, Substitution: `/r/\1`}}}}},
		{Match: pre("/rw/prefix"), Action: &routev3.Route_Route{Route: &routev3.RouteAction{
			ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "a"}, PrefixRewrite: "/v2"}}},
		{Match: pre("/rw/regex"), Action: &routev3.Route_Route{Route: &routev3.RouteAction{
			ClusterSpecifier:     &routev3.RouteAction_Cluster{Cluster: "a"},
			RegexRewrite:         &matcherv3.RegexMatchAndSubstitute{Pattern: &matcherv3.RegexMatcher{Regex: "^/rw/regex/([^/]+)/(.*)$"}, Substitution: `/\2/by/\1`},
			HostRewriteSpecifier: &routev3.RouteAction_HostRewriteLiteral{HostRewriteLiteral: "rewritten.example"}}}},
		{Match: pre("/headers"), Action: toCluster("a"),
			RequestHeadersToAdd: []*corev3.HeaderValueOption{
				hv("x-append", "added", corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD),
				hv("x-absent", "added", corev3.HeaderValueOption_ADD_IF_ABSENT),
				hv("x-over", "added", corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD),
				hv("x-only-if", "added", corev3.HeaderValueOption_OVERWRITE_IF_EXISTS),
				hv("x-only-if-missing", "added", corev3.HeaderValueOption_OVERWRITE_IF_EXISTS),
				hv("x-percent", "100%%", corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD),
			},
			RequestHeadersToRemove: []string{"x-remove-me"},
			ResponseHeadersToAdd: []*corev3.HeaderValueOption{
				hv("x-resp", "r1", corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD),
				hv("x-backend", "overwritten", corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD),
			},
			ResponseHeadersToRemove: []string{"content-type"},
		},
		{Match: pre("/missing-cluster"), Action: toCluster("nope")},
		{Match: pre("/missing-500"), Action: &routev3.Route_Route{Route: &routev3.RouteAction{
			ClusterSpecifier:            &routev3.RouteAction_Cluster{Cluster: "nope"},
			ClusterNotFoundResponseCode: routev3.RouteAction_INTERNAL_SERVER_ERROR}}},
		{Match: pre("/empty"), Action: toCluster("empty")},
		{Match: pre("/dead"), Action: toCluster("dead")},
		match(pre("/"), "a"),
	}
	vhosts := []*routev3.VirtualHost{
		{Name: "main", Domains: []string{"main.example"}, Routes: routes},
		{Name: "wild", Domains: []string{"*.wild.example"}, Routes: []*routev3.Route{prefixRoute("/", "b")}},
	}
	deadAddr := freeAddr(t)
	f.x.set(
		httpListener(t, "l", addr, "rc", func(h *hcmv3.HttpConnectionManager) {
			h.UseRemoteAddress = wrapperspb.Bool(true)
			h.StripPortMode = &hcmv3.HttpConnectionManager_StripAnyHostPort{StripAnyHostPort: true}
		}),
		routeConfig("rc", vhosts...),
		edsCluster(t, "a", false, nil), cla("a", f.a.addr),
		edsCluster(t, "b", false, nil), cla("b", f.b.addr),
		edsCluster(t, "empty", false, nil), cla("empty"),
		edsCluster(t, "dead", false, nil), cla("dead", deadAddr),
	)
	startProxy(t, f.x.sock)
	f.x.waitApplied()
	waitServing(t, f.url, "main.example")
	return f
}

func TestRoutingEndToEnd(t *testing.T) {
	f := newRoutingFixture(t)
	cases := []struct {
		name    string
		method  string
		path    string
		host    string
		hdr     map[string]string
		status  int
		backend string
		check   func(t *testing.T, h http.Header, body string)
	}{
		{name: "default prefix", path: "/anything", host: "main.example", status: 200, backend: "a"},
		{name: "host port stripped", path: "/x", host: "main.example:8080", status: 200, backend: "a"},
		{name: "host case-insensitive", path: "/x", host: "MAIN.Example", status: 200, backend: "a"},
		{name: "wildcard vhost", path: "/", host: "deep.sub.wild.example", status: 200, backend: "b"},
		{name: "wildcard needs a label", path: "/", host: "wild.example", status: 404},
		{name: "no vhost", path: "/", host: "unknown.example", status: 404},
		{name: "exact path ignores query", path: "/exact?x=1", host: "main.example", status: 200, backend: "b"},
		{name: "exact path mismatch", path: "/exact/more", host: "main.example", status: 200, backend: "a"},
		{name: "regex whole path", path: "/re/123", host: "main.example", status: 200, backend: "b"},
		{name: "regex partial", path: "/re/123x", host: "main.example", status: 200, backend: "a"},
		{name: "separated prefix", path: "/sep/x", host: "main.example", status: 200, backend: "b"},
		{name: "separated prefix exact", path: "/sep", host: "main.example", status: 200, backend: "b"},
		{name: "separated prefix not segment", path: "/sepx", host: "main.example", status: 200, backend: "a"},
		{name: "header and method", method: "POST", path: "/hdr", host: "main.example", hdr: map[string]string{"X-Env": "canary"}, status: 200, backend: "b"},
		{name: "header wrong method", path: "/hdr", host: "main.example", hdr: map[string]string{"X-Env": "canary"}, status: 200, backend: "a"},
		{name: "header regex", path: "/hdrre", host: "main.example", hdr: map[string]string{"X-Ver": "v3"}, status: 200, backend: "b"},
		{name: "header regex miss", path: "/hdrre", host: "main.example", hdr: map[string]string{"X-Ver": "v10"}, status: 200, backend: "a"},
		{name: "inverted presence", path: "/inv", host: "main.example", status: 200, backend: "b"},
		{name: "inverted presence present", path: "/inv", host: "main.example", hdr: map[string]string{"X-Block": "1"}, status: 200, backend: "a"},
		{name: "query", path: "/q?a=1&tier=gold", host: "main.example", status: 200, backend: "b"},
		{name: "query first occurrence", path: "/q?tier=silver&tier=gold", host: "main.example", status: 200, backend: "a"},
		{name: "direct response", path: "/direct", host: "main.example", status: 418, check: func(t *testing.T, h http.Header, body string) {
			if body != "teapot" || h.Get("Content-Type") != "text/plain" || h.Get("X-Direct") != "1" {
				t.Errorf("direct response %q %v", body, h)
			}
		}},
		{name: "redirect scheme drops default port", path: "/redir/https?a=b", host: "main.example:80", status: 301, check: location("https://main.example/redir/https?a=b")},
		{name: "redirect host and port", path: "/redir/port/x", host: "main.example", status: 302, check: location("http://other.example:8443/redir/port/x")},
		{name: "redirect prefix strip query", path: "/redir/prefix/a?q=1", host: "main.example", status: 308, check: location("http://main.example/new/a")},
		{name: "redirect path keeps query", path: "/redir/path/x?q=1", host: "main.example", status: 307, check: location("http://main.example/landing?q=1")},
		{name: "redirect regex", path: "/redir/regex/abc", host: "main.example", status: 301, check: location("http://main.example/r/abc")},
		{name: "prefix rewrite", path: "/rw/prefix/x?y=1", host: "main.example", status: 200, backend: "a", check: func(t *testing.T, h http.Header, body string) {
			e := decodeEcho(t, body)
			if e.Path != "/v2/x?y=1" || e.Header.Get("X-Envoy-Original-Path") != "/rw/prefix/x?y=1" {
				t.Errorf("rewritten to %q (original %q)", e.Path, e.Header.Get("X-Envoy-Original-Path"))
			}
		}},
		{name: "regex rewrite with groups and host", path: "/rw/regex/alice/docs/1?z=2", host: "main.example", status: 200, backend: "a", check: func(t *testing.T, h http.Header, body string) {
			e := decodeEcho(t, body)
			if e.Path != "/docs/1/by/alice?z=2" || e.Host != "rewritten.example" {
				t.Errorf("rewritten to %q host %q", e.Path, e.Host)
			}
		}},
		{name: "header edits", path: "/headers", host: "main.example", status: 200, backend: "a",
			hdr: map[string]string{"X-Append": "orig", "X-Absent": "orig", "X-Over": "orig", "X-Only-If": "orig", "X-Remove-Me": "1"},
			check: func(t *testing.T, h http.Header, body string) {
				e := decodeEcho(t, body)
				want := map[string]string{"X-Append": "orig,added", "X-Absent": "orig", "X-Over": "added", "X-Only-If": "added", "X-Only-If-Missing": "", "X-Remove-Me": "", "X-Percent": "100%"}
				for k, v := range want {
					if got := strings.Join(e.Header.Values(k), ","); got != v {
						t.Errorf("request header %s = %q, want %q", k, got, v)
					}
				}
				if h.Get("X-Resp") != "r1" || h.Get("X-Backend") != "overwritten" || h.Get("Content-Type") != "" {
					t.Errorf("response headers %v", h)
				}
			}},
		{name: "cluster not found", path: "/missing-cluster", host: "main.example", status: 503},
		{name: "cluster not found 500", path: "/missing-500", host: "main.example", status: 500},
		{name: "no endpoints", path: "/empty", host: "main.example", status: 503, check: func(t *testing.T, h http.Header, body string) {
			if body != "no healthy upstream" {
				t.Errorf("body %q", body)
			}
		}},
		{name: "connect failure", path: "/dead", host: "main.example", status: 503, check: func(t *testing.T, h http.Header, body string) {
			if !strings.HasPrefix(body, "upstream connect error") {
				t.Errorf("body %q", body)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := tc.method
			if m == "" {
				m = "GET"
			}
			status, h, body := do(t, f.client, m, f.url+tc.path, tc.host, tc.hdr, nil)
			if status != tc.status {
				t.Fatalf("status %d, want %d (body %q)", status, tc.status, body)
			}
			if h.Get("Server") != "envoy" {
				t.Errorf("server header %q, want envoy", h.Get("Server"))
			}
			if tc.backend != "" {
				if e := decodeEcho(t, body); e.Backend != tc.backend {
					t.Errorf("served by %q, want %q", e.Backend, tc.backend)
				}
				if h.Get("X-Envoy-Upstream-Service-Time") == "" {
					t.Error("missing x-envoy-upstream-service-time")
				}
			}
			if tc.check != nil {
				tc.check(t, h, body)
			}
		})
	}
}

func location(want string) func(t *testing.T, h http.Header, body string) {
	return func(t *testing.T, h http.Header, body string) {
		if got := h.Get("Location"); got != want {
			t.Errorf("location %q, want %q", got, want)
		}
	}
}

func TestForwardedHeaders(t *testing.T) {
	f := newRoutingFixture(t)
	_, _, body := do(t, f.client, "GET", f.url+"/", "main.example",
		map[string]string{"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https", "X-Request-Id": "abc", "X-Envoy-Retry-On": "5xx"}, nil)
	e := decodeEcho(t, body)
	// use_remote_address: append our address (loopback peer → the proxy's
	// own address), overwrite the untrusted x-forwarded-proto, regenerate
	// the request id of an edge request, drop Envoy control headers.
	if got := e.Header.Get("X-Forwarded-For"); got != "203.0.113.7,10.1.2.3" {
		t.Errorf("x-forwarded-for %q", got)
	}
	if got := e.Header.Get("X-Forwarded-Proto"); got != "http" {
		t.Errorf("x-forwarded-proto %q", got)
	}
	if rid := e.Header.Get("X-Request-Id"); rid == "abc" || len(rid) != 36 || rid[14] != '4' {
		t.Errorf("x-request-id %q", rid)
	}
	if e.Header.Get("X-Envoy-Retry-On") != "" || e.Header.Get("X-Envoy-External-Address") == "" {
		t.Errorf("envoy headers %v", e.Header)
	}
	if e.Header.Get("X-Envoy-Expected-Rq-Timeout-Ms") != "15000" {
		t.Errorf("expected timeout header %q", e.Header.Get("X-Envoy-Expected-Rq-Timeout-Ms"))
	}
	if e.Header.Get("Connection") != "" || e.Header.Get("Keep-Alive") != "" {
		t.Errorf("hop-by-hop headers forwarded: %v", e.Header)
	}
	_ = resource.ListenerType
	_ = durationpb.New
}
