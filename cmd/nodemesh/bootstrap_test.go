package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"sigs.k8s.io/yaml"

	"github.com/nodemesh/nodemesh/internal/golden"
)

// TestBootstrapGolden renders the bootstrap the chart's Envoy DaemonSet
// writes, checks it against the golden file, and decodes it back as a
// strict Envoy v3 Bootstrap that passes ValidateAll.
func TestBootstrapGolden(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"default", []string{"--node-id=node-1"}},
		{"chart", []string{"--node-id=node-1", "--cluster=nodemesh", "--xds-socket=/var/run/nodemesh/xds.sock",
			"--admin-address=127.0.0.1:9902", "--connect-timeout=2s"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			if err := bootstrapCmd(tc.args, &out); err != nil {
				t.Fatal(err)
			}
			golden.Check(t, filepath.Join("testdata", "bootstrap", tc.name+".yaml"), out.Bytes())
			js, err := yaml.YAMLToJSON(out.Bytes())
			if err != nil {
				t.Fatal(err)
			}
			var b bootstrapv3.Bootstrap
			if err := protojson.Unmarshal(js, &b); err != nil {
				t.Fatalf("output is not an Envoy v3 Bootstrap: %v", err)
			}
			if err := b.ValidateAll(); err != nil {
				t.Fatal(err)
			}
			if b.GetNode().GetId() != "node-1" {
				t.Errorf("node id %q, want node-1", b.GetNode().GetId())
			}
		})
	}
}

func TestBootstrapOutputFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bootstrap.json")
	if err := bootstrapCmd([]string{"--node-id=n", "-o", "json", "--output-file", path}, nil); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var bs bootstrapv3.Bootstrap
	if err := protojson.Unmarshal(b, &bs); err != nil {
		t.Fatal(err)
	}
	if got := bs.GetAdmin().GetAddress().GetSocketAddress().GetPortValue(); got != 9901 {
		t.Errorf("admin port %d, want 9901", got)
	}
}

func TestBootstrapRejects(t *testing.T) {
	t.Setenv("NODE_NAME", "")
	for _, args := range [][]string{
		{},                                  // no node id
		{"--node-id=a b"},                   // white space
		{"--node-id=n", "--xds-socket=rel"}, // relative socket
		{"--node-id=n", "--admin-address=0.0.0.0:9901"}, // admin off loopback
		{"--node-id=n", "--admin-address=localhost"},    // not host:port
		{"--node-id=n", "--connect-timeout=-1s"},
		{"--node-id=n", "-o", "xml"},
		{"--node-id=n", "extra"},
	} {
		if err := bootstrapCmd(args, &bytes.Buffer{}); err == nil {
			t.Errorf("bootstrap %q: no error", args)
		}
	}
}
