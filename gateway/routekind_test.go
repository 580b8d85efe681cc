package gateway

import (
	"iter"
	"net/netip"
	"slices"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/nodemesh/nodemesh/mesh/input"
	"github.com/nodemesh/nodemesh/mesh/ir"
)

// testRoute is a second route kind for TestRouteKindTable: HTTPRoute
// objects compiled as HTTPRoutes are, but of kind TestRoute in group
// test.nodemesh.io, attaching to HTTP listeners only.
type testRoute struct{ obj *gwv1.HTTPRoute }

func (r testRoute) meta() *metav1.ObjectMeta           { return &r.obj.ObjectMeta }
func (r testRoute) hash(in *input.Snapshot) input.Hash { return input.ObjectHash(in, r.obj) }
func (r testRoute) parentRefs() []gwv1.ParentReference { return r.obj.Spec.ParentRefs }
func (r testRoute) hostnames() []gwv1.Hostname         { return r.obj.Spec.Hostnames }
func (r testRoute) compileRules(t *translator, rs *routeState) {
	httpRoute(r).compileRules(t, rs)
}

// withTestKind adds the TestRoute kind, listing objs, to the table for the
// rest of the test.
func withTestKind(t *testing.T, objs []*gwv1.HTTPRoute) {
	k := &routeKind{
		group: "test.nodemesh.io", kind: "TestRoute", plural: "TestRoutes", namePrefix: "testroute",
		protocols: []gwv1.ProtocolType{gwv1.HTTPProtocolType},
		routes: func(*input.Snapshot) iter.Seq[route] {
			return func(yield func(route) bool) {
				for _, o := range objs {
					if !yield(testRoute{o}) {
						return
					}
				}
			}
		},
		rank: len(routeKinds),
	}
	saved := routeKinds
	routeKinds = append(slices.Clip(routeKinds), k)
	t.Cleanup(func() { routeKinds = saved })
}

const kindTableCase = `
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: nodemesh}
spec: {controllerName: nodemesh.io/gateway-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: eg, namespace: default}
spec:
  gatewayClassName: nodemesh
  listeners:
  - name: any
    port: 80
    protocol: HTTP
  - name: tests-only
    port: 81
    protocol: HTTP
    allowedRoutes:
      kinds: [{group: test.nodemesh.io, kind: TestRoute}]
  - name: https
    port: 443
    protocol: HTTPS
    allowedRoutes:
      kinds: [{kind: HTTPRoute}, {group: test.nodemesh.io, kind: TestRoute}]
---
apiVersion: v1
kind: Service
metadata: {name: app, namespace: backends}
spec:
  ports: [{port: 8080}]
---
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {name: httproutes-only, namespace: backends}
spec:
  from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: default}]
  to: [{group: "", kind: Service}]
`

// The route both kinds have, under the same namespace and name.
const kindTableRoute = `
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web, namespace: default}
spec:
  parentRefs: [{name: eg}]
  rules:
  - backendRefs: [{name: app, namespace: backends, port: 8080}]
`

