package main

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8stypes "k8s.io/apimachinery/pkg/types"

	ciliumv2 "github.com/nodemesh/nodemesh/api/cilium/v2"
	"github.com/nodemesh/nodemesh/api/v1alpha1"
	agentapi "github.com/nodemesh/nodemesh/internal/agent/api"
	"github.com/nodemesh/nodemesh/mesh/input"
	"github.com/nodemesh/nodemesh/mesh/policy"
	"github.com/nodemesh/nodemesh/mesh/provider/kube"
)

// TestPolicyVerdicts checks which compile results make a cilium.io policy
// invalid: an error in the version (rejected, or the previous version kept)
// does; waiting, proxy or datapath trouble on the node does not; a
// NetworkPolicy gets no verdict (it has no status), nor does a policy the
// compiler did not report on.
func TestPolicyVerdicts(t *testing.T) {
	meta := func(ns, name, uid string, gen int64) metav1.ObjectMeta {
		return metav1.ObjectMeta{Namespace: ns, Name: name, UID: k8stypes.UID("u-" + uid), Generation: gen}
	}
	s := &input.Snapshot{
		CiliumNetworkPolicies: []*ciliumv2.CiliumNetworkPolicy{
			{ObjectMeta: meta("a", "ok", "1", 1)},
			{ObjectMeta: meta("a", "bad", "2", 3)},
			{ObjectMeta: meta("a", "prev", "3", 2)},
			{ObjectMeta: meta("a", "proxy", "4", 1)},
			{ObjectMeta: meta("a", "unreported", "5", 1)},
		},
		CiliumClusterwideNetworkPolicies: []*ciliumv2.CiliumClusterwideNetworkPolicy{{ObjectMeta: meta("", "cw", "6", 7)}},
	}
	statuses := []policy.PolicyStatus{
		{Kind: policy.KindCNP, Namespace: "a", Name: "ok", State: policy.Pending, Reason: policy.ReasonWaitingForProxies},
		{Kind: policy.KindCNP, Namespace: "a", Name: "bad", State: policy.Rejected, Reason: policy.ReasonFailClosed, Error: "spec.egress[0].toFQDNs: not supported"},
		{Kind: policy.KindCNP, Namespace: "a", Name: "prev", State: policy.EnforcedPrevious, Error: "spec.ingress[0]: conflict"},
		{Kind: policy.KindCNP, Namespace: "a", Name: "proxy", State: policy.Rejected, Reason: policy.ReasonProxyRejected, Message: "listener refused"},
		{Kind: policy.KindCCNP, Name: "cw", State: policy.Enforced},
		{Kind: policy.KindKNP, Namespace: "a", Name: "knp", State: policy.Rejected, Error: "x"},
	}
	want := []kube.PolicyVerdict{
		{Kind: policy.KindCNP, Namespace: "a", Name: "ok", UID: "u-1", Generation: 1, Valid: true},
		{Kind: policy.KindCNP, Namespace: "a", Name: "bad", UID: "u-2", Generation: 3, Reason: "Invalid", Message: "spec.egress[0].toFQDNs: not supported"},
		{Kind: policy.KindCNP, Namespace: "a", Name: "prev", UID: "u-3", Generation: 2, Reason: "Invalid",
			Message: "spec.ingress[0]: conflict (the last accepted version stays enforced)"},
		{Kind: policy.KindCNP, Namespace: "a", Name: "proxy", UID: "u-4", Generation: 1, Valid: true},
		{Kind: policy.KindCCNP, Name: "cw", UID: "u-6", Generation: 7, Valid: true},
	}
	if d := cmp.Diff(want, policyVerdicts(s, statuses)); d != "" {
		t.Fatalf("verdicts (-want +got):\n%s", d)
	}
}

