package proxylib_test

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	corsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"golang.org/x/net/http2"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

const corsFilter = "envoy.filters.http.cors"

func withCORS(t testing.TB) func(*hcmv3.HttpConnectionManager) {
	return func(h *hcmv3.HttpConnectionManager) {
		h.HttpFilters = append([]*hcmv3.HttpFilter{{Name: corsFilter,
			ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: anyOf(t, &corsv3.Cors{})}}}, h.HttpFilters...)
	}
}

func corsRoute(t testing.TB, prefix string, p *corsv3.CorsPolicy) *routev3.Route {
	r := prefixRoute(prefix, "be")
	r.TypedPerFilterConfig = map[string]*anypb.Any{corsFilter: anyOf(t, p)}
	return r
}

func exactOrigin(o string) *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: o}}
}

func regexOrigin(re string) *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: re}}}
}

// TestCORS runs the Gateway API conformance test HTTPRouteCORS's cases
// (v1.6.3) against the CORS filter configured as the translator emits it:
// the filter before the router and a CorsPolicy per route in
// typed_per_filter_config. Wildcard origins are RE2 full matches, an
// origin "*" is an exact "*" matcher, and methods or headers "*" are
// passed as "*" (the filter echoes the request's).
func TestCORS(t *testing.T) {
	be := startBackend(t, "be", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Backend-Method", r.Method)
		if r.URL.Path == "/upstream-cors" {
			w.Header().Set("Access-Control-Allow-Origin", "https://upstream.example")
		}
		w.WriteHeader(200)
	}))
	x := startXDS(t, "", nil)
	addr := freeAddr(t)
	t1 := &corsv3.CorsPolicy{AllowOriginStringMatch: []*matcherv3.StringMatcher{exactOrigin("https://www.foo.com"),
		regexOrigin(`https://.*\.bar\.com`)}, AllowMethods: "GET, OPTIONS", AllowHeaders: "x-header-1, x-header-2",
		ExposeHeaders: "x-header-3, x-header-4", MaxAge: "3600", AllowCredentials: wrapperspb.Bool(true)}
	t2 := &corsv3.CorsPolicy{AllowOriginStringMatch: []*matcherv3.StringMatcher{exactOrigin("https://www.foo.com")}, AllowMethods: "*"}
	t3 := &corsv3.CorsPolicy{AllowOriginStringMatch: []*matcherv3.StringMatcher{exactOrigin("*")}, AllowMethods: "PUT",
		AllowCredentials: wrapperspb.Bool(false)}
	t4 := &corsv3.CorsPolicy{AllowOriginStringMatch: []*matcherv3.StringMatcher{exactOrigin("*")}, AllowMethods: "*",
		AllowHeaders: "*", AllowCredentials: wrapperspb.Bool(true)}
	t5 := &corsv3.CorsPolicy{AllowOriginStringMatch: []*matcherv3.StringMatcher{exactOrigin("*")}, AllowMethods: "*",
		AllowHeaders: "*", AllowCredentials: wrapperspb.Bool(false)}
	strict := &corsv3.CorsPolicy{AllowOriginStringMatch: []*matcherv3.StringMatcher{exactOrigin("https://ok.example")},
		AllowMethods: "GET", AllowCredentials: wrapperspb.Bool(true), ForwardNotMatchingPreflights: wrapperspb.Bool(false),
		AllowPrivateNetworkAccess: wrapperspb.Bool(true)}
	// Virtual host policy, partly overridden by a route's.
	vhPolicy := &corsv3.CorsPolicy{AllowOriginStringMatch: []*matcherv3.StringMatcher{exactOrigin("https://vh.example")},
		AllowMethods: "GET", ExposeHeaders: "x-vh", MaxAge: "60"}
	routeOverride := &corsv3.CorsPolicy{AllowMethods: "PATCH"}
	corsVH := vh("cors", "cors.example",
		corsRoute(t, "/cors-wildcard-methods-headers-unauth", t5), corsRoute(t, "/cors-wildcard-methods-headers", t4),
		corsRoute(t, "/cors-wildcard-origin", t3), corsRoute(t, "/cors-1", t1), corsRoute(t, "/cors-2", t2),
		corsRoute(t, "/strict", strict), corsRoute(t, "/upstream-cors", t1), prefixRoute("/none", "be"))
	inherit := vh("inherit", "inherit.example", corsRoute(t, "/override", routeOverride), prefixRoute("/", "be"))
	inherit.TypedPerFilterConfig = map[string]*anypb.Any{corsFilter: anyOf(t, vhPolicy)}
	x.set(httpListener(t, "l", addr, "rc", withCORS(t)), routeConfig("rc", corsVH, inherit),
		edsCluster(t, "be", false, nil), cla("be", be.addr))
	startProxy(t, x.sock)
	x.waitApplied()

	type want struct {
		status  int
		headers map[string]string // "" value: must be absent
		backend bool              // the request reached the backend
	}
	c := client()
	check := func(t *testing.T, rt http.RoundTripper, method, path, host string, hdr map[string]string, w want) {
		t.Helper()
		req, _ := http.NewRequest(method, "http://"+addr+path, nil)
		req.Host = host
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := rt.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != w.status {
			t.Fatalf("status %d, want %d", resp.StatusCode, w.status)
		}
		if got := resp.Header.Get("X-Backend-Method") != ""; got != w.backend {
			t.Fatalf("reached the backend: %v, want %v", got, w.backend)
		}
		for k, v := range w.headers {
			got, ok := resp.Header[http.CanonicalHeaderKey(k)]
			switch {
			case v == "" && ok:
				t.Fatalf("%s: %q, want it absent", k, got)
			case v != "" && (len(got) != 1 || got[0] != v):
				t.Fatalf("%s: %q, want %q", k, got, v)
			}
		}
	}
	pre := func(origin, method, headers string) map[string]string {
		h := map[string]string{"Origin": origin, "Access-Control-Request-Method": method}
		if headers != "" {
			h["Access-Control-Request-Headers"] = headers
		}
		return h
	}
	full := map[string]string{"access-control-allow-methods": "GET, OPTIONS", "access-control-allow-headers": "x-header-1, x-header-2",
		"access-control-expose-headers": "x-header-3, x-header-4", "access-control-max-age": "3600", "access-control-allow-credentials": "true"}
	with := func(m map[string]string, kv ...string) map[string]string {
		out := map[string]string{}
		for k, v := range m {
			out[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			out[kv[i]] = kv[i+1]
		}
		return out
	}
	for _, tc := range []struct {
		name, method, path, host string
		hdr                      map[string]string
		want                     want
	}{
		{"preflight exact origin", "OPTIONS", "/cors-1", "cors.example", pre("https://www.foo.com", "GET", "x-header-1, x-header-2"),
			want{200, with(full, "access-control-allow-origin", "https://www.foo.com"), false}},
		{"preflight wildcard origin", "OPTIONS", "/cors-1", "cors.example", pre("https://www.bar.com", "GET", "x-header-1, x-header-2"),
			want{200, with(full, "access-control-allow-origin", "https://www.bar.com"), false}},
		{"preflight wildcard origin, more labels", "OPTIONS", "/cors-1", "cors.example", pre("https://xpto.www.bar.com", "GET", "x-header-1"),
			want{200, with(full, "access-control-allow-origin", "https://xpto.www.bar.com"), false}},
		{"preflight non-matching origin is forwarded", "OPTIONS", "/cors-1", "cors.example", pre("https://foobar.com", "GET", ""),
			want{200, map[string]string{"access-control-allow-origin": "", "access-control-allow-methods": ""}, true}},
		{"simple request exact origin", "GET", "/cors-1", "cors.example", map[string]string{"Origin": "https://www.foo.com"},
			want{200, map[string]string{"access-control-allow-origin": "https://www.foo.com", "access-control-allow-credentials": "true",
				"access-control-expose-headers": "x-header-3, x-header-4", "access-control-max-age": "", "access-control-allow-methods": ""}, true}},
		{"simple request wildcard origin", "GET", "/cors-1", "cors.example", map[string]string{"Origin": "https://www.bar.com"},
			want{200, map[string]string{"access-control-allow-origin": "https://www.bar.com"}, true}},
		{"simple request non-matching origin", "GET", "/cors-1", "cors.example", map[string]string{"Origin": "https://foobar.com"},
			want{200, map[string]string{"access-control-allow-origin": "", "access-control-allow-credentials": "", "access-control-expose-headers": ""}, true}},
		{"the upstream's allow-origin is replaced", "GET", "/upstream-cors", "cors.example", map[string]string{"Origin": "https://www.foo.com"},
			want{200, map[string]string{"access-control-allow-origin": "https://www.foo.com"}, true}},
		{"allowMethods * echoes the method", "OPTIONS", "/cors-2", "cors.example", pre("https://www.foo.com", "POST", ""),
			want{200, map[string]string{"access-control-allow-methods": "POST", "access-control-allow-origin": "https://www.foo.com",
				"access-control-allow-credentials": ""}, false}},
		{"origin * echoes the origin", "OPTIONS", "/cors-wildcard-origin", "cors.example", pre("https://foobar.com", "PUT", ""),
			want{200, map[string]string{"access-control-allow-origin": "https://foobar.com", "access-control-allow-methods": "PUT",
				"access-control-allow-credentials": ""}, false}},
		{"origin * with a port", "OPTIONS", "/cors-wildcard-origin", "cors.example", pre("https://foobar.com:12345", "PUT", ""),
			want{200, map[string]string{"access-control-allow-origin": "https://foobar.com:12345", "access-control-allow-methods": "PUT"}, false}},
		{"simple request, origin * with a port", "PUT", "/cors-wildcard-origin", "cors.example", map[string]string{"Origin": "https://foobar.com:12345"},
			want{200, map[string]string{"access-control-allow-origin": "https://foobar.com:12345", "access-control-allow-credentials": ""}, true}},
		{"wildcards with credentials echo the request", "OPTIONS", "/cors-wildcard-methods-headers", "cors.example",
			pre("https://other.foo.com", "PUT", "x-header-1, x-header-2"),
			want{200, map[string]string{"access-control-allow-origin": "https://other.foo.com", "access-control-allow-methods": "PUT",
				"access-control-allow-headers": "x-header-1, x-header-2", "access-control-allow-credentials": "true"}, false}},
		{"wildcards without credentials", "OPTIONS", "/cors-wildcard-methods-headers-unauth", "cors.example",
			pre("https://other.foo.com", "PUT", "x-header-1, x-header-2"),
			want{200, map[string]string{"access-control-allow-origin": "https://other.foo.com", "access-control-allow-methods": "PUT",
				"access-control-allow-headers": "x-header-1, x-header-2", "access-control-allow-credentials": ""}, false}},
		{"simple request with credentials", "GET", "/cors-wildcard-methods-headers", "cors.example", map[string]string{"Origin": "https://other.foo.com"},
			want{200, map[string]string{"access-control-allow-origin": "https://other.foo.com", "access-control-allow-credentials": "true"}, true}},
		{"simple request without credentials", "GET", "/cors-wildcard-methods-headers-unauth", "cors.example", map[string]string{"Origin": "https://other.foo.com"},
			want{200, map[string]string{"access-control-allow-origin": "https://other.foo.com", "access-control-allow-credentials": ""}, true}},

		// Beyond the conformance suite.
		{"no Origin: not a CORS request", "OPTIONS", "/cors-1", "cors.example", map[string]string{"Access-Control-Request-Method": "GET"},
			want{200, map[string]string{"access-control-allow-origin": "", "access-control-allow-methods": ""}, true}},
		{"OPTIONS without a request method is forwarded", "OPTIONS", "/cors-1", "cors.example", map[string]string{"Origin": "https://www.foo.com"},
			want{200, map[string]string{"access-control-allow-origin": "https://www.foo.com", "access-control-allow-methods": ""}, true}},
		{"route without a policy", "GET", "/none", "cors.example", map[string]string{"Origin": "https://www.foo.com"},
			want{200, map[string]string{"access-control-allow-origin": ""}, true}},
		{"forward_not_matching_preflights false", "OPTIONS", "/strict", "cors.example", pre("https://evil.example", "GET", ""),
			want{200, map[string]string{"access-control-allow-origin": "", "access-control-allow-methods": "GET",
				"access-control-allow-credentials": "true"}, false}},
		{"private network access", "OPTIONS", "/strict", "cors.example",
			with(pre("https://ok.example", "GET", ""), "Access-Control-Request-Private-Network", "true"),
			want{200, map[string]string{"access-control-allow-origin": "https://ok.example", "access-control-allow-private-network": "true"}, false}},
		{"virtual host policy", "OPTIONS", "/x", "inherit.example", pre("https://vh.example", "GET", ""),
			want{200, map[string]string{"access-control-allow-origin": "https://vh.example", "access-control-allow-methods": "GET",
				"access-control-max-age": "60", "access-control-expose-headers": "x-vh"}, false}},
		{"route field overrides, the rest from the virtual host", "OPTIONS", "/override", "inherit.example", pre("https://vh.example", "PATCH", ""),
			want{200, map[string]string{"access-control-allow-origin": "https://vh.example", "access-control-allow-methods": "PATCH",
				"access-control-max-age": "60"}, false}},
		{"no route: 404 without CORS headers", "GET", "/", "nowhere.example", map[string]string{"Origin": "https://vh.example"},
			want{404, map[string]string{"access-control-allow-origin": ""}, false}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			check(t, c.Transport, tc.method, tc.path, tc.host, tc.hdr, tc.want)
		})
	}
	t.Run("HTTP/2 preflight", func(t *testing.T) {
		h2 := &http2.Transport{AllowHTTP: true, DialTLSContext: func(ctx context.Context, network, a string, _ *tls.Config) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, a)
		}}
		check(t, h2, "OPTIONS", "/cors-wildcard-methods-headers", "cors.example", pre("https://h2.example", "DELETE", "x-a"),
			want{200, map[string]string{"access-control-allow-origin": "https://h2.example", "access-control-allow-methods": "DELETE",
				"access-control-allow-headers": "x-a", "access-control-allow-credentials": "true"}, false})
		check(t, h2, "GET", "/cors-1", "cors.example", map[string]string{"Origin": "https://www.foo.com"},
			want{200, map[string]string{"access-control-allow-origin": "https://www.foo.com", "access-control-expose-headers": "x-header-3, x-header-4"}, true})
	})
	// Consecutive requests on one connection: a CORS answer never leaks
	// into the next request's response.
	t.Run("keep-alive", func(t *testing.T) {
		check(t, c.Transport, "GET", "/cors-1", "cors.example", map[string]string{"Origin": "https://www.foo.com"},
			want{200, map[string]string{"access-control-allow-origin": "https://www.foo.com"}, true})
		check(t, c.Transport, "GET", "/cors-1", "cors.example", nil,
			want{200, map[string]string{"access-control-allow-origin": "", "access-control-expose-headers": ""}, true})
	})
}
