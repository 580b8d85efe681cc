package network

import (
	"context"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/nodemesh/nodemesh/datapath/testbed"
)

func echoOn(t *testing.T, ns *testbed.Namespace, addr string) {
	t.Helper()
	l, err := ns.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
}

func roundTrip(t *testing.T, from *testbed.Namespace, to netip.AddrPort) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	c, err := from.Dial(ctx, "tcp", to.String())
	if err != nil {
		t.Fatalf("%s -> %s: %v", from.Name, to, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("%s -> %s: read %q, %v", from.Name, to, buf, err)
	}
}

// TestNetworkRoutesPodsAcrossNodes builds two nodes with a Pod each and
// checks that Pods reach each other, their own and the other node, and
// the control plane, by native routing; that addresses come from each
// node's Pod CIDR; and that Close leaves no namespace and no /etc/netns
// file behind.
func TestNetworkRoutesPodsAcrossNodes(t *testing.T) {
	testbed.RequireRoot(t)
	n, err := Create(Config{Nodes: 2, ResolvConf: []byte("nameserver 10.96.0.10\n")})
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			n.Close()
		}
	})
	a, err := n.Nodes[0].AddPod("uid-a", []byte("nameserver 10.96.0.10\nsearch default.svc.cluster.local\n"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := n.Nodes[1].AddPod("uid-b", nil)
	if err != nil {
		t.Fatal(err)
	}
	if !PodCIDR(1).Contains(a.IP) || !PodCIDR(2).Contains(b.IP) || a.IP == n.Nodes[0].Gateway {
		t.Fatalf("pod addresses %s, %s are not from their nodes' CIDRs", a.IP, b.IP)
	}
	if a.Name != PodNamespace(n.ID, "uid-a") {
		t.Fatalf("pod namespace %s", a.Name)
	}
	if got, err := os.ReadFile(filepath.Join(a.EtcDir(), "resolv.conf")); err != nil || len(got) == 0 {
		t.Fatalf("resolv.conf of pod a: %q, %v", got, err)
	}
	echoOn(t, a.Namespace, ":7000")
	echoOn(t, b.Namespace, ":7000")
	echoOn(t, n.ControlPlane, ":7000")
	echoOn(t, n.Nodes[1].Namespace, ":7001")
	roundTrip(t, a.Namespace, netip.AddrPortFrom(b.IP, 7000))
	roundTrip(t, b.Namespace, netip.AddrPortFrom(a.IP, 7000))
	roundTrip(t, a.Namespace, netip.AddrPortFrom(ControlPlaneIP, 7000))
	roundTrip(t, a.Namespace, netip.AddrPortFrom(n.Nodes[1].IP, 7001))
	roundTrip(t, n.ControlPlane, netip.AddrPortFrom(b.IP, 7000))

	// Addresses are reused once a Pod is gone; its namespace is not.
	if err := n.Nodes[1].RemovePod(b); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(b.Path); !os.IsNotExist(err) {
		t.Fatalf("removed pod's namespace: %v", err)
	}
	c, err := n.Nodes[1].AddPod("uid-c", nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.IP != b.IP {
		t.Fatalf("address %s not reused, got %s", b.IP, c.IP)
	}
	// A process that outlives its Pod's runner is stopped by Close.
	sleeper := c.Command(context.Background(), "sleep", "1000")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { sleeper.Wait(); close(done) }()
	// `ip netns exec` enters the namespace after it starts; until then
	// the process is not in the Pod's namespace and no Close could find it.
	waitInNamespace(t, c.Namespace, sleeper.Process.Pid)

	names := []string{n.ControlPlane.Path, n.Nodes[0].Path, n.Nodes[1].Path, a.Path, c.Path, a.EtcDir(), n.Nodes[0].EtcDir()}
	closed = true
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("a process in a pod namespace survived Close")
	}
	for _, p := range names {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s survived Close: %v", p, err)
		}
	}
	if _, err := net.InterfaceByName("lab0"); err == nil {
		t.Error("lab0 exists in the test's own namespace")
	}
}

func TestAddressPlan(t *testing.T) {
	if NodeIP(1).String() != "10.250.0.11" || PodCIDR(2).String() != "10.244.2.0/24" || NodeName(3) != "node-3" {
		t.Fatal(NodeIP(1), PodCIDR(2), NodeName(3))
	}
	if lastAddr(PodCIDR(1)).String() != "10.244.1.255" {
		t.Fatal(lastAddr(PodCIDR(1)))
	}
	if len(hostIf("0b7c9d7e-2b34-4c1f-9a0e-6c1e5f3a2d11")) > 15 {
		t.Fatal("interface name too long")
	}
	if _, err := Create(Config{Nodes: MaxNodes + 1}); err == nil {
		t.Fatal("too many nodes accepted")
	}
}

// waitInNamespace waits until process pid runs in namespace ns.
func waitInNamespace(t *testing.T, ns *testbed.Namespace, pid int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		pids, err := ns.Pids()
		if err != nil {
			t.Fatal(err)
		}
		if slices.Contains(pids, pid) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("process %d never entered namespace %s", pid, ns.Name)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
