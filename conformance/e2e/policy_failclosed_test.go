package e2e

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nodemesh/nodemesh/conformance/internal/taint"
	"github.com/nodemesh/nodemesh/datapath/testbed"
	"github.com/nodemesh/nodemesh/internal/agent/api"
	"github.com/nodemesh/nodemesh/mesh/dataplane"
	"github.com/nodemesh/nodemesh/mesh/input"
	"github.com/nodemesh/nodemesh/mesh/policy"
	"github.com/nodemesh/nodemesh/xds/server"
)

// brokenDeathstar selects the deathstar with a valid rule (the empire
// on port 80) next to one whose path does not parse: the policy is
// rejected whole.
const brokenDeathstar = `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: broken}
spec:
  endpointSelector:
    matchLabels: {org: empire, class: deathstar}
  ingress:
  - fromEndpoints:
    - matchLabels: {org: empire}
    toPorts:
    - ports: [{port: "80", protocol: TCP}]
  - toPorts:
    - ports: [{port: "81", protocol: TCP}]
      rules:
        http: [{path: "/v1/(unclosed"}]
`

// policyByName finds a policy's status.
func policyByName(t *testing.T, st *api.Status, name string) policy.PolicyStatus {
	t.Helper()
	for _, p := range st.Policy.Policies {
		if p.Name == name {
			return p
		}
	}
	t.Fatalf("no status for policy %s: %+v", name, st.Policy.Policies)
	return policy.PolicyStatus{}
}

// canConnect reports whether w can open a TCP connection to addr within
// a second.
func canConnect(w *testbed.Workload, addr string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	c, err := w.DialWith(ctx, &net.Dialer{}, "tcp", addr)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// TestPolicyRejectedFailsClosed: a policy nodemesh rejects never leaves
// the endpoints it selects open. Before it, everyone reaches the
// deathstar. With it, nothing does — not the alliance, which its valid
// sibling rule would not have allowed either, and not the empire, which
// that rule would have allowed (the policy is applied whole or not at
// all, and its L7 rules could have narrowed any allowance). A rejected
// policy without such rules (toFQDNs) only puts its endpoints into
// default deny: what other policies allow still passes.
func TestPolicyRejectedFailsClosed(t *testing.T) {
	n := startPolicyNode(t, 3)
	deathstar, tiefighter, xwing := n.bed.Workloads[0], n.bed.Workloads[1], n.bed.Workloads[2]
	serveHTTP(t, deathstar, 80, deathstarHandler())
	serveHTTP(t, xwing, 80, deathstarHandler())
	landing := fmt.Sprintf("http://%s/v1/request-landing", deathstar.IPv4)
	target := fmt.Sprintf("%s:80", deathstar.IPv4)

	n.apply(starWarsPods(n))
	if code, _ := request(t, xwing, "POST", landing); code != 200 {
		t.Fatalf("no policy: xwing got %d", code)
	}
	if !canConnect(tiefighter, xwing.IPv4.String()+":80") {
		t.Fatal("no policy: tiefighter cannot reach the xwing")
	}

	st := n.applyLenient(starWarsPods(n) + brokenDeathstar)
	ps := policyByName(t, st, "broken")
	if ps.State != policy.Rejected || ps.Reason != policy.ReasonFailClosed || ps.Selected != 1 ||
		!strings.Contains(ps.Error, "spec.ingress[1].toPorts[0].rules.http[0].path") {
		t.Fatalf("broken policy status: %+v", ps)
	}
	cannotConnect(t, xwing, target)
	cannotConnect(t, tiefighter, target)

	// toFQDNs is rejected (no DNS proxy); the tiefighter's egress is in
	// default deny, and another policy's allowance to the deathstar holds.
	allow := `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: tiefighter-to-deathstar}
spec:
  endpointSelector: {matchLabels: {class: tiefighter}}
  egress:
  - toEndpoints: [{matchLabels: {class: deathstar}}]
    toPorts:
    - ports: [{port: "80", protocol: TCP}]
---
`
	fqdn := `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: fqdn}
spec:
  endpointSelector: {matchLabels: {class: tiefighter}}
  egress:
  - toFQDNs: [{matchName: api.example.com}]
`
	st = n.applyLenient(starWarsPods(n) + allow + fqdn)
	if ps := policyByName(t, st, "fqdn"); ps.State != policy.Rejected || ps.Reason != policy.ReasonFailClosed ||
		!strings.Contains(ps.Message, "egress of the endpoints it selects is in default deny") {
		t.Fatalf("fqdn policy status: %+v", ps)
	}
	if code, body := request(t, tiefighter, "POST", landing); code != 200 || body != "Ship landed\n" {
		t.Fatalf("tiefighter landing, allowed by another policy: %d %q", code, body)
	}
	cannotConnect(t, tiefighter, xwing.IPv4.String()+":80")
}

// TestPolicyProxyRejectionFailsClosed: the proxy rejects an update of the
// L7 rules and keeps running the previous ones, which allow more. The
// agent drops the flows it would redirect to the proxy instead of letting
// the old rules judge them, and reports the policy Rejected; once the
// proxy accepts a configuration again the redirects come back.
func TestPolicyProxyRejectionFailsClosed(t *testing.T) {
	var pub *taint.Publisher
	n := newPolicyNodeWith(t, 3, true, func(s *server.Server) dataplane.Publisher {
		pub = taint.New(s)
		return pub
	})
	deathstar, tiefighter := n.bed.Workloads[0], n.bed.Workloads[1]
	serveHTTP(t, deathstar, 80, deathstarHandler())
	landing := fmt.Sprintf("http://%s/v1/request-landing", deathstar.IPv4)
	target := fmt.Sprintf("%s:80", deathstar.IPv4)

	n.apply(starWarsPods(n) + rule1L7)
	if code, _ := request(t, tiefighter, "POST", landing); code != 200 {
		t.Fatalf("L7 rule: landing got %d", code)
	}

	// The update forbids landing; the proxy rejects it.
	pub.ArmedFilters.Store(true)
	stricter := strings.Replace(rule1L7, `path: "/v1/request-landing"`, `path: "/v1/nothing"`, 1)
	snap := snapshot(t, starWarsPods(n)+stricter)
	if err := n.agent.Apply(context.Background(), snap, nil); err != nil {
		t.Fatal(err)
	}
	st := n.waitStatus("the policy reported rejected by the proxy", func(st *api.Status) bool {
		return policyByName(t, st, "rule1").State == policy.Rejected
	})
	ps := policyByName(t, st, "rule1")
	if ps.Reason != policy.ReasonProxyRejected || !strings.Contains(ps.Error, "shadow_rules_stat_prefix") {
		t.Fatalf("policy status: %+v", ps)
	}
	// The old rules would still land the tiefighter; its flows to the
	// deathstar are dropped instead.
	waitUntil(t, "the redirected flows are dropped", func() bool { return !canConnect(tiefighter, target) })
	cannotConnect(t, tiefighter, target)

	// A configuration the proxy accepts brings the L7 rules back.
	pub.ArmedFilters.Store(false)
	n.apply(starWarsPods(n) + rule1L7)
	if code, body := request(t, tiefighter, "POST", landing); code != 200 || body != "Ship landed\n" {
		t.Fatalf("after recovery: landing got %d %q", code, body)
	}
}

func snapshot(t *testing.T, docs string) *input.Snapshot {
	t.Helper()
	objs, err := input.Decode("test.yaml", []byte(docs))
	if err != nil {
		t.Fatalf("decoding: %v", err)
	}
	snap, err := input.Build(objs)
	if err != nil {
		t.Fatal(err)
	}
	return snap
}