func decodeSnapshot(t *testing.T, yaml string) *input.Snapshot {
	t.Helper()
	objs, err := input.Decode("case.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	snap, err := input.Build(objs)
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

// TestRouteKindTable shows that a route kind is a row in routeKinds plus a
// route implementation: listener kinds, attachment, attachedRoutes,
// ReferenceGrants, route status, IR names and the Translator's reuse all
// follow from the row, with no other code aware of the kind.
func TestRouteKindTable(t *testing.T) {
	snap := decodeSnapshot(t, kindTableCase+"---"+kindTableRoute)
	tests := decodeSnapshot(t, kindTableRoute).HTTPRoutes
	withTestKind(t, tests)
	opts := Options{Addresses: map[input.Key]netip.Addr{{Namespace: "default", Name: "eg"}: netip.MustParseAddr("127.0.0.10")}}
	res := Translate(snap, opts)
	checkResult(t, res)

	listeners := map[string]gwv1.ListenerStatus{}
	for _, l := range res.Gateways[0].Status.Listeners {
		listeners[string(l.Name)] = l
	}
	kinds := func(l gwv1.ListenerStatus) []string {
		var out []string
		for _, k := range l.SupportedKinds {
			out = append(out, string(*k.Group)+"/"+string(k.Kind))
		}
		return out
	}
	for _, c := range []struct {
		listener string
		kinds    []string
		attached int32
		problem  string // expected in the ResolvedRefs message, "" when resolved
	}{
		// The default is every kind attaching to the protocol, in table order.
		{"any", []string{"gateway.networking.k8s.io/HTTPRoute", "gateway.networking.k8s.io/GRPCRoute", "test.nodemesh.io/TestRoute"}, 2, ""},
		{"tests-only", []string{"test.nodemesh.io/TestRoute"}, 1, ""},
		// TestRoute does not attach to HTTPS: InvalidRouteKinds, naming
		// what the protocol supports.
		{"https", []string{"gateway.networking.k8s.io/HTTPRoute"}, 1,
			"route kinds test.nodemesh.io/TestRoute are not supported on HTTPS listeners; supported: gateway.networking.k8s.io/HTTPRoute, gateway.networking.k8s.io/GRPCRoute"},
	} {
		l := listeners[c.listener]
		if got := kinds(l); !slices.Equal(got, c.kinds) {
			t.Errorf("listener %s: supportedKinds %v, want %v", c.listener, got, c.kinds)
		}
		if l.AttachedRoutes != c.attached {
			t.Errorf("listener %s: attachedRoutes %d, want %d", c.listener, l.AttachedRoutes, c.attached)
		}
		rr := findCondition(l.Conditions, "ResolvedRefs")
		if c.problem == "" && rr.Status != metav1.ConditionTrue {
			t.Errorf("listener %s: ResolvedRefs %s: %s", c.listener, rr.Status, rr.Message)
		}
		if c.problem != "" && (rr.Reason != string(gwv1.ListenerReasonInvalidRouteKinds) || !strings.Contains(rr.Message, c.problem)) {
			t.Errorf("listener %s: ResolvedRefs %s/%s %q, want InvalidRouteKinds %q", c.listener, rr.Status, rr.Reason, rr.Message, c.problem)
		}
	}

	// Statuses: kinds in table order; the grant admits HTTPRoutes only.
	if len(res.Routes) != 2 || res.Routes[0].Kind != "HTTPRoute" || res.Routes[1].Kind != "TestRoute" {
		t.Fatalf("route statuses %+v, want HTTPRoute default/web then TestRoute default/web", res.Routes)
	}
	for _, r := range res.Routes {
		if r.Key.String() != "default/web" || len(r.Status.Parents) != 1 {
			t.Fatalf("%s %s: %d parents, want default/web with 1", r.Kind, r.Key, len(r.Status.Parents))
		}
		conds := r.Status.Parents[0].Conditions
		if a := findCondition(conds, "Accepted"); a.Status != metav1.ConditionTrue {
			t.Errorf("%s: Accepted %s %s: %s", r.Kind, a.Status, a.Reason, a.Message)
		}
		rr := findCondition(conds, "ResolvedRefs")
		switch r.Kind {
		case "HTTPRoute":
			if rr.Status != metav1.ConditionTrue {
				t.Errorf("HTTPRoute: ResolvedRefs %s: %s", rr.Reason, rr.Message)
			}
		case "TestRoute":
			want := "TestRoute default/web: spec.rules[0].backendRefs[0]: Service backends/app is in another namespace and no ReferenceGrant there allows TestRoutes from default to use it"
			if rr.Reason != string(gwv1.RouteReasonRefNotPermitted) || rr.Message != want {
				t.Errorf("TestRoute: ResolvedRefs %s %q, want RefNotPermitted %q", rr.Reason, rr.Message, want)
			}
		}
	}

	// IR: the test kind's routes are named by its prefix and serve where
	// it attached; unresolved, its backend has no cluster.
	names := map[string][]string{}
	for _, l := range res.Config.Listeners {
		for _, ch := range l.Chains {
			for _, vh := range ch.Routes.VirtualHosts {
				for _, r := range vh.Routes {
					names[l.Name] = append(names[l.Name], r.Name+"->"+backendsOf(r))
				}
			}
		}
	}
	want := map[string][]string{
		"gateway/default/eg/80": {"httproute/default/web/rule/0/match/0->service/backends/app/8080", "testroute/default/web/rule/0/match/0->"},
		"gateway/default/eg/81": {"testroute/default/web/rule/0/match/0->"},
	}
	for l, w := range want {
		if !slices.Equal(names[l], w) {
			t.Errorf("listener %s routes %v, want %v", l, names[l], w)
		}
	}

	// Routes of two kinds with one key are two routes to the Translator.
	x := NewTranslator()
	checkSame(t, "first", x, snap, opts)
	checkSame(t, "again", x, snap, opts)
	for _, id := range []routeID{{routeKinds[0], input.Key{Namespace: "default", Name: "web"}}, {routeKinds[len(routeKinds)-1], input.Key{Namespace: "default", Name: "web"}}} {
		if x.prev.lookup(id) == nil {
			t.Errorf("Translator did not remember %s %s", id.kind.kind, id.key)
		}
	}
}

func findCondition(conds []metav1.Condition, typ string) metav1.Condition {
	for _, c := range conds {
		if c.Type == typ {
			return c
		}
	}
	return metav1.Condition{Type: typ, Status: "missing"}
}

func backendsOf(r *ir.Route) string {
	var out []string
	for _, b := range r.Backends {
		out = append(out, b.Cluster)
	}
	return strings.Join(out, ",")
}
