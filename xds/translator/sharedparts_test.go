package translator

import (
	"testing"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/nodemesh/nodemesh/mesh/ir"
)

// TestSharedEntries: actions of different rules (objects of their own,
// so not one shared action) share the weighted_clusters entries, the
// route timeout and the header matchers they hold alike; an entry with
// header edits of its own, another weight or another cluster, another
// timeout and another header value are not shared; and every route still
// carries its own values.
func TestSharedEntries(t *testing.T) {
	cfg := &ir.Config{}
	for _, name := range []string{"service/ns/a/80", "service/ns/b/80"} {
		cfg.Clusters = append(cfg.Clusters, &ir.Cluster{Name: name, Protocol: ir.ProtocolHTTP1, LBPolicy: ir.LBRoundRobin,
			ConnectTimeout: time.Second, Endpoints: []ir.Endpoint{{Address: "10.0.0.1", Port: 80, Ready: true}}})
	}
	route := func(i int, tenant string, timeout time.Duration, backends ...*ir.WeightedBackend) *ir.Route {
		return &ir.Route{Name: "httproute/ns/r/rule/" + string(rune('0'+i)) + "/match/0",
			Match: ir.Match{
				Path:    &ir.PathMatch{Type: ir.PathPrefix, Value: "/" + string(rune('a'+i))},
				Headers: []ir.HeaderMatch{{Name: "X-Tenant", Type: ir.MatchExact, Value: tenant}},
			},
			Backends: backends, Timeout: timeout}
	}
	wb := func(cluster string, weight uint32) *ir.WeightedBackend {
		return &ir.WeightedBackend{Cluster: cluster, Weight: weight}
	}
	edited := wb("service/ns/a/80", 1)
	edited.RequestHeaders = &ir.HeaderModifier{Set: []ir.Header{{Name: "x-b", Value: "1"}}}
	routes := []*ir.Route{
		route(0, "t0", 0, wb("service/ns/a/80", 1), wb("service/ns/b/80", 4)),
		route(1, "t0", 0, wb("service/ns/a/80", 1), wb("service/ns/b/80", 4)),
		route(2, "t1", time.Second, wb("service/ns/a/80", 4), wb("service/ns/b/80", 1)),
		route(3, "t0", 0, edited, wb("service/ns/b/80", 4)),
	}
	cfg.Listeners = []*ir.Listener{{Name: "gateway/ns/gw/80", Address: "0.0.0.0", Port: 80, Chains: []*ir.HTTPChain{{
		Name: "http", Routes: &ir.RouteTable{Name: "gateway/ns/gw/80/http", VirtualHosts: []*ir.VirtualHost{
			{Name: "example.com", Domains: []string{"example.com"}, Routes: routes},
		}},
	}}}}
	res, err := Translate(cfg)
	if err != nil {
		t.Fatal(err)
	}
	out := res.RouteConfigurations[0].VirtualHosts[0].Routes
	if len(out) != 4 {
		t.Fatalf("%d routes, want 4", len(out))
	}
	entries := func(r *routev3.Route) []*routev3.WeightedCluster_ClusterWeight {
		return r.GetRoute().GetWeightedClusters().GetClusters()
	}
	if out[0].Action == out[1].Action {
		t.Fatal("routes of different rules share one action; this test needs each to build its own")
	}
	e0, e1, e2, e3 := entries(out[0]), entries(out[1]), entries(out[2]), entries(out[3])
	if len(e0) != 2 || len(e1) != 2 || len(e2) != 2 || len(e3) != 2 {
		t.Fatalf("entries %v %v %v %v, want two each", e0, e1, e2, e3)
	}
	if e0[0] != e1[0] || e0[1] != e1[1] {
		t.Error("equal weighted_clusters entries of two actions are not shared")
	}
	if e2[0] == e0[0] || e2[1] == e0[1] {
		t.Error("entries of other weights are shared")
	}
	if e3[0] == e0[0] || len(e3[0].RequestHeadersToAdd) != 1 {
		t.Errorf("an entry with header edits of its own is shared (or lost its edits: %v)", e3[0])
	}
	if e3[1] != e0[1] {
		t.Error("the plain entry next to one with header edits is not shared")
	}
	timeout := func(r *routev3.Route) any { return r.GetRoute().GetTimeout() }
	if timeout(out[0]) != timeout(out[1]) || timeout(out[0]) == timeout(out[2]) {
		t.Error("route timeouts: equal ones not shared, or different ones shared")
	}
	header := func(r *routev3.Route) *routev3.HeaderMatcher { return r.GetMatch().GetHeaders()[0] }
	if header(out[0]) != header(out[1]) || header(out[0]) != header(out[3]) || header(out[0]) == header(out[2]) {
		t.Error("header matchers: equal ones not shared, or different ones shared")
	}
	if header(out[0]).GetName() != "x-tenant" {
		t.Errorf("header matcher name %q, want x-tenant", header(out[0]).GetName())
	}
	requireValid(t, res)

	want := []struct {
		weights [2]uint32
		tenant  string
		timeout time.Duration
	}{{[2]uint32{1, 4}, "t0", 0}, {[2]uint32{1, 4}, "t0", 0}, {[2]uint32{4, 1}, "t1", time.Second}, {[2]uint32{1, 4}, "t0", 0}}
	for i, w := range want {
		e := entries(out[i])
		if e[0].GetName() != "service/ns/a/80" || e[1].GetName() != "service/ns/b/80" ||
			e[0].GetWeight().GetValue() != w.weights[0] || e[1].GetWeight().GetValue() != w.weights[1] {
			t.Errorf("route %d: entries %v, want a:%d b:%d", i, e, w.weights[0], w.weights[1])
		}
		if got := header(out[i]).GetStringMatch().GetExact(); got != w.tenant {
			t.Errorf("route %d: tenant %q, want %q", i, got, w.tenant)
		}
		if got := out[i].GetRoute().GetTimeout().AsDuration(); got != w.timeout {
			t.Errorf("route %d: timeout %v, want %v", i, got, w.timeout)
		}
	}
}

// TestForwardAllocations: a forwarding action to one cluster takes two
// allocations, its messages (forwardParts) and its cluster specifier; the
// list of valid backends it is built from stays on the stack.
func TestForwardAllocations(t *testing.T) {
	b := &builder{clusterNames: map[string]string{"service/ns/a/80": "service/ns/a/80"}}
	r := &ir.Route{Name: "httproute/ns/r/rule/0/match/0", Backends: []*ir.WeightedBackend{{Cluster: "service/ns/a/80", Weight: 1}}}
	if p := b.forward(r, new(routev3.Route)); p != nil {
		t.Fatal(p.msg)
	}
	n := testing.AllocsPerRun(100, func() {
		out := new(routev3.Route)
		if p := b.forward(r, out); p != nil || out.GetRoute().GetCluster() != "service/ns/a/80" {
			t.Fatalf("action %v, problem %v", out.Action, p)
		}
		forwardSink = out
	})
	// One more for the Route each run makes.
	if n != 3 {
		t.Errorf("forward to one cluster: %.0f allocations besides the route, want 2", n-1)
	}
}

var forwardSink *routev3.Route
