package e2e

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// churnConfig is generation i of a configuration that changes everything a
// route change can change: the Service a rule points at (a new Service,
// hence a new cluster, every generation, and the previous one deleted),
// weights, the set of rules, and header filters.
func churnConfig(m *mesh, i int) string {
	var b strings.Builder
	fmt.Fprintf(&b, `apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: nodemesh}
spec: {controllerName: nodemesh.io/gateway-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: churn, namespace: default}
spec:
  gatewayClassName: nodemesh
  addresses: [{type: IPAddress, value: 127.0.101.1}]
  listeners: [{name: http, protocol: HTTP, port: %d}]
---
`, m.port)
	backends := []string{"v1", "v2", "v3"}
	cur := fmt.Sprintf("gen-%d", i)
	b.WriteString(m.service("default", cur, backends[i%3]))
	b.WriteString(m.service("default", "stable", backends[(i+1)%3]))
	fmt.Fprintf(&b, `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: churn, namespace: default}
spec:
  parentRefs: [{name: churn}]
  hostnames: [churn.test]
  rules:
  - filters:
    - type: RequestHeaderModifier
      requestHeaderModifier: {set: [{name: X-Generation, value: "%[1]d"}]}
    - type: ResponseHeaderModifier
      responseHeaderModifier: {set: [{name: X-Generation, value: "%[1]d"}]}
    backendRefs:
    - {name: %[2]s, port: 80, weight: %[3]d}
    - {name: stable, port: 80, weight: %[4]d}
`, i, cur, 1+i%5, 1+(i+2)%5)
	// Extra rules come and go; the paths the clients use always match
	// the first rule.
	for r := 0; r < i%4; r++ {
		fmt.Fprintf(&b, "  - matches: [{path: {type: PathPrefix, value: /extra-%d-%d}}]\n    backendRefs: [{name: stable, port: 80}]\n", i, r)
	}
	return b.String()
}

// churnChanges is how many route changes TestRouteChurnUnderLoad makes
// per protocol.
const churnChanges = 1000

// TestRouteChurnUnderLoad changes the routes churnChanges times, back to
// back, while clients keep sending requests (some of them held in flight
// at the backend across several changes), and requires that not one
// request fails and that the traffic saw most generations of the
// configuration.
func TestRouteChurnUnderLoad(t *testing.T) {
	for _, delta := range []bool{false, true} {
		t.Run(map[bool]string{false: "sotw", true: "delta"}[delta], func(t *testing.T) {
			testRouteChurn(t, delta)
		})
	}
}

func testRouteChurn(t *testing.T, delta bool) {
	m := startMesh(t, delta, []string{"v1", "v2", "v3"})
	m.apply(churnConfig(m, 0))
	gw := m.gateway(1)

	var ok, bad, errs atomic.Int64
	var firstFailure atomic.Value
	// seen marks the generations whose route served a request.
	var seen [churnChanges + 1]atomic.Bool
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				req, _ := http.NewRequest("GET", fmt.Sprintf("http://%s/w%d/%d", gw, w, n), nil)
				req.Host = "churn.test"
				if w%3 == 0 {
					// Keep some requests in flight while the config changes.
					req.Header.Set("X-Echo-Delay", "30ms")
				}
				resp, err := c.Do(req)
				if err != nil {
					errs.Add(1)
					firstFailure.CompareAndSwap(nil, err.Error())
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					bad.Add(1)
					firstFailure.CompareAndSwap(nil, fmt.Sprintf("status %d from %q", resp.StatusCode, resp.Header.Get("X-Echo-Backend")))
					continue
				}
				// The generation of the route that served the request.
				if n, err := strconv.Atoi(resp.Header.Get("X-Generation")); err == nil && n >= 0 && n <= churnChanges {
					seen[n].Store(true)
				}
				ok.Add(1)
			}
		}()
	}

	start := time.Now()
	for i := 1; i <= churnChanges; i++ {
		// apply returns once the proxy acknowledged generation i; the
		// next change starts at once.
		m.apply(churnConfig(m, i))
	}
	took := time.Since(start)
	// The last generation is live: the header the route sets says so.
	r := get(t, gw, "GET", "churn.test", "/check")
	if g := r.body.Headers["x-generation"]; len(g) != 1 || g[0] != strconv.Itoa(churnChanges) {
		t.Errorf("after %d changes the backend saw x-generation %q, want %d", churnChanges, g, churnChanges)
	}
	close(stop)
	wg.Wait()
	generations := 0
	for i := 1; i <= churnChanges; i++ {
		if seen[i].Load() {
			generations++
		}
	}
	t.Logf("%d route changes in %v (%v each); %d requests succeeded, %d non-2xx, %d connection errors; %d generations served requests",
		churnChanges, took.Round(time.Millisecond), (took / churnChanges).Round(time.Microsecond), ok.Load(), bad.Load(), errs.Load(), generations)
	if bad.Load() != 0 || errs.Load() != 0 {
		t.Errorf("%d non-2xx responses and %d connection errors during route changes; first: %v", bad.Load(), errs.Load(), firstFailure.Load())
	}
	if generations < churnChanges/2 {
		t.Errorf("only %d of %d generations served a request; the load did not overlap the changes", generations, churnChanges)
	}
}
