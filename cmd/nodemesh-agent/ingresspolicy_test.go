package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"k8s.io/apimachinery/pkg/api/meta"

	"github.com/nodemesh/nodemesh/internal/agent"
	"github.com/nodemesh/nodemesh/internal/agent/api"
	"github.com/nodemesh/nodemesh/internal/echo"
	"github.com/nodemesh/nodemesh/mesh/policy"
	"github.com/nodemesh/nodemesh/xds/publish"
	"github.com/nodemesh/nodemesh/xds/server"
)

// ingressPolicyConfig is a Gateway routing HTTP to a Service with two
// endpoints on loopback and TCP (a TCPRoute) to a Service on 127.0.103.1,
// and a clusterwide policy selecting the ingress endpoint
// (reserved:ingress): outside clients only from 127.0.0.2, and of the
// backends only 127.0.103.1. /locked goes to a Service whose one endpoint
// (lockedSlice) the policy denies, /empty to a Service without endpoints.
func ingressPolicyConfig(port, backendPort, tcpPort, tcpBackendPort int) map[string]string {
	return map[string]string{
		"gateway.yaml": fmt.Sprintf(`apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: nodemesh}
spec: {controllerName: nodemesh.io/gateway-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: default}
spec:
  gatewayClassName: nodemesh
  listeners: [{name: http, protocol: HTTP, port: %d}, {name: tcp, protocol: TCP, port: %d}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r, namespace: default}
spec:
  parentRefs: [{name: gw, sectionName: http}]
  rules: [{backendRefs: [{name: echo, port: 80}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: locked, namespace: default}
spec:
  parentRefs: [{name: gw, sectionName: http}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /locked}}]
    backendRefs: [{name: locked, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /empty}}]
    backendRefs: [{name: empty, port: 80}]
---
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TCPRoute
metadata: {name: db, namespace: default}
spec:
  parentRefs: [{name: gw, sectionName: tcp}]
  rules: [{backendRefs: [{name: db, port: 5432}]}]
`, port, tcpPort),
		"backend.yaml": fmt.Sprintf(`apiVersion: v1
kind: Service
metadata: {name: echo, namespace: default}
spec: {ports: [{name: http, port: 80, targetPort: %[1]d}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: echo, namespace: default, labels: {kubernetes.io/service-name: echo}}
addressType: IPv4
ports: [{name: http, port: %[1]d}]
endpoints: [{addresses: ["127.0.103.1", "127.0.103.2"], conditions: {ready: true}}]
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: default}
spec: {ports: [{name: db, port: 5432, targetPort: %[2]d}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: db, namespace: default, labels: {kubernetes.io/service-name: db}}
addressType: IPv4
ports: [{name: db, port: %[2]d}]
endpoints: [{addresses: ["127.0.103.1"], conditions: {ready: true}}]
---
apiVersion: v1
kind: Service
metadata: {name: locked, namespace: default}
spec: {ports: [{name: http, port: 80, targetPort: %[1]d}]}
---
apiVersion: v1
kind: Service
metadata: {name: empty, namespace: default}
spec: {ports: [{name: http, port: 80, targetPort: %[1]d}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: empty, namespace: default, labels: {kubernetes.io/service-name: empty}}
addressType: IPv4
ports: [{name: http, port: %[1]d}]
endpoints: []
`, backendPort, tcpBackendPort),
		"locked.yaml": lockedSlice(backendPort, "127.0.103.2"),
		"policy.yaml": `apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata: {name: ingress-lockdown}
spec:
  endpointSelector:
    matchExpressions:
    - {key: "reserved:ingress", operator: Exists}
  ingress:
  - fromCIDRSet: [{cidr: 127.0.0.2/32}]
  egress:
  - toCIDRSet: [{cidr: 127.0.103.1/32}]
`,
	}
}

// lockedSlice is the EndpointSlice of the Service "locked".
func lockedSlice(port int, addrs ...string) string {
	b, _ := json.Marshal(addrs) // strings: cannot fail
	return fmt.Sprintf(`apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: locked, namespace: default, labels: {kubernetes.io/service-name: locked}}
addressType: IPv4
ports: [{name: http, port: %d}]
endpoints: [{addresses: %s, conditions: {ready: true}}]
`, port, b)
}

