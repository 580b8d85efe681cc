package e2e

import (
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nodemesh/nodemesh/internal/agent/api"
	"github.com/nodemesh/nodemesh/mesh/flow"
)

// headerEcho answers with the protocol and the request headers it
// received, one "name: value" line each, sorted.
func headerEcho() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		lines := []string{"proto: " + r.Proto}
		for k, vs := range r.Header {
			for _, v := range vs {
				lines = append(lines, strings.ToLower(k)+": "+v)
			}
		}
		slices.Sort(lines)
		fmt.Fprintln(w, strings.Join(lines, "\n"))
	})
}

const landingHeaderMatches = `apiVersion: v1
kind: Secret
metadata: {name: deathstar-token}
stringData: {token: "Bearer d34th"}
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: landing-headers}
spec:
  endpointSelector:
    matchLabels: {org: empire, class: deathstar}
  ingress:
  - fromEndpoints:
    - matchLabels: {org: empire}
    toPorts:
    - ports: [{port: "80", protocol: TCP}]
      rules:
        http:
        - method: POST
          path: /v1/request-landing
          headerMatches:
          - {name: X-Fleet, value: empire, mismatch: ADD}
          - {name: X-Forwarded-Ship, value: tiefighter, mismatch: DELETE}
          - {name: Authorization, secret: {name: deathstar-token}, mismatch: REPLACE}
          - {name: X-Request-Source, value: mesh, mismatch: LOG}
`

const tiefighterEgressHeaders = `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: tiefighter-egress}
spec:
  endpointSelector:
    matchLabels: {class: tiefighter}
  egress:
  - toEndpoints:
    - matchLabels: {class: deathstar}
    toPorts:
    - ports: [{port: "80", protocol: TCP}]
      rules:
        http:
        - headerMatches:
          - {name: X-Pilot, value: "TK-421", mismatch: REPLACE}
`

// landingWith sends POST /v1/request-landing with headers and returns
// the status and the headers the deathstar received.
func landingWith(t *testing.T, n *policyNode, headers map[string]string) (int, string) {
	t.Helper()
	req, err := http.NewRequest("POST", fmt.Sprintf("http://%s/v1/request-landing", n.bed.Workloads[0].IPv4), nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := httpClient(n.bed.Workloads[1]).Do(req)
	if err != nil {
		t.Fatalf("landing: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// TestPolicyHeaderMatchActions: Cilium's headerMatches mismatch actions
// through the eBPF redirect, the agent and the builtin proxy. A mismatch
// never denies the request: ADD adds the header, DELETE removes a wrong
// one, REPLACE sets the Secret's value, LOG only records; the flow lists
// what was missing and what was rejected, the Secret's value redacted.
// Rules without the actions still deny. With an egress rule on the
// client as well, the egress listener applies the client's actions and
// then the server's (the datapath does not redirect the proxy's own
// connection to the server's ingress listener).
func TestPolicyHeaderMatchActions(t *testing.T) {
	n := startPolicyNode(t, 3)
	deathstar, tiefighter := n.bed.Workloads[0], n.bed.Workloads[1]
	// HTTP/1.1 and h2c: the proxy speaks to the backend in the client's
	// protocol.
	l, err := deathstar.Listen("tcp", ":80")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: headerEcho(), ReadHeaderTimeout: 5 * time.Second, Protocols: new(http.Protocols)}
	srv.Protocols.SetHTTP1(true)
	srv.Protocols.SetUnencryptedHTTP2(true)
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })

	st := n.apply(starWarsPods(n) + landingHeaderMatches)
	if len(st.Warnings) == 0 || !strings.Contains(strings.Join(st.Warnings, "\n"), "only the builtin proxy implements") {
		t.Errorf("no warning that stock Envoy cannot run the header match filter: %q", st.Warnings)
	}
	code, got := landingWith(t, n, map[string]string{"X-Forwarded-Ship": "xwing", "Authorization": "Bearer guess"})
	if code != 200 {
		t.Fatalf("a mismatch must not deny: %d %q", code, got)
	}
	for _, want := range []string{"x-fleet: empire", "authorization: Bearer d34th"} {
		if !strings.Contains(got, want+"\n") {
			t.Errorf("the deathstar did not receive %q:\n%s", want, got)
		}
	}
	for _, gone := range []string{"x-forwarded-ship", "Bearer guess", "x-request-source"} {
		if strings.Contains(got, gone) {
			t.Errorf("the deathstar received %q:\n%s", gone, got)
		}
	}
	fl := n.flowsMatching(api.FlowQuery{Filter: flow.Filter{Verdict: flow.Forwarded, Workload: "default/tiefighter"}}, 1)
	h := fl[len(fl)-1].HTTP
	if h == nil || strings.Join(h.MissingHeaders, "|") != "x-fleet: empire|authorization: [redacted]|x-request-source: mesh" ||
		strings.Join(h.RejectedHeaders, "|") != "x-forwarded-ship: xwing|authorization: [redacted]" {
		t.Errorf("flow header records: %+v", h)
	}

	// Matching headers are left alone and nothing is recorded.
	code, got = landingWith(t, n, map[string]string{"X-Fleet": "empire", "X-Forwarded-Ship": "tiefighter", "Authorization": "Bearer d34th", "X-Request-Source": "mesh"})
	if code != 200 || strings.Count(got, "x-fleet:") != 1 || !strings.Contains(got, "x-forwarded-ship: tiefighter\n") {
		t.Errorf("matching request: %d\n%s", code, got)
	}
	// The same over HTTP/2.
	h2 := httpClient(tiefighter)
	h2.Transport.(*http.Transport).Protocols = new(http.Protocols)
	h2.Transport.(*http.Transport).Protocols.SetUnencryptedHTTP2(true)
	req, _ := http.NewRequest("POST", fmt.Sprintf("http://%s/v1/request-landing", deathstar.IPv4), nil)
	req.Header.Set("Authorization", "Bearer guess")
	resp, err := h2.Do(req)
	if err != nil {
		t.Fatalf("h2c landing: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if got := string(body); resp.StatusCode != 200 || !strings.Contains(got, "proto: HTTP/2.0\n") ||
		!strings.Contains(got, "authorization: Bearer d34th\n") || !strings.Contains(got, "x-fleet: empire\n") {
		t.Errorf("h2c landing: %d\n%s", resp.StatusCode, got)
	}

	// The rule still only allows the landing.
	if code, _ := request(t, tiefighter, "PUT", fmt.Sprintf("http://%s/v1/exhaust-port", deathstar.IPv4)); code != 403 {
		t.Errorf("PUT exhaust-port: %d, want 403", code)
	}

	// Egress actions on the client, then the server's ingress ones.
	n.apply(starWarsPods(n) + landingHeaderMatches + "---\n" + tiefighterEgressHeaders)
	code, got = landingWith(t, n, map[string]string{"X-Pilot": "Luke"})
	if code != 200 || !strings.Contains(got, "x-pilot: TK-421\n") || !strings.Contains(got, "x-fleet: empire\n") ||
		!strings.Contains(got, "authorization: Bearer d34th\n") {
		t.Errorf("through the egress listener: %d\n%s", code, got)
	}
}
