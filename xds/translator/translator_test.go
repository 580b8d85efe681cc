package translator

import (
	"errors"
	"math"
	"strings"
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/nodemesh/nodemesh/mesh/ir"
)

// baseConfig is one listener, one route forwarding to one cluster; tests
// mutate it.
func baseConfig() *ir.Config {
	return &ir.Config{
		Listeners: []*ir.Listener{{
			Name: "l", Address: "127.0.0.1", Port: 8080,
			Chains: []*ir.HTTPChain{{
				Name: "http",
				Routes: &ir.RouteTable{Name: "t", VirtualHosts: []*ir.VirtualHost{{
					Name: "vh", Domains: []string{"*"},
					Routes: []*ir.Route{{
						Name:     "r",
						Match:    ir.Match{Path: &ir.PathMatch{Type: ir.PathPrefix, Value: "/app"}},
						Backends: []*ir.WeightedBackend{{Cluster: "c", Weight: 1}},
					}},
				}}},
			}},
		}},
		Clusters: []*ir.Cluster{{Name: "c", Protocol: ir.ProtocolHTTP1, LBPolicy: ir.LBRoundRobin}},
	}
}

func firstRoute(c *ir.Config) *ir.Route {
	return c.Listeners[0].Chains[0].Routes.VirtualHosts[0].Routes[0]
}

func TestTranslateRejectsInvalidIR(t *testing.T) {
	if _, err := Translate(nil); err == nil {
		t.Error("Translate(nil) succeeded")
	}
	cfg := baseConfig()
	firstRoute(cfg).Backends[0].Cluster = "missing"
	_, err := Translate(cfg)
	if !errors.Is(err, ir.ErrInvalid) {
		t.Fatalf("got %v, want an error wrapping ir.ErrInvalid", err)
	}
	if !strings.Contains(err.Error(), `unknown cluster "missing"`) {
		t.Errorf("error %q does not name the field", err)
	}
}

