package proxylib_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	rsrc "github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/nodemesh/nodemesh/proxylib"
	"github.com/nodemesh/nodemesh/proxylib/admin"
	"github.com/nodemesh/nodemesh/proxylib/resource"
)

func TestAdminEndpoint(t *testing.T) {
	a := startBackend(t, "a", nil)
	x := startXDS(t, "", nil)
	addr, adminAddr := freeAddr(t), freeAddr(t)
	v := x.set(httpListener(t, "l", addr, "rc", nil), routeConfig("rc", vh("v", "*", prefixRoute("/", "a"))),
		edsCluster(t, "a", false, nil), cla("a", a.addr))
	startProxy(t, x.sock, proxylib.WithAdminAddress(adminAddr))
	x.waitACK(rsrc.RouteType, v)
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + adminAddr + path)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	waitFor(t, func() bool { s, _ := get("/ready"); return s == 200 }, "/ready")
	_, body := get("/config_dump")
	var d admin.Dump
	if err := json.Unmarshal([]byte(body), &d); err != nil {
		t.Fatal(err)
	}
	if !d.Ready || !d.XDS.Connected || len(d.Listeners) != 1 || d.Listeners[0].State != "active" {
		t.Fatalf("dump %s", body)
	}
	for _, ts := range d.Types {
		if ts.TypeURL != rsrc.SecretType && ts.TypeURL != rsrc.ExtensionConfigType && ts.Version != v {
			t.Errorf("%s at %q, want %s", ts.TypeURL, ts.Version, v)
		}
	}
	if _, body := get("/listeners"); body == "{}\n" {
		t.Fatalf("listeners %s", body)
	}
}

// TestAdminCluster: with its admin endpoint on, the proxy defines the
// static cluster envoy-admin (Cilium's bootstrap name) pointing at it, so
// a route like Cilium's Prometheus listener example (/metrics rewritten to
// /stats/prometheus) serves the metrics the binary hands WithPrometheus;
// a published cluster of that name is rejected, and the route keeps
// serving.
func TestAdminCluster(t *testing.T) {
	x := startXDS(t, "", nil)
	addr, adminAddr := freeAddr(t), freeAddr(t)
	metrics := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		_, _ = io.WriteString(w, "# TYPE proxy_test_up gauge\nproxy_test_up 1\n")
	})
	rewrite := &routev3.Route{Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Path{Path: "/metrics"}},
		Action: &routev3.Route_Route{Route: &routev3.RouteAction{
			ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: resource.AdminClusterName}, PrefixRewrite: "/stats/prometheus"}}}
	v := x.set(httpListener(t, "l", addr, "rc", nil), routeConfig("rc", vh("v", "*", rewrite)))
	startProxy(t, x.sock, proxylib.WithAdminAddress(adminAddr),
		proxylib.WithPrometheus(func(*proxylib.Proxy) http.Handler { return metrics }))
	x.waitACK(rsrc.RouteType, v)
	x.waitACK(rsrc.ListenerType, v)
	get := func(url string) (int, string) {
		resp, err := http.Get(url)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("http://" + adminAddr + "/stats/prometheus"); code != 200 || !strings.Contains(body, "proxy_test_up 1") {
		t.Fatalf("admin /stats/prometheus: %d %q", code, body)
	}
	var code int
	var body string
	waitFor(t, func() bool { code, body = get("http://" + addr + "/metrics"); return code == 200 }, "/metrics through the listener")
	if !strings.Contains(body, "proxy_test_up 1") {
		t.Fatalf("/metrics through the listener: %d %q", code, body)
	}

	// A published envoy-admin is refused; the route keeps its cluster.
	static := &clusterv3.Cluster{Name: resource.AdminClusterName, ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
		LoadAssignment: cla(resource.AdminClusterName, addr)}
	bad := x.set(httpListener(t, "l", addr, "rc", nil), routeConfig("rc", vh("v", "*", rewrite)), static)
	waitFor(t, func() bool {
		for _, m := range x.nackMessages() {
			if strings.Contains(m, `cluster "envoy-admin": the name is a static cluster of the proxy`) {
				return true
			}
		}
		return false
	}, "the NACK of a published envoy-admin cluster at "+bad)
	if code, body := get("http://" + addr + "/metrics"); code != 200 || !strings.Contains(body, "proxy_test_up 1") {
		t.Fatalf("/metrics after the rejected update: %d %q", code, body)
	}
}
