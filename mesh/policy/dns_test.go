package policy

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nodemesh/nodemesh/datapath/model"
)

// dnsPolicy is api's egress to web on port 53 over protos, with the given
// rules block (empty: an L4-only rule) and direction.
func dnsPolicy(dir, ports, rules string) string {
	peer := "toEndpoints"
	if dir == "ingress" {
		peer = "fromEndpoints"
	}
	s := `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: dns}
spec:
  endpointSelector: {matchLabels: {app: api}}
  ` + dir + `:
  - ` + peer + `: [{matchLabels: {app: web}}]
    toPorts:
    - ports: ` + ports + `
`
	if rules != "" {
		s += "      rules:\n        dns: " + rules + "\n"
	}
	return s
}

// decide asks the datapath's reference model about a flow from api.
func decide(t *testing.T, res *Result, dir model.Direction, proto uint8, port uint16) model.Verdict {
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
	return res.Datapath.Index().Decide(model.Query{Subject: id("api"), Remote: id("web"), Direction: dir, Proto: proto, Port: port}).Verdict
}

// TestDNSEveryNameIsL4Allow: an egress DNS rule list whose every entry is
// matchPattern "*" compiles to exactly the rows of the same rule without
// rules, and the status says that the payload is not inspected.
func TestDNSEveryNameIsL4Allow(t *testing.T) {
	for _, tc := range []struct{ name, ports, rules string }{
		{"udp", `[{port: "53", protocol: UDP}]`, `[{matchPattern: "*"}]`},
		{"any", `[{port: "53", protocol: ANY}]`, `[{matchPattern: "*"}]`},
		{"udp and tcp, repeated star", `[{port: "53", protocol: UDP}, {port: "53", protocol: TCP}]`, `[{matchPattern: "*"}, {matchPattern: "*"}]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l4 := compileYAML(t, mustNew(t, nil), twoPods+dnsPolicy("egress", tc.ports, ""))
			res := compileYAML(t, mustNew(t, nil), twoPods+dnsPolicy("egress", tc.ports, tc.rules))
			if diff := cmp.Diff(l4.Datapath, res.Datapath); diff != "" {
				t.Errorf("rows differ from the L4-only rule (-l4 +dns):\n%s", diff)
			}
			if res.L7 != nil {
				t.Errorf("L7 policy %+v, want none", res.L7)
			}
			if st := l4.Policies[0]; st.State != Enforced || st.Reason != "" {
				t.Fatalf("L4-only status %+v", st)
			}
			st := res.Policies[0]
			if st.State != Enforced || st.Reason != ReasonDNSEnforcedAtL4 || st.Error != "" ||
				!strings.Contains(st.Message, "spec.egress[0].toPorts[0].rules.dns") || !strings.Contains(st.Message, "payload is not inspected") {
				t.Fatalf("status %+v", st)
			}
			if v := decide(t, res, model.Egress, model.ProtoUDP, 53); v != model.Allow {
				t.Errorf("api→web UDP/53: %s, want allowed", v)
			}
			for _, q := range []struct {
				proto uint8
				port  uint16
			}{{model.ProtoUDP, 54}, {model.ProtoTCP, 80}} {
				if v := decide(t, res, model.Egress, q.proto, q.port); v != model.Deny {
					t.Errorf("api→web %s/%d: %s, want dropped", protoName(q.proto), q.port, v)
				}
			}
		})
	}
}

// TestDNSRulesNeedingAProxyFailClosed: every other DNS rule needs a DNS
// proxy; the policy is rejected and holds api's direction closed, DNS
// included.
func TestDNSRulesNeedingAProxyFailClosed(t *testing.T) {
	udp := `[{port: "53", protocol: UDP}]`
	for _, tc := range []struct{ name, dir, ports, rules, field string }{
		{"matchName", "egress", udp, `[{matchName: example.com}]`, "spec.egress[0].toPorts[0].rules.dns"},
		{"narrower pattern", "egress", udp, `[{matchPattern: "*.example.com"}]`, "spec.egress[0].toPorts[0].rules.dns"},
		{"double star", "egress", udp, `[{matchPattern: "**"}]`, "spec.egress[0].toPorts[0].rules.dns"},
		{"empty entry", "egress", udp, `[{}]`, "spec.egress[0].toPorts[0].rules.dns"},
		{"star mixed with a name", "egress", udp, `[{matchPattern: "*"}, {matchName: example.com}]`, "spec.egress[0].toPorts[0].rules.dns"},
		{"star and a name in one entry", "egress", udp, `[{matchPattern: "*", matchName: example.com}]`, "spec.egress[0].toPorts[0].rules.dns"},
		{"ingress", "ingress", udp, `[{matchPattern: "*"}]`, "spec.ingress[0].toPorts[0].rules.dns"},
		{"every port", "egress", `[{port: "0", protocol: UDP}]`, `[{matchPattern: "*"}]`, "spec.egress[0].toPorts[0].ports[0].port"},
		{"no port", "egress", `[]`, `[{matchPattern: "*"}]`, "spec.egress[0].toPorts[0].ports"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := compileYAML(t, mustNew(t, nil), twoPods+dnsPolicy(tc.dir, tc.ports, tc.rules))
			st := res.Policies[0]
			if st.State != Rejected || st.Reason != ReasonFailClosed || !strings.Contains(st.Error, tc.field+":") {
				t.Fatalf("status %+v, want rejected at %s", st, tc.field)
			}
			dir := model.Egress
			if tc.dir == "ingress" {
				dir = model.Ingress
			}
			if v := decide(t, res, dir, model.ProtoUDP, 53); v != model.Deny {
				t.Errorf("UDP/53 %s: %s, want dropped", tc.dir, v)
			}
		})
	}
}

// TestDNSNarrowedUpdateKeepsPrevious: narrowing an accepted "*" rule to
// names needs a DNS proxy, so the update is rejected and the previous
// version (the L4 allow) stays in force, its status still saying so; the
// reason about the rejection comes first when the update also closes
// endpoints.
func TestDNSNarrowedUpdateKeepsPrevious(t *testing.T) {
	udp := `[{port: "53", protocol: UDP}]`
	c := mustNew(t, nil)
	first := compileYAML(t, c, twoPods+dnsPolicy("egress", udp, `[{matchPattern: "*"}]`))
	second := compileYAML(t, c, twoPods+dnsPolicy("egress", udp, `[{matchName: example.com}]`))
	st := second.Policies[0]
	if st.State != EnforcedPrevious || st.Reason != ReasonDNSEnforcedAtL4 || !strings.Contains(st.Error, "spec.egress[0].toPorts[0].rules.dns: DNS rules need a DNS proxy") {
		t.Fatalf("status %+v", st)
	}
	if diff := cmp.Diff(first.Datapath, second.Datapath); diff != "" {
		t.Errorf("rows changed on a rejected update (-before +after):\n%s", diff)
	}
	// The update also selects web, which only it covers: web is held
	// closed, and that is the reason shown.
	wider := strings.Replace(dnsPolicy("egress", udp, `[{matchName: example.com}]`), "endpointSelector: {matchLabels: {app: api}}", "endpointSelector: {}", 1)
	third := compileYAML(t, c, twoPods+wider)
	st = third.Policies[0]
	if st.State != EnforcedPrevious || st.Reason != ReasonFailClosed || !strings.Contains(st.Message, "payload is not inspected") {
		t.Fatalf("status %+v", st)
	}
	if v := decide(t, third, model.Egress, model.ProtoUDP, 53); v != model.Allow {
		t.Errorf("api→web UDP/53 under the previous version: %s, want allowed", v)
	}
}
