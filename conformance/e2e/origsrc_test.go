package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nodemesh/nodemesh/datapath"
	"github.com/nodemesh/nodemesh/datapath/cgroup2"
	"github.com/nodemesh/nodemesh/datapath/testbed"
	"github.com/nodemesh/nodemesh/internal/agent"
)

// The Service tests: clients are processes in Pod namespaces and in the
// Pod cgroup, so the datapath's socket hooks send their connects to a
// Service's cluster IP to the proxy listener that took the Service over
// (a CiliumEnvoyConfig's spec.services, a GAMMA route's Service parent).
// The proxy then connects to the Service's endpoints, from the client's
// own address unless told otherwise.

// podGetEnv makes the test binary act as a client Pod's process (see
// runPodGet): "URL N" sends N GETs to URL over one keep-alive connection.
const podGetEnv = "NODEMESH_E2E_POD_GET"

// steerServices makes cfg steer Services through the datapath as
// nodemesh-agent --datapath --datapath-cgroup does: the Service table and
// socket hooks on a Pod cgroup of the bed's own, listeners on the node's
// address, and the original source where the proxy keeps it.
func (n *policyNode) steerServices(cfg *agent.Config, originalSource bool) {
	t := n.t
	if n.dp == nil {
		t.Fatal("steering Services needs the datapath")
	}
	mount, err := cgroup2.Mount()
	if err != nil {
		t.Fatal(err)
	}
	if mount == "" {
		t.Skip("no cgroup v2 hierarchy mounted: the datapath's socket hooks need one")
	}
	dir := filepath.Join(mount, n.bed.ID+"-pods")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// The hooks' links are gone with the datapath; the cgroup stays
		// busy until its last process was reaped.
		deadline := time.Now().Add(10 * time.Second)
		for {
			err := syscall.Rmdir(dir)
			if err == nil || !errors.Is(err, syscall.EBUSY) || time.Now().After(deadline) {
				if err != nil {
					t.Errorf("removing cgroup %s: %v", dir, err)
				}
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
	if err := n.dp.AttachCgroup(dir); err != nil {
		t.Fatal(err)
	}
	n.podCgroup = dir
	cfg.Services = n.dp
	eo := &agent.EnvoyConfigOptions{ListenAddress: testbed.NodeIPv4}
	eo.UpstreamMark, _ = datapath.ProxyRouteMark(0)
	if originalSource {
		eo.OriginalSourceMark, _ = datapath.ProxyRouteMark(0)
	}
	cfg.EnvoyConfig = eo
}

// runPodGet is the client process: it prints "status=S body=B" for each
// response, or "error=E" and stops at the first failure.
func runPodGet(spec string) int {
	url, count, _ := strings.Cut(spec, " ")
	n, err := strconv.Atoi(count)
	if err != nil || n < 1 {
		fmt.Println("error=bad request count", count)
		return 0
	}
	c := &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{
		DialContext: (&net.Dialer{Timeout: 3 * time.Second}).DialContext, MaxIdleConnsPerHost: 1}}
	for range n {
		resp, err := c.Get(url)
		if err != nil {
			fmt.Printf("error=%v\n", err)
			return 0
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, 1024))
		resp.Body.Close()
		if err != nil {
			fmt.Printf("error=%v\n", err)
			return 0
		}
		fmt.Printf("status=%d body=%s\n", resp.StatusCode, strings.TrimSpace(string(body)))
	}
	return 0
}

// podGet runs the client process in w's namespace and the Pod cgroup,
// sending count GETs to url over one connection, and returns its result
// lines. The process is bounded in time; it never hangs the test.
func (n *policyNode) podGet(w *testbed.Workload, url string, count int) []string {
	t := n.t
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", w.Name, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s %d", podGetEnv, url, count))
	f, err := os.Open(n.podCgroup)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(f.Fd())}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("client in %s: %v\n%s", w.IPv4, err, out)
	}
	var lines []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "status=") || strings.HasPrefix(l, "error=") {
			lines = append(lines, l)
		}
	}
	if len(lines) == 0 {
		t.Fatalf("client in %s printed no result:\n%s", w.IPv4, out)
	}
	return lines
}

