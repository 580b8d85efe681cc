package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nodemesh/nodemesh/proxylib"
)

// inNetnsEnv makes the test binary run TestPrometheusListenerExample's
// body: the parent runs it again inside a network namespace of its own.
const inNetnsEnv = "NODEMESH_TEST_IN_NETNS"

// inOwnNetns runs the calling test in a network namespace of its own:
// outside one it re-executes this binary for just that test under
// unshare, fails unless it passed there, and returns false (the caller
// returns); inside it brings loopback up and returns true.
func inOwnNetns(t *testing.T) bool {
	t.Helper()
	if os.Getenv(inNetnsEnv) == "1" {
		if out, err := exec.Command("ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
			t.Fatalf("bringing loopback up: %v: %s", err, out)
		}
		return true
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root: runs in a network namespace of its own")
	}
	cmd := exec.Command("unshare", "--net", "--", os.Args[0], "-test.run=^"+t.Name()+"$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), inNetnsEnv+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("in a network namespace: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "--- PASS: "+t.Name()) {
		t.Fatalf("the test did not run in the network namespace:\n%s", out)
	}
	return false
}

// prometheusExampleConf is a configuration directory holding Cilium's
// Prometheus listener example, unchanged.
func prometheusExampleConf(t *testing.T) string {
	t.Helper()
	example, err := os.ReadFile("../../examples/envoyconfig/prometheus-listener.yaml")
	if err != nil {
		t.Fatal(err)
	}
	conf := t.TempDir()
	if err := os.WriteFile(filepath.Join(conf, "prometheus-listener.yaml"), example, 0o644); err != nil {
		t.Fatal(err)
	}
	return conf
}

// TestPrometheusListenerExample applies Cilium's Prometheus listener
// example (examples/envoyconfig/prometheus-listener.yaml) unchanged
// through the agent to a proxy wired as this binary wires it, and scrapes
// /metrics on the listener's port 9090 over IPv4 and IPv6: the route leads
// to the proxy's own envoy-admin cluster, rewritten to /stats/prometheus.
// The example binds [::]:9090, so it runs in a network namespace of its
// own (the test re-executes itself under unshare), never on the host.
func TestPrometheusListenerExample(t *testing.T) {
	if !inOwnNetns(t) {
		return
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sock, a := serveExampleXDS(t, ctx)
	st := a.Status()
	if len(st.EnvoyConfigs) != 1 || !st.EnvoyConfigs[0].Valid {
		t.Fatalf("the example is not accepted: %+v", st.EnvoyConfigs)
	}
	p, err := proxylib.New(proxylib.WithXDSAddress("unix://"+sock), proxylib.WithNodeID("prom"),
		proxylib.WithAdminAddress("127.0.0.1:9901"), proxylib.WithDrainTimeout(time.Second), proxylib.WithLogger(log), adminMetrics(log, 1))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()

	for _, url := range []string{"http://127.0.0.1:9090/metrics", "http://[::1]:9090/metrics"} {
		var last string
		deadline := time.Now().Add(30 * time.Second)
		for {
			code, body, err := get(url)
			if err == nil && code == 200 && strings.Contains(body, "nodemesh_proxy_xds_connected 1") {
				break
			}
			last = fmt.Sprintf("%d %v %.300q", code, err, body)
			if time.Now().After(deadline) {
				t.Fatalf("%s never served the proxy's metrics; last: %s", url, last)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	// Only /metrics is routed.
	if code, _, err := get("http://127.0.0.1:9090/stats/prometheus"); err != nil || code != 404 {
		t.Fatalf("/stats/prometheus on the listener: %d %v, want 404 (no route)", code, err)
	}
}

func get(url string) (int, string, error) {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}
