package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nodemesh/nodemesh/datapath"
	"github.com/nodemesh/nodemesh/datapath/model"
	"github.com/nodemesh/nodemesh/datapath/testbed"
	"github.com/nodemesh/nodemesh/internal/agent/api"
	"github.com/nodemesh/nodemesh/mesh/flow"
)

// admitsAL7 is admitsA with an L7 rule: client A may GET /, nothing else.
const admitsAL7 = `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: backend-admits-a, namespace: default}
spec:
  endpointSelector: {matchLabels: {app: backend}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: client-a}}]
    toPorts:
    - ports: [{port: "8080", protocol: TCP}]
      rules:
        http: [{method: GET, path: "/"}]
---
`

// checkRoutedL7 runs the clients through whatever took the backend
// Service over (config, a listener that applies no L7 policy of its own)
// to a backend on the same node whose ingress policy admits client A for
// GET / only. The datapath must hand the listener's upstream connection to
// the ingress policy listener, which judges it as the client Pod: A's
// GET / passes (and reaches the backend from A's own address, so the
// policy listener's upstream connection was not redirected a second
// time), A's GET /other gets the policy's 403, and B is refused at L3.
func checkRoutedL7(t *testing.T, config string) {
	n := newPolicyNodeOpts(t, nodeOpts{workloads: 3, withDatapath: true, services: true})
	a, b, be := n.bed.Workloads[0], n.bed.Workloads[1], n.bed.Workloads[2]
	serveSeenAddress(t, be, 8080)
	n.apply(backendService(n, a, b, be) + config + admitsAL7)
	n.wantSeen(a, 2, a.IPv4.String())
	// Directly, the datapath redirects A to the policy listener, which
	// refuses another path: the routed request must get the same.
	if code, body := request(t, a, "GET", "http://"+be.IPv4.String()+":8080/other"); code != 403 || body != "Access denied\r\n" {
		t.Fatalf("client A, GET /other directly: %d %q; want the L7 rule's 403", code, body)
	}
	for _, got := range n.podGet(a, "http://"+serviceIP+"/other", 2) {
		if got != "status=403 body=Access denied" {
			t.Fatalf("client A, GET /other through the listener: %q; want the backend's L7 rule's 403", got)
		}
	}
	// The verdict names the client Pod, as the policy listener saw it.
	f := n.flowsMatching(api.FlowQuery{Filter: flow.Filter{Verdict: flow.Dropped, Protocol: flow.ProtocolHTTP}}, 3)
	routed := 0
	for _, fl := range f {
		if fl.HTTP == nil || fl.HTTP.Path != "/other" {
			continue
		}
		if fl.Source.Address.Addr() != a.IPv4 || fl.Source.Workload != "default/client-a" || fl.Listener != "policy/ingress/http" {
			t.Errorf("L7 drop %+v; want client A's, on the ingress policy listener", fl)
		}
		routed++
	}
	if routed < 3 {
		t.Errorf("%d L7 drops of GET /other; want 3 (one direct, two routed): %+v", routed, f)
	}
	n.wantDenied(b)
	// A still gets through after the denials (the connection pool is
	// per client; nothing got stuck).
	if got := n.podGet(a, "http://"+serviceIP+"/", 1); got[0] != "status=200 body="+a.IPv4.String() {
		t.Fatalf("client A, GET / after the denials: %q", got)
	}
}

// TestMeshOriginalSourceWithL7Policy: a GAMMA route's listener applies no
// L7 policy; the backend's L7 ingress rules still judge its requests.
func TestMeshOriginalSourceWithL7Policy(t *testing.T) {
	checkRoutedL7(t, gammaRoute)
}

// TestEnvoyConfigOriginalSourceWithL7Policy: the same through a
// CiliumEnvoyConfig listener that spec.services redirects to.
func TestEnvoyConfigOriginalSourceWithL7Policy(t *testing.T) {
	checkRoutedL7(t, echoConfig("{}"))
}

