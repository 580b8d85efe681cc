package e2e

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nodemesh/nodemesh/gateway"
	"github.com/nodemesh/nodemesh/internal/agent"
	"github.com/nodemesh/nodemesh/internal/agent/api"
	"github.com/nodemesh/nodemesh/internal/echo"
	"github.com/nodemesh/nodemesh/mesh/dataplane"
	"github.com/nodemesh/nodemesh/mesh/input"
	"github.com/nodemesh/nodemesh/proxylib"
	"github.com/nodemesh/nodemesh/xds/publish"
	"github.com/nodemesh/nodemesh/xds/server"
)

// gatewayPool keeps this package's Gateways apart from other test binaries
// that use loopback addresses at the same time.
var gatewayPool = netip.MustParsePrefix("127.0.101.0/24")

// mesh is one node's control and data plane, all in this process and all
// real: the agent, the xDS server on a Unix socket, the builtin proxy
// talking gRPC to it, and echo backends on loopback ports.
type mesh struct {
	t        *testing.T
	agent    *agent.Agent
	srv      *server.Server
	pub      *publish.Publisher // nil with another publisher (withPublisher)
	port     int                // the port every test Gateway listener uses
	backends map[string]string
}

// meshOption changes how startMesh wires the node.
type meshOption func(*meshConfig)

type meshConfig struct {
	publisher func(*server.Server) dataplane.Publisher
	ingress   gateway.IngressOptions
}

// withIngress sets the agent's Ingress options.
func withIngress(o gateway.IngressOptions) meshOption {
	return func(c *meshConfig) { c.ingress = o }
}

// withPublisher replaces the publisher between agent and xDS server.
func withPublisher(f func(*server.Server) dataplane.Publisher) meshOption {
	return func(c *meshConfig) { c.publisher = f }
}

func startMesh(t *testing.T, delta bool, backends []string, opts ...meshOption) *mesh {
	t.Helper()
	log := slog.New(slog.NewTextHandler(newTestWriter(t), &slog.HandlerOptions{Level: slog.LevelWarn}))
	// Unix socket paths are limited to 108 bytes; t.TempDir() can be long.
	dir, err := os.MkdirTemp("", "nm-e2e")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := dir + "/xds.sock"

	srv := server.New(server.WithLogger(log))
	l, err := server.ListenUnix(sock)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Stop(time.Second) })

	cfg := meshConfig{publisher: func(s *server.Server) dataplane.Publisher { return publish.New(s) }}
	for _, o := range opts {
		o(&cfg)
	}
	pub := cfg.publisher(srv)
	a, err := agent.New(agent.Config{Publisher: pub, AddressPool: gatewayPool, Ingress: cfg.ingress, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	p, err := proxylib.New(
		proxylib.WithXDSAddress("unix://"+sock),
		proxylib.WithNodeID("e2e-"+t.Name()),
		proxylib.WithDelta(delta),
		proxylib.WithAdminAddress(""),
		proxylib.WithDrainTimeout(2*time.Second),
		proxylib.WithLogger(log),
	)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("proxy exited with %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("proxy did not stop within 10s")
		}
	})

	m := &mesh{t: t, agent: a, srv: srv, port: freePort(t), backends: map[string]string{}}
	m.pub, _ = pub.(*publish.Publisher)
	for _, name := range backends {
		m.backends[name] = startEcho(t, name)
	}
	return m
}

