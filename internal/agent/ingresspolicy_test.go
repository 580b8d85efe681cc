package agent

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/nodemesh/nodemesh/mesh/dataplane"
	"github.com/nodemesh/nodemesh/mesh/policy"
)

// ingressAllow is a clusterwide policy of the ingress endpoint only:
// outside clients from PREFIX.
const ingressAllow = `
---
apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata: {name: allow-cidr}
spec:
  endpointSelector:
    matchExpressions:
    - {key: "reserved:ingress", operator: Exists}
  ingress:
  - fromCIDRSet: [{cidr: "PREFIX"}]
`

// TestIngressPolicyWaitsForProxyAck: a policy of the ingress endpoint
// writes no datapath row, the proxy's Gateway and Ingress listeners
// enforce it, so it is Pending (WaitingForProxies) until the connected
// proxy acknowledged the publication carrying it, Enforced then, Pending
// again for a change, and Rejected (ProxyRejected) while the proxy
// refuses that change and keeps its previous listeners. A policy of Pods
// only (rule1, L4) is Enforced throughout.
func TestIngressPolicyWaitsForProxyAck(t *testing.T) {
	pub := &recorder{proxies: []dataplane.Proxy{{Node: "p", Connected: true}}}
	c, err := policy.New(policy.Options{Listeners: policy.Listeners{IngressHTTP: 15101, EgressHTTP: 15102, IngressKafka: 15103, EgressKafka: 15104},
		UpstreamMark: 0xA00, IngressEndpoint: true})
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(Config{Publisher: pub, Policy: c, Datapath: &tables{},
		Interfaces: ifaces{netip.MustParseAddr("10.0.0.10"): 7, netip.MustParseAddr("10.0.0.20"): 8}})
	if err != nil {
		t.Fatal(err)
	}
	apply := func(cidr string) {
		t.Helper()
		docs := strings.Replace(starWars, "RULES", "", 1) + strings.Replace(ingressAllow, "PREFIX", cidr, 1)
		if err := a.Apply(context.Background(), snapshotOf(t, docs), nil); err != nil {
			t.Fatal(err)
		}
	}
	// verdicts returns the states of rule1 and allow-cidr.
	verdicts := func() (rule1, ingress policy.PolicyStatus) {
		t.Helper()
		st := a.Status().Policy
		if st == nil {
			t.Fatal("no policy status")
		}
		for _, ps := range st.Policies {
			switch ps.Name {
			case "rule1":
				rule1 = ps
			case "allow-cidr":
				ingress = ps
			}
		}
		if rule1.Name == "" || ingress.Name == "" {
			t.Fatalf("policies %+v, want rule1 and allow-cidr", st.Policies)
		}
		return rule1, ingress
	}
	check := func(when string, state policy.PolicyState, reason string) {
		t.Helper()
		rule1, ing := verdicts()
		if rule1.State != policy.Enforced || rule1.Ingress {
			t.Errorf("%s: rule1 %+v, want Enforced and not of the ingress endpoint", when, rule1)
		}
		if !ing.Ingress || ing.Selected != 1 || ing.State != state || ing.Reason != reason {
			t.Errorf("%s: allow-cidr %+v, want %s (%s) on the ingress endpoint", when, ing, state, reason)
		}
	}

	apply("192.0.2.1/32")
	if got := pub.configs[0].IngressPolicy; got == nil || !got.Ingress.Enforced {
		t.Fatalf("published policy %+v: want the ingress endpoint's ingress enforced", got)
	}
	check("before the proxy answered", policy.Pending, policy.ReasonWaitingForProxies)

	pub.setProxy(dataplane.TypeState{Type: "Listener", Acked: "v1"})
	check("once the proxy acknowledged", policy.Enforced, "")

	apply("192.0.2.2/32")
	check("a change before the proxy answered", policy.Pending, policy.ReasonWaitingForProxies)

	pub.setProxy(dataplane.TypeState{Type: "Listener", Acked: "v1", Nack: &dataplane.Nack{Version: "v2", Message: "bad listener", Time: time.Now()}})
	check("while the proxy refuses the change", policy.Rejected, policy.ReasonProxyRejected)
	if _, ing := verdicts(); !strings.Contains(ing.Error, "bad listener") {
		t.Errorf("allow-cidr error %q, want the proxy's message", ing.Error)
	}

	pub.setProxy(dataplane.TypeState{Type: "Listener", Acked: "v2"})
	check("once the proxy accepted the change", policy.Enforced, "")

	// No proxy connected: no listener serves without the policy.
	pub.setProxies([]dataplane.Proxy{{Node: "p", Connected: false}})
	apply("192.0.2.3/32")
	check("with no proxy connected", policy.Enforced, "")
}
