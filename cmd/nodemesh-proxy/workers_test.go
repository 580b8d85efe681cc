package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nodemesh/nodemesh/internal/agent"
	"github.com/nodemesh/nodemesh/internal/metrics"
	"github.com/nodemesh/nodemesh/mesh/provider/file"
	"github.com/nodemesh/nodemesh/xds/publish"
	"github.com/nodemesh/nodemesh/xds/server"
)

// runMainEnv makes the test binary run main (nodemesh-proxy itself, with
// the arguments it was given): TestWorkersMetrics starts it as the
// proxy, and the proxy starts its workers the same way.
const runMainEnv = "NODEMESH_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(runMainEnv) == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestWorkersMetrics runs nodemesh-proxy --workers 2 (this binary, as
// main) with Cilium's Prometheus listener example, in a network namespace
// of its own: requests on the listener spread over both processes, and
// /metrics labels each process's series with its worker index. SIGTERM
// stops the parent and its worker.
func TestWorkersMetrics(t *testing.T) {
	if !inOwnNetns(t) {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sock, _ := serveExampleXDS(t, ctx)
	proxy, exited := startMain(t, mainRun{}, "--xds-address", "unix://"+sock, "--node-id", "prom", "--workers", "2",
		"--admin-address", "127.0.0.1:9901", "--metrics-address", "127.0.0.1:9964", "--drain-timeout", "2s", "--log-level", "warn")
	// Fresh connections to the example's listener: the kernel spreads them
	// over both processes' sockets.
	const n = 40
	getExampleMetrics(t, n)
	// A request is counted as it ends, which may be just after its
	// response reached the client.
	var (
		fams  metrics.Families
		per   [2]float64
		total float64
		err   error
	)
	hc := &http.Client{Timeout: 5 * time.Second}
	deadline := time.Now().Add(10 * time.Second)
	for {
		fams, err = metrics.Scrape(ctx, hc, "http://127.0.0.1:9964/metrics")
		if err != nil {
			t.Fatal(err)
		}
		for i, w := range []string{"0", "1"} {
			per[i], _ = fams.Value("nodemesh_proxy_http_requests_total", "protocol", "http", "code_class", "2xx", "verdict", "forwarded", "worker", w)
		}
		if total = per[0] + per[1]; total >= n || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if per[0] == 0 || per[1] == 0 || total != n {
		t.Fatalf("requests counted per worker %v, want both > 0 and %d in all", per, n)
	}
	for _, w := range []string{"0", "1"} {
		if _, ok := fams.Value("go_goroutines", "worker", w); !ok {
			t.Fatalf("no go_goroutines of worker %s", w)
		}
	}
	if _, ok := fams.Value("nodemesh_proxy_xds_connected", "worker", "0"); !ok {
		t.Fatal("no xDS state from worker 0")
	}
	if _, ok := fams.Value("nodemesh_proxy_xds_connected", "worker", "1"); ok {
		t.Fatal("worker 1 reports an xDS state of its own")
	}

	if err := proxy.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("the proxy exited with %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the proxy did not exit on SIGTERM")
	}
	// Its worker drained and exited with it: nothing listens any more.
	if c, err := net.DialTimeout("tcp", "127.0.0.1:9090", time.Second); err == nil {
		c.Close()
		t.Fatal("something still accepts on the listener after the proxy exited")
	}
}

// serveExampleXDS serves Cilium's Prometheus listener example over xDS
// until the test ends, and returns the socket's path and the agent.
func serveExampleXDS(t *testing.T, ctx context.Context) (string, *agent.Agent) {
	t.Helper()
	conf, state := prometheusExampleConf(t), t.TempDir()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv := server.New(server.WithLogger(log))
	sock := filepath.Join(state, "xds.sock")
	l, err := server.ListenUnix(sock)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Stop(time.Second) })
	a, err := agent.New(agent.Config{Publisher: publish.New(srv), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	res, err := file.New(conf, file.WithLogger(log)).Load()
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Apply(ctx, res.Snapshot, res.Errors); err != nil {
		t.Fatal(err)
	}
	return sock, a
}

// getExampleMetrics asks the example's listener for /metrics n times, a
// fresh connection each, and fails the test unless every answer is a 200.
func getExampleMetrics(t *testing.T, n int) {
	t.Helper()
	for i := range n {
		c, err := net.Dial("tcp", "127.0.0.1:9090")
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprint(c, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
		b, _ := io.ReadAll(c)
		c.Close()
		if !strings.HasPrefix(string(b), "HTTP/1.1 200") {
			t.Fatalf("request %d: %.200q", i, b)
		}
	}
}

// mainRun says how startMain runs the proxy.
type mainRun struct {
	out    io.Writer // its output; nil: the test's stderr
	prefix []string  // a command to run it under (taskset)
	env    []string  // its environment; nil: the test's
}

// startMain runs this binary as nodemesh-proxy with args and waits until
// its admin endpoint on 127.0.0.1:9901 is ready; the cleanup kills it and
// waits for it to exit.
func startMain(t *testing.T, run mainRun, args ...string) (*exec.Cmd, <-chan error) {
	t.Helper()
	if run.out == nil {
		run.out = os.Stderr
	}
	if run.env == nil {
		run.env = os.Environ()
	}
	argv := append(append(slices.Clone(run.prefix), os.Args[0]), args...)
	proxy := exec.Command(argv[0], argv[1:]...)
	proxy.Env = append(slices.Clone(run.env), runMainEnv+"=1")
	proxy.Stdout, proxy.Stderr = run.out, run.out
	if err := proxy.Start(); err != nil {
		t.Fatal(err)
	}
	exited, gone := make(chan error, 1), make(chan struct{})
	go func() {
		exited <- proxy.Wait()
		close(gone)
	}()
	t.Cleanup(func() {
		// Gone before the next test takes its ports.
		_ = proxy.Process.Kill()
		<-gone
	})
	waitReady := time.Now().Add(30 * time.Second)
	for {
		if code, _, err := get("http://127.0.0.1:9901/ready"); err == nil && code == 200 {
			return proxy, exited
		}
		select {
		case err := <-exited:
			t.Fatalf("the proxy exited before it was ready: %v", err)
		default:
		}
		if time.Now().After(waitReady) {
			t.Fatal("the proxy never became ready")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
