package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nodemesh/nodemesh/api/v1alpha1"
)

// TestPrintNodes checks the per-node policy view: a node's counts, a
// stale heartbeat, a node without policy, and the policies some node has
// not enforced yet — held back by a state, or not seen at all.
func TestPrintNodes(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	report := func(name string, beat time.Duration, p *v1alpha1.NodePolicyState) v1alpha1.NodeProxyStatus {
		return v1alpha1.NodeProxyStatus{ObjectMeta: metav1.ObjectMeta{Name: name},
			Status: v1alpha1.NodeProxyStatusStatus{HeartbeatTime: metav1.NewTime(now.Add(-beat)), Policy: p}}
	}
	enf := func(name, state, reason string) v1alpha1.PolicyEnforcement {
		return v1alpha1.PolicyEnforcement{Kind: "CiliumNetworkPolicy", Namespace: "default", Name: name, State: state, Reason: reason}
	}
	var out bytes.Buffer
	printNodes(&out, []v1alpha1.NodeProxyStatus{
		report("node-2", 5*time.Minute, &v1alpha1.NodePolicyState{Endpoints: 2, DatapathError: "loading: no",
			Policies: []v1alpha1.PolicyEnforcement{enf("rule1", "Pending", "WaitingForProxies")}}),
		report("node-1", 3*time.Second, &v1alpha1.NodePolicyState{Endpoints: 3,
			Policies: []v1alpha1.PolicyEnforcement{enf("rule1", "Enforced", ""), enf("rule2", "Enforced", "")}}),
		report("node-3", time.Second, nil),
	}, now)
	got := out.String()
	for _, want := range []string{
		"node-1  3s ago",
		"node-2  5m0s ago (stale)",
		"error: loading: no",
		"no policy (agent without --policy)",
		"CiliumNetworkPolicy default/rule1 (enforced on 1 node(s)): node-2: Pending (WaitingForProxies)",
		"CiliumNetworkPolicy default/rule2 (enforced on 1 node(s)): node-2: not seen yet",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in\n%s", want, got)
		}
	}
	if strings.Index(got, "node-1") > strings.Index(got, "node-2") {
		t.Errorf("nodes not sorted:\n%s", got)
	}

	out.Reset()
	printNodes(&out, []v1alpha1.NodeProxyStatus{report("node-1", time.Second, &v1alpha1.NodePolicyState{
		Policies: []v1alpha1.PolicyEnforcement{enf("rule1", "Enforced", "")}})}, now)
	if !strings.Contains(out.String(), "Every policy is enforced") {
		t.Errorf("all enforced:\n%s", out.String())
	}
}
