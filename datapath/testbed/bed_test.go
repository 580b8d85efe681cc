package testbed

import (
	"context"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// echoOnce accepts connections and answers each with what it read.
func serveEcho(t *testing.T, l net.Listener) {
	t.Helper()
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

func roundTrip(t *testing.T, from *Namespace, to netip.AddrPort) {
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

func TestBedConnectsEverything(t *testing.T) {
	b := New(t, Config{Workloads: 2, External: true})
	for _, w := range b.Workloads {
		for _, addr := range []string{"0.0.0.0:7000", "[::]:7000"} {
			network := "tcp4"
			if addr[0] == '[' {
				network = "tcp6"
			}
			l, err := w.Listen(network, addr)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { l.Close() })
			serveEcho(t, l)
		}
	}
	w0, w1 := b.Workloads[0], b.Workloads[1]
	for _, ip := range []netip.Addr{w1.IPv4, w1.IPv6} {
		roundTrip(t, w0.Namespace, netip.AddrPortFrom(ip, 7000))
		roundTrip(t, b.Node, netip.AddrPortFrom(ip, 7000))
		roundTrip(t, b.External.Namespace, netip.AddrPortFrom(ip, 7000))
	}
}

func TestBedCleansUpAndSweeps(t *testing.T) {
	RequireRoot(t)
	b, err := Create(Config{Workloads: 1})
	if err != nil {
		t.Fatal(err)
	}
	names := []string{b.Node.Name, b.Workloads[0].Name}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if _, err := os.Stat(filepath.Join(netnsDir, n)); !os.IsNotExist(err) {
			t.Fatalf("namespace %s still exists after Close: %v", n, err)
		}
	}

	// A leftover of a process that no longer exists is swept; one of a
	// live process (this one) is not.
	dead := &Namespace{Name: Prefix + "-999999999-1-node"}
	if ns, err := NewNamespace(dead.Name); err != nil {
		t.Fatal(err)
	} else {
		dead = ns
	}
	live, err := NewNamespace(NewID() + "-node")
	if err != nil {
		t.Fatal(err)
	}
	defer live.Delete()
	if err := Sweep(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dead.Path); !os.IsNotExist(err) {
		dead.Delete()
		t.Fatalf("Sweep left the namespace of a dead process: %v", err)
	}
	if _, err := os.Stat(live.Path); err != nil {
		t.Fatalf("Sweep removed a live process's namespace: %v", err)
	}
}

func TestOwnerPID(t *testing.T) {
	for name, want := range map[string]int{"nmtb-123-4-node": 123, "nmtb-77-bpffs-x": 77, "other-1-2": 0, "nmtb-x-1": 0} {
		got, ok := ownerPID(name)
		if got != want || ok != (want != 0) {
			t.Errorf("ownerPID(%q) = %d, %v", name, got, ok)
		}
	}
}

func TestAliveTreatsZombiesAsGone(t *testing.T) {
	if !alive(os.Getpid()) {
		t.Fatal("the test's own process is not alive")
	}
	cmd := exec.Command("true")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	// Until Wait reaps it, the exited child is a zombie.
	deadline := time.Now().Add(5 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			t.Fatal("an exited, unreaped child still counts as alive")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cmd.Wait()
	if alive(pid) {
		t.Fatal("a reaped child counts as alive")
	}
}

// TestSweepStopsLeftoverProcesses: a crashed run leaves processes in its
// namespaces (what its children started) and /etc/netns files; the sweep
// kills those processes and removes the files, and Delete removes a live
// namespace's files too.
func TestSweepStopsLeftoverProcesses(t *testing.T) {
	RequireRoot(t)
	name := Prefix + "-999999998-1-lab"
	ns, err := NewNamespace(name)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Delete()
	if err := os.MkdirAll(ns.EtcDir(), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ns.EtcDir(), "resolv.conf"), []byte("nameserver 10.96.0.10\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	orphanEtc := filepath.Join(etcNetnsDir, Prefix+"-999999998-2-gone")
	if err := os.MkdirAll(orphanEtc, 0o755); err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(orphanEtc)
	cmd := ns.Command(context.Background(), "sleep", "1000")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		pids, err := ns.Pids()
		if err != nil {
			t.Fatal(err)
		}
		if len(pids) == 1 && pids[0] == cmd.Process.Pid {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Pids = %v, want [%d]", pids, cmd.Process.Pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := Sweep(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		t.Fatal("the process in the stale namespace survived the sweep")
	}
	for _, p := range []string{ns.Path, ns.EtcDir(), orphanEtc} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s survived the sweep: %v", p, err)
		}
	}
}
