package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nodemesh/nodemesh/datapath/testbed"
	"github.com/nodemesh/nodemesh/mesh/policy"
)

// TestPolicyEgressDNSEveryName: the kube-dns rule of an egress lockdown
// (rules.dns matchPattern "*" on 53/UDP) is enforced as the L4 allow of
// 53/UDP toward its peer: the client's datagrams reach the DNS workload's
// port 53 and nothing else of its egress passes — not the same workload's
// port 54, not port 53 of another workload, not TCP. The policy is
// Enforced with Reason DNSEnforcedAtL4.
func TestPolicyEgressDNSEveryName(t *testing.T) {
	n := startPolicyNode(t, 3)
	client, dns, other := n.bed.Workloads[0], n.bed.Workloads[1], n.bed.Workloads[2]
	serveUDPEcho(t, dns, 53)
	serveUDPEcho(t, dns, 54)
	serveUDPEcho(t, other, 53)
	serveHTTP(t, dns, 80, http.NotFoundHandler())
	pods := pod("client", client, map[string]string{"app": "client"}) +
		pod("coredns", dns, map[string]string{"k8s-app": "kube-dns"}) +
		pod("other", other, map[string]string{"app": "other"})
	dst := func(w *testbed.Workload, port int) string { return fmt.Sprintf("%s:%d", w.IPv4, port) }

	// Without a policy every server answers: the negative checks below
	// fail for the policy, not for a missing server.
	n.apply(pods)
	for _, to := range []string{dst(dns, 53), dst(dns, 54), dst(other, 53)} {
		udpAnswered(t, client, to)
	}

	st := n.apply(pods + `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: client-dns}
spec:
  endpointSelector: {matchLabels: {app: client}}
  egress:
  - toEndpoints: [{matchLabels: {k8s-app: kube-dns}}]
    toPorts:
    - ports: [{port: "53", protocol: UDP}]
      rules:
        dns: [{matchPattern: "*"}]
`)
	ps := st.Policy.Policies[0]
	if ps.Name != "client-dns" || ps.Reason != policy.ReasonDNSEnforcedAtL4 || !strings.Contains(ps.Message, "spec.egress[0].toPorts[0].rules.dns") {
		t.Fatalf("policy status %+v", ps)
	}
	udpAnswered(t, client, dst(dns, 53))
	for _, to := range []string{dst(dns, 54), dst(other, 53)} {
		udpDropped(t, client, to)
	}
	cannotConnect(t, client, dst(dns, 80))
}

// serveUDPEcho answers every datagram to port in w with the same bytes.
func serveUDPEcho(t *testing.T, w *testbed.Workload, port int) {
	t.Helper()
	var pc net.PacketConn
	if err := w.Do(func() (err error) { pc, err = net.ListenPacket("udp4", fmt.Sprintf(":%d", port)); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 512)
		for {
			k, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(buf[:k], from)
		}
	}()
}

// udpExchange sends a datagram from w to addr every 100 ms until an
// answer comes or wait passes; it reports whether one came.
func udpExchange(t *testing.T, w *testbed.Workload, addr string, wait time.Duration) bool {
	t.Helper()
	c, err := w.Dial(context.Background(), "udp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	msg := []byte("query " + addr)
	buf := make([]byte, 512)
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		if _, err := c.Write(msg); err != nil {
			t.Fatalf("sending to %s: %v", addr, err)
		}
		c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		k, err := c.Read(buf)
		switch {
		case err == nil && string(buf[:k]) == string(msg):
			return true
		case err == nil:
			t.Fatalf("%s answered %q", addr, buf[:k])
		case errors.Is(err, os.ErrDeadlineExceeded):
		default:
			// An ICMP error (port unreachable) reads as a refused
			// connection; the policy drops silently.
			t.Fatalf("reading from %s: %v", addr, err)
		}
	}
	return false
}

// udpAnswered: w's datagrams to addr get an answer (within a generous
// deadline, for a loaded machine).
func udpAnswered(t *testing.T, w *testbed.Workload, addr string) {
	t.Helper()
	if !udpExchange(t, w, addr, 10*time.Second) {
		t.Fatalf("%s: no answer from %s", w.IPv4, addr)
	}
}

// udpDropped: none of w's datagrams to addr is answered for 2 s.
func udpDropped(t *testing.T, w *testbed.Workload, addr string) {
	t.Helper()
	if udpExchange(t, w, addr, 2*time.Second) {
		t.Fatalf("%s got an answer from %s; the datapath should drop it", w.IPv4, addr)
	}
}
