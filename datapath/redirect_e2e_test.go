package datapath_test

import (
	"net/netip"
	"testing"

	"github.com/nodemesh/nodemesh/datapath/model"
	"github.com/nodemesh/nodemesh/datapath/testbed"
)

// identityOf maps a client address to its identity, as the node proxy
// learns it from the control plane: workloads by address, anything else
// is the world.
func (n *node) identityOf(a netip.Addr) uint32 {
	for _, w := range n.bed.Workloads {
		if a == w.IPv4 || a == w.IPv6 {
			return uint32(ident(w.Index))
		}
	}
	return uint32(model.IdentityWorld)
}

func (n *node) startProxy(t *testing.T, originalSource bool) *testbed.Proxy {
	t.Helper()
	p, err := n.bed.StartProxy(testbed.ProxyConfig{Port: proxyPort, Listeners: 2, Identity: n.identityOf, OriginalSource: originalSource})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func redirectRow(subject, remote model.Identity, dir model.Direction) model.PolicyEntry {
	return model.PolicyEntry{Subject: subject, Remote: remote, Direction: dir, Proto: model.ProtoTCP, Port: appPort, Verdict: model.Redirect, ProxyPort: proxyPort}
}

// checkProxied asserts that exactly the client's connection reached the
// proxy, with the original destination intact, and that the proxy's own
// upstream connection went to the workload instead of looping back.
func checkProxied(t *testing.T, p *testbed.Proxy, c *testbed.Conn, client netip.Addr, to netip.AddrPort, wantPeer netip.Addr) {
	t.Helper()
	var rec *testbed.Proxied
	for _, r := range p.Seen() {
		if r.Client.Addr() == client && r.Client.Port() == uint16(c.LocalAddr().(interface{ AddrPort() netip.AddrPort }).AddrPort().Port()) {
			r := r
			rec = &r
		}
	}
	if rec == nil {
		t.Fatalf("the proxy never saw the connection from %v (saw %+v)", c.LocalAddr(), p.Seen())
	}
	if rec.OriginalDst != to {
		t.Fatalf("proxy read original destination %v, want %v", rec.OriginalDst, to)
	}
	if !rec.UpstreamDialed {
		t.Fatal("proxy could not connect upstream")
	}
	if c.Peer != rec.UpstreamLocal {
		t.Fatalf("server saw %v, but the proxy's upstream was %v", c.Peer, rec.UpstreamLocal)
	}
	if c.Peer.Addr() != wantPeer {
		t.Fatalf("server saw source %v, want %v", c.Peer.Addr(), wantPeer)
	}
}

func TestL7RedirectReachesTheProxyWithTheOriginalDestination(t *testing.T) {
	type scenario struct {
		name           string
		policy         func(n *node) model.Policy
		client         func(n *node) *testbed.Workload
		originalSource bool
		// hairpin: no from_netdev on the uplink, so to_workload loops the
		// packets back to the veth's ingress hook; that needs early
		// demultiplexing off (see datapath doc).
		hairpin bool
	}
	local := func(n *node) *testbed.Workload { return n.w(0) }
	for _, sc := range []scenario{
		{
			name: "ingress rule, local client",
			policy: func(n *node) model.Policy {
				return enforce(ingressOnly(ident(1)), redirectRow(ident(1), ident(0), model.Ingress))
			},
			client: local,
		},
		{
			name: "egress rule",
			policy: func(n *node) model.Policy {
				return enforce(map[model.Identity]model.Enforcement{ident(0): model.EnforceEgress},
					redirectRow(ident(0), model.IdentityAny, model.Egress))
			},
			client: local,
		},
		{
			name: "ingress rule, client outside the node",
			policy: func(n *node) model.Policy {
				return enforce(ingressOnly(ident(1)), redirectRow(ident(1), model.IdentityWorld, model.Ingress))
			},
			client: func(n *node) *testbed.Workload { return n.bed.External },
		},
		{
			name: "ingress rule, client outside the node, hairpin on the veth",
			policy: func(n *node) model.Policy {
				return enforce(ingressOnly(ident(1)), redirectRow(ident(1), model.IdentityWorld, model.Ingress))
			},
			client:  func(n *node) *testbed.Workload { return n.bed.External },
			hairpin: true,
		},
		{
			name: "ingress rule, upstream keeps the client's address",
			policy: func(n *node) model.Policy {
				return enforce(ingressOnly(ident(1)), redirectRow(ident(1), ident(0), model.Ingress))
			},
			client:         local,
			originalSource: true,
		},
	} {
		t.Run(sc.name, func(t *testing.T) {
			n := newNode(t, 2, true)
			if sc.hairpin {
				if err := n.dp.SyncNetdevs(nil); err != nil {
					t.Fatal(err)
				}
				if err := n.bed.Node.Sysctl("net.ipv4.ip_early_demux", "0"); err != nil {
					t.Fatal(err)
				}
			}
			n.policy(sc.policy(n))
			p := n.startProxy(t, sc.originalSource)
			client := sc.client(n)
			conns := 0
			for i, to := range n.addrs(1, appPort) {
				src := []netip.Addr{client.IPv4, client.IPv6}[i]
				c := mustConnect(t, client.Namespace, to)
				conns++
				wantPeer := []netip.Addr{testbed.NodeIPv4, testbed.NodeIPv6}[i]
				if sc.originalSource {
					wantPeer = src
				}
				checkProxied(t, p, c, src, to, wantPeer)
				if err := c.Echo([]byte("second message, same connection"), 2e9); err != nil {
					t.Fatalf("established redirected connection: %v", err)
				}
			}
			if got := p.Accepted(); got != int64(conns) {
				t.Fatalf("proxy accepted %d connections for %d client connections: its upstream was looped back", got, conns)
			}
			if n.counter(model.ReasonRedirected, model.Ingress)+n.counter(model.ReasonRedirected, model.Egress) == 0 {
				t.Fatal("redirected packets were not counted")
			}
		})
	}
}

// Several SO_REUSEPORT listeners share the proxy port; the datapath
// assigns one and the kernel spreads connections over the group, so every
// core's accept loop gets work.
func TestRedirectSpreadsOverReusePortListeners(t *testing.T) {
	n := newNode(t, 2, false)
	n.policy(enforce(ingressOnly(ident(1)), redirectRow(ident(1), ident(0), model.Ingress)))
	p := n.startProxy(t, false)
	to := n.addrs(1, appPort)[0]
	for range 24 {
		c := mustConnect(t, n.w(0).Namespace, to)
		c.Close()
	}
	used := map[int]int{}
	for _, r := range p.Seen() {
		used[r.Listener]++
	}
	if len(used) < 2 {
		t.Fatalf("24 redirected connections all landed on one listener of the group: %v", used)
	}
}

func TestRedirectWithoutProxyDropsInsteadOfBypassing(t *testing.T) {
	n := newNode(t, 2, false)
	n.policy(enforce(ingressOnly(ident(1)), redirectRow(ident(1), ident(0), model.Ingress)))
	for _, to := range n.addrs(1, appPort) {
		mustNotConnect(t, n.w(0).Namespace, to)
	}
	if n.counter(model.DropProxyUnavailable, model.Ingress) == 0 {
		t.Fatal("drops for a missing proxy were not counted as proxy-unavailable")
	}
}

// An egress rule sends a workload's connection to a server outside the
// node through the proxy, which keeps the workload's address as source:
// the server's answers come back through the uplink addressed to the
// workload and must reach the proxy's upstream socket instead.
func TestOriginalSourceUpstreamToOutsideTheNode(t *testing.T) {
	n := newNode(t, 1, true)
	ext := n.bed.External
	s, err := ext.StartServer(appPort)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	n.policy(enforce(map[model.Identity]model.Enforcement{ident(0): model.EnforceEgress},
		redirectRow(ident(0), model.IdentityAny, model.Egress)))
	p := n.startProxy(t, true)
	for i, to := range []netip.AddrPort{netip.AddrPortFrom(ext.IPv4, appPort), netip.AddrPortFrom(ext.IPv6, appPort)} {
		src := []netip.Addr{n.w(0).IPv4, n.w(0).IPv6}[i]
		c := mustConnect(t, n.w(0).Namespace, to)
		checkProxied(t, p, c, src, to, src)
		if err := c.Echo([]byte("a longer exchange on the same connection"), 2e9); err != nil {
			t.Fatal(err)
		}
	}
	if p.Accepted() != 2 {
		t.Fatalf("proxy accepted %d connections, want 2", p.Accepted())
	}
}
