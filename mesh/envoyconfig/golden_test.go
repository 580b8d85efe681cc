package envoyconfig

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/anypb"
	"sigs.k8s.io/yaml"

	"github.com/nodemesh/nodemesh/internal/golden"
	"github.com/nodemesh/nodemesh/mesh/input"
	"github.com/nodemesh/nodemesh/mesh/ir"
	"github.com/nodemesh/nodemesh/xds/translator"
)

// testOriginalSourceMark stands for the routing listeners' mark
// (datapath.ProxyRouteMark(0)).
const testOriginalSourceMark = 0x0b00

// testOptions are the options every golden case translates with.
func testOptions() Options {
	return Options{
		NodeLabels:    map[string]string{"kubernetes.io/hostname": "node-1", "role": "worker"},
		ListenAddress: netip.MustParseAddr("10.250.0.11"),
		Taken:         map[netip.AddrPort]string{netip.MustParseAddrPort("127.0.50.1:80"): "Gateway default/eg"},
	}
}

func snapshotOf(t testing.TB, name string, data []byte) *input.Snapshot {
	t.Helper()
	objs, err := input.Decode(name, data)
	if err != nil {
		t.Fatalf("decoding %s: %v", name, err)
	}
	snap, err := input.Build(objs)
	if err != nil {
		t.Fatalf("building %s: %v", name, err)
	}
	return snap
}

// TestGolden translates every testdata/<case>.in.yaml (with
// examples/envoyconfig/<case>.yaml, when there is one) and compares the
// statuses, redirects and Envoy resources with <case>.out.yaml. Every
// resource must also pass through the xDS translator, which validates it
// again (ValidateAll) as it emits it.
func TestGolden(t *testing.T) {
	for _, in := range golden.Inputs(t, "testdata", ".in.yaml", ".out.yaml") {
		name := strings.TrimSuffix(filepath.Base(in), ".in.yaml")
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			// A case named after an example takes the example unchanged,
			// beside its Services.
			if ex, err := os.ReadFile(filepath.Join("..", "..", "examples", "envoyconfig", name+".yaml")); err == nil {
				data = append(append(ex, "\n---\n"...), data...)
			} else if !os.IsNotExist(err) {
				t.Fatal(err)
			}
			opts := testOptions()
			// original-source cases run on a node whose datapath steers
			// replies to the proxy's original-source connections, except
			// the unsteered one.
			if strings.HasPrefix(name, "original-source") && !strings.HasSuffix(name, "-unsteered") {
				opts.OriginalSourceMark = testOriginalSourceMark
				opts.UpstreamMark = testOriginalSourceMark
			}
			res := Translate(snapshotOf(t, in, data), opts)
			cfg := &ir.Config{Resources: res.Resources}
			if err := cfg.Validate(); err != nil {
				t.Fatalf("IR invalid: %v", err)
			}
			if _, err := translator.Translate(cfg); err != nil {
				t.Fatalf("xDS translation: %v", err)
			}
			got, err := render(res)
			if err != nil {
				t.Fatal(err)
			}
			golden.Check(t, strings.TrimSuffix(in, ".in.yaml")+".out.yaml", got)
		})
	}
}

// render writes a Result as YAML, resources as Envoy's JSON form.
func render(res *Result) ([]byte, error) {
	type redirect struct {
		Owner    string   `json:"owner"`
		Service  string   `json:"service"`
		Ports    []uint16 `json:"ports,omitempty"`
		Listener string   `json:"listener,omitempty"`
		Bind     string   `json:"bind,omitempty"`
		Refused  bool     `json:"refused,omitempty"`
	}
	out := struct {
		Statuses  []Status          `json:"statuses"`
		Redirects []redirect        `json:"redirects,omitempty"`
		Resources []json.RawMessage `json:"resources,omitempty"`
	}{Statuses: res.Statuses}
	for _, rd := range res.Redirects {
		r := redirect{Owner: rd.Owner.String(), Service: rd.Service.String(), Ports: rd.Ports, Listener: rd.Listener, Refused: rd.Refused}
		if rd.Bind.IsValid() {
			r.Bind = rd.Bind.String()
		}
		out.Redirects = append(out.Redirects, r)
	}
	for _, r := range res.Resources {
		js, err := protojson.Marshal(&anypb.Any{TypeUrl: r.TypeURL, Value: r.Value})
		if err != nil {
			return nil, fmt.Errorf("rendering %s: %w", r.Name, err)
		}
		out.Resources = append(out.Resources, js)
	}
	js, err := json.Marshal(out)
	if err != nil {
		return nil, err
	}
	return yaml.JSONToYAML(js)
}
