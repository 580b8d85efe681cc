package translator

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"github.com/google/go-cmp/cmp"
	yaml "go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/nodemesh/nodemesh/internal/golden"
	"github.com/nodemesh/nodemesh/mesh/ir"
)

// TestPolicyGolden translates every testdata/policy/<case>.in.yaml (IR
// with an L7 policy) and compares the Envoy resources with
// <case>.out.yaml.
func TestPolicyGolden(t *testing.T) {
	dir := filepath.Join("testdata", "policy")
	for _, in := range golden.Inputs(t, dir, ".in.yaml", ".out.yaml") {
		name := strings.TrimSuffix(filepath.Base(in), ".in.yaml")
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := decodeIR(data)
			if err != nil {
				t.Fatal(err)
			}
			res, err := Translate(cfg)
			if err != nil {
				t.Fatalf("Translate: %v", err)
			}
			requireValid(t, res)
			requireReferencesResolve(t, res)
			again, err := New().Translate(cfg)
			if err != nil {
				t.Fatal(err)
			}
			requireEqual(t, res, again)
			got, err := renderResources(res)
			if err != nil {
				t.Fatal(err)
			}
			golden.Check(t, strings.TrimSuffix(in, ".in.yaml")+".out.yaml", got)
		})
	}
}

// requireReferencesResolve checks that every ECDS, RDS and cluster name a
// policy listener refers to is emitted.
func requireReferencesResolve(t *testing.T, res *Resources) {
	t.Helper()
	ext, routes, clusters := map[string]bool{}, map[string]bool{}, map[string]bool{}
	for _, e := range res.ExtensionConfigs {
		ext[e.Name] = true
	}
	for _, r := range res.RouteConfigurations {
		routes[r.Name] = true
	}
	for _, c := range res.Clusters {
		clusters[c.Name] = true
	}
	for _, r := range res.RouteConfigurations {
		for _, vh := range r.VirtualHosts {
			for _, rt := range vh.Routes {
				if c := rt.GetRoute().GetCluster(); c != "" && !clusters[c] {
					t.Errorf("route %s names missing cluster %q", r.Name, c)
				}
			}
		}
	}
	for _, l := range res.Listeners {
		for _, fc := range l.FilterChains {
			for _, f := range fc.Filters {
				if cd := f.GetConfigDiscovery(); cd != nil && !ext[f.Name] {
					t.Errorf("listener %s: filter %q has no extension config", l.Name, f.Name)
				}
				if f.GetTypedConfig().GetTypeUrl() == "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager" {
					var hcm hcmv3.HttpConnectionManager
					if err := f.GetTypedConfig().UnmarshalTo(&hcm); err != nil {
						t.Fatal(err)
					}
					if !routes[hcm.GetRds().GetRouteConfigName()] {
						t.Errorf("listener %s: route configuration %q missing", l.Name, hcm.GetRds().GetRouteConfigName())
					}
					for _, hf := range hcm.HttpFilters {
						if hf.GetConfigDiscovery() != nil && !ext[hf.Name] {
							t.Errorf("listener %s: HTTP filter %q has no extension config", l.Name, hf.Name)
						}
					}
				}
			}
		}
	}
}

// TestPolicyUpdateKeepsListeners: changing rules changes only the ECDS
// resources, never a listener, a route or a cluster, so a policy update
// never drains a listener.
func TestPolicyUpdateKeepsListeners(t *testing.T) {
	for _, name := range []string{"starwars-l7", "kafka"} {
		data, err := os.ReadFile(filepath.Join("testdata", "policy", name+".in.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		before, err := decodeIR(data)
		if err != nil {
			t.Fatal(err)
		}
		after, _ := decodeIR(data)
		for _, h := range after.Policy.HTTP {
			h.Request = &ir.HTTPRequestRule{Method: "GET"}
			h.Port++
		}
		for _, k := range after.Policy.Kafka {
			k.Request = &ir.KafkaRequestRule{Topic: "other"}
		}
		after.Policy.HTTP = append(after.Policy.HTTP[:0:0], after.Policy.HTTP...)
		a, err := Translate(before)
		if err != nil {
			t.Fatal(err)
		}
		b, err := Translate(after)
		if err != nil {
			t.Fatal(err)
		}
		opt := protocmp.Transform()
		for _, c := range []struct {
			kind   string
			before any
			after  any
		}{
			{"listeners", a.Listeners, b.Listeners},
			{"routes", a.RouteConfigurations, b.RouteConfigurations},
			{"clusters", a.Clusters, b.Clusters},
		} {
			if diff := cmp.Diff(c.before, c.after, opt); diff != "" {
				t.Errorf("%s: a rule change changed %s:\n%s", name, c.kind, diff)
			}
		}
		if cmp.Equal(a.ExtensionConfigs, b.ExtensionConfigs, opt) {
			t.Errorf("%s: the rule change did not reach the extension configs", name)
		}
	}
}

// TestPolicyExtensions pins the extensions policy output uses: upstream
// Envoy ones, plus the project's Kafka, header match and datapath
// identity filters (only the
// builtin proxy implements them, as only Cilium's Envoy implements
// Cilium's).
func TestPolicyExtensions(t *testing.T) {
	want := []string{
		"type.googleapis.com/envoy.extensions.access_loggers.grpc.v3.HttpGrpcAccessLogConfig",
		"type.googleapis.com/envoy.extensions.access_loggers.grpc.v3.TcpGrpcAccessLogConfig",
		"type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC",
		"type.googleapis.com/envoy.extensions.filters.http.router.v3.Router",
		"type.googleapis.com/envoy.extensions.filters.listener.original_dst.v3.OriginalDst",
		"type.googleapis.com/envoy.extensions.filters.listener.original_src.v3.OriginalSrc",
		"type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
		"type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
		"type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
		"type.googleapis.com/nodemesh.filters.http.header_match.v1.HeaderMatchPolicy",
		"type.googleapis.com/nodemesh.filters.listener.datapath_identity.v1.DatapathIdentity",
		"type.googleapis.com/nodemesh.filters.network.kafka.v1.KafkaPolicy",
	}
	outs, _ := filepath.Glob(filepath.Join("testdata", "policy", "*.out.yaml"))
	types := map[string]bool{}
	for _, out := range outs {
		data, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		var doc any
		if err := yaml.Unmarshal(data, &doc); err != nil {
			t.Fatal(err)
		}
		collectExtensions(doc, types, map[string]bool{})
	}
	if diff := cmp.Diff(want, sortedKeys(types)); diff != "" {
		t.Errorf("type URLs in policy output (-want +got):\n%s", diff)
	}
}

// FuzzTranslatePolicy feeds IR documents with an L7 policy (seeded from
// the policy golden inputs): whatever passes ir.Config.Validate must
// translate into resources that pass Envoy's validation.
func FuzzTranslatePolicy(f *testing.F) {
	ins, _ := filepath.Glob(filepath.Join("testdata", "policy", "*.in.yaml"))
	if len(ins) == 0 {
		f.Fatal("no seeds")
	}
	for _, in := range ins {
		data, err := os.ReadFile(in)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := decodeIR(data)
		if err != nil || cfg.Validate() != nil {
			return
		}
		checkTranslates(t, cfg)
	})
}
