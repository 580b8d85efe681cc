package resource_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/nodemesh/nodemesh/proxylib/resource"
)

// TestAcceptsTranslatorPolicyOutput decodes every resource the xDS
// translator's L7 policy golden files pin with the proxy's decoders: the
// proxy accepts what the control plane emits for policy listeners, their
// clusters and their ECDS configurations; also the gateway goldens of the
// CORS filter, of TCP chains (TLS passthrough, TCP listeners), of UDP
// listeners, of upstream TLS (BackendTLSPolicy, backend client
// certificates), of client certificate validation on TLS chains and of
// the ingress endpoint's policy (HTTP and network RBAC filters), also on
// an Ingress host-network listener (chains told apart by transport_protocol).
func TestAcceptsTranslatorPolicyOutput(t *testing.T) {
	files, _ := filepath.Glob("../../xds/translator/testdata/policy/*.out.yaml")
	for _, g := range []string{"cors", "tcp", "udp", "upstream-tls", "tls-client-validation",
		"ingress-policy-allow-cidr", "ingress-policy-default-deny", "ingress-policy-external-lockdown", "ingress-policy-gamma", "ingress-hostnet"} {
		if f := "../../xds/translator/testdata/" + g + ".out.yaml"; fileExists(f) {
			files = append(files, f)
		}
	}
	if len(files) == 0 {
		t.Skip("no translator policy golden files in this tree")
	}
	kinds := map[string]struct {
		msg    func() proto.Message
		decode func(*anypb.Any) error
	}{
		"listeners": {func() proto.Message { return &listenerv3.Listener{} }, func(a *anypb.Any) error { _, err := resource.DecodeListener(a); return err }},
		"routeConfigurations": {func() proto.Message { return &routev3.RouteConfiguration{} }, func(a *anypb.Any) error {
			_, err := resource.DecodeRouteConfig(a)
			return err
		}},
		"clusters":               {func() proto.Message { return &clusterv3.Cluster{} }, func(a *anypb.Any) error { _, err := resource.DecodeCluster(a); return err }},
		"endpoints":              {func() proto.Message { return &endpointv3.ClusterLoadAssignment{} }, func(a *anypb.Any) error { _, err := resource.DecodeEndpoints(a); return err }},
		"clusterLoadAssignments": {func() proto.Message { return &endpointv3.ClusterLoadAssignment{} }, func(a *anypb.Any) error { _, err := resource.DecodeEndpoints(a); return err }},
		"extensionConfigs":       {func() proto.Message { return &corev3.TypedExtensionConfig{} }, func(a *anypb.Any) error { _, err := resource.DecodeExtension(a); return err }},
	}
	decoded := 0
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var doc map[string][]any
		if err := yaml.Unmarshal(raw, &doc); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for kind, items := range doc {
			if kind == "warnings" || kind == "secrets" {
				continue // the translator's notes; placeholder key pairs
			}
			k, ok := kinds[kind]
			if !ok {
				t.Errorf("%s: unknown section %q", filepath.Base(f), kind)
				continue
			}
			for i, item := range items {
				js, err := json.Marshal(item)
				if err != nil {
					t.Fatal(err)
				}
				m := k.msg()
				if err := protojson.Unmarshal(js, m); err != nil {
					t.Fatalf("%s %s[%d]: %v", filepath.Base(f), kind, i, err)
				}
				a, err := anypb.New(m)
				if err != nil {
					t.Fatal(err)
				}
				if err := k.decode(a); err != nil {
					t.Errorf("%s %s[%d]: the proxy NACKs it: %v", filepath.Base(f), kind, i, err)
				}
				decoded++
			}
		}
	}
	t.Logf("decoded %d resources from %d files", decoded, len(files))
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
