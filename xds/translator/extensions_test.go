package translator

import (
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	yaml "go.yaml.in/yaml/v3"
)

// TestExtensionsInGoldens pins the Envoy extensions the translator uses,
// read from every golden output: each typed_config type URL and each name
// of a filter, transport socket or protocol-options entry, and the upgrade
// types the connection managers enable. All of them are upstream Envoy
// extensions, so stock Envoy can run the output. Adding an extension or an
// upgrade type must be a conscious change to this list (and to the
// contract the builtin proxy implements).
func TestExtensionsInGoldens(t *testing.T) {
	wantTypes := []string{
		"type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors",
		"type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy",
		"type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC",
		"type.googleapis.com/envoy.extensions.filters.http.router.v3.Router",
		"type.googleapis.com/envoy.extensions.filters.listener.original_src.v3.OriginalSrc",
		"type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector",
		"type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
		"type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC",
		"type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
		"type.googleapis.com/envoy.extensions.filters.udp.udp_proxy.v3.Route",
		"type.googleapis.com/envoy.extensions.filters.udp.udp_proxy.v3.UdpProxyConfig",
		"type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
		"type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
		"type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
	}
	wantNames := []string{
		"envoy.extensions.filters.udp.udp_proxy.v3.Route",
		"envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
		"envoy.filters.http.cors",
		"envoy.filters.http.rbac",
		"envoy.filters.http.router",
		"envoy.filters.listener.original_src",
		"envoy.filters.listener.tls_inspector",
		"envoy.filters.network.http_connection_manager",
		"envoy.filters.network.rbac",
		"envoy.filters.network.tcp_proxy",
		"envoy.filters.udp_listener.udp_proxy",
		"envoy.transport_sockets.tls",
	}
	// Every connection manager forwards WebSocket upgrades, nothing else.
	wantUpgrades := []string{"websocket"}
	outs, err := filepath.Glob(filepath.Join("testdata", "*.out.yaml"))
	if err != nil || len(outs) == 0 {
		t.Fatalf("no golden outputs (%v)", err)
	}
	types, names, upgrades := map[string]bool{}, map[string]bool{}, map[string]bool{}
	managers := 0
	for _, out := range outs {
		data, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		var doc any
		if err := yaml.Unmarshal(data, &doc); err != nil {
			t.Fatalf("%s: %v", out, err)
		}
		collectExtensions(doc, types, names)
		managers += collectUpgrades(t, out, doc, upgrades)
	}
	if managers == 0 {
		t.Fatal("no HttpConnectionManager in the golden outputs")
	}
	if diff := cmp.Diff(wantTypes, sortedKeys(types)); diff != "" {
		t.Errorf("typed_config type URLs (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(wantNames, sortedKeys(names)); diff != "" {
		t.Errorf("extension names (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(wantUpgrades, sortedKeys(upgrades)); diff != "" {
		t.Errorf("upgrade types (-want +got):\n%s", diff)
	}
	for u := range types {
		if !strings.HasPrefix(u, "type.googleapis.com/envoy.") {
			t.Errorf("type URL %q is not an upstream Envoy API type", u)
		}
	}
	for n := range names {
		if !strings.HasPrefix(n, "envoy.") {
			t.Errorf("extension %q is not an upstream Envoy extension", n)
		}
	}
}

// collectExtensions walks a rendered resource: "@type" values are type
// URLs; a "name" next to a "typed_config" names an extension, as do the
// keys of typed_extension_protocol_options.
func collectExtensions(v any, types, names map[string]bool) {
	switch x := v.(type) {
	case map[string]any:
		if u, ok := x["@type"].(string); ok {
			types[u] = true
		}
		if n, ok := x["name"].(string); ok {
			if _, typed := x["typed_config"]; typed {
				names[n] = true
			}
		}
		if opts, ok := x["typed_extension_protocol_options"].(map[string]any); ok {
			for k := range opts {
				names[k] = true
			}
		}
		for _, e := range x {
			collectExtensions(e, types, names)
		}
	case []any:
		for _, e := range x {
			collectExtensions(e, types, names)
		}
	}
}

// collectUpgrades records the upgrade types of every
// HttpConnectionManager in a rendered output, requiring each to list
// exactly the same ones, and returns how many it saw.
func collectUpgrades(t *testing.T, file string, v any, upgrades map[string]bool) int {
	t.Helper()
	seen := 0
	switch x := v.(type) {
	case map[string]any:
		if x["@type"] == "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager" {
			seen++
			var got []string
			list, _ := x["upgrade_configs"].([]any)
			for _, u := range list {
				cfg, _ := u.(map[string]any)
				if _, set := cfg["enabled"]; set {
					t.Errorf("%s: upgrade config %v sets enabled; the type's presence is the switch", file, cfg)
				}
				typ, _ := cfg["upgrade_type"].(string)
				got = append(got, typ)
				upgrades[typ] = true
			}
			if !slices.Equal(got, []string{upgradeWebSocket}) {
				t.Errorf("%s: connection manager upgrade types %q, want exactly %q", file, got, upgradeWebSocket)
			}
		}
		for _, e := range x {
			seen += collectUpgrades(t, file, e, upgrades)
		}
	case []any:
		for _, e := range x {
			seen += collectUpgrades(t, file, e, upgrades)
		}
	}
	return seen
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