// serveSeenAddress runs a backend in w on port that answers each request
// with the address its connection comes from.
func serveSeenAddress(t testing.TB, w *testbed.Workload, port int) {
	serveHTTP(t, w, port, http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		_, _ = io.WriteString(rw, host)
	}))
}

// backendService is the Service the clients call (cluster IP
// serviceIP:80) with its one endpoint, workload be on port 8080; the
// client and backend Pods with their labels.
func backendService(n *policyNode, a, b, be *testbed.Workload) string {
	return pod("client-a", a, map[string]string{"app": "client-a"}) +
		pod("client-b", b, map[string]string{"app": "client-b"}) +
		pod("backend", be, map[string]string{"app": "backend"}) + fmt.Sprintf(`apiVersion: v1
kind: Service
metadata: {name: backend, namespace: default}
spec: {clusterIP: %s, ports: [{name: http, port: 80, targetPort: 8080}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: backend-1, namespace: default, labels: {kubernetes.io/service-name: backend}}
addressType: IPv4
ports: [{name: http, port: 8080, protocol: TCP}]
endpoints: [{addresses: [%s], conditions: {ready: true}}]
---
`, serviceIP, be.IPv4)
}

const serviceIP = "10.96.50.10"

// admitsA is an L3 policy on the backend: only client A's identity may
// connect.
const admitsA = `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: backend-admits-a, namespace: default}
spec:
  endpointSelector: {matchLabels: {app: backend}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: client-a}}]
    toPorts: [{ports: [{port: "8080", protocol: TCP}]}]
---
`

// echoConfig is a CiliumEnvoyConfig that takes the backend Service over:
// one listener routing everything to the Service's endpoints. annotations
// is the YAML flow mapping of its annotations.
func echoConfig(annotations string) string {
	return `apiVersion: cilium.io/v2
kind: CiliumEnvoyConfig
metadata: {name: echo, namespace: default, annotations: ` + annotations + `}
spec:
  services: [{name: backend, namespace: default}]
  backendServices: [{name: backend, namespace: default}]
  resources:
  - "@type": type.googleapis.com/envoy.config.listener.v3.Listener
    name: echo
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: echo
          rds: {route_config_name: echo_route}
          http_filters:
          - name: envoy.filters.http.router
            typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
  - "@type": type.googleapis.com/envoy.config.route.v3.RouteConfiguration
    name: echo_route
    virtual_hosts:
    - name: echo
      domains: ["*"]
      routes:
      - match: {prefix: /}
        route: {cluster: default/backend}
  - "@type": type.googleapis.com/envoy.config.cluster.v3.Cluster
    name: default/backend
    connect_timeout: 2s
    lb_policy: ROUND_ROBIN
    type: EDS
---
`
}

// gammaRoute is a GAMMA producer route on the backend Service.
const gammaRoute = `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: backend, namespace: default}
spec:
  parentRefs: [{group: "", kind: Service, name: backend, port: 80}]
  rules:
  - backendRefs: [{name: backend, port: 80}]
---
`

// wantSeen waits until the Service answers client w (the redirect
// follows the proxy's acknowledgement), then requires count answers on
// one connection, each seeing the address want.
func (n *policyNode) wantSeen(w *testbed.Workload, count int, want string) {
	t := n.t
	t.Helper()
	url := fmt.Sprintf("http://%s/", serviceIP)
	var lines []string
	waitUntil(t, fmt.Sprintf("the Service answers %s", w.IPv4), func() bool {
		lines = n.podGet(w, url, 1)
		return strings.HasPrefix(lines[0], "status=200 ")
	})
	lines = n.podGet(w, url, count)
	for i, l := range lines {
		if l != "status=200 body="+want {
			t.Fatalf("client %s, request %d of %d: %q; want the backend to see %s (all: %q)", w.IPv4, i+1, count, l, want, lines)
		}
	}
	if len(lines) != count {
		t.Fatalf("client %s: %d answers of %d: %q", w.IPv4, len(lines), count, lines)
	}
}