// TestInexpressible covers IR that passes validation but that Envoy's API
// cannot carry: translation succeeds, output validates, the offending route
// is dropped or answers 500, and a warning names the object and field.
func TestInexpressible(t *testing.T) {
	const (
		dropped = "dropped"
		is500   = "500"
	)
	long := strings.Repeat("v", maxHeaderBytes+1)
	tests := []struct {
		name    string
		mutate  func(*ir.Route)
		outcome string
		warning string
	}{
		{"path not UTF-8", func(r *ir.Route) { r.Match.Path = &ir.PathMatch{Type: ir.PathExact, Value: "/\xff"} }, dropped, "match.path.value"},
		{"path with NUL", func(r *ir.Route) { r.Match.Path = &ir.PathMatch{Type: ir.PathExact, Value: "/a\x00"} }, dropped, "match.path.value"},
		{"prefix with #", func(r *ir.Route) { r.Match.Path = &ir.PathMatch{Type: ir.PathPrefix, Value: "/a#b"} }, dropped, "match.path.value"},
		{"header value not UTF-8", func(r *ir.Route) {
			r.Match.Headers = []ir.HeaderMatch{{Name: "x", Type: ir.MatchExact, Value: "\xe9"}}
		}, dropped, "match.headers[0].value"},
		{"query name too long", func(r *ir.Route) {
			r.Match.Query = []ir.QueryMatch{{Name: strings.Repeat("q", 1025), Type: ir.MatchExact, Value: "1"}}
		}, dropped, "match.query[0].name"},
		{"query value not UTF-8", func(r *ir.Route) {
			r.Match.Query = []ir.QueryMatch{{Name: "q", Type: ir.MatchExact, Value: "\xff"}}
		}, dropped, "match.query[0].value"},
		{"set value too long", func(r *ir.Route) {
			r.RequestHeaders = &ir.HeaderModifier{Set: []ir.Header{{Name: "x", Value: long}}}
		}, is500, "requestHeaders.set[0].value"},
		{"percent pushes value over the limit", func(r *ir.Route) {
			r.ResponseHeaders = &ir.HeaderModifier{Add: []ir.Header{{Name: "x", Value: strings.Repeat("%", maxHeaderBytes/2+1)}}}
		}, is500, "responseHeaders.add[0].value"},
		{"set value not UTF-8", func(r *ir.Route) {
			r.RequestHeaders = &ir.HeaderModifier{Set: []ir.Header{{Name: "x", Value: "caf\xe9"}}}
		}, is500, "requestHeaders.set[0].value"},
		{"too many additions", func(r *ir.Route) {
			m := &ir.HeaderModifier{}
			for range maxHeadersToAdd + 1 {
				m.Add = append(m.Add, ir.Header{Name: "x", Value: "1"})
			}
			r.ResponseHeaders = m
		}, is500, "responseHeaders"},
		{"backend header not UTF-8", func(r *ir.Route) {
			r.Backends[0].ResponseHeaders = &ir.HeaderModifier{Set: []ir.Header{{Name: "x", Value: "\xff"}}}
		}, is500, "backends[0].responseHeaders.set[0].value"},
		{"rewrite path not UTF-8", func(r *ir.Route) {
			r.Rewrite = &ir.Rewrite{Path: &ir.PathRewrite{Type: ir.ReplaceFullPath, Value: "/\xff"}}
		}, is500, "rewrite.path.value"},
		{"redirect path with newline", func(r *ir.Route) {
			r.Backends = nil
			r.Redirect = &ir.Redirect{StatusCode: 302, Path: &ir.PathRewrite{Type: ir.ReplaceFullPath, Value: "/a\nb"}}
		}, is500, "redirect.path.value"},
		{"direct response body too large", func(r *ir.Route) {
			r.Backends = nil
			r.DirectResponse = &ir.DirectResponse{Status: 200, Body: strings.Repeat("b", maxDirectResponseBody+1)}
		}, is500, "directResponse.body"},
		{"direct response body not UTF-8", func(r *ir.Route) {
			r.Backends = nil
			r.DirectResponse = &ir.DirectResponse{Status: 200, Body: "\xff"}
		}, is500, "directResponse.body"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := baseConfig()
			tc.mutate(firstRoute(cfg))
			if err := cfg.Validate(); err != nil {
				t.Fatalf("test IR must be valid: %v", err)
			}
			res, err := Translate(cfg)
			if err != nil {
				t.Fatalf("Translate: %v", err)
			}
			requireValid(t, res)
			routes := res.RouteConfigurations[0].VirtualHosts[0].Routes
			switch tc.outcome {
			case dropped:
				if len(routes) != 0 {
					t.Errorf("route kept: %v", routes[0])
				}
			case is500:
				if len(routes) != 1 || routes[0].GetDirectResponse().GetStatus() != 500 {
					t.Fatalf("route does not answer 500: %v", routes)
				}
				if len(routes[0].RequestHeadersToAdd)+len(routes[0].ResponseHeadersToAdd) != 0 {
					t.Errorf("500 route keeps header edits")
				}
			}
			if len(res.Warnings) != 1 {
				t.Fatalf("warnings = %v, want one", res.Warnings)
			}
			w := res.Warnings[0]
			if w.Object != `route "r"` || w.Field != tc.warning {
				t.Errorf("warning %q, want object route \"r\" and field %q", w, tc.warning)
			}
		})
	}
}

func TestNamesAreEscapedConsistently(t *testing.T) {
	cfg := baseConfig()
	cfg.Clusters[0].Name = "c\xff%"
	firstRoute(cfg).Backends[0].Cluster = "c\xff%"
	cfg.Listeners[0].Chains[0].Routes.Name = "t\x00"
	res, err := Translate(cfg)
	if err != nil {
		t.Fatal(err)
	}
	requireValid(t, res)
	if got := res.Clusters[0].Name; got != "c%FF%25" {
		t.Errorf("cluster name %q", got)
	}
	if got := res.ClusterLoadAssignments[0].ClusterName; got != "c%FF%25" {
		t.Errorf("load assignment name %q", got)
	}
	if got := res.RouteConfigurations[0].VirtualHosts[0].Routes[0].GetRoute().GetCluster(); got != "c%FF%25" {
		t.Errorf("route cluster %q", got)
	}
	if got := res.RouteConfigurations[0].Name; got != "t%00" {
		t.Errorf("route configuration name %q", got)
	}
}

