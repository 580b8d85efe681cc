package translator

import (
	"reflect"
	"strings"
	"testing"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/proto"

	"github.com/nodemesh/nodemesh/mesh/ir"
)

// TestSharedActions: routes built from the same IR action objects (the
// matches of one rule) share one Envoy action and header edits; routes
// whose objects differ, whose path rewrite depends on their own match, or
// whose action cannot be expressed build their own; and the output is
// exactly that of the same content held in separate objects.
func TestSharedActions(t *testing.T) {
	cfg := sharedActionConfig()
	res, err := Translate(cfg)
	if err != nil {
		t.Fatal(err)
	}
	routes := res.RouteConfigurations[0].VirtualHosts[0].Routes
	if len(routes) != 8 {
		t.Fatalf("%d routes, want 8", len(routes))
	}
	sharing := func(a, b *routev3.Route) bool {
		return a.Action == b.Action && &a.RequestHeadersToAdd[0] == &b.RequestHeadersToAdd[0] &&
			&a.ResponseHeadersToAdd[0] == &b.ResponseHeadersToAdd[0]
	}
	if !sharing(routes[0], routes[1]) {
		t.Error("the two matches of one rule do not share their action")
	}
	for _, c := range []struct {
		i    int
		what string
	}{{2, "equal content in other objects"}, {3, "other request header edits"}} {
		if routes[0].Action == routes[c.i].Action {
			t.Errorf("route %d (%s) shares the action of route 0", c.i, c.what)
		}
	}
	if routes[4].Action == routes[5].Action {
		t.Error("two prefix rewrites of different matches share one action")
	}
	rw := func(r *routev3.Route) string { return r.GetRoute().GetRegexRewrite().GetPattern().GetRegex() }
	if rw(routes[4]) != "^/e/?" || rw(routes[5]) != "^/f/?" {
		t.Errorf("rewrites %q, %q; want ^/e/? and ^/f/?", rw(routes[4]), rw(routes[5]))
	}
	for _, r := range routes[6:] {
		if r.GetDirectResponse().GetStatus() != 500 {
			t.Errorf("route %s: %v, want a 500 (its header value cannot be carried)", r.Name, r.Action)
		}
	}
	if len(res.Warnings) != 2 || res.Warnings[0].Object == res.Warnings[1].Object {
		t.Errorf("warnings %v, want one for each of the last two routes", res.Warnings)
	}

	// The same content, each route holding objects of its own.
	alone, err := Translate(unsharedActions(sharedActionConfig()))
	if err != nil {
		t.Fatal(err)
	}
	got, want := res.RouteConfigurations[0], alone.RouteConfigurations[0]
	if !proto.Equal(got, want) {
		t.Fatalf("shared actions changed the output:\n%v\nwant\n%v", got, want)
	}
	if !reflect.DeepEqual(res.Warnings, alone.Warnings) {
		t.Fatalf("warnings %v, want %v", res.Warnings, alone.Warnings)
	}
	routes = want.VirtualHosts[0].Routes
	if routes[0].Action == routes[1].Action {
		t.Fatal("routes holding objects of their own share an action")
	}
}

// sharedActionConfig is one virtual host whose routes hold their action
// objects as described in TestSharedActions.
func sharedActionConfig() *ir.Config {
	cfg := &ir.Config{}
	for _, name := range []string{"service/ns/a/80", "service/ns/b/80"} {
		cfg.Clusters = append(cfg.Clusters, &ir.Cluster{Name: name, Protocol: ir.ProtocolHTTP1, LBPolicy: ir.LBRoundRobin,
			ConnectTimeout: time.Second, Endpoints: []ir.Endpoint{{Address: "10.0.0.1", Port: 80, Ready: true}}})
	}
	backends := []*ir.WeightedBackend{{Cluster: "service/ns/a/80", Weight: 80}, {Cluster: "service/ns/b/80", Weight: 20}}
	req := &ir.HeaderModifier{Set: []ir.Header{{Name: "x-rule", Value: "a"}}, Remove: []string{"x-debug"}}
	resp := &ir.HeaderModifier{Add: []ir.Header{{Name: "x-served-by", Value: "nodemesh"}}}
	rewrite := &ir.Rewrite{Path: &ir.PathRewrite{Type: ir.ReplacePrefixMatch, Value: "/"}}
	tooLong := &ir.HeaderModifier{Set: []ir.Header{{Name: "x-rule", Value: strings.Repeat("v", maxHeaderBytes+1)}}}
	route := func(name, path string) *ir.Route {
		return &ir.Route{Name: "httproute/ns/r/" + name, Match: ir.Match{Path: &ir.PathMatch{Type: ir.PathPrefix, Value: path}},
			Backends: backends, RequestHeaders: req, ResponseHeaders: resp, Timeout: 10 * time.Second}
	}
	routes := []*ir.Route{route("rule/0/match/0", "/a"), route("rule/0/match/1", "/b"),
		route("rule/1/match/0", "/c"), route("rule/2/match/0", "/d"),
		route("rule/3/match/0", "/e"), route("rule/3/match/1", "/f"),
		route("rule/4/match/0", "/g"), route("rule/4/match/1", "/h")}
	routes[2].Backends = append([]*ir.WeightedBackend(nil), backends...)
	routes[2].RequestHeaders = &ir.HeaderModifier{Set: req.Set, Remove: req.Remove}
	routes[3].RequestHeaders = &ir.HeaderModifier{Set: []ir.Header{{Name: "x-rule", Value: "b"}}}
	// Rules 3 and 4 have backends of their own, as producers build them.
	own := append([]*ir.WeightedBackend(nil), backends...)
	routes[4].Backends, routes[5].Backends = own, own
	routes[4].Rewrite, routes[5].Rewrite = rewrite, rewrite
	own = append([]*ir.WeightedBackend(nil), backends...)
	routes[6].Backends, routes[7].Backends = own, own
	routes[6].RequestHeaders, routes[7].RequestHeaders = tooLong, tooLong
	cfg.Listeners = []*ir.Listener{{Name: "gateway/ns/gw/80", Address: "0.0.0.0", Port: 80, Chains: []*ir.HTTPChain{{
		Name: "http", Routes: &ir.RouteTable{Name: "gateway/ns/gw/80/http", VirtualHosts: []*ir.VirtualHost{
			{Name: "example.com", Domains: []string{"example.com"}, Routes: routes},
		}},
	}}}}
	return cfg
}

// unsharedActions gives every route of cfg action objects of its own.
func unsharedActions(cfg *ir.Config) *ir.Config {
	for _, vh := range cfg.Listeners[0].Chains[0].Routes.VirtualHosts {
		for _, r := range vh.Routes {
			bs := make([]*ir.WeightedBackend, len(r.Backends))
			for i, b := range r.Backends {
				cp := *b
				bs[i] = &cp
			}
			r.Backends = bs
			for _, m := range []**ir.HeaderModifier{&r.RequestHeaders, &r.ResponseHeaders} {
				if *m != nil {
					cp := **m
					*m = &cp
				}
			}
			if r.Rewrite != nil {
				cp := *r.Rewrite
				r.Rewrite = &cp
			}
		}
	}
	return cfg
}