// wantDenied requires client w's request to fail at the backend's policy:
// the proxy, connecting as w, cannot reach the backend and answers 503
// within its connect timeout.
func (n *policyNode) wantDenied(w *testbed.Workload) {
	t := n.t
	t.Helper()
	lines := n.podGet(w, fmt.Sprintf("http://%s/", serviceIP), 1)
	if strings.HasPrefix(lines[0], "status=200 ") && lines[0] != "status=200 body="+w.IPv4.String() {
		t.Fatalf("client %s: %q; its request went out on an upstream connection opened for another client", w.IPv4, lines[0])
	}
	if !strings.HasPrefix(lines[0], "status=503 ") {
		t.Fatalf("client %s: %q; want 503, the backend's policy refusing its identity", w.IPv4, lines[0])
	}
}

// checkOriginalSource runs the clients through whatever took the backend
// Service over (config) on a node that keeps the client's address: the
// backend sees each client Pod's own address, interleaved clients never
// share an upstream connection (each answer names its own client), and
// the datapath judges the upstream connection as the client: a policy
// admitting client A only lets A through and refuses B.
func checkOriginalSource(t *testing.T, config string) {
	n := newPolicyNodeOpts(t, nodeOpts{workloads: 3, withDatapath: true, services: true})
	a, b, be := n.bed.Workloads[0], n.bed.Workloads[1], n.bed.Workloads[2]
	serveSeenAddress(t, be, 8080)
	base := backendService(n, a, b, be) + config
	// The policy first: an upstream connection B opened while it was
	// allowed would stay established (policy judges new connections).
	n.apply(base + admitsA)
	n.wantSeen(a, 2, a.IPv4.String())
	n.wantDenied(b)

	n.apply(base)
	for range 2 {
		n.wantSeen(a, 3, a.IPv4.String())
		n.wantSeen(b, 3, b.IPv4.String())
	}
}

// TestEnvoyConfigOriginalSourceThroughTheDatapath: a CiliumEnvoyConfig
// listener that spec.services redirects to keeps the client's address
// upstream by default (CEC-05), through the eBPF datapath.
func TestEnvoyConfigOriginalSourceThroughTheDatapath(t *testing.T) {
	checkOriginalSource(t, echoConfig("{}"))
}

// TestMeshOriginalSourceThroughTheDatapath: a GAMMA route's listener
// keeps the client's address upstream, as Cilium's GAMMA does; the
// backend's L3 policy sees the client Pod, not the node.
func TestMeshOriginalSourceThroughTheDatapath(t *testing.T) {
	checkOriginalSource(t, gammaRoute)
}

// TestOriginalSourceOff: where the original source is not kept — a
// config annotated "false", or a node run with
// --policy-original-source=false (for GAMMA routes too) — the backend
// sees the node's address for every client.
func TestOriginalSourceOff(t *testing.T) {
	for _, tc := range []struct {
		name   string
		config string
		off    bool
	}{
		{"config annotated false", echoConfig(`{cec.cilium.io/use-original-source-address: "false"}`), false},
		{"node without original source, config", echoConfig("{}"), true},
		{"node without original source, GAMMA route", gammaRoute, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := newPolicyNodeOpts(t, nodeOpts{workloads: 3, withDatapath: true, services: true, noOriginalSource: tc.off})
			a, b, be := n.bed.Workloads[0], n.bed.Workloads[1], n.bed.Workloads[2]
			serveSeenAddress(t, be, 8080)
			n.apply(backendService(n, a, b, be) + tc.config)
			n.wantSeen(a, 2, testbed.NodeIPv4.String())
			n.wantSeen(b, 2, testbed.NodeIPv4.String())
		})
	}
}
