package gateway

import (
	"maps"
	"slices"
	"testing"

	"github.com/nodemesh/nodemesh/mesh/ir"
)

// TestMeshRoutesReplaceService: routes on a Service port replace what the
// Service would do (GEP-1294, "Route presence"), so a request no route
// matches must find no route in its chain's table (the proxy answers it
// 404; the MESH conformance suite's MeshHTTPRouteQueryParamMatching
// checks exactly that), for producer and consumer chains alike. Only a
// chain without routes — the producer chain of a port whose routes are
// all consumer routes — keeps the Service's behaviour, with one route to
// the Service's own cluster.
func TestMeshRoutesReplaceService(t *testing.T) {
	snap := decodeSnapshot(t, `
apiVersion: v1
kind: Service
metadata: {name: echo, namespace: app}
spec:
  clusterIP: 10.96.0.10
  ports: [{name: http, port: 80}, {name: http-alt, port: 8080}]
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: shop}
spec: {containers: [{name: c, image: client}]}
status: {phase: Running, podIP: 10.244.1.30}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: producer, namespace: app}
spec:
  parentRefs: [{group: "", kind: Service, name: echo, port: 80}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /a}}]
    backendRefs: [{name: echo, port: 80}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: consumer, namespace: shop}
spec:
  parentRefs: [{group: "", kind: Service, name: echo, namespace: app}]
  rules:
  - matches: [{queryParams: [{name: animal, value: whale}]}]
    backendRefs: [{name: echo, namespace: app, port: 80}]
`)
	res := Translate(snap, Options{Mesh: testMesh})
	checkResult(t, res)
	chains := map[string][]*ir.Route{}
	for _, l := range res.Config.Listeners {
		for _, ch := range l.Chains {
			if ch.Routes == nil || len(ch.Routes.VirtualHosts) != 1 {
				t.Fatalf("%s chain %s: want one virtual host, got %+v", l.Name, ch.Name, ch.Routes)
			}
			chains[l.Name+" "+ch.Name] = ch.Routes.VirtualHosts[0].Routes
		}
	}
	names := func(rs []*ir.Route) []string {
		var out []string
		for _, r := range rs {
			out = append(out, r.Name)
		}
		return out
	}
	want := map[string][]string{
		// The producer route alone: /b, / and a query without whale
		// match nothing.
		"mesh/app/echo/80 producer": {"httproute/app/producer/rule/0/match/0"},
		// shop's consumer route alone, not the producer's, not the
		// Service.
		"mesh/app/echo/80 consumer/shop":   {"httproute/shop/consumer/rule/0/match/0"},
		"mesh/app/echo/8080 consumer/shop": {"httproute/shop/consumer/rule/0/match/0"},
		// No producer route on 8080: every other client keeps the
		// Service.
		"mesh/app/echo/8080 producer": {"mesh/app/echo/8080/default"},
	}
	if len(chains) != len(want) {
		t.Errorf("chains %v, want %d", slices.Sorted(maps.Keys(chains)), len(want))
	}
	for chain, w := range want {
		got, ok := chains[chain]
		if !ok {
			t.Errorf("no chain %q", chain)
			continue
		}
		if !slices.Equal(names(got), w) {
			t.Errorf("%s: routes %v, want %v", chain, names(got), w)
		}
	}
	def := chains["mesh/app/echo/8080 producer"]
	if len(def) == 1 && (len(def[0].Backends) != 1 || def[0].Backends[0].Cluster != "service/app/echo/8080" || def[0].Match.Path != nil) {
		t.Errorf("8080's default route %+v, want every request to service/app/echo/8080", def[0])
	}
}