func TestEnvoyNameIsInjective(t *testing.T) {
	names := []string{"a%25", "a%", "a\x25", "a\xff", "a%FF", "a\x00", "a%00", "a", "é", "\xc3\xa9", "\xc3"}
	seen := map[string]string{}
	for _, n := range names {
		e := envoyName(n)
		if prev, dup := seen[e]; dup && prev != n {
			t.Errorf("%q and %q both map to %q", prev, n, e)
		}
		seen[e] = n
		if !protoText(e) {
			t.Errorf("envoyName(%q) = %q is not clean", n, e)
		}
	}
}

func TestScaleWeights(t *testing.T) {
	w := []uint64{math.MaxUint32, math.MaxUint32, 1, 3 * math.MaxUint32}
	scaleWeights(w)
	var sum uint64
	for _, x := range w {
		if x == 0 {
			t.Errorf("a weight dropped to 0: %v", w)
		}
		sum += x
	}
	if sum > math.MaxUint32 {
		t.Errorf("sum %d still exceeds MaxUint32", sum)
	}
	if w[0] != w[1] || w[3] < 2*w[0] {
		t.Errorf("proportions lost: %v", w)
	}
	small := []uint64{3, 1}
	scaleWeights(small)
	if small[0] != 3 || small[1] != 1 {
		t.Errorf("small weights changed: %v", small)
	}
}

// TestRouteOrderKept guards the IR invariant the whole pipeline relies on:
// routes come out in the IR's order, never re-sorted.
func TestRouteOrderKept(t *testing.T) {
	cfg := baseConfig()
	vh := cfg.Listeners[0].Chains[0].Routes.VirtualHosts[0]
	names := []string{"z", "a", "m", "b"}
	vh.Routes = nil
	for _, n := range names {
		vh.Routes = append(vh.Routes, &ir.Route{Name: n, Backends: []*ir.WeightedBackend{{Cluster: "c", Weight: 1}}})
	}
	res, err := Translate(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range res.RouteConfigurations[0].VirtualHosts[0].Routes {
		got = append(got, r.Name)
	}
	if strings.Join(got, ",") != strings.Join(names, ",") {
		t.Errorf("route order %v, want %v", got, names)
	}
	if _, ok := res.RouteConfigurations[0].VirtualHosts[0].Routes[0].Action.(*routev3.Route_Route); !ok {
		t.Error("forward route has no route action")
	}
}

// TestClusterUpstreamMark: a cluster's UpstreamMark becomes an SO_MARK set
// before connect (upstream_bind_config binding no address), which is what
// the proxy reads; without a mark there is no bind config, and a changed
// mark changes the cluster's version so the proxy gets it.
func TestClusterUpstreamMark(t *testing.T) {
	plain, err := Translate(baseConfig())
	if err != nil {
		t.Fatal(err)
	}
	if b := plain.Clusters[0].GetUpstreamBindConfig(); b != nil {
		t.Fatalf("a cluster without a mark has a bind config: %v", b)
	}
	cfg := baseConfig()
	cfg.Clusters[0].UpstreamMark = 0x80A00B00
	marked, err := Translate(cfg)
	if err != nil {
		t.Fatal(err)
	}
	b := marked.Clusters[0].GetUpstreamBindConfig()
	if b.GetSourceAddress().GetAddress() != "0.0.0.0" || b.GetSourceAddress().GetPortValue() != 0 || len(b.GetSocketOptions()) != 1 {
		t.Fatalf("bind config: %v", b)
	}
	o := b.GetSocketOptions()[0]
	if o.GetLevel() != solSocket || o.GetName() != soMark || o.GetIntValue() != 0x80A00B00 || o.GetState().String() != "STATE_PREBIND" {
		t.Fatalf("socket option: %v", o)
	}
	if plain.Version(plain.Clusters[0]) == marked.Version(marked.Clusters[0]) {
		t.Fatal("the mark does not change the cluster's version")
	}
	// A source address binds it, beside the mark.
	cfg.Clusters[0].UpstreamSource = "10.244.1.254"
	sourced, err := Translate(cfg)
	if err != nil {
		t.Fatal(err)
	}
	b = sourced.Clusters[0].GetUpstreamBindConfig()
	if b.GetSourceAddress().GetAddress() != "10.244.1.254" || b.GetSourceAddress().GetPortValue() != 0 || len(b.GetSocketOptions()) != 1 {
		t.Fatalf("bind config with a source: %v", b)
	}
	if sourced.Version(sourced.Clusters[0]) == marked.Version(marked.Clusters[0]) {
		t.Fatal("the source address does not change the cluster's version")
	}
}
