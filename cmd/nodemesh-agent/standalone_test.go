package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"k8s.io/apimachinery/pkg/api/meta"

	"github.com/nodemesh/nodemesh/internal/agent"
	"github.com/nodemesh/nodemesh/internal/agent/api"
	"github.com/nodemesh/nodemesh/internal/echo"
	"github.com/nodemesh/nodemesh/mesh/provider/file"
	"github.com/nodemesh/nodemesh/proxylib"
	"github.com/nodemesh/nodemesh/xds/publish"
	"github.com/nodemesh/nodemesh/xds/server"
)

// testPool keeps this test's Gateway apart from other test binaries using
// loopback addresses at the same time.
var testPool = netip.MustParsePrefix("127.0.102.0/24")

// standaloneConfig is a Gateway routing to one echo backend, split over
// files as a user would.
func standaloneConfig(port int, backend string) map[string]string {
	host, bport, _ := net.SplitHostPort(backend)
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
  listeners: [{name: http, protocol: HTTP, port: %d}]
`, port),
		"backend.yaml": fmt.Sprintf(`apiVersion: v1
kind: Service
metadata: {name: echo, namespace: default}
spec: {ports: [{name: http, port: 80, targetPort: %[2]s}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: echo, namespace: default, labels: {kubernetes.io/service-name: echo}}
addressType: IPv4
ports: [{name: http, port: %[2]s}]
endpoints: [{addresses: ["%[1]s"], conditions: {ready: true}}]
`, host, bport),
		"route.yaml": `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r, namespace: default}
spec:
  parentRefs: [{name: gw}]
  rules: [{backendRefs: [{name: echo, port: 80}]}]
`,
	}
}

// TestStandaloneReportsConfigDirProblems runs standalone mode for real
// (the agent fed from a folder, the xDS server, the builtin proxy, an echo
// backend) and checks through the agent's local API, what `nodemesh
// status` prints, that odd files and a lost folder are reported while the
// last good configuration keeps serving traffic, and that the agent
// recovers when the folder comes back.
func TestStandaloneReportsConfigDirProblems(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	// Unix socket paths are limited to 108 bytes; t.TempDir() can be long.
	state, err := os.MkdirTemp("", "nm-agent")
	must(t, err)
	t.Cleanup(func() { os.RemoveAll(state) })
	conf := filepath.Join(t.TempDir(), "conf")
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)

	backend := startEcho(t)
	port := freePort(t)
	files := standaloneConfig(port, backend)
	writeDir(t, conf, files)

	srv := server.New(server.WithLogger(log))
	l, err := server.ListenUnix(filepath.Join(state, "xds.sock"))
	must(t, err)
	go srv.Serve(l)
	t.Cleanup(func() { srv.Stop(time.Second) })
	a, err := agent.New(agent.Config{Publisher: publish.New(srv), AddressPool: testPool, Logger: log})
	must(t, err)
	apiSock := filepath.Join(state, "agent.sock")
	go a.ServeAPI(ctx, apiSock)
	feedAndProxy(ctx, t, cancel, a, conf, state, "standalone-test", log)
	gateway := fmt.Sprintf("http://%s:%d/", testPool.Addr().Next(), port)

	// waitStatus waits, on the agent's change events, until ok accepts its
	// status, then reads the local API as `nodemesh status` does and
	// checks that it says the same.
	waitStatus := func(what string, ok func(*api.Status) bool) *api.Status {
		t.Helper()
		wctx, wcancel := context.WithTimeout(ctx, 20*time.Second)
		defer wcancel()
		if st, err := a.WaitStatus(wctx, ok); err != nil {
			b, _ := json.MarshalIndent(st, "", "  ")
			t.Fatalf("status did not show %s within 20s:\n%s", what, b)
		}
		st, err := api.FetchStatus(ctx, apiSock)
		if err != nil || !ok(st) {
			b, _ := json.MarshalIndent(st, "", "  ")
			t.Fatalf("the local API does not show %s (err %v):\n%s", what, err, b)
		}
		return st
	}
	// serving: the Gateway is Programmed (the proxy acknowledged what is
	// published) and a request through it reaches the backend.
	serving := func(st *api.Status) bool {
		if len(st.Gateways) != 1 || len(st.Proxies) != 1 || !st.Proxies[0].AckedAll(st.Versions) {
			return false
		}
		return meta.IsStatusConditionTrue(st.Gateways[0].Status.Conditions, "Programmed")
	}
	get := func() {
		t.Helper()
		resp, err := http.Get(gateway)
		if err != nil {
			t.Fatalf("request through the gateway: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Echo-Backend") != "echo" {
			t.Fatalf("request through the gateway: %s from %q, want 200 from echo", resp.Status, resp.Header.Get("X-Echo-Backend"))
		}
	}
	errorsAre := func(want ...string) func(*api.Status) bool {
		return func(st *api.Status) bool {
			if len(st.ConfigErrors) != len(want) {
				return false
			}
			for i, w := range want {
				if !strings.Contains(st.ConfigErrors[i], w) {
					return false
				}
			}
			return true
		}
	}

	st := waitStatus("the configuration served", func(st *api.Status) bool { return serving(st) && len(st.ConfigErrors) == 0 })
	versions := st.Versions
	get()
	// still checks that the configuration in effect is the one first
	// published and keeps serving.
	still := func(st *api.Status) {
		t.Helper()
		if !maps.Equal(st.Versions, versions) || !serving(st) {
			t.Fatalf("published versions %v (proxy %+v), want %v still served", st.Versions, st.Proxies, versions)
		}
		get()
	}

	// Odd files next to the good ones: a FIFO and a sparse file over the
	// size limit.
	must(t, unix.Mkfifo(filepath.Join(conf, "fifo.yaml"), 0o644))
	f, err := os.Create(filepath.Join(conf, "huge.yaml"))
	must(t, err)
	must(t, f.Truncate(2*file.DefaultMaxFileSize))
	must(t, f.Close())
	st = waitStatus("the odd files", errorsAre("fifo.yaml: skipped: not a regular file (named pipe)", "huge.yaml: skipped: file too large"))
	still(st)
	must(t, os.Remove(filepath.Join(conf, "fifo.yaml")))
	must(t, os.Remove(filepath.Join(conf, "huge.yaml")))
	still(waitStatus("no errors", errorsAre()))

	// The folder removed.
	must(t, os.RemoveAll(conf))
	st = waitStatus("the folder missing", errorsAre("reading config directory: open "+conf+": no such file or directory"))
	still(st)
	// Replaced by a file.
	must(t, os.WriteFile(conf, []byte("not a folder"), 0o644))
	still(waitStatus("the folder replaced by a file", errorsAre("reading config directory: open "+conf+": not a directory")))
	must(t, os.Remove(conf))

	// Back, with the same files: the error clears and nothing changes.
	writeDir(t, conf+".new", files)
	must(t, os.Rename(conf+".new", conf))
	still(waitStatus("the folder back", errorsAre()))

	// An edit in the folder that came back is applied.
	files["route.yaml"] = strings.Replace(files["route.yaml"], "rules: [{", "rules: [{matches: [{path: {type: PathPrefix, value: /only}}], ", 1)
	writeDir(t, conf, files)
	waitStatus("the edit published", func(st *api.Status) bool { return serving(st) && !maps.Equal(st.Versions, versions) })
	resp, err := http.Get(gateway)
	must(t, err)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("after the edit, / answered %s, want 404 (only /only is routed)", resp.Status)
	}
}