// TestOriginalSourceOffWithL7Policy: a CiliumEnvoyConfig that does not
// keep the client's address connects from the node, on behalf of a client
// the datapath cannot name. Its connection is judged as the node (the
// routing listeners' mark takes it out of the host's blanket admission),
// so a backend whose policy admits client A only refuses it: fail closed,
// never a pass that skips the L7 rules.
func TestOriginalSourceOffWithL7Policy(t *testing.T) {
	n := newPolicyNodeOpts(t, nodeOpts{workloads: 3, withDatapath: true, services: true})
	a, b, be := n.bed.Workloads[0], n.bed.Workloads[1], n.bed.Workloads[2]
	serveSeenAddress(t, be, 8080)
	// The policy first: a connection the proxy pooled while the backend
	// admitted it would stay established.
	n.apply(backendService(n, a, b, be) + echoConfig(`{cec.cilium.io/use-original-source-address: "false"}`) + admitsAL7)
	waitUntil(t, "the config's listener answers", func() bool {
		return strings.HasPrefix(n.podGet(a, "http://"+serviceIP+"/", 1)[0], "status=")
	})
	n.wantDenied(a)
	n.wantDenied(b)
}

// gatewayBed serves a Gateway on a node without an ingress address, with
// one route to a backend on the same node whose ingress policy is
// backendPolicy (the rules of a CiliumNetworkPolicy selecting app:
// backend), and returns the node and a GET through the Gateway. The
// proxy's connections to the backend carry the reserved ingress identity
// in the routing mark and come from the node's own address.
func gatewayBed(t *testing.T, backendPolicy string) (*policyNode, func(path string) (int, string)) {
	return gatewayBedSlices(t, backendPolicy, true, false)
}

// gatewayBedSlices is gatewayBed with the backend Service's endpoints in
// an IPv4 EndpointSlice, an IPv6 one, or both (a cluster whose endpoints
// mix families, for which no ingress address can be bound).
func gatewayBedSlices(t *testing.T, backendPolicy string, v4, v6 bool) (*policyNode, func(path string) (int, string)) {
	n := newPolicyNodeOpts(t, nodeOpts{workloads: 1, withDatapath: true, gatewayMark: true})
	be := n.bed.Workloads[0]
	serveSeenAddress(t, be, 8080)
	v4Slice, v6Slice := "", ""
	if v4 {
		v4Slice = fmt.Sprintf(`apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: backend-1, namespace: default, labels: {kubernetes.io/service-name: backend}}
addressType: IPv4
ports: [{name: http, port: 8080, protocol: TCP}]
endpoints: [{addresses: [%s], conditions: {ready: true}}]
---
`, be.IPv4)
	}
	if v6 {
		v6Slice = fmt.Sprintf(`apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: backend-6, namespace: default, labels: {kubernetes.io/service-name: backend}}
addressType: IPv6
ports: [{name: http, port: 8080, protocol: TCP}]
endpoints: [{addresses: ["%s"], conditions: {ready: true}}]
---
`, be.IPv6)
	}
	gw := gatewayPool.Addr().Next().Next().Next()
	n.apply(pod("backend", be, map[string]string{"app": "backend"}) + fmt.Sprintf(`apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: nodemesh}
spec: {controllerName: nodemesh.io/gateway-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: web, namespace: default}
spec:
  gatewayClassName: nodemesh
  addresses: [{type: IPAddress, value: %s}]
  listeners: [{name: http, protocol: HTTP, port: 8081}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web, namespace: default}
spec:
  parentRefs: [{name: web}]
  rules: [{backendRefs: [{name: backend, port: 80}]}]
---
apiVersion: v1
kind: Service
metadata: {name: backend, namespace: default}
spec: {ports: [{name: http, port: 80, targetPort: 8080}]}
---
%s%sapiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: backend-policy, namespace: default}
spec:
  endpointSelector: {matchLabels: {app: backend}}
%s---
`, gw, v4Slice, v6Slice, backendPolicy))
	c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return n.bed.Node.Dial(ctx, network, addr)
		}}}
	get := func(path string) (int, string) {
		resp, err := c.Get(fmt.Sprintf("http://%s:8081%s", gw, path))
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return resp.StatusCode, string(b)
	}
	return n, get
}

// waitGatewayAnswers waits until the Gateway's listener serves the route
// (any status the route's backend side produces, not a refused connect
// or the proxy's "no route").
func waitGatewayAnswers(t *testing.T, get func(string) (int, string), want int) {
	t.Helper()
	var last string
	waitUntil(t, fmt.Sprintf("the Gateway answers GET / with %d", want), func() bool {
		code, body := get("/")
		last = fmt.Sprintf("%d %q", code, body)
		return code == want
	})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("last answer to GET /: %s", last)
		}
	})
}

// routeIdentityDrops counts the datapath's refusals of routing-listener
// connections whose marked identity is not their source address's.
func routeIdentityDrops(t *testing.T, n *policyNode) uint64 {
	t.Helper()
	c, err := n.dp.Counters()
	if err != nil {
		t.Fatal(err)
	}
	return c[datapath.CounterKey{Reason: model.DropRouteIdentity, Direction: model.Ingress}].Packets
}