// TestNodePolicy checks the node report's policy part: every policy with
// its state and reason, bounded in count and length.
func TestNodePolicy(t *testing.T) {
	if nodePolicy(nil) != nil {
		t.Fatal("a report without policy has a policy part")
	}
	st := &agentapi.PolicyStatus{Endpoints: 3, DatapathError: strings.Repeat("é", 20000), GatewayFromNode: "ports 8080", Policies: []policy.PolicyStatus{
		{Kind: policy.KindCNP, Namespace: "a", Name: "p", State: policy.Pending, Reason: policy.ReasonWaitingForProxies},
	}}
	got := nodePolicy(st)
	want := []v1alpha1.PolicyEnforcement{{Kind: policy.KindCNP, Namespace: "a", Name: "p", State: "Pending", Reason: policy.ReasonWaitingForProxies}}
	if d := cmp.Diff(want, got.Policies); d != "" || got.Endpoints != 3 || got.Truncated || len(got.DatapathError) > 32768 || !utf8.ValidString(got.DatapathError) {
		t.Fatalf("policies (-want +got):\n%s\nendpoints %d truncated %v error %d bytes", d, got.Endpoints, got.Truncated, len(got.DatapathError))
	}
	if got.GatewayFromNode != "ports 8080" {
		t.Fatalf("refused Gateway traffic reported as %q", got.GatewayFromNode)
	}
	for i := 0; i < maxReportedPolicies+1; i++ {
		st.Policies = append(st.Policies, policy.PolicyStatus{Kind: policy.KindKNP, Namespace: "a", Name: "n", State: policy.Enforced})
	}
	if got := nodePolicy(st); len(got.Policies) != maxReportedPolicies || !got.Truncated {
		t.Fatalf("%d policies reported, truncated %v", len(got.Policies), got.Truncated)
	}
}

// TestEnvoyConfigVerdicts checks which agent verdicts make an Envoy
// config's Valid condition False (every refusal, by translation or a
// proxy, with its exact message), which make it True (accepted, also while
// the proxies have not acknowledged yet), and that a config this node's
// labels do not select, or one the agent did not report on, gets no
// verdict from this node.
func TestEnvoyConfigVerdicts(t *testing.T) {
	meta := func(ns, name, uid string, gen int64) metav1.ObjectMeta {
		return metav1.ObjectMeta{Namespace: ns, Name: name, UID: k8stypes.UID("u-" + uid), Generation: gen}
	}
	s := &input.Snapshot{
		CiliumEnvoyConfigs: []*ciliumv2.CiliumEnvoyConfig{
			{ObjectMeta: meta("a", "ok", "1", 1)},
			{ObjectMeta: meta("a", "pending", "2", 2)},
			{ObjectMeta: meta("a", "bad", "3", 3)},
			{ObjectMeta: meta("a", "nacked", "4", 1)},
			{ObjectMeta: meta("a", "elsewhere", "5", 1)},
			{ObjectMeta: meta("a", "unreported", "6", 1)},
		},
		CiliumClusterwideEnvoyConfigs: []*ciliumv2.CiliumClusterwideEnvoyConfig{{ObjectMeta: meta("", "cw", "7", 4)}},
	}
	statuses := []agentapi.EnvoyConfigStatus{
		{Kind: "CiliumEnvoyConfig", Namespace: "a", Name: "ok", Valid: true, Reason: "Accepted"},
		{Kind: "CiliumEnvoyConfig", Namespace: "a", Name: "pending", Valid: true, Reason: "Accepted", Pending: true},
		{Kind: "CiliumEnvoyConfig", Namespace: "a", Name: "bad", Reason: "Unsupported", Message: `resources[0] (Cluster "c"): STRICT_DNS`},
		{Kind: "CiliumEnvoyConfig", Namespace: "a", Name: "nacked", Reason: "ProxyRejected", Message: "proxy n: bind: address already in use"},
		{Kind: "CiliumEnvoyConfig", Namespace: "a", Name: "elsewhere", Valid: true, Reason: "NotSelected"},
		{Kind: "CiliumClusterwideEnvoyConfig", Name: "cw", Reason: "NotRedirected", Message: "spec.services: no Service table"},
	}
	want := []kube.PolicyVerdict{
		{Kind: "CiliumEnvoyConfig", Namespace: "a", Name: "ok", UID: "u-1", Generation: 1, Valid: true, Reason: "Accepted"},
		{Kind: "CiliumEnvoyConfig", Namespace: "a", Name: "pending", UID: "u-2", Generation: 2, Valid: true, Reason: "Accepted"},
		{Kind: "CiliumEnvoyConfig", Namespace: "a", Name: "bad", UID: "u-3", Generation: 3, Reason: "Unsupported", Message: `resources[0] (Cluster "c"): STRICT_DNS`},
		{Kind: "CiliumEnvoyConfig", Namespace: "a", Name: "nacked", UID: "u-4", Generation: 1, Reason: "ProxyRejected", Message: "proxy n: bind: address already in use"},
		{Kind: "CiliumClusterwideEnvoyConfig", Name: "cw", UID: "u-7", Generation: 4, Reason: "NotRedirected", Message: "spec.services: no Service table"},
	}
	if d := cmp.Diff(want, envoyConfigVerdicts(s, statuses)); d != "" {
		t.Fatalf("verdicts (-want +got):\n%s", d)
	}
}
