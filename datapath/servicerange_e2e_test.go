package datapath_test

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/nodemesh/nodemesh/datapath"
	"github.com/nodemesh/nodemesh/datapath/model"
	"github.com/nodemesh/nodemesh/datapath/testbed"
)

// TestServiceAddressesFailClosed: under egress enforcement a new flow
// that still names a Service address when it leaves the Pod is dropped,
// not judged as the address it names, even when no row of the Service
// table matches it exactly. The node namespace plays kube-proxy with
// nftables DNAT rules that send to workload 1 (whose identity the
// policy does not allow) what a Pod addresses to: an address of the
// Service range no Service owns, a Service deleted from the table while
// the node's NAT still forwards it, and a NodePort on the node's address.
// The policy allows world and host on those ports, so judged as the
// addresses they name each flow would be let through to a Pod no rule
// admits.
func TestServiceAddressesFailClosed(t *testing.T) {
	n := newNode(t, 2, false)
	cg := podCgroup(t, n.bed.ID+"-pods")
	if err := n.dp.AttachCgroup(cg); err != nil {
		t.Fatal(err)
	}
	w := n.bed.Workloads
	unowned := netip.MustParseAddrPort("10.96.9.9:8080")
	stale := netip.MustParseAddrPort("10.96.7.1:80")
	nodePort := netip.AddrPortFrom(testbed.NodeIPv4, 30080)
	target := netip.AddrPortFrom(w[1].IPv4, appPort)
	rules := fmt.Sprintf(`table ip kubeproxy {
	chain prerouting {
		type nat hook prerouting priority dstnat; policy accept;
		ip daddr %s tcp dport %d dnat to %s
		ip daddr %s tcp dport %d dnat to %s
		ip daddr %s tcp dport %d dnat to %s
	}
}
`, unowned.Addr(), unowned.Port(), target, stale.Addr(), stale.Port(), target, nodePort.Addr(), nodePort.Port(), target)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := n.bed.Node.Command(ctx, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(rules)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft: %v\n%s", err, out)
	}

	reaches := func(what string, addr netip.AddrPort) {
		t.Helper()
		line := client(t, w[0].Namespace, cg, "tcp", addr)
		if want := fmt.Sprintf("peer=%s server-saw=%s:", addr, w[0].IPv4); !strings.HasPrefix(line, want) {
			t.Fatalf("%s: got %q, want it to start with %q", what, line, want)
		}
	}
	refused := func(what string, addr netip.AddrPort) {
		t.Helper()
		if line := client(t, w[0].Namespace, cg, "tcp", addr); !strings.HasPrefix(line, "error=") {
			t.Fatalf("%s under egress enforcement: %q, want the connection dropped", what, line)
		}
	}
	drops := func() uint64 {
		t.Helper()
		c, err := n.dp.Counters()
		if err != nil {
			t.Fatal(err)
		}
		return c[datapath.CounterKey{Reason: model.DropServiceFrontend, Direction: model.Egress}].Packets
	}

	ranges := []netip.Prefix{netip.MustParsePrefix("10.96.0.0/16"), netip.MustParsePrefix("fd00:96::/112")}
	if err := n.dp.SyncServiceRanges(ranges); err != nil {
		t.Fatal(err)
	}
	if got, err := n.dp.ServiceRanges(); err != nil || len(got) != len(ranges) {
		t.Fatalf("service ranges read back: %v %v", got, err)
	}
	svcs := []model.Service{
		{Frontend: stale.Addr(), Port: stale.Port(), Proto: model.ProtoTCP, Backends: []model.Backend{{Addr: target.Addr(), Port: target.Port()}}},
		{Frontend: model.NodePortFrontend, Port: nodePort.Port(), Proto: model.ProtoTCP},
	}
	if err := n.dp.SyncServices(svcs); err != nil {
		t.Fatal(err)
	}

	// Without enforcement the node's NAT forwards all three (so the
	// refusals below are the datapath's) and the Service translates.
	reaches("unowned Service address", unowned)
	reaches("NodePort", nodePort)
	reaches("Service", stale)

	n.policy(model.Policy{
		Enforce: map[model.Identity]model.Enforcement{ident(0): model.EnforceEgress},
		Entries: []model.PolicyEntry{
			{Subject: ident(0), Remote: model.IdentityWorld, Direction: model.Egress, Proto: model.ProtoTCP, Port: unowned.Port(), Verdict: model.Allow},
			{Subject: ident(0), Remote: model.IdentityWorld, Direction: model.Egress, Proto: model.ProtoTCP, Port: stale.Port(), Verdict: model.Allow},
			{Subject: ident(0), Remote: model.IdentityHost, Direction: model.Egress, Proto: model.ProtoTCP, Port: nodePort.Port(), Verdict: model.Allow},
		},
	})
	if line := client(t, w[0].Namespace, cg, "tcp", target); !strings.HasPrefix(line, "error=") {
		t.Fatalf("workload 1 directly: %q, want the policy to drop it", line)
	}

	before := drops()
	refused("an address of the Service range no Service owns", unowned)
	refused("a NodePort on the node's address", nodePort)
	// The Service is deleted; the node's NAT has not caught up.
	if err := n.dp.SyncServices([]model.Service{svcs[1]}); err != nil {
		t.Fatal(err)
	}
	refused("a deleted Service's address", stale)
	if got := drops(); got < before+3 {
		t.Fatalf("service-frontend drops went from %d to %d, want at least 3 more", before, got)
	}

	// A ClusterIP row alone (a cluster whose ServiceCIDRs are unknown)
	// covers every port of its address.
	if err := n.dp.SyncServiceRanges([]netip.Prefix{netip.PrefixFrom(unowned.Addr(), 32)}); err != nil {
		t.Fatal(err)
	}
	refused("an address the ranges hold as a ClusterIP", unowned)
	if err := n.dp.SyncServiceRanges(nil); err != nil {
		t.Fatal(err)
	}
	reaches("the same address once no range holds it (judged as world)", unowned)
}