// TestGatewayL4PolicyOnNodeWithoutIngressAddress: the datapath judges the
// Gateway's connections as the reserved ingress identity (the routing
// mark), not as the node address they come from: fromEntities [ingress]
// admits them, fromEntities [host] does not.
func TestGatewayL4PolicyOnNodeWithoutIngressAddress(t *testing.T) {
	t.Run("ingress", func(t *testing.T) {
		n, get := gatewayBed(t, `  ingress:
  - fromEntities: [ingress]
    toPorts: [{ports: [{port: "8080", protocol: TCP}]}]
`)
		waitGatewayAnswers(t, get, 200)
		if d := routeIdentityDrops(t, n); d != 0 {
			t.Fatalf("%d route-identity drops; want none", d)
		}
	})
	t.Run("host", func(t *testing.T) {
		_, get := gatewayBed(t, `  ingress:
  - fromEntities: [host]
    toPorts: [{ports: [{port: "8080", protocol: TCP}]}]
`)
		// The Gateway's listener answers (503: no backend reachable);
		// the backend never does.
		waitGatewayAnswers(t, get, 503)
	})
}

// TestGatewayWithL7Policy: a Gateway listener applies no L7 policy of a
// backend. On a node without an ingress address its connection to a
// same-node backend carries the reserved ingress identity only in the
// routing mark, and comes from the node's own address. The datapath
// records that identity in the redirect's connection tracking, and the
// ingress policy listener judges the connection by it: the backend's L7
// rule (ingress and host may GET /) serves GET / and refuses GET /other
// with the policy's 403.
func TestGatewayWithL7Policy(t *testing.T) {
	n, get := gatewayBed(t, `  ingress:
  - fromEntities: [ingress, host]
    toPorts:
    - ports: [{port: "8080", protocol: TCP}]
      rules:
        http: [{method: GET, path: "/"}]
`)
	waitGatewayAnswers(t, get, 200)
	if code, body := get("/other"); code != 403 || body != "Access denied\r\n" {
		t.Fatalf("GET /other through the Gateway: %d %q; want the L7 rule's 403", code, body)
	}
	if d := routeIdentityDrops(t, n); d != 0 {
		t.Fatalf("%d route-identity drops; the datapath serves such connections now", d)
	}
}

// hostAndIngressOK is a backend policy admitting ingress for GET /ok only
// and the host (kubelet probes) on the whole port.
const hostAndIngressOK = `  ingress:
  - fromEntities: [ingress]
    toPorts:
    - ports: [{port: "8080", protocol: TCP}]
      rules:
        http: [{method: GET, path: "/ok"}]
  - fromEntities: [host]
    toPorts: [{ports: [{port: "8080", protocol: TCP}]}]
`

// TestGatewayDoesNotBorrowHostL7Allowance: the backend admits ingress for
// GET /ok only and the host (kubelet probes) on the whole port. Judged by
// its address, the Gateway's connection would be the host's and pass
// GET /other; judged by the identity the datapath redirected it with
// (ingress), GET /ok passes and GET /other gets the policy's 403 (not a
// drop, not a pass). The policy listener's flow names ingress as the
// source identity.
func TestGatewayDoesNotBorrowHostL7Allowance(t *testing.T) {
	n, get := gatewayBed(t, hostAndIngressOK)
	waitUntil(t, "the Gateway serves GET /ok", func() bool {
		code, _ := get("/ok")
		return code == 200
	})
	if code, body := get("/other"); code != 403 || body != "Access denied\r\n" {
		t.Fatalf("GET /other through the Gateway: %d %q; want the ingress rule's 403 (the host's allowance must not apply)", code, body)
	}
	if d := routeIdentityDrops(t, n); d != 0 {
		t.Fatalf("%d route-identity drops; want none", d)
	}
	denied := 0
	for _, fl := range n.flowsMatching(api.FlowQuery{Filter: flow.Filter{Verdict: flow.Dropped, Protocol: flow.ProtocolHTTP}}, 1) {
		if fl.HTTP == nil || fl.HTTP.Path != "/other" {
			continue
		}
		if fl.Source.Identity != uint32(model.IdentityIngress) || fl.Listener != "policy/ingress/http" {
			t.Errorf("L7 drop %+v; want the ingress identity's, on the ingress policy listener", fl)
		}
		denied++
	}
	if denied == 0 {
		t.Error("no L7 drop of GET /other recorded")
	}
	// The host itself keeps its allowance (probes).
	be := n.bed.Workloads[0]
	c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return n.bed.Node.Dial(ctx, network, addr)
		}}}
	resp, err := c.Get("http://" + be.IPv4.String() + ":8080/other")
	if err != nil {
		t.Fatalf("the host's GET /other: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("the host's GET /other: %d; want 200 (its L4-only rule)", resp.StatusCode)
	}
}

