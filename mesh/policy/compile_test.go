package policy

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nodemesh/nodemesh/datapath/model"
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
	// Without a previous version it holds api's ingress closed: its L7
	// rules could have narrowed other policies, so nothing gets in.
	st = again.Policies[0]
	if st.State != Rejected || st.Reason != ReasonFailClosed || again.L7 != nil || len(again.Datapath.Entries) != 1 {
		t.Fatalf("re-added bad policy: %+v, rows %+v", st, again.Datapath.Entries)
	}
	if e := again.Datapath.Entries[0]; e.Verdict != model.Deny || e.Remote != model.IdentityAny || e.Proto != model.ProtoAny || e.Direction != model.Ingress {
		t.Fatalf("fail-closed row %+v", e)
	}
}

// verdict asks the datapath's reference model what happens to a flow.
func verdict(t *testing.T, res *Result, subject, remote string, dir model.Direction, port uint16) model.Verdict {
	t.Helper()
	id := func(pod string) model.Identity {
		for _, ep := range res.Identities.Endpoints {
			if ep.Pod.Name == pod {
				return model.Identity(ep.Identity)
			}
		}
		t.Fatalf("no endpoint %s", pod)
		return 0
	}
	return res.Datapath.Index().Decide(model.Query{Subject: id(subject), Remote: id(remote), Direction: dir,
		Proto: model.ProtoTCP, Port: port}).Verdict
}

// TestRejectedPolicyFailsClosed: a rejected policy never leaves the
// endpoints it selects with less enforcement than its accepted version
// would have. Without deny, authentication or L7 rules in a direction,
// its endpoints are in default deny there and other policies' allows
// still pass; with them the direction is blocked, its own valid sibling
// rules included.
func TestRejectedPolicyFailsClosed(t *testing.T) {
	other := `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: web-to-api}
spec:
  endpointSelector: {matchLabels: {app: web}}
  egress:
  - toEndpoints: [{matchLabels: {app: api}}]
    toPorts:
    - ports: [{port: "80", protocol: TCP}]
---
`
	fqdn := `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: fqdn}
spec:
  endpointSelector: {matchLabels: {app: web}}
  egress:
  - toEndpoints: [{matchLabels: {app: api}}]
    toPorts:
    - ports: [{port: "8080", protocol: TCP}]
  - toFQDNs: [{matchName: example.com}]
`
	res := compileYAML(t, mustNew(t, nil), twoPods+other+fqdn)
	if st := res.Policies[0]; st.Name != "fqdn" || st.State != Rejected || st.Reason != ReasonFailClosed || st.Selected != 1 ||
		!strings.Contains(st.Error, "spec.egress[1].toFQDNs") || !strings.Contains(st.Message, "egress of the endpoints it selects is in default deny") {
		t.Fatalf("status %+v", st)
	}
	if v := verdict(t, res, "web", "api", model.Egress, 80); v != model.Allow {
		t.Errorf("web→api:80, allowed by another policy: %s", v)
	}
	// Its own sibling rule (8080) is not applied: the policy is rejected whole.
	for _, port := range []uint16{8080, 443} {
		if v := verdict(t, res, "web", "api", model.Egress, port); v != model.Deny {
			t.Errorf("web→api:%d: %s, want dropped", port, v)
		}
	}

	// With an L7 rule that does not parse, ingress is blocked entirely,
	// even what another policy allows.
	ingressOK := `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: allow-web}
spec:
  endpointSelector: {matchLabels: {app: api}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: web}}]
---
`
	res = compileYAML(t, mustNew(t, nil), twoPods+ingressOK+policyYAML("bad", "/v1/("))
	if st := res.Policies[1]; st.Name != "bad" || st.State != Rejected || !strings.Contains(st.Message, "ingress of the endpoints it selects is blocked entirely") {
		t.Fatalf("status %+v", st)
	}
	for _, port := range []uint16{80, 22} {
		if v := verdict(t, res, "api", "web", model.Ingress, port); v != model.Deny {
			t.Errorf("web→api:%d: %s, want dropped", port, v)
		}
	}
}

