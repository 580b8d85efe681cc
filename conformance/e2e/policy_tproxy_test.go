package e2e

import (
	"context"
	"fmt"
	"os/exec"
	"testing"

	"github.com/nodemesh/nodemesh/datapath/testbed"
)

// steerWithTPROXY sends TCP connections to dst in the node namespace to
// the proxy listener on port with iptables TPROXY, the datapath's
// fallback mode.
func steerWithTPROXY(t *testing.T, node *testbed.Namespace, dst string, port int) {
	t.Helper()
	if _, err := exec.LookPath("iptables"); err != nil {
		t.Fatal("needs iptables: install the test tools with `make deps` (as root)")
	}
	ctx := context.Background()
	for _, args := range [][]string{
		{"ip", "rule", "add", "fwmark", "0x1/0x1", "lookup", "100"},
		{"ip", "route", "add", "local", "0.0.0.0/0", "dev", "lo", "table", "100"},
		{"iptables", "-t", "mangle", "-A", "PREROUTING", "-p", "tcp", "-d", dst, "--dport", "80",
			"-j", "TPROXY", "--on-port", fmt.Sprint(port), "--tproxy-mark", "0x1/0x1"},
	} {
		if _, err := node.Run(ctx, args[0], args[1:]...); err != nil {
			t.Fatal(err)
		}
	}
}

// TestPolicyStarWarsThroughProxy runs the Star Wars L7 policy with the
// agent and the proxy alone, without the eBPF datapath: iptables TPROXY
// steers the deathstar's port 80 to the ingress policy listener. The proxy
// enforces the rule's peers itself: the alliance, which only the datapath
// would stop from connecting, is answered 403 by RBAC.
func TestPolicyStarWarsThroughProxy(t *testing.T) {
	n := newPolicyNode(t, 3, false)
	deathstar, tiefighter, xwing := n.bed.Workloads[0], n.bed.Workloads[1], n.bed.Workloads[2]
	serveHTTP(t, deathstar, 80, deathstarHandler())
	steerWithTPROXY(t, n.bed.Node, deathstar.IPv4.String(), int(policyPorts.IngressHTTP))
	n.apply(starWarsPods(n) + rule1L7)
	url := fmt.Sprintf("http://%s/v1/", deathstar.IPv4)
	if code, body := request(t, tiefighter, "POST", url+"request-landing"); code != 200 || body != "Ship landed\n" {
		t.Fatalf("tiefighter landing: %d %q", code, body)
	}
	if code, body := request(t, tiefighter, "PUT", url+"exhaust-port"); code != 403 || body != "Access denied\r\n" {
		t.Fatalf("tiefighter PUT: %d %q", code, body)
	}
	if code, body := request(t, xwing, "POST", url+"request-landing"); code != 403 || body != "Access denied\r\n" {
		t.Fatalf("xwing landing: %d %q, want 403 from the proxy", code, body)
	}
}