// TestStandaloneIngressPolicy runs the agent with the policy compiler, the
// xDS server and the builtin proxy on loopback, and checks that a policy
// selecting the ingress endpoint is enforced by the proxy: a request from
// a source address the policy does not admit is answered 403, one from
// 127.0.0.2 reaches the backend, and the backend endpoint the policy's
// egress denies is never contacted. On the Gateway's TCP listener (a
// TCPRoute) the network RBAC filter does the same per connection: a
// client the policy does not admit is disconnected before anything is
// dialled, one from 127.0.0.2 is relayed. A route whose backend's
// endpoints the egress all denies is answered 403 "Access denied" (to
// gRPC clients: status 7) until an admitted endpoint appears, and one
// whose backend has no endpoints 503.
func TestStandaloneIngressPolicy(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	state, err := os.MkdirTemp("", "nm-agent")
	must(t, err)
	t.Cleanup(func() { os.RemoveAll(state) })
	conf := filepath.Join(t.TempDir(), "conf")
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)

	// Two backends on one port: 127.0.103.1 (allowed) and 127.0.103.2
	// (denied), which counts every connection it accepts.
	allowed, err := net.Listen("tcp", "127.0.103.1:0")
	must(t, err)
	backendPort := allowed.Addr().(*net.TCPAddr).Port
	denied, err := net.Listen("tcp", fmt.Sprintf("127.0.103.2:%d", backendPort))
	must(t, err)
	var deniedConns atomic.Int64
	for _, l := range []net.Listener{allowed, &countingListener{Listener: denied, n: &deniedConns}} {
		srv := &http.Server{Handler: echo.Handler("echo")}
		go srv.Serve(l)
		t.Cleanup(func() { srv.Close() })
	}
	// The TCP backend on the allowed address answers each line with
	// "db: <line>" and counts the connections it accepts.
	tcpBackend, err := net.Listen("tcp", "127.0.103.1:0")
	must(t, err)
	t.Cleanup(func() { tcpBackend.Close() })
	var tcpConns atomic.Int64
	go serveLines(&countingListener{Listener: tcpBackend, n: &tcpConns}, "db")
	port, tcpPort := freePort(t), freePort(t)
	writeDir(t, conf, ingressPolicyConfig(port, backendPort, tcpPort, tcpBackend.Addr().(*net.TCPAddr).Port))

	var ports [4]uint16
	for i := range ports {
		ports[i] = uint16(freePort(t))
	}
	compiler, err := policy.New(policy.Options{
		Listeners: policy.Listeners{Address: "127.0.0.1", IngressHTTP: ports[0], EgressHTTP: ports[1],
			IngressKafka: ports[2], EgressKafka: ports[3]},
		IngressEndpoint: true,
	})
	must(t, err)

	srv := server.New(server.WithLogger(log))
	l, err := server.ListenUnix(filepath.Join(state, "xds.sock"))
	must(t, err)
	go srv.Serve(l)
	t.Cleanup(func() { srv.Stop(time.Second) })
	a, err := agent.New(agent.Config{Publisher: publish.New(srv), AddressPool: testPool, Logger: log, Policy: compiler})
	must(t, err)
	feedAndProxy(ctx, t, cancel, a, conf, state, "ingress-policy-test", log)

	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	defer wcancel()
	st, err := a.WaitStatus(wctx, func(st *api.Status) bool {
		return len(st.Gateways) == 1 && len(st.Proxies) == 1 && st.Proxies[0].AckedAll(st.Versions) &&
			meta.IsStatusConditionTrue(st.Gateways[0].Status.Conditions, "Programmed") &&
			st.Policy != nil && st.Policy.IngressEndpoint != nil && st.Policy.IngressEndpoint.Selected
	})
	if err != nil {
		b, _ := json.MarshalIndent(st, "", "  ")
		t.Fatalf("the Gateway was not served within 30s:\n%s", b)
	}
	// The status shows the ingress endpoint with both directions enforced
	// by the proxy that acknowledged them.
	if ie := st.Policy.IngressEndpoint; ie == nil || !ie.Selected || ie.Identity != 8 ||
		ie.Ingress.State != api.IngressEnforced || ie.Egress.State != api.IngressEnforced ||
		ie.Ingress.AllowRules != 1 || ie.Egress.AllowRules != 1 ||
		len(ie.Policies) != 1 || ie.Policies[0] != "CiliumClusterwideNetworkPolicy/ingress-lockdown" {
		b, _ := json.MarshalIndent(st.Policy, "", "  ")
		t.Errorf("status of the ingress endpoint:\n%s", b)
	}

	gateway := fmt.Sprintf("http://%s:%d/", testPool.Addr().Next(), port)
	get := func(src, path string) (int, string, string) {
		t.Helper()
		c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			DisableKeepAlives: true,
			DialContext:       (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}).DialContext,
		}}
		resp, err := c.Get(gateway + strings.TrimPrefix(path, "/"))
		if err != nil {
			t.Fatalf("request from %s for %s: %v", src, path, err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
		if err != nil {
			t.Fatalf("reading the answer from %s for %s: %v", src, path, err)
		}
		return resp.StatusCode, resp.Header.Get("X-Echo-Backend"), string(body)
	}
	from := func(src string) (int, string) {
		t.Helper()
		code, be, _ := get(src, "/")
		return code, be
	}
	if code, _ := from("127.0.0.1"); code != http.StatusForbidden {
		t.Errorf("request from 127.0.0.1 (not admitted): %d, want 403", code)
	}
	for i := 0; i < 20; i++ {
		if code, be := from("127.0.0.2"); code != http.StatusOK || be != "echo" {
			t.Fatalf("request %d from 127.0.0.2 (admitted): %d from %q, want 200 from echo", i, code, be)
		}
	}
	// Every endpoint of "locked" is denied: 403 with Cilium's body, and
	// for gRPC status 7 (PERMISSION_DENIED); "empty" has no endpoints,
	// which is no policy decision: 503.
	if code, _, body := get("127.0.0.2", "/locked"); code != http.StatusForbidden || body != "Access denied\r\n" {
		t.Errorf("/locked (every endpoint denied): %d %q, want 403 %q", code, body, "Access denied\r\n")
	}
	if status, msg := grpcCall(t, "127.0.0.2", testPool.Addr().Next().String(), port, "/locked/Call"); status != "7" {
		t.Errorf("gRPC call to /locked (every endpoint denied): grpc-status %q (%q), want 7", status, msg)
	}
	if code, _, _ := get("127.0.0.2", "/empty"); code != http.StatusServiceUnavailable {
		t.Errorf("/empty (no endpoints): %d, want 503", code)
	}
	if n := deniedConns.Load(); n != 0 {
		t.Errorf("the denied backend 127.0.103.2 accepted %d connections, want 0", n)
	}
	// An admitted endpoint appears: /locked is served by it with the next
	// snapshot, never by the denied one.
	writeFileAtomic(t, filepath.Join(conf, "locked.yaml"), lockedSlice(backendPort, "127.0.103.2", "127.0.103.1"))
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, be, _ := get("127.0.0.2", "/locked")
		if code == http.StatusOK && be == "echo" {
			break
		}
		if code != http.StatusForbidden {
			t.Fatalf("/locked while an admitted endpoint appears: %d from %q, want 403 then 200", code, be)
		}
		if time.Now().After(deadline) {
			t.Fatal("/locked still answered 403 30s after an admitted endpoint appeared")
		}
		time.Sleep(100 * time.Millisecond)
	}
	for i := 0; i < 10; i++ {
		if code, be, _ := get("127.0.0.2", "/locked"); code != http.StatusOK || be != "echo" {
			t.Fatalf("/locked request %d with an admitted endpoint: %d from %q, want 200 from echo", i, code, be)
		}
	}
	if n := deniedConns.Load(); n != 0 {
		t.Errorf("the denied backend 127.0.103.2 accepted %d connections, want 0", n)
	}

	tcpGateway := net.JoinHostPort(testPool.Addr().Next().String(), strconv.Itoa(tcpPort))
	lineFrom := func(src string) (string, error) {
		t.Helper()
		c, err := (&net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}).Dial("tcp", tcpGateway)
		if err != nil {
			t.Fatalf("connecting from %s: %v", src, err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.WriteString(c, "ping\n"); err != nil {
			return "", err
		}
		return bufio.NewReader(c).ReadString('\n')
	}
	if got, err := lineFrom("127.0.0.1"); err == nil || got != "" {
		t.Errorf("TCP connection from 127.0.0.1 (not admitted): answered %q, %v; want it closed", got, err)
	}
	if got, err := lineFrom("127.0.0.2"); err != nil || got != "db: ping\n" {
		t.Fatalf("TCP connection from 127.0.0.2 (admitted): %q, %v", got, err)
	}
	// The admitted connection was answered after the refused one was
	// closed, so the backend has counted every connection the proxy made.
	if n := tcpConns.Load(); n != 1 {
		t.Errorf("the TCP backend accepted %d connections, want 1 (the refused client must never reach it)", n)
	}
}

