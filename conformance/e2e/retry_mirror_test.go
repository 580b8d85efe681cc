package e2e

import (
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"
)

// flaky is a backend whose answers a test scripts per request id (the
// "id" query parameter): the first fail attempts of an id fail the way
// mode says, later ones answer 200. It counts the attempts of every id.
type flaky struct {
	mu       sync.Mutex
	attempts map[string]int
}

func (f *flaky) count(id string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.attempts[id]
}

func (f *flaky) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	id := q.Get("id")
	fail, _ := strconv.Atoi(q.Get("fail"))
	f.mu.Lock()
	f.attempts[id]++
	n := f.attempts[id]
	f.mu.Unlock()
	if n > fail {
		w.Header().Set("X-Attempt", strconv.Itoa(n))
		w.WriteHeader(http.StatusOK)
		return
	}
	switch mode := q.Get("mode"); mode {
	case "reset":
		// Abort the connection with a TCP RST, no response at all.
		c, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			panic(err)
		}
		c.(*net.TCPConn).SetLinger(0)
		c.Close()
	case "slow":
		// Answer after the route's backendRequest timeout has expired.
		select {
		case <-time.After(3 * time.Second):
		case <-r.Context().Done():
		}
		w.WriteHeader(http.StatusOK)
	default:
		code, _ := strconv.Atoi(mode)
		w.WriteHeader(code)
	}
}

// startFlaky runs a flaky backend on loopback under the given name.
func (m *mesh) startFlaky(name string) *flaky {
	m.t.Helper()
	f := &flaky{attempts: map[string]int{}}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		m.t.Fatal(err)
	}
	srv := &http.Server{Handler: f}
	go srv.Serve(l)
	m.t.Cleanup(func() { srv.Close() })
	m.backends[name] = l.Addr().String()
	return f
}

func retryConfig(m *mesh) string {
	return fmt.Sprintf(`apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: nodemesh}
spec: {controllerName: nodemesh.io/gateway-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: retries, namespace: default}
spec:
  gatewayClassName: nodemesh
  addresses: [{type: IPAddress, value: 127.0.101.1}]
  listeners: [{name: http, protocol: HTTP, port: %d}]
---
%sapiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: retries, namespace: default}
spec:
  parentRefs: [{name: retries}]
  hostnames: [retries.test]
  rules:
  - matches: [{path: {type: PathPrefix, value: /codes}}]
    retry: {codes: [500, 503], attempts: 2, backoff: 10ms}
    backendRefs: [{name: flaky, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /default}}]
    retry: {}
    backendRefs: [{name: flaky, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /backend-timeout}}]
    timeouts: {request: 10s, backendRequest: 300ms}
    retry: {attempts: 1}
    backendRefs: [{name: flaky, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /none}}]
    timeouts: {request: 10s, backendRequest: 300ms}
    backendRefs: [{name: flaky, port: 80}]
`, m.port, m.service("default", "flaky", "flaky"))
}

// TestRouteRetries drives HTTPRoute retries through the whole pipeline
// to a backend failing a scripted number of times: listed codes are
// retried up to attempts and the last failure stands beyond them, other
// codes are not retried, a connection reset and a backendRequest timeout
// are retried (HTTPRouteRetryConnectionError, HTTPRouteRetryBackendTimeout)
// with or without codes, and a rule without retry sends one attempt.
func TestRouteRetries(t *testing.T) {
	m := startMesh(t, false, nil)
	f := m.startFlaky("flaky")
	m.apply(retryConfig(m))
	gw := m.gateway(1)
	for i, tc := range []struct {
		name, path, mode string
		fail             int
		status, attempts int
		maxT             time.Duration
	}{
		{"listed code, recovers within attempts", "/codes", "500", 2, 200, 3, 5 * time.Second},
		{"listed code, fails beyond attempts", "/codes", "503", 3, 503, 3, 5 * time.Second},
		{"unlisted code is not retried", "/codes", "502", 1, 502, 1, 5 * time.Second},
		{"connection reset with codes", "/codes", "reset", 2, 200, 3, 5 * time.Second},
		{"connection reset, default attempts", "/default", "reset", 1, 200, 2, 5 * time.Second},
		{"codes are not retried without codes", "/default", "500", 1, 500, 1, 5 * time.Second},
		{"backend timeout is retried", "/backend-timeout", "slow", 1, 200, 2, 2500 * time.Millisecond},
		{"no retry stanza, one attempt", "/none", "slow", 1, 504, 1, 2500 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := fmt.Sprintf("%s-%d", t.Name(), i)
			path := fmt.Sprintf("%s?id=%d&mode=%s&fail=%d", tc.path, i, tc.mode, tc.fail)
			start := time.Now()
			r := get(t, gw, "GET", "retries.test", path)
			took := time.Since(start)
			if r.status != tc.status || took > tc.maxT {
				t.Fatalf("GET %s: %d %q after %v, want %d within %v", path, r.status, r.raw, took.Round(time.Millisecond), tc.status, tc.maxT)
			}
			// A timed-out attempt may still be counted by the backend a
			// moment after the answer; wait for the count to settle.
			deadline := time.Now().Add(5 * time.Second)
			for f.count(strconv.Itoa(i)) != tc.attempts && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			if got := f.count(strconv.Itoa(i)); got != tc.attempts {
				t.Errorf("%s: backend saw %d attempts, want %d", id, got, tc.attempts)
			}
		})
	}
}