// TestGatewayDualStackDoesNotBorrowHostL7Allowance: the same with a
// backend Service whose endpoints are IPv6 only, and whose endpoints mix
// IPv4 and IPv6 (no ingress address could be bound for either): GET /ok
// passes and GET /other gets the ingress rule's 403, over IPv6 too.
func TestGatewayDualStackDoesNotBorrowHostL7Allowance(t *testing.T) {
	for _, tc := range []struct {
		name   string
		v4, v6 bool
	}{{"ipv6", false, true}, {"mixed", true, true}} {
		t.Run(tc.name, func(t *testing.T) {
			n, get := gatewayBedSlices(t, hostAndIngressOK, tc.v4, tc.v6)
			waitUntil(t, "the Gateway serves GET /ok", func() bool {
				code, _ := get("/ok")
				return code == 200
			})
			for i := 0; i < 4; i++ {
				if code, body := get("/ok"); code != 200 {
					t.Fatalf("GET /ok #%d through the Gateway: %d %q", i, code, body)
				}
				if code, body := get("/other"); code != 403 || body != "Access denied\r\n" {
					t.Fatalf("GET /other #%d through the Gateway: %d %q; want the ingress rule's 403", i, code, body)
				}
			}
			v6 := false
			for _, fl := range n.flowsMatching(api.FlowQuery{Filter: flow.Filter{Verdict: flow.Dropped, Protocol: flow.ProtocolHTTP}}, 4) {
				if fl.Source.Identity != uint32(model.IdentityIngress) {
					t.Errorf("L7 drop %+v; want the ingress identity's", fl)
				}
				v6 = v6 || fl.Source.Address.Addr().Is6()
			}
			if tc.name == "ipv6" && !v6 {
				t.Error("no L7 drop from the node's IPv6 address")
			}
		})
	}
}

// TestGatewayForgedPeersGainNothing: what the policy listener knows of a
// peer comes from the datapath's connection tracking. A host process
// that connects to the ingress policy listener directly (no redirect, so
// no entry) is refused before any request is read: not the host's
// allowance, not a 403 from a judgement by address. One that puts the
// routing mark with another identity (world) on its connection to the
// backend is judged as that identity, which the backend's rules do not
// admit at L7: it gains neither the host's allowance nor ingress's.
func TestGatewayForgedPeersGainNothing(t *testing.T) {
	n, get := gatewayBed(t, hostAndIngressOK+`  - fromEntities: [world]
    toPorts:
    - ports: [{port: "8080", protocol: TCP}]
      rules:
        http: [{method: GET, path: "/world"}]
`)
	waitUntil(t, "the Gateway serves GET /ok", func() bool {
		code, _ := get("/ok")
		return code == 200
	})
	be := n.bed.Workloads[0]
	client := func(d *net.Dialer) *http.Client {
		return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true,
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				return n.bed.Node.DialWith(ctx, d, network, addr)
			}}}
	}
	// Directly to the policy listener, for the backend's address.
	for _, target := range []string{
		fmt.Sprintf("http://127.0.0.1:%d/ok", policyPorts.IngressHTTP),
		fmt.Sprintf("http://%s:%d/ok", testbed.NodeIPv4, policyPorts.IngressHTTP),
	} {
		resp, err := client(&net.Dialer{}).Get(target)
		if err == nil {
			resp.Body.Close()
			t.Fatalf("GET %s: %d; want the connection closed unanswered", target, resp.StatusCode)
		}
	}
	// With the routing mark naming world: world's L7 rule applies.
	worldMark, _ := datapath.ProxyRouteMark(model.IdentityWorld)
	marked := client(&net.Dialer{Control: func(network, address string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_MARK, int(worldMark))
		}); err != nil {
			return err
		}
		return serr
	}})
	for path, want := range map[string]int{"/ok": 403, "/other": 403, "/world": 200} {
		resp, err := marked.Get("http://" + be.IPv4.String() + ":8080" + path)
		if err != nil {
			t.Fatalf("marked GET %s: %v", path, err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("GET %s with the routing mark naming world: %d; want %d (judged as world)", path, resp.StatusCode, want)
		}
	}
}
