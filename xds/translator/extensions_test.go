package translator

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	yaml "go.yaml.in/yaml/v3"
)

// TestExtensionsInGoldens pins the Envoy extensions the translator uses,
// read from every golden output: each typed_config type URL and each name
// of a filter, transport socket or protocol-options entry. All of them are
// upstream Envoy extensions, so stock Envoy can run the output. Adding an
// extension must be a conscious change to this list (and to the contract
// the builtin proxy implements).
func TestExtensionsInGoldens(t *testing.T) {
	wantTypes := []string{
		"type.googleapis.com/envoy.extensions.filters.http.router.v3.Router",
		"type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector",
		"type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
		"type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
		"type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
	}
	wantNames := []string{
		"envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
		"envoy.filters.http.router",
		"envoy.filters.listener.tls_inspector",
		"envoy.filters.network.http_connection_manager",
		"envoy.transport_sockets.tls",
	}
	outs, err := filepath.Glob(filepath.Join("testdata", "*.out.yaml"))
	if err != nil || len(outs) == 0 {
		t.Fatalf("no golden outputs (%v)", err)
	}
	types, names := map[string]bool{}, map[string]bool{}
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
	}
	if diff := cmp.Diff(wantTypes, sortedKeys(types)); diff != "" {
		t.Errorf("typed_config type URLs (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(wantNames, sortedKeys(names)); diff != "" {
		t.Errorf("extension names (-want +got):\n%s", diff)
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

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
