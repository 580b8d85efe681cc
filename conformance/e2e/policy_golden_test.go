package e2e

import (
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/yaml"

	"github.com/nodemesh/nodemesh/mesh/input"
	"github.com/nodemesh/nodemesh/mesh/ir"
	"github.com/nodemesh/nodemesh/mesh/policy"
	"github.com/nodemesh/nodemesh/xds/translator"
)

// TestPolicyGoldenChain ties the two golden stages of policy together:
// the xDS translator's policy inputs (xds/translator/testdata/policy) must
// be exactly what the compiler makes of the policy YAML of the same name
// (mesh/policy/testdata), so "policy YAML → datapath rows + L7 IR" and
// "L7 IR → RBAC/Kafka configuration" describe one pipeline; and the
// translated result must validate.
func TestPolicyGoldenChain(t *testing.T) {
	ins, _ := filepath.Glob("../../xds/translator/testdata/policy/*.in.yaml")
	checked := 0
	for _, in := range ins {
		name := strings.TrimSuffix(filepath.Base(in), ".in.yaml")
		src := filepath.Join("../../mesh/policy/testdata", name+".in.yaml")
		if _, err := os.Stat(src); err != nil {
			continue // an IR-only case
		}
		checked++
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(src)
			if err != nil {
				t.Fatal(err)
			}
			objs, err := input.Decode(src, data)
			if err != nil {
				t.Fatal(err)
			}
			snap, err := input.Build(objs)
			if err != nil {
				t.Fatal(err)
			}
			// The options mesh/policy's golden test compiles with.
			c, err := policy.New(policy.Options{
				Listeners:       policy.Listeners{Address: "0.0.0.0", IngressHTTP: 15101, EgressHTTP: 15102, IngressKafka: 15103, EgressKafka: 15104},
				UpstreamMark:    0xA00,
				AccessLogSocket: "/run/nodemesh/agent.sock",
			})
			if err != nil {
				t.Fatal(err)
			}
			res := c.Compile(policy.FromSnapshot(snap, []netip.Addr{netip.MustParseAddr("10.0.0.254")}))
			got, err := json.Marshal(res.L7)
			if err != nil {
				t.Fatal(err)
			}
			golden, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			var doc struct {
				Policy json.RawMessage `json:"policy"`
			}
			if err := yaml.Unmarshal(golden, &doc); err != nil {
				t.Fatal(err)
			}
			var a, b any
			json.Unmarshal(got, &a)
			json.Unmarshal(doc.Policy, &b)
			if diff := cmp.Diff(b, a); diff != "" {
				t.Fatalf("%s no longer matches what the compiler makes of %s (-golden +compiled):\n%s", in, src, diff)
			}
			out, err := translator.Translate(&ir.Config{Policy: res.L7})
			if err != nil {
				t.Fatalf("translating: %v", err)
			}
			if len(out.ExtensionConfigs) == 0 || len(out.Listeners) == 0 {
				t.Fatalf("translation has %d listeners and %d extension configs", len(out.Listeners), len(out.ExtensionConfigs))
			}
		})
	}
	if checked < 4 {
		t.Fatalf("only %d policy cases are checked across both stages", checked)
	}
}
