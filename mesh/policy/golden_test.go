package policy

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/nodemesh/nodemesh/datapath/model"
	"github.com/nodemesh/nodemesh/internal/golden"
	"github.com/nodemesh/nodemesh/mesh/input"
)

// testOptions are the options every golden case compiles with.
func testOptions() Options {
	return Options{
		Listeners:       Listeners{Address: "0.0.0.0", IngressHTTP: 15101, EgressHTTP: 15102, IngressKafka: 15103, EgressKafka: 15104},
		UpstreamMark:    0xA00,
		AccessLogSocket: "/run/nodemesh/agent.sock",
	}
}

var testHostIPs = []netip.Addr{netip.MustParseAddr("10.0.0.254")}

// decodeInput reads a golden input: ordinary Kubernetes YAML.
func decodeInput(t testing.TB, name string, data []byte) Input {
	t.Helper()
	objs, err := input.Decode(name, data)
	if err != nil {
		t.Fatalf("decoding %s: %v", name, err)
	}
	snap, err := input.Build(objs)
	if err != nil {
		t.Fatalf("building %s: %v", name, err)
	}
	return FromSnapshot(snap, testHostIPs)
}

// TestGolden compiles every testdata/<case>.in.yaml and compares the
// datapath rows, identities and proxy policy with <case>.out.yaml.
func TestGolden(t *testing.T) {
	runGolden(t, "testdata", testOptions())
}

func runGolden(t *testing.T, dir string, opts Options) {
	ins := golden.Inputs(t, dir, ".in.yaml", ".out.yaml")
	for _, in := range ins {
		name := strings.TrimSuffix(filepath.Base(in), ".in.yaml")
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			c, err := New(opts)
			if err != nil {
				t.Fatal(err)
			}
			res := c.Compile(decodeInput(t, in, data))
			check(t, res)
			got, err := render(res)
			if err != nil {
				t.Fatal(err)
			}
			golden.Check(t, strings.TrimSuffix(in, ".in.yaml")+".out.yaml", got)
		})
	}
}

// check asserts what every result must satisfy.
func check(t testing.TB, res *Result) {
	t.Helper()
	if err := res.Datapath.Validate(); err != nil {
		t.Errorf("datapath rows invalid: %v", err)
	}
	if res.L7 != nil || res.Ingress != nil {
		if err := (&irConfig{Policy: res.L7, Ingress: res.Ingress}).validate(); err != nil {
			t.Errorf("proxy policy invalid: %v", err)
		}
	}
}

type goldenOut struct {
	Policies   []PolicyStatus `json:"policies,omitempty"`
	Identities []string       `json:"identities,omitempty"`
	IPCache    []string       `json:"ipcache,omitempty"`
	Enforce    []string       `json:"enforce,omitempty"`
	Rows       []string       `json:"rows,omitempty"`
	L7         any            `json:"l7,omitempty"`
	Ingress    any            `json:"ingress,omitempty"`
}

func render(res *Result) ([]byte, error) {
	out := goldenOut{Policies: res.Policies}
	for _, id := range res.Identities.Identities {
		if id.ID.IsReserved() {
			continue
		}
		out.Identities = append(out.Identities, fmt.Sprintf("%d: %s", id.ID, id.Labels))
	}
	for _, e := range res.Identities.IPCache {
		out.IPCache = append(out.IPCache, fmt.Sprintf("%s -> %s", e.Prefix, e.Identity))
	}
	for _, id := range sortedIdentities(res.Datapath.Enforce) {
		var dirs []string
		for _, d := range []model.Direction{model.Ingress, model.Egress} {
			if res.Datapath.Enforce[id].Has(d) {
				dirs = append(dirs, d.String())
			}
		}
		out.Enforce = append(out.Enforce, fmt.Sprintf("%s: %s", id, strings.Join(dirs, ",")))
	}
	for _, e := range res.Datapath.Entries {
		out.Rows = append(out.Rows, rowString(e, res.Cookies))
	}
	if res.L7 != nil {
		out.L7 = res.L7
	}
	if res.Ingress != nil {
		out.Ingress = res.Ingress
	}
	return yaml.Marshal(out)
}

func rowString(e model.PolicyEntry, cookies map[uint32]string) string {
	port := "*"
	if e.Port != 0 {
		port = fmt.Sprint(e.Port)
	}
	s := fmt.Sprintf("%s %s %s %s/%s %s", e.Subject, e.Direction, e.Remote, protoName(e.Proto), port, e.Verdict)
	if e.ProxyPort != 0 {
		s += fmt.Sprintf(":%d", e.ProxyPort)
	}
	if e.Auth != model.AuthNone {
		s += " auth"
	}
	return s + " (" + cookies[e.Cookie] + ")"
}

func sortedIdentities(m map[model.Identity]model.Enforcement) []model.Identity {
	out := make([]model.Identity, 0, len(m))
	for id := range m {
		out = append(out, id)
	}
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

// TestGoldenDatapathIdentity compiles testdata/datapath-identity/ with the
// datapath's connection tracking given to the policy listeners.
func TestGoldenDatapathIdentity(t *testing.T) {
	opts := testOptions()
	opts.Listeners.ConntrackMap = "/sys/fs/bpf/nodemesh/maps_v1/nm_ct"
	runGolden(t, filepath.Join("testdata", "datapath-identity"), opts)
}