func mirrorConfig(m *mesh) string {
	return fmt.Sprintf(`apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: nodemesh}
spec: {controllerName: nodemesh.io/gateway-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: mirrors, namespace: default}
spec:
  gatewayClassName: nodemesh
  addresses: [{type: IPAddress, value: 127.0.101.1}]
  listeners: [{name: http, protocol: HTTP, port: %d}]
---
%s%s%sapiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: mirrors, namespace: default}
spec:
  parentRefs: [{name: mirrors}]
  hostnames: [mirrors.test]
  rules:
  - matches: [{path: {type: PathPrefix, value: /mirror}}]
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier: {set: [{name: X-Edited, value: "yes"}]}
    - type: RequestMirror
      requestMirror: {backendRef: {name: shadow-a, port: 80}}
    - type: RequestMirror
      requestMirror: {backendRef: {name: shadow-b, port: 80}, percent: 100}
    backendRefs: [{name: v1, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /never}}]
    filters:
    - type: RequestMirror
      requestMirror: {backendRef: {name: shadow-a, port: 80}, fraction: {numerator: 0}}
    backendRefs: [{name: v1, port: 80}]
`, m.port, m.service("default", "v1", "v1"), m.service("default", "shadow-a", "shadow-a"), m.service("default", "shadow-b", "shadow-b"))
}

// recorder is a mirror backend that records the requests it got.
type recorder struct {
	got chan *http.Request
}

func (rc *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rc.got <- r
	// The proxy discards this; a status the client never sees proves it.
	w.WriteHeader(http.StatusTeapot)
}

func (m *mesh) startRecorder(name string) *recorder {
	m.t.Helper()
	rc := &recorder{got: make(chan *http.Request, 16)}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		m.t.Fatal(err)
	}
	srv := &http.Server{Handler: rc}
	go srv.Serve(l)
	m.t.Cleanup(func() { srv.Close() })
	m.backends[name] = l.Addr().String()
	return rc
}

// TestRouteMirrors drives RequestMirror filters through the whole
// pipeline: every mirror of a rule gets a copy of the request as
// forwarded (header edits applied, Host suffixed "-shadow" as Envoy
// does), the client gets the backend's answer and never the mirrors',
// and a zero fraction mirrors nothing.
func TestRouteMirrors(t *testing.T) {
	m := startMesh(t, false, []string{"v1"})
	a, b := m.startRecorder("shadow-a"), m.startRecorder("shadow-b")
	m.apply(mirrorConfig(m))
	gw := m.gateway(1)

	// The zero-fraction rule first: had it mirrored, its copy (sent as
	// the request is forwarded) would most likely reach shadow-a before
	// the later rule's, and shadow-a would hold two requests below.
	if r := get(t, gw, "GET", "mirrors.test", "/never"); r.status != 200 || r.backend != "v1" {
		t.Fatalf("GET /never: %d from %q, want 200 from v1", r.status, r.backend)
	}
	r := get(t, gw, "GET", "mirrors.test", "/mirror?x=1")
	if r.status != 200 || r.backend != "v1" {
		t.Fatalf("GET /mirror: %d from %q, want 200 from v1", r.status, r.backend)
	}
	for _, rc := range []struct {
		name string
		rec  *recorder
	}{{"shadow-a", a}, {"shadow-b", b}} {
		select {
		case req := <-rc.rec.got:
			if req.URL.RequestURI() != "/mirror?x=1" || req.Host != "mirrors.test-shadow" || req.Header.Get("X-Edited") != "yes" {
				t.Errorf("%s got %s Host %q X-Edited %q, want /mirror?x=1 Host mirrors.test-shadow X-Edited yes",
					rc.name, req.URL.RequestURI(), req.Host, req.Header.Get("X-Edited"))
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s got no mirrored request within 10s", rc.name)
		}
	}
	select {
	case req := <-a.got:
		t.Errorf("shadow-a got a second request, %s", req.URL.RequestURI())
	default:
	}
}