// feedAndProxy runs the agent's feed from the configuration directory
// conf (rescanned every 200ms) and a builtin proxy named nodeID on the
// xDS socket in state. The test's cleanup cancels ctx and waits for both
// to stop.
func feedAndProxy(ctx context.Context, t *testing.T, cancel context.CancelFunc, a *agent.Agent, conf, state, nodeID string, log *slog.Logger) {
	t.Helper()
	fed := make(chan error, 1)
	go func() {
		fed <- feed(ctx, a, file.New(conf, file.WithLogger(log), file.WithRescanInterval(200*time.Millisecond)))
	}()
	proxyDone := runProxy(ctx, t, state, nodeID, log)
	t.Cleanup(func() {
		cancel()
		for _, c := range []<-chan error{fed, proxyDone} {
			select {
			case err := <-c:
				if err != nil {
					t.Errorf("stopping: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Error("feed or proxy did not stop within 10s")
			}
		}
	})
}

// runProxy runs a builtin proxy named nodeID on the xDS socket in state
// until ctx ends; the channel gets what its Run returns.
func runProxy(ctx context.Context, t *testing.T, state, nodeID string, log *slog.Logger) <-chan error {
	t.Helper()
	p, err := proxylib.New(proxylib.WithXDSAddress("unix://"+filepath.Join(state, "xds.sock")), proxylib.WithNodeID(nodeID),
		proxylib.WithAdminAddress(""), proxylib.WithDrainTimeout(time.Second), proxylib.WithLogger(log))
	must(t, err)
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	return done
}

func writeDir(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	must(t, os.MkdirAll(dir, 0o755))
	for name, content := range files {
		must(t, os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644))
	}
}

func startEcho(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	srv := &http.Server{Handler: echo.Handler("echo")}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return l.Addr().String()
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestConfigMaxFileSizeFlag(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64 // 0: rejected
	}{
		{"4Mi", 4 << 20}, {"1048576", 1 << 20}, {"1.5Mi", 3 << 19}, {"64Ki", 64 << 10}, {"10M", 10_000_000},
		{"0", 0}, {"-1Mi", 0}, {"0.5", 0}, {"4 MiB", 0}, {"", 0},
	} {
		o := &standaloneOptions{maxFileSize: file.DefaultMaxFileSize}
		err := o.setMaxFileSize(tc.in)
		switch {
		case tc.want == 0 && err == nil:
			t.Errorf("--config-max-file-size=%q accepted as %d", tc.in, o.maxFileSize)
		case tc.want != 0 && (err != nil || o.maxFileSize != tc.want):
			t.Errorf("--config-max-file-size=%q: %d, %v; want %d", tc.in, o.maxFileSize, err, tc.want)
		}
	}
}