// startEcho runs an echo backend and returns its loopback address.
func startEcho(t *testing.T, name string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: echo.Handler(name)}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return l.Addr().String()
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// apply decodes YAML, hands it to the agent and waits until every
// connected proxy acknowledged the result (or rejected it: then the test
// fails with the proxy's message).
func (m *mesh) apply(yamlDocs string) *api.Status {
	m.t.Helper()
	m.applyNoWait(yamlDocs)
	deadline := time.Now().Add(10 * time.Second)
	if m.pub != nil {
		// Wait for the ACK event; the status check below then confirms,
		// and before the proxy connected waits for it on the agent's
		// change events.
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		err := m.pub.WaitForAck(ctx)
		cancel()
		var nack *server.NackError
		if errors.As(err, &nack) {
			m.t.Fatalf("proxy %s rejected %s: %s", nack.Node, nack.TypeURL, nack.Nack.Message)
		}
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	var rejected string
	st, err := m.agent.WaitStatus(ctx, func(st *api.Status) bool {
		acked, connected := true, 0
		for _, p := range st.Proxies {
			if !p.Connected {
				continue
			}
			connected++
			for _, ts := range p.Types {
				if ts.Nack != nil && ts.Nack.Version == st.Versions[ts.Type] {
					rejected = fmt.Sprintf("proxy %s rejected %s: %s", p.Node, ts.Type, ts.Nack.Message)
					return true
				}
			}
			acked = acked && p.AckedAll(st.Versions)
		}
		return connected > 0 && acked
	})
	switch {
	case rejected != "":
		m.t.Fatal(rejected)
	case err != nil:
		m.t.Fatalf("proxies did not acknowledge versions %v within 10s: %+v", st.Versions, st.Proxies)
	}
	return st
}

// applyNoWait hands YAML to the agent without waiting for the proxies.
func (m *mesh) applyNoWait(yamlDocs string) {
	m.t.Helper()
	objs, err := input.Decode("test.yaml", []byte(yamlDocs))
	if err != nil {
		m.t.Fatalf("decoding test YAML: %v", err)
	}
	snap, err := input.Build(objs)
	if err != nil {
		m.t.Fatalf("building snapshot: %v", err)
	}
	if err := m.agent.Apply(context.Background(), snap, nil); err != nil {
		m.t.Fatalf("applying: %v", err)
	}
}

// gateway returns the "host:port" of the Gateway at the i-th pool address.
func (m *mesh) gateway(i int) string {
	addr := gatewayPool.Addr()
	for range i {
		addr = addr.Next()
	}
	return fmt.Sprintf("%s:%d", addr, m.port)
}

// endpointSlice renders a Service with one port and the EndpointSlice for
// a backend started by startMesh.
func (m *mesh) service(ns, name, backend string) string {
	addr := m.backends[backend]
	host, port, _ := net.SplitHostPort(addr)
	return fmt.Sprintf(`apiVersion: v1
kind: Service
metadata: {name: %[2]s, namespace: %[1]s}
spec: {ports: [{name: http, port: 80, targetPort: %[4]s}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: %[2]s, namespace: %[1]s, labels: {kubernetes.io/service-name: %[2]s}}
addressType: IPv4
ports: [{name: http, port: %[4]s}]
endpoints: [{addresses: [%[3]s], conditions: {ready: true}}]
---
`, ns, name, host, port)
}

// result is what a request through the proxy produced.
type result struct {
	status  int
	header  http.Header
	body    echo.Response // zero unless an echo backend answered
	raw     string
	backend string
}

var client = &http.Client{
	Timeout: 10 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	},
	Transport: &http.Transport{MaxIdleConnsPerHost: 64, TLSClientConfig: &tls.Config{}},
}

// get sends method to http://<gw><path> with the given Host and headers.
func get(t *testing.T, gw, method, host, path string, headers ...string) result {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+gw+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Add(headers[i], headers[i+1])
	}
	return do(t, client, req)
}

func do(t *testing.T, c *http.Client, req *http.Request) result {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s (Host %s): %v", req.Method, req.URL, req.Host, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := result{status: resp.StatusCode, header: resp.Header, raw: string(raw), backend: resp.Header.Get("X-Echo-Backend")}
	if r.backend != "" {
		if err := json.Unmarshal(raw, &r.body); err != nil {
			t.Fatalf("decoding echo response: %v\n%s", err, raw)
		}
	}
	return r
}

// testWriter sends logs to the test, and drops them once the test is over
// (goroutines still stopping must not call t.Log then).
type testWriter struct {
	t    testing.TB
	done *atomic.Bool
}

// newTestWriter must be called before any other Cleanup is registered, so
// its own cleanup runs last.
func newTestWriter(t testing.TB) testWriter {
	w := testWriter{t, new(atomic.Bool)}
	t.Cleanup(func() { w.done.Store(true) })
	return w
}

func (w testWriter) Write(b []byte) (int, error) {
	if !w.done.Load() {
		w.t.Log(strings.TrimSpace(string(b)))
	}
	return len(b), nil
}
