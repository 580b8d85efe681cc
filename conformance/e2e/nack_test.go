package e2e

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"

	"github.com/nodemesh/nodemesh/conformance/internal/taint"
	"github.com/nodemesh/nodemesh/internal/agent/api"
	"github.com/nodemesh/nodemesh/mesh/dataplane"
	"github.com/nodemesh/nodemesh/xds/server"
)

// TestNackReachesGatewayStatus: a proxy that rejects an update keeps
// serving the previous configuration, and the rejection, with the proxy's
// own message, shows up on the Gateway's Programmed condition.
func TestNackReachesGatewayStatus(t *testing.T) {
	var pub *taint.Publisher
	m := startMesh(t, false, []string{"v1", "v2"}, withPublisher(func(s *server.Server) dataplane.Publisher {
		pub = taint.New(s)
		return pub
	}))
	base := `apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: nodemesh}
spec: {controllerName: nodemesh.io/gateway-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: web, namespace: default}
spec:
  gatewayClassName: nodemesh
  addresses: [{type: IPAddress, value: 127.0.101.1}]
  listeners: [{name: http, protocol: HTTP, port: ` + strconv.Itoa(m.port) + `}]
---
` + m.service("default", "v1", "v1") + m.service("default", "v2", "v2")
	route := func(backend string) string {
		return `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r, namespace: default}
spec:
  parentRefs: [{name: web}]
  rules: [{backendRefs: [{name: ` + backend + `, port: 80}]}]
`
	}
	m.apply(base + route("v1"))
	gw := m.gateway(1)
	if r := get(t, gw, "GET", "a.test", "/"); r.backend != "v1" {
		t.Fatalf("before: backend %q, want v1", r.backend)
	}

	pub.Armed.Store(true)
	m.applyNoWait(base + route("v2"))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := m.agent.WaitStatus(ctx, func(st *api.Status) bool {
		c := meta.FindStatusCondition(st.Gateways[0].Status.Conditions, "Programmed")
		return c != nil && c.Reason == "Invalid"
	})
	c := meta.FindStatusCondition(st.Gateways[0].Status.Conditions, "Programmed")
	if err != nil {
		t.Fatalf("NACK never reached the Gateway status; Programmed = %+v", c)
	}
	if c.Status != "False" || !strings.Contains(c.Message, "tracing") || !strings.Contains(c.Message, "gateway/default/web/") {
		t.Errorf("Programmed = %s: %s; want False with the proxy's message naming the listener and the tracing field", c.Status, c.Message)
	}
	// Only the Listener update was rejected: the listener keeps serving
	// with its last good configuration, and the route change (carried by
	// RDS, accepted on its own as Envoy does) is live. The NACK of the
	// listener can reach the status before the proxy has applied the
	// route configuration pushed after it, so wait for that ACK first.
	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if st, err := m.agent.WaitStatus(ctx, func(st *api.Status) bool {
		want := map[string]string{"RouteConfiguration": st.Versions["RouteConfiguration"]}
		for _, p := range st.Proxies {
			if p.Connected && p.AckedAll(want) {
				return true
			}
		}
		return false
	}); err != nil {
		t.Fatalf("the route configuration after the NACK was never acknowledged: versions %v, proxies %+v", st.Versions, st.Proxies)
	}
	if r := get(t, gw, "GET", "a.test", "/"); r.status != 200 || r.backend != "v2" {
		t.Errorf("after NACK: %d from %q, want 200 from v2 through the previous listener", r.status, r.backend)
	}

	// Fixing the control plane converges again.
	pub.Armed.Store(false)
	m.apply(base + route("v1"))
	if r := get(t, gw, "GET", "a.test", "/"); r.backend != "v1" {
		t.Errorf("after recovery: backend %q, want v1", r.backend)
	}
	c = meta.FindStatusCondition(m.agent.Status().Gateways[0].Status.Conditions, "Programmed")
	if c == nil || c.Status != "True" {
		t.Errorf("after recovery Programmed = %+v, want True", c)
	}
}
