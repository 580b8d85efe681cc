package translator

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/nodemesh/nodemesh/mesh/ir"
)

// versionsOf lists every resource of res by kind and name with its
// version, failing on a resource without one.
func versionsOf(t *testing.T, res *Resources) map[string]versioned {
	t.Helper()
	out := map[string]versioned{}
	add := func(kind, name string, m proto.Message) {
		v := res.Version(m)
		if v == "" {
			t.Fatalf("%s %q has no version", kind, name)
		}
		out[kind+" "+name] = versioned{m, v}
	}
	for _, m := range res.Listeners {
		add("listener", m.Name, m)
	}
	for _, m := range res.RouteConfigurations {
		add("route configuration", m.Name, m)
	}
	for _, m := range res.Clusters {
		add("cluster", m.Name, m)
	}
	for _, m := range res.ClusterLoadAssignments {
		add("cluster load assignment", m.ClusterName, m)
	}
	for _, m := range res.Secrets {
		add("secret", m.Name, m)
	}
	for _, m := range res.ExtensionConfigs {
		add("extension config", m.Name, m)
	}
	return out
}

type versioned struct {
	m proto.Message
	v string
}

// requireVersionsFollowContent holds the versioning scheme to its
// promise, for two successive translations: a resource whose content
// changed has a new version. (The converse holds where the IR it is built
// from is unchanged; a changed IR object that gives the same output, such
// as a backend of weight 0 edited, may give a new version.) With fresh
// set, cur is compared with a fresh Translate of the same input too,
// whose versions must be the same.
func requireVersionsFollowContent(t *testing.T, step string, prev, cur, fresh *Resources) {
	t.Helper()
	a, b := versionsOf(t, prev), versionsOf(t, cur)
	for k, y := range b {
		x, ok := a[k]
		if !ok {
			continue
		}
		if x.v == y.v && !proto.Equal(x.m, y.m) {
			t.Fatalf("%s: %s: content changed, version %s did not", step, k, x.v)
		}
	}
	if fresh == nil {
		return
	}
	for k, f := range versionsOf(t, fresh) {
		if b[k].v != f.v {
			t.Fatalf("%s: %s: version %s, a fresh translation gives %s", step, k, b[k].v, f.v)
		}
	}
}

// TestVersionsFollowContent runs the golden inputs, random edits of an
// IR and edits of every L7 policy input through one Translator: every
// resource has a version, the same a fresh translation gives, and it
// changes whenever the resource's content does.
func TestVersionsFollowContent(t *testing.T) {
	t.Run("golden", func(t *testing.T) {
		ins, err := filepath.Glob(filepath.Join("testdata", "*.in.yaml"))
		if err != nil || len(ins) == 0 {
			t.Fatalf("no inputs (%v)", err)
		}
		tr := New()
		var prev *Resources
		for _, in := range append(ins, ins...) {
			cfg := readIR(t, in)
			got, fresh := translateBoth(t, tr, cfg)
			if prev != nil {
				requireVersionsFollowContent(t, in, prev, got, fresh)
			}
			prev = got
		}
	})
	t.Run("random edits", func(t *testing.T) {
		r := rand.New(rand.NewPCG(11, 42))
		cfg := benchConfig(60)
		tr := New()
		prev, _ := translateBoth(t, tr, cfg)
		for step := range 200 {
			cfg = clone(t, cfg)
			what := randomEdit(r, cfg)
			got, fresh := translateBoth(t, tr, cfg)
			requireVersionsFollowContent(t, fmt.Sprintf("step %d (%s)", step, what), prev, got, fresh)
			prev = got
		}
	})
	t.Run("policy", func(t *testing.T) {
		ins, err := filepath.Glob(filepath.Join("testdata", "policy", "*.in.yaml"))
		if err != nil || len(ins) == 0 {
			t.Fatalf("no inputs (%v)", err)
		}
		tr := New()
		var prev *Resources
		for _, in := range ins {
			base := readIR(t, in)
			for i, edit := range policyEdits {
				cfg := clone(t, base)
				if cfg.Policy == nil {
					t.Fatalf("%s: no policy", in)
				}
				edit(cfg.Policy)
				if err := cfg.Validate(); err != nil {
					continue // an edit this input cannot take
				}
				got, fresh := translateBoth(t, tr, cfg)
				if prev != nil {
					requireVersionsFollowContent(t, fmt.Sprintf("%s edit %d", in, i), prev, got, fresh)
				}
				prev = got
			}
		}
	})
}

