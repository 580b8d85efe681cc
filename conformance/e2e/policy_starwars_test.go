package e2e

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/nodemesh/nodemesh/datapath/testbed"
	"github.com/nodemesh/nodemesh/internal/agent/api"
	"github.com/nodemesh/nodemesh/mesh/flow"
)

// deathstarHandler answers like Cilium's Star Wars demo backend.
func deathstarHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/request-landing", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "Ship landed")
	})
	mux.HandleFunc("PUT /v1/exhaust-port", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "Panic: deathstar exploded")
	})
	return mux
}

const rule1 = `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: rule1}
spec:
  description: "L3-L4 policy to restrict deathstar access to empire ships only"
  endpointSelector:
    matchLabels: {org: empire, class: deathstar}
  ingress:
  - fromEndpoints:
    - matchLabels: {org: empire}
    toPorts:
    - ports: [{port: "80", protocol: TCP}]
`

const rule1L7 = rule1 + `      rules:
        http:
        - method: "POST"
          path: "/v1/request-landing"
`

func starWarsPods(n *policyNode) string {
	w := n.bed.Workloads
	return pod("deathstar", w[0], map[string]string{"org": "empire", "class": "deathstar"}) +
		pod("tiefighter", w[1], map[string]string{"org": "empire", "class": "tiefighter"}) +
		pod("xwing", w[2], map[string]string{"org": "alliance", "class": "xwing"})
}

func request(t *testing.T, from *testbed.Workload, method, url string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := httpClient(from).Do(req)
	if err != nil {
		t.Fatalf("%s %s from %s: %v", method, url, from.IPv4, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// TestPolicyStarWars is Cilium's Star Wars demo through the eBPF redirect
// and the builtin proxy (AT-POL-01): with the L3/L4 policy the empire
// lands and the alliance cannot connect; with the L7 rule the empire may
// only POST /v1/request-landing and PUT /v1/exhaust-port gets 403 "Access
// denied"; every proxied request is a flow; going back to L3/L4 removes
// the L7 restriction.
func TestPolicyStarWars(t *testing.T) {
	n := startPolicyNode(t, 3)
	deathstar, tiefighter, xwing := n.bed.Workloads[0], n.bed.Workloads[1], n.bed.Workloads[2]
	serveHTTP(t, deathstar, 80, deathstarHandler())
	url := fmt.Sprintf("http://%s/v1/", deathstar.IPv4)
	target := fmt.Sprintf("%s:80", deathstar.IPv4)

	// No policy: everyone lands.
	n.apply(starWarsPods(n))
	if code, body := request(t, xwing, "POST", url+"request-landing"); code != 200 || body != "Ship landed\n" {
		t.Fatalf("no policy: xwing got %d %q", code, body)
	}

	// L3/L4: the empire lands, the alliance hangs.
	n.apply(starWarsPods(n) + rule1)
	if code, body := request(t, tiefighter, "POST", url+"request-landing"); code != 200 || body != "Ship landed\n" {
		t.Fatalf("L3/L4: tiefighter landing got %d %q", code, body)
	}
	if code, body := request(t, tiefighter, "PUT", url+"exhaust-port"); code != 200 || !strings.Contains(body, "exploded") {
		t.Fatalf("L3/L4: tiefighter PUT got %d %q", code, body)
	}
	cannotConnect(t, xwing, target)

	// L7: only the landing request.
	st := n.apply(starWarsPods(n) + rule1L7)
	if st.Policy.Rows != 2 {
		t.Errorf("L7 policy: %d datapath rows, want 2 (deathstar from deathstar and tiefighter)", st.Policy.Rows)
	}
	if code, body := request(t, tiefighter, "POST", url+"request-landing"); code != 200 || body != "Ship landed\n" {
		t.Fatalf("L7: tiefighter landing got %d %q", code, body)
	}
	code, body := request(t, tiefighter, "PUT", url+"exhaust-port")
	if code != 403 || body != "Access denied\r\n" {
		t.Fatalf("L7: tiefighter PUT got %d %q, want 403 \"Access denied\\r\\n\"", code, body)
	}
	cannotConnect(t, xwing, target)

	// Both requests are flows, with identities resolved.
	drops := n.flowsMatching(api.FlowQuery{Filter: flow.Filter{Verdict: flow.Dropped, Protocol: flow.ProtocolHTTP}}, 1)
	d := drops[len(drops)-1]
	if d.HTTP == nil || d.HTTP.Method != "PUT" || d.HTTP.Path != "/v1/exhaust-port" || d.HTTP.Status != 403 ||
		d.Source.Workload != "default/tiefighter" || d.Destination.Workload != "default/deathstar" || d.Direction != "ingress" {
		t.Errorf("dropped flow %+v %+v", d, d.HTTP)
	}
	fwd := n.flowsMatching(api.FlowQuery{Filter: flow.Filter{Verdict: flow.Forwarded, Workload: "default/tiefighter"}}, 1)
	if f := fwd[len(fwd)-1]; f.HTTP == nil || f.HTTP.Method != "POST" || f.HTTP.Status != 200 || f.Source.Identity == 0 {
		t.Errorf("forwarded flow %+v %+v", f, f.HTTP)
	}

	// Back to L3/L4: the exhaust port is reachable again.
	n.apply(starWarsPods(n) + rule1)
	if code, body := request(t, tiefighter, "PUT", url+"exhaust-port"); code != 200 || !strings.Contains(body, "exploded") {
		t.Fatalf("back to L3/L4: tiefighter PUT got %d %q", code, body)
	}
	cannotConnect(t, xwing, target)
}
