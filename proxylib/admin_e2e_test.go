package proxylib_test

import (
	"encoding/json"
	"io"
	"net/http"
	"testing"

	rsrc "github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/nodemesh/nodemesh/proxylib"
	"github.com/nodemesh/nodemesh/proxylib/admin"
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