// policyEdits change one thing each about an L7 policy; the first changes
// nothing.
var policyEdits = []func(p *ir.Policy){
	func(*ir.Policy) {},
	func(p *ir.Policy) {
		// The egress listener runs the ingress header match filter as a
		// second hop; dropping only ingress header actions changes it.
		for _, h := range p.HTTP {
			if h.Direction == ir.PolicyIngress && h.Request != nil {
				h.Request.HeaderActions = nil
			}
		}
	},
	func(p *ir.Policy) {
		for _, h := range p.HTTP {
			if h.Direction == ir.PolicyEgress && h.Request != nil {
				h.Request.HeaderActions = nil
			}
		}
	},
	func(p *ir.Policy) {
		for _, h := range p.HTTP {
			h.Request = &ir.HTTPRequestRule{Method: "GET"}
		}
	},
	func(p *ir.Policy) {
		for _, h := range p.HTTP {
			h.Port++
		}
	},
	func(p *ir.Policy) {
		p.HTTP = slices.DeleteFunc(p.HTTP, func(h *ir.HTTPPolicy) bool { return h.Direction == ir.PolicyIngress })
	},
	func(p *ir.Policy) {
		for _, k := range p.Kafka {
			k.Request = &ir.KafkaRequestRule{Topic: "other"}
		}
	},
	func(p *ir.Policy) { p.AccessLogSocket = "" },
	func(p *ir.Policy) { p.AccessLogSocket = "/run/other.sock" },
	func(p *ir.Policy) { p.UpstreamMark++ },
	func(p *ir.Policy) {
		for _, l := range p.Listeners {
			l.OriginalSource = !l.OriginalSource
		}
	},
	func(p *ir.Policy) {
		for _, l := range p.Listeners {
			l.Port++
		}
	},
}

func readIR(t *testing.T, path string) *ir.Config {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := decodeIR(data)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return cfg
}

// translateBoth translates cfg with tr and afresh.
func translateBoth(t *testing.T, tr *Translator, cfg *ir.Config) (got, fresh *Resources) {
	t.Helper()
	got, err := tr.Translate(cfg)
	if err != nil {
		t.Fatal(err)
	}
	fresh, err = Translate(cfg)
	if err != nil {
		t.Fatal(err)
	}
	requireEqual(t, fresh, got)
	return got, fresh
}

// TestVersionsFollowDomainClaims: a virtual host's output depends on the
// domains earlier virtual hosts of its table claim (Envoy compares them
// case-insensitively), not only on its own IR. When the first virtual
// host gives one domain up for another, the second, unchanged itself,
// serves the other of its two domains, and its version must say so.
func TestVersionsFollowDomainClaims(t *testing.T) {
	build := func(first string) *ir.Config {
		cfg := benchConfig(20)
		vhosts := cfg.Listeners[0].Chains[0].Routes.VirtualHosts
		vhosts[0].Domains = []string{first}
		vhosts[1].Domains = []string{"A.EXAMPLE.COM", "B.EXAMPLE.COM"}
		return cfg
	}
	tr := New()
	before, _ := translateBoth(t, tr, build("a.example.com"))
	after, fresh := translateBoth(t, tr, build("b.example.com"))
	if got := after.RouteConfigurations[0].VirtualHosts[1].Domains; !slices.Equal(got, []string{"a.example.com"}) {
		t.Fatalf("the second virtual host serves %v, want the domain the first one released", got)
	}
	requireVersionsFollowContent(t, "domain released", before, after, fresh)
}

// TestSerializedIsMarshal: the serialized form the translator makes of a
// RouteConfiguration from its virtual hosts' is byte for byte what
// serializing the resource gives, over golden inputs and random edits.
func TestSerializedIsMarshal(t *testing.T) {
	check := func(step string, res *Resources) {
		t.Helper()
		n := 0
		for _, rc := range res.RouteConfigurations {
			f := res.Serialized(rc)
			if f == nil {
				continue
			}
			n++
			got, err := f()
			if err != nil {
				t.Fatalf("%s: %s: %v", step, rc.Name, err)
			}
			want, err := deterministic.Marshal(rc)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("%s: %s: serialized form differs from marshalling (%d vs %d bytes)", step, rc.Name, len(got), len(want))
			}
		}
		if n == 0 && len(res.RouteConfigurations) > 0 {
			t.Fatalf("%s: no serialized form offered", step)
		}
	}
	ins, err := filepath.Glob(filepath.Join("testdata", "*.in.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	tr := New()
	for _, in := range ins {
		got, _ := translateBoth(t, tr, readIR(t, in))
		check(in, got)
	}
	r := rand.New(rand.NewPCG(5, 6))
	cfg := benchConfig(40)
	for step := range 100 {
		cfg = clone(t, cfg)
		what := randomEdit(r, cfg)
		got, _ := translateBoth(t, tr, cfg)
		check(fmt.Sprintf("step %d (%s)", step, what), got)
	}
}
