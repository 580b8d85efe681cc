package e2e

import (
	"fmt"
	"testing"
	"time"
)

// timeoutsConfig has one HTTPRoute rule per combination of GEP-1742's
// timeouts worth telling apart, each on its own path.
func timeoutsConfig(m *mesh) string {
	return fmt.Sprintf(`apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: nodemesh}
spec: {controllerName: nodemesh.io/gateway-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: timeouts, namespace: default}
spec:
  gatewayClassName: nodemesh
  addresses: [{type: IPAddress, value: 127.0.101.1}]
  listeners: [{name: http, protocol: HTTP, port: %d}]
---
%sapiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: timeouts, namespace: default}
spec:
  parentRefs: [{name: timeouts}]
  hostnames: [timeouts.test]
  rules:
  - matches: [{path: {type: PathPrefix, value: /both}}]
    timeouts: {request: 5s, backendRequest: 1s}
    backendRefs: [{name: v1, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /request}}]
    timeouts: {request: 1s}
    backendRefs: [{name: v1, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /backend}}]
    timeouts: {backendRequest: 1s}
    backendRefs: [{name: v1, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /backend-disabled}}]
    timeouts: {request: 5s, backendRequest: 0s}
    backendRefs: [{name: v1, port: 80}]
`, m.port, m.service("default", "v1", "v1"))
}

// TestRouteTimeouts drives HTTPRoute timeouts through the whole pipeline
// to a backend that answers late: backendRequest bounds the request to
// the backend even when the request timeout is longer (the proxy answers
// 504 "upstream request timeout" after backendRequest, before request),
// request alone bounds it too, and "0s" disables backendRequest.
//
// The timings prove which timeout fired without asking for speed: the
// slow backend answers after 10 s, so a 504 is a timeout's; one before
// 4 s cannot be the 5 s request timeout's; and no timeout ends early. The
// 1 s timeouts leave a loaded machine time to answer the fast request.
func TestRouteTimeouts(t *testing.T) {
	m := startMesh(t, false, []string{"v1"})
	m.apply(timeoutsConfig(m))
	gw := m.gateway(1)
	for _, tc := range []struct {
		name, path, delay string
		status            int
		expected          string // x-envoy-expected-rq-timeout-ms at the backend
		minT, maxT        time.Duration
	}{
		{"backendRequest below request, fast backend", "/both", "", 200, "1000", 0, 4 * time.Second},
		{"backendRequest below request, slow backend", "/both", "10s", 504, "", time.Second, 4 * time.Second},
		{"request only, slow backend", "/request", "10s", 504, "", time.Second, 4 * time.Second},
		{"backendRequest only, slow backend", "/backend", "10s", 504, "", time.Second, 4 * time.Second},
		{"backendRequest disabled", "/backend-disabled", "1200ms", 200, "5000", 1200 * time.Millisecond, 4 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var headers []string
			if tc.delay != "" {
				headers = []string{"X-Echo-Delay", tc.delay}
			}
			start := time.Now()
			r := get(t, gw, "GET", "timeouts.test", tc.path, headers...)
			took := time.Since(start)
			// A timeout never ends early: the proxy's lazily kept
			// deadlines are only ever late (by at most 10 ms).
			if r.status != tc.status || took < tc.minT || took > tc.maxT {
				t.Fatalf("GET %s: %d %q after %v, want %d after %v to %v", tc.path, r.status, r.raw, took.Round(time.Millisecond), tc.status, tc.minT, tc.maxT)
			}
			if tc.status == 504 && r.raw != "upstream request timeout" {
				t.Errorf("GET %s: body %q, want Envoy's \"upstream request timeout\"", tc.path, r.raw)
			}
			if tc.status == 200 {
				if got := r.body.Headers["x-envoy-expected-rq-timeout-ms"]; len(got) != 1 || got[0] != tc.expected {
					t.Errorf("GET %s: backend saw x-envoy-expected-rq-timeout-ms %q, want %s", tc.path, got, tc.expected)
				}
			}
		})
	}
}