// grpcCall sends a unary gRPC request (an empty message, over h2c with
// prior knowledge) from src to the gateway at host:port and returns its
// grpc-status and grpc-message, from the trailers or a trailers-only
// answer.
func grpcCall(t *testing.T, src, host string, port int, method string) (string, string) {
	t.Helper()
	tr := &http2.Transport{AllowHTTP: true, DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
		return (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}).DialContext(ctx, network, addr)
	}}
	defer tr.CloseIdleConnections()
	url := fmt.Sprintf("http://%s%s", net.JoinHostPort(host, strconv.Itoa(port)), method)
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader([]byte{0, 0, 0, 0, 0}))
	must(t, err)
	req.Header.Set("Content-Type", "application/grpc")
	req.Header.Set("TE", "trailers")
	c := &http.Client{Timeout: 10 * time.Second, Transport: tr}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("gRPC call %s from %s: %v", method, src, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	if s := resp.Header.Get("Grpc-Status"); s != "" {
		return s, resp.Header.Get("Grpc-Message")
	}
	return resp.Trailer.Get("Grpc-Status"), resp.Trailer.Get("Grpc-Message")
}

// writeFileAtomic replaces a file at once, so a watcher never reads half
// of it.
func writeFileAtomic(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	must(t, os.WriteFile(tmp, []byte(content), 0o644))
	must(t, os.Rename(tmp, path))
}

// serveLines answers each line of every accepted connection with
// "<name>: <line>".
func serveLines(l net.Listener, name string) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			r := bufio.NewReader(c)
			for {
				line, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if _, err := io.WriteString(c, name+": "+line); err != nil {
					return
				}
			}
		}()
	}
}

// countingListener counts the connections it accepts.
type countingListener struct {
	net.Listener
	n *atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}
