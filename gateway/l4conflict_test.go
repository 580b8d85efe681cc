package gateway

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nodemesh/nodemesh/mesh/input"
)

// TestL4RoutesSharingAListener: when two TCPRoutes, UDPRoutes or
// TLSRoutes (one SNI name) target one listener, only the oldest is bound
// and carries traffic, and both report Accepted=True while the listener
// counts both in attachedRoutes. That is what Gateway API v1.6.3 requires
// (conformance TCPRouteMultipleRoutesAttachment and
// UDPRouteMultipleRoutesAttachment: "both must report Accepted=True ...
// the listener's AttachedRoutes count must reflect both"); the route API
// defines no Conflicted condition for routes, and Accepted=False would
// fail those tests. The newer route's backends must not appear in the
// listener at all.
func TestL4RoutesSharingAListener(t *testing.T) {
	for _, tc := range []struct {
		kind, protocol, extra, hostnames string
		// olderDown: the older route's Service has no ready endpoints.
		// The older route is still the bound one: the newer route's
		// backends must not take its traffic.
		olderDown bool
	}{
		{kind: "TCPRoute", protocol: "TCP"},
		{kind: "TCPRoute", protocol: "TCP", olderDown: true},
		{kind: "UDPRoute", protocol: "UDP"},
		{kind: "UDPRoute", protocol: "UDP", olderDown: true},
		{kind: "TLSRoute", protocol: "TLS", extra: "\n    tls: {mode: Passthrough}", hostnames: "\n  hostnames: [a.example.com]"},
	} {
		name := tc.kind
		if tc.olderDown {
			name += "/older-without-endpoints"
		}
		t.Run(name, func(t *testing.T) {
			l4 := "TCP"
			if tc.kind == "UDPRoute" {
				l4 = "UDP"
			}
			doc := fmt.Sprintf(`apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: nodemesh}
spec: {controllerName: %s}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: eg, namespace: default}
spec:
  gatewayClassName: nodemesh
  listeners:
  - name: l4
    port: 5000
    protocol: %s%s
`, ControllerName, tc.protocol, tc.extra)
			for _, r := range []struct{ name, created, addr string }{{"newer", "2021-01-01T00:00:00Z", "10.0.0.2"}, {"older", "2020-01-01T00:00:00Z", "10.0.0.1"}} {
				doc += fmt.Sprintf(`---
apiVersion: v1
kind: Service
metadata: {name: %[1]s-svc, namespace: default}
spec:
  ports: [{port: 9000, protocol: %[4]s}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: %[1]s-svc-1, namespace: default, labels: {kubernetes.io/service-name: %[1]s-svc}}
addressType: IPv4
endpoints: [{addresses: [%[6]s], conditions: {ready: %[7]v}}]
ports: [{port: 9000, protocol: %[4]s}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: %[2]s
metadata: {name: %[1]s, namespace: default, creationTimestamp: "%[3]s"}
spec:
  parentRefs: [{name: eg, sectionName: l4}]%[5]s
  rules:
  - backendRefs: [{name: %[1]s-svc, port: 9000}]
`, r.name, tc.kind, r.created, l4, tc.hostnames, r.addr, !(tc.olderDown && r.name == "older"))
			}
			snap := decodeSnapshot(t, doc)
			opts := Options{ControllerName: ControllerName, Addresses: map[input.Key]netip.Addr{{Namespace: "default", Name: "eg"}: netip.MustParseAddr("127.0.0.10")}}
			res := Translate(snap, opts)
			checkResult(t, res)

			if len(res.Routes) != 2 {
				t.Fatalf("status for %d routes, want 2", len(res.Routes))
			}
			for _, r := range res.Routes {
				if len(r.Status.Parents) != 1 {
					t.Fatalf("%s: %d parents in status, want 1", r.Key, len(r.Status.Parents))
				}
				for _, typ := range []string{"Accepted", "ResolvedRefs"} {
					c := findCondition(r.Status.Parents[0].Conditions, typ)
					if c.Status != metav1.ConditionTrue {
						t.Errorf("%s %s: %s = %+v, want True", r.Kind, r.Key, typ, c)
					}
				}
			}
			if n := res.Gateways[0].Status.Listeners[0].AttachedRoutes; n != 2 {
				t.Errorf("listener attachedRoutes = %d, want 2", n)
			}
			if tc.olderDown && tc.kind == "UDPRoute" {
				// UDP has no way to refuse a datagram: no listener at all.
				if len(res.Config.Listeners) != 0 {
					b, _ := json.Marshal(res.Config.Listeners)
					t.Fatalf("a UDP listener whose bound route has no ready endpoints was emitted: %s", b)
				}
				return
			}
			if len(res.Config.Listeners) != 1 {
				t.Fatalf("%d IR listeners, want 1", len(res.Config.Listeners))
			}
			b, err := json.Marshal(res.Config.Listeners[0])
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(b), "older-svc") || strings.Contains(string(b), "newer-svc") {
				t.Errorf("listener does not serve only the oldest route's backend: %s", b)
			}
		})
	}
}
