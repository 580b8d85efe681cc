package policy

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nodemesh/nodemesh/datapath"
	"github.com/nodemesh/nodemesh/mesh/input"
)

const twoPods = `
apiVersion: v1
kind: Pod
metadata: {name: api, labels: {app: api}}
spec: {nodeName: node-a}
status: {podIP: 10.0.0.1}
---
apiVersion: v1
kind: Pod
metadata: {name: web, labels: {app: web}}
spec: {nodeName: node-b}
status: {podIP: 10.0.0.2}
---
`

func policyYAML(name, path string) string {
	return `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: ` + name + `}
spec:
  endpointSelector: {matchLabels: {app: api}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: web}}]
    toPorts:
    - ports: [{port: "80", protocol: TCP}]
      rules:
        http: [{path: "` + path + `"}]
`
}

func compileYAML(t *testing.T, c *Compiler, docs string) *Result {
	t.Helper()
	res := c.Compile(decodeInput(t, "test.yaml", []byte(docs)))
	check(t, res)
	return res
}

func mustNew(t *testing.T, mod func(*Options)) *Compiler {
	t.Helper()
	o := testOptions()
	if mod != nil {
		mod(&o)
	}
	c, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestBadUpdateKeepsPreviousVersion(t *testing.T) {
	c := mustNew(t, nil)
	good := compileYAML(t, c, twoPods+policyYAML("p", "/v1/.*"))
	if st := good.Policies[0]; st.State != Enforced || st.Error != "" {
		t.Fatalf("first version: %+v", st)
	}
	bad := compileYAML(t, c, twoPods+policyYAML("p", "/v1/("))
	st := bad.Policies[0]
	if st.State != EnforcedPrevious || !strings.Contains(st.Error, `CiliumNetworkPolicy default/p: spec.ingress[0].toPorts[0].rules.http[0].path: invalid regular expression "/v1/("`) {
		t.Fatalf("bad update: %+v", st)
	}
	if diff := cmp.Diff(good.Datapath, bad.Datapath); diff != "" {
		t.Errorf("rows changed on a rejected update (-before +after):\n%s", diff)
	}
	if diff := cmp.Diff(good.L7, bad.L7); diff != "" {
		t.Errorf("L7 policy changed on a rejected update (-before +after):\n%s", diff)
	}
	// Once the policy is deleted its last good version is forgotten: a bad
	// version coming back is simply rejected.
	compileYAML(t, c, twoPods)
	again := compileYAML(t, c, twoPods+policyYAML("p", "/v1/("))
	if st := again.Policies[0]; st.State != Rejected || len(again.Datapath.Entries) != 0 || again.L7 != nil {
		t.Fatalf("re-added bad policy: %+v, %d rows", st, len(again.Datapath.Entries))
	}
}

func TestConflictingUpdateKeepsPreviousVersion(t *testing.T) {
	c := mustNew(t, nil)
	base := policyYAML("a-http", "/") + "---\n"
	kafka := `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: b}
spec:
  endpointSelector: {matchLabels: {app: api}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: web}}]
    toPorts:
    - ports: [{port: "KIND", protocol: TCP}]
      rules:
        kafka: [{topic: t}]
`
	first := compileYAML(t, c, twoPods+base+strings.Replace(kafka, "KIND", "9092", 1))
	for _, st := range first.Policies {
		if st.State != Enforced {
			t.Fatalf("%s: %+v", st.Name, st)
		}
	}
	// b moves its Kafka rule onto the HTTP port: rejected, previous kept.
	second := compileYAML(t, c, twoPods+base+strings.Replace(kafka, "KIND", "80", 1))
	st := second.Policies[1]
	if st.Name != "b" || st.State != EnforcedPrevious || !strings.Contains(st.Error, "kafka rules on ingress 80/TCP") || !strings.Contains(st.Error, "cnp/default/a-http/ingress/0") {
		t.Fatalf("conflicting update: %+v", st)
	}
	if diff := cmp.Diff(first.Datapath, second.Datapath); diff != "" {
		t.Errorf("rows changed (-before +after):\n%s", diff)
	}
}

func TestOnlyLocalEndpointsGetRows(t *testing.T) {
	c := mustNew(t, func(o *Options) { o.NodeName = "node-b" })
	res := compileYAML(t, c, twoPods+policyYAML("p", "/"))
	if len(res.Local) != 1 || res.Local[0].Pod.Name != "web" {
		t.Fatalf("local endpoints: %+v", res.Local)
	}
	if len(res.Datapath.Entries) != 0 || res.L7 != nil || res.Policies[0].Selected != 0 {
		t.Fatalf("the policy selects a Pod of another node; got %d rows, status %+v", len(res.Datapath.Entries), res.Policies[0])
	}
	c = mustNew(t, func(o *Options) { o.NodeName = "node-a" })
	res = compileYAML(t, c, twoPods+policyYAML("p", "/"))
	if len(res.Datapath.Entries) != 1 || res.Policies[0].Selected != 1 {
		t.Fatalf("want one row for the local api Pod, got %+v", res.Datapath.Entries)
	}
	if e := res.Datapath.Entries[0]; e.Verdict != datapath.Redirect || e.ProxyPort != 15101 {
		t.Fatalf("row %+v", e)
	}
}

func TestRowLimit(t *testing.T) {
	c := mustNew(t, func(o *Options) { o.MaxRowsPerPolicy = 100 })
	res := compileYAML(t, c, twoPods+`apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: wide}
spec:
  endpointSelector: {matchLabels: {app: api}}
  ingress:
  - toPorts:
    - ports: [{port: "1000", endPort: 2000, protocol: TCP}]
`)
	if st := res.Policies[0]; st.State != Rejected || !strings.Contains(st.Error, "expands to more than 100 datapath rows") {
		t.Fatalf("%+v", st)
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	for _, mod := range []func(*Options){
		func(o *Options) { o.Listeners.EgressKafka = 0 },
		func(o *Options) { o.Listeners.EgressKafka = o.Listeners.IngressHTTP },
		func(o *Options) { o.Listeners.Address = "nowhere" },
	} {
		o := testOptions()
		mod(&o)
		if _, err := New(o); !errors.Is(err, ErrInvalidOptions) {
			t.Errorf("New(%+v) = %v, want ErrInvalidOptions", o.Listeners, err)
		}
	}
}

// TestDeterministic compiles every golden input with two compilers and
// with inputs in reverse order: the rendered results must be identical.
func TestDeterministic(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.in.yaml")
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		in := decodeInput(t, f, data)
		a, _ := render(mustNew(t, nil).Compile(in))
		rev := in
		rev.CiliumNetworkPolicies = reversed(in.CiliumNetworkPolicies)
		rev.Pods = reversed(in.Pods)
		b, _ := render(mustNew(t, nil).Compile(rev))
		if !bytes.Equal(a, b) {
			t.Errorf("%s: output depends on input order", f)
		}
	}
}

func reversed[T any](in []T) []T {
	out := make([]T, len(in))
	for i, v := range in {
		out[len(in)-1-i] = v
	}
	return out
}

// FuzzCompile feeds arbitrary YAML through decoding and compilation:
// nothing may panic, and every result must be valid for the datapath and
// the proxy.
func FuzzCompile(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.in.yaml")
	for _, file := range files {
		if b, err := os.ReadFile(file); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		objs, err := input.Decode("fuzz.yaml", data)
		if err != nil {
			return
		}
		snap, err := input.Build(objs)
		if err != nil {
			return
		}
		c, err := New(testOptions())
		if err != nil {
			t.Fatal(err)
		}
		res := c.Compile(FromSnapshot(snap, testHostIPs))
		check(t, res)
	})
}
