package main

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nodemesh/nodemesh/internal/metrics"
)

// metricsPool keeps this test's Gateway apart from the other tests'.
var metricsPool = netip.MustParsePrefix("127.0.103.0/24")

// TestMetricsOfAgentAndProxyBinaries builds nodemesh-agent and
// nodemesh-proxy, runs them as processes in standalone mode (a Gateway in
// front of an echo backend) with --metrics-address, and scrapes both
// /metrics endpoints as Prometheus would: the agent's translation and
// xDS push/ACK counters and served versions, the proxy's requests by code
// class, latency histogram, upstream connections and xDS state all move
// with real configuration changes and real requests.
func TestMetricsOfAgentAndProxyBinaries(t *testing.T) {
	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", bin+"/", "github.com/nodemesh/nodemesh/cmd/nodemesh-agent", "github.com/nodemesh/nodemesh/cmd/nodemesh-proxy")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building: %v\n%s", err, out)
	}
	state, err := os.MkdirTemp("", "nm-metrics")
	must(t, err)
	t.Cleanup(func() { os.RemoveAll(state) })
	conf := filepath.Join(t.TempDir(), "conf")
	backend := startEcho(t)
	port := freePort(t)
	files := standaloneConfig(port, backend)
	writeDir(t, conf, files)
	agentMetrics := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	proxyMetrics := fmt.Sprintf("127.0.0.1:%d", freePort(t))

	start := func(name string, args ...string) {
		cmd := exec.Command(filepath.Join(bin, name), args...)
		logf, err := os.Create(filepath.Join(state, name+".log"))
		must(t, err)
		cmd.Stdout, cmd.Stderr = logf, logf
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		must(t, cmd.Start())
		t.Cleanup(func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			done := make(chan struct{})
			go func() { _ = cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				_ = cmd.Process.Kill()
				<-done
			}
			logf.Close()
			if t.Failed() {
				b, _ := os.ReadFile(logf.Name())
				t.Logf("%s log:\n%s", name, b)
			}
		})
	}
	start("nodemesh-agent", "--config-dir", conf, "--state-dir", state, "--address-pool", metricsPool.String(),
		"--metrics-address", agentMetrics)
	start("nodemesh-proxy", "--xds-address", "unix://"+filepath.Join(state, "xds.sock"), "--node-id", "metrics-test",
		"--admin-address", "", "--drain-timeout", "1s", "--metrics-address", proxyMetrics)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	client := &http.Client{Timeout: 5 * time.Second}
	gateway := fmt.Sprintf("http://%s:%d/", metricsPool.Addr().Next(), port)
	// eventually polls cond until it holds (events of other processes
	// have no channel to wait on here).
	eventually := func(what string, cond func() error) {
		t.Helper()
		var err error
		for {
			if err = cond(); err == nil {
				return
			}
			select {
			case <-ctx.Done():
				t.Fatalf("%s: %v", what, err)
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	get := func() int {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, gateway, nil)
		must(t, err)
		resp, err := client.Do(req)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	scrape := func(addr string) metrics.Families {
		t.Helper()
		f, err := metrics.Scrape(ctx, client, "http://"+addr+"/metrics")
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	value := func(f metrics.Families, name string, labels ...string) float64 {
		t.Helper()
		v, ok := f.Value(name, labels...)
		if !ok {
			t.Fatalf("%s%v is not exported", name, labels)
		}
		return v
	}
	// settle scrapes addr until cond holds. The binaries update their
	// counters after the event a client sees (a request is counted once
	// its response is written, an ACK once the agent received it, after
	// the proxy applied what it acknowledges), so a scrape right after
	// that event may come too early. A metric not exported yet reads 0.
	settle := func(what, addr string, cond func(metrics.Families) error) metrics.Families {
		t.Helper()
		var f metrics.Families
		eventually(what, func() error {
			f = scrape(addr)
			return cond(f)
		})
		return f
	}
	num := func(f metrics.Families, name string, labels ...string) float64 {
		v, _ := f.Value(name, labels...)
		return v
	}
	eventually("the Gateway serves", func() error {
		if code := get(); code != http.StatusOK {
			return fmt.Errorf("GET %s: %d", gateway, code)
		}
		return nil
	})

	// The agent translated, pushed every type the proxy asked for and had
	// it acknowledged, and says which version it serves.
	a := settle("the agent's translation and xDS counters", agentMetrics, func(a metrics.Families) error {
		if v := num(a, "nodemesh_translations_total", "result", "success"); v < 1 {
			return fmt.Errorf("translations: %v", v)
		}
		if v := num(a, "nodemesh_translation_duration_seconds"); v < 1 {
			return fmt.Errorf("translation duration samples: %v", v)
		}
		for _, typ := range []string{"CDS", "EDS", "LDS", "RDS"} {
			if v := num(a, "nodemesh_xds_pushes_total", "type", typ); v < 1 {
				return fmt.Errorf("%s pushes: %v", typ, v)
			}
			if v := num(a, "nodemesh_xds_acks_total", "type", typ); v < 1 {
				return fmt.Errorf("%s ACKs: %v", typ, v)
			}
		}
		if v := num(a, "nodemesh_xds_connected_proxies"); v != 1 {
			return fmt.Errorf("connected proxies: %v", v)
		}
		return nil
	})
	for _, typ := range []string{"CDS", "EDS", "LDS", "RDS"} {
		if v := value(a, "nodemesh_xds_nacks_total", "type", typ); v != 0 {
			t.Fatalf("%s NACKs: %v", typ, v)
		}
	}
	if v := value(a, "nodemesh_xds_streams_refused_total"); v != 0 {
		t.Fatalf("refused xDS streams: %v", v)
	}
	rdsVersion := func(f metrics.Families) string {
		for _, m := range f["nodemesh_xds_snapshot_version_info"].GetMetric() {
			typ, version := "", ""
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "type":
					typ = l.GetValue()
				case "version":
					version = l.GetValue()
				}
			}
			if typ == "RDS" {
				return version
			}
		}
		t.Fatal("no RDS version is exported")
		return ""
	}
	v1 := rdsVersion(a)

	// Requests move the proxy's counters by exactly what was sent: five
	// answered 200 by the backend, then, after a route change, one no route serves (404).
	// The baseline is read once the proxy counted the request that found
	// the Gateway serving, and every request it counted has its latency
	// sample.
	p := settle("the proxy's baseline", proxyMetrics, func(p metrics.Families) error {
		ok, _ := p.Value("nodemesh_proxy_http_requests_total", "protocol", "http", "code_class", "2xx", "verdict", "forwarded")
		all, _ := p.Value("nodemesh_proxy_http_requests_total", "protocol", "http")
		lat, _ := p.Value("nodemesh_proxy_http_request_duration_seconds", "protocol", "http")
		if ok < 1 || lat != all {
			return fmt.Errorf("2xx requests %v (want at least 1), %v requests with %v latency samples", ok, all, lat)
		}
		return nil
	})
	ok0, _ := p.Value("nodemesh_proxy_http_requests_total", "protocol", "http", "code_class", "2xx", "verdict", "forwarded")
	nr0, _ := p.Value("nodemesh_proxy_http_requests_total", "protocol", "http", "code_class", "4xx", "verdict", "error")
	lat0, _ := p.Value("nodemesh_proxy_http_request_duration_seconds", "protocol", "http")
	for range 5 {
		if code := get(); code != http.StatusOK {
			t.Fatalf("GET: %d", code)
		}
	}
	settle("the proxy counts the five requests", proxyMetrics, func(p metrics.Families) error {
		ok := num(p, "nodemesh_proxy_http_requests_total", "protocol", "http", "code_class", "2xx", "verdict", "forwarded")
		lat := num(p, "nodemesh_proxy_http_request_duration_seconds", "protocol", "http")
		if ok > ok0+5 || lat > lat0+5 {
			t.Fatalf("2xx requests %v, latency samples %v; want %v and %v", ok, lat, ok0+5, lat0+5)
		}
		if ok != ok0+5 || lat != lat0+5 {
			return fmt.Errorf("2xx requests %v, latency samples %v; want %v and %v", ok, lat, ok0+5, lat0+5)
		}
		// The backend connection stays pooled (keep-alive).
		if v := num(p, "nodemesh_proxy_upstream_cx_active"); v < 1 {
			return fmt.Errorf("upstream connections: %v", v)
		}
		if v := num(p, "nodemesh_proxy_xds_acks_total"); v < 4 {
			return fmt.Errorf("proxy ACKs: %v", v)
		}
		if v := num(p, "nodemesh_proxy_xds_connected"); v != 1 {
			return fmt.Errorf("proxy xDS connected: %v", v)
		}
		if v := num(p, "nodemesh_proxy_ready"); v != 1 {
			return fmt.Errorf("proxy ready: %v", v)
		}
		return nil
	})

	// A route change: only /ok reaches the backend now. The agent pushes
	// and the proxy acknowledges a new route version; a request outside
	// it is a 404 the proxy answers itself.
	pushes0 := value(a, "nodemesh_xds_pushes_total", "type", "RDS")
	acks0 := value(a, "nodemesh_xds_acks_total", "type", "RDS")
	files["route.yaml"] = strings.Replace(files["route.yaml"], "rules: [{backendRefs:", "rules: [{matches: [{path: {type: PathPrefix, value: /ok}}], backendRefs:", 1)
	writeDir(t, conf, files)
	eventually("the new route serves", func() error {
		if code := get(); code != http.StatusNotFound {
			return fmt.Errorf("GET / answered %d, want 404", code)
		}
		return nil
	})
	settle("the agent counts the route change", agentMetrics, func(a metrics.Families) error {
		if v := num(a, "nodemesh_xds_pushes_total", "type", "RDS"); v <= pushes0 {
			return fmt.Errorf("RDS pushes did not move: %v", v)
		}
		if v := num(a, "nodemesh_xds_acks_total", "type", "RDS"); v <= acks0 {
			return fmt.Errorf("RDS ACKs did not move: %v", v)
		}
		if v2 := rdsVersion(a); v2 == v1 {
			return fmt.Errorf("the served RDS version is still %s", v1)
		}
		return nil
	})
	settle("the proxy counts the 404", proxyMetrics, func(p metrics.Families) error {
		if v := num(p, "nodemesh_proxy_http_requests_total", "protocol", "http", "code_class", "4xx", "verdict", "error"); v < nr0+1 {
			return fmt.Errorf("4xx requests: %v", v)
		}
		return nil
	})
}