// TestRejectedUpdateClosesWhatPreviousDoesNotCover: a rejected update
// keeps the previous version for the endpoints and directions it
// covers, and holds closed what only the update covers.
func TestRejectedUpdateClosesWhatPreviousDoesNotCover(t *testing.T) {
	c := mustNew(t, nil)
	v1 := policyYAML("p", "/v1/.*")
	first := compileYAML(t, c, twoPods+v1)
	// The update also selects web (every endpoint of the namespace) and
	// carries a broken regex.
	v2 := strings.Replace(policyYAML("p", "/v1/("), "endpointSelector: {matchLabels: {app: api}}", "endpointSelector: {}", 1)
	second := compileYAML(t, c, twoPods+v2)
	st := second.Policies[0]
	if st.State != EnforcedPrevious || st.Reason != ReasonFailClosed || st.Selected != 2 {
		t.Fatalf("status %+v", st)
	}
	if diff := cmp.Diff(first.L7, second.L7); diff != "" {
		t.Errorf("the previous version's L7 policy changed (-before +after):\n%s", diff)
	}
	if v := verdict(t, second, "api", "web", model.Ingress, 80); v != model.Redirect {
		t.Errorf("web→api:80 under the previous version: %s, want redirect", v)
	}
	if v := verdict(t, second, "web", "api", model.Ingress, 80); v != model.Deny {
		t.Errorf("api→web:80, selected only by the rejected update: %s, want dropped", v)
	}
}

// TestAuthenticationIsPending: no authentication provider runs, so a
// policy requiring authentication is not reported Enforced, and its rows
// keep the flows blocked until an auth entry exists.
func TestAuthenticationIsPending(t *testing.T) {
	auth := `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: auth}
spec:
  endpointSelector: {matchLabels: {app: api}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: web}}]
    authentication: {mode: required}
`
	res := compileYAML(t, mustNew(t, nil), twoPods+auth)
	st := res.Policies[0]
	if st.State != Pending || st.Reason != ReasonWaitingForAuthentication || !strings.Contains(st.Message, "no authentication provider") {
		t.Fatalf("status %+v", st)
	}
	d := res.Datapath.Index().Decide(model.Query{Subject: model.Identity(res.Local[0].Identity),
		Remote: model.Identity(res.Local[1].Identity), Direction: model.Ingress, Proto: model.ProtoTCP, Port: 80})
	if d.Verdict != model.Allow || d.Auth == model.AuthNone {
		t.Fatalf("decision %+v: the flow must need an auth entry", d)
	}
	// Without the requirement the same policy is simply Enforced.
	res = compileYAML(t, mustNew(t, nil), twoPods+strings.Replace(auth, "authentication: {mode: required}", "authentication: {mode: disabled}", 1))
	if st := res.Policies[0]; st.State != Enforced || st.Reason != "" || st.Authenticated {
		t.Fatalf("status %+v", st)
	}

	// With an authentication provider the compiler leaves readiness to
	// the agent: the policy is accepted as Enforced, marked as needing
	// authentication, and its rows still need an auth entry.
	withAuth := mustNew(t, func(o *Options) { o.Authentication = true })
	res = compileYAML(t, withAuth, twoPods+auth)
	if st := res.Policies[0]; st.State != Enforced || st.Reason != "" || !st.Authenticated {
		t.Fatalf("status with a provider %+v", st)
	}
	if d := res.Datapath.Index().Decide(model.Query{Subject: model.Identity(res.Local[0].Identity),
		Remote: model.Identity(res.Local[1].Identity), Direction: model.Ingress, Proto: model.ProtoTCP, Port: 80}); d.Auth == model.AuthNone {
		t.Fatalf("decision with a provider %+v: the flow must need an auth entry", d)
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
	if e := res.Datapath.Entries[0]; e.Verdict != model.Redirect || e.ProxyPort != 15101 {
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
