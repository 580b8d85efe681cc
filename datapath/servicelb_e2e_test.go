package datapath_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nodemesh/nodemesh/datapath"
	"github.com/nodemesh/nodemesh/datapath/cgroup2"
	"github.com/nodemesh/nodemesh/datapath/model"
	"github.com/nodemesh/nodemesh/datapath/testbed"
	"golang.org/x/sys/unix"
)

// helperEnv makes the test binary act as a client process (see
// TestSocketLBClientProcess): the socket hooks only see processes started
// inside the cgroup, so the client cannot be a goroutine of the test.
const helperEnv = "NODEMESH_SOCKLB_CLIENT"

// TestSocketLBClientProcess is not a test: run with helperEnv set to
// "tcp ADDR" or "udp ADDR..." it connects once (or sends a datagram to
// each ADDR from one socket) and prints what its socket reports, then
// exits.
func TestSocketLBClientProcess(t *testing.T) {
	spec := os.Getenv(helperEnv)
	if spec == "" {
		t.Skip("helper process for TestSocketLB")
	}
	mode, addr, _ := strings.Cut(spec, " ")
	out := func(format string, args ...any) { fmt.Fprintf(os.Stdout, format+"\n", args...) }
	switch mode {
	case "tcp":
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err != nil {
			out("error=%v", err)
			os.Exit(0)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(3 * time.Second))
		line, err := bufio.NewReader(c).ReadString('\n')
		out("peer=%s server-saw=%s err=%v", c.RemoteAddr(), strings.TrimSpace(line), err)
	case "tcp6mapped":
		// An IPv4 address through an IPv6 socket (as a dual-stack
		// program opens one): the connect6 hook sees ::ffff:a.b.c.d.
		ap := netip.MustParseAddrPort(addr)
		fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			out("error=%v", err)
			os.Exit(0)
		}
		if err := unix.Connect(fd, &unix.SockaddrInet6{Addr: netip.AddrFrom16(ap.Addr().As16()).As16(), Port: int(ap.Port())}); err != nil {
			out("error=%v", err)
			os.Exit(0)
		}
		peer, err := unix.Getpeername(fd)
		if err != nil {
			out("error=%v", err)
			os.Exit(0)
		}
		f := os.NewFile(uintptr(fd), "conn")
		c, err := net.FileConn(f)
		f.Close()
		if err != nil {
			out("error=%v", err)
			os.Exit(0)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(3 * time.Second))
		line, err := bufio.NewReader(c).ReadString('\n')
		p6, _ := peer.(*unix.SockaddrInet6)
		out("peer=%s server-saw=%s err=%v", netip.AddrPortFrom(netip.AddrFrom16(p6.Addr).Unmap(), uint16(p6.Port)), strings.TrimSpace(line), err)
	case "udp":
		family := "udp4"
		if strings.HasPrefix(addr, "[") {
			family = "udp6"
		}
		c, err := net.ListenPacket(family, ":0")
		if err != nil {
			out("error=%v", err)
			os.Exit(0)
		}
		defer c.Close()
		// One socket, a datagram to each address in turn (one line each).
		for _, a := range strings.Fields(addr) {
			dst, _ := net.ResolveUDPAddr(family, a)
			if _, err := c.WriteTo([]byte("ping"), dst); err != nil {
				out("error=%v", err)
				os.Exit(0)
			}
			_ = c.SetDeadline(time.Now().Add(3 * time.Second))
			buf := make([]byte, 64)
			n, from, err := c.ReadFrom(buf)
			out("from=%v data=%s err=%v", from, buf[:n], err)
		}
	}
	os.Exit(0)
}

// podCgroup makes a cgroup v2 directory for the test's "Pods" (removed at
// the end), or skips when the machine has no cgroup v2 hierarchy.
func podCgroup(t *testing.T, name string) string {
	t.Helper()
	mount, err := cgroup2.Mount()
	if err != nil {
		t.Fatal(err)
	}
	if mount == "" {
		t.Skip("no cgroup v2 hierarchy mounted")
	}
	dir := filepath.Join(mount, name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		deadline := time.Now().Add(10 * time.Second)
		for {
			err := syscall.Rmdir(dir)
			if err == nil || !errors.Is(err, syscall.EBUSY) || time.Now().After(deadline) {
				if err != nil {
					t.Errorf("removing cgroup %s: %v", dir, err)
				}
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
	return dir
}

// client runs the helper in ns, started inside cgroup (or outside any
// Pod cgroup when cgroup is ""), and returns its output line.
func client(t *testing.T, ns *testbed.Namespace, cgroup, mode string, addr netip.AddrPort) string {
	t.Helper()
	return clientLines(t, ns, cgroup, mode, addr.String())[0]
}

// clientLines runs the helper process with spec ("ADDR", or several for
// udp) and returns its result lines.
func clientLines(t *testing.T, ns *testbed.Namespace, cgroup, mode, spec string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", ns.Name, os.Args[0], "-test.run=^TestSocketLBClientProcess$")
	cmd.Env = append(os.Environ(), helperEnv+"="+mode+" "+spec)
	if cgroup != "" {
		f, err := os.Open(cgroup)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(f.Fd())}
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("client %s %s: %v\n%s", mode, spec, err, out)
	}
	var lines []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "peer=") || strings.HasPrefix(l, "from=") || strings.HasPrefix(l, "error=") {
			lines = append(lines, l)
		}
	}
	if len(lines) == 0 {
		t.Fatalf("client %s %s printed no result:\n%s", mode, spec, out)
	}
	return lines
}

// TestSocketLB runs Pods' connects to Service frontends through the
// socket programs attached to their cgroup: a TCP connect reaches one of
// the frontend's backends (every backend in turn) while getpeername still
// reports the frontend; a datagram to a UDP frontend is answered from the
// frontend's address; a frontend without backends refuses the connect.
// Under egress enforcement the translated connection is judged by the
// backend's identity (allowed to one Service's Pod, dropped to another's),
// and a connection that bypassed translation (a process outside the Pod
// cgroup) is dropped as still addressed to a frontend, never judged as
// the ClusterIP.
func TestSocketLB(t *testing.T) {
	n := newNode(t, 3, false)
	cg := podCgroup(t, n.bed.ID+"-pods")
	if dir, err := datapath.ResolveCgroup("/" + n.bed.ID + "-pods"); err != nil || dir != cg {
		t.Fatalf("resolving the cgroup path: %q, %v; want %q", dir, err, cg)
	}
	if err := n.dp.AttachCgroup(cg); err != nil {
		t.Fatal(err)
	}
	const backendPort = 7070
	w := n.bed.Workloads
	servers := make([]*testbed.Server, len(w))
	for i := 1; i < len(w); i++ {
		s, err := w[i].StartServer(backendPort)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		servers[i] = s
	}
	var udp net.PacketConn
	if err := w[1].Do(func() (err error) { udp, err = net.ListenPacket("udp", "[::]:5353"); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { udp.Close() })
	go func() {
		buf := make([]byte, 64)
		for {
			n, from, err := udp.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = udp.WriteTo(append([]byte("pong:"), buf[:n]...), from)
		}
	}()

	both := netip.MustParseAddrPort("10.96.7.1:80")
	toW1 := netip.MustParseAddrPort("10.96.7.2:80")
	toW2 := netip.MustParseAddrPort("10.96.7.3:80")
	dns := netip.MustParseAddrPort("10.96.7.4:53")
	empty := netip.MustParseAddrPort("10.96.7.5:80")
	dns2 := netip.MustParseAddrPort("10.96.7.6:53") // same backend as dns
	v6 := netip.MustParseAddrPort("[fd00:96::1]:80")
	dns6 := netip.MustParseAddrPort("[fd00:96::2]:53")
	be := func(i int, port uint16) model.Backend { return model.Backend{Addr: w[i].IPv4, Port: port} }
	svcs := []model.Service{
		{Frontend: both.Addr(), Port: 80, Proto: model.ProtoTCP, Backends: []model.Backend{be(1, backendPort), be(2, backendPort)}},
		{Frontend: toW1.Addr(), Port: 80, Proto: model.ProtoTCP, Backends: []model.Backend{be(1, backendPort)}},
		{Frontend: toW2.Addr(), Port: 80, Proto: model.ProtoTCP, Backends: []model.Backend{be(2, backendPort)}},
		{Frontend: dns.Addr(), Port: 53, Proto: model.ProtoUDP, Backends: []model.Backend{be(1, 5353)}},
		{Frontend: dns2.Addr(), Port: 53, Proto: model.ProtoUDP, Backends: []model.Backend{be(1, 5353)}},
		{Frontend: empty.Addr(), Port: 80, Proto: model.ProtoTCP},
		{Frontend: v6.Addr(), Port: 80, Proto: model.ProtoTCP, Backends: []model.Backend{{Addr: w[1].IPv6, Port: backendPort}}},
		{Frontend: dns6.Addr(), Port: 53, Proto: model.ProtoUDP, Backends: []model.Backend{{Addr: w[1].IPv6, Port: 5353}}},
	}
	if err := n.dp.SyncServices(svcs); err != nil {
		t.Fatal(err)
	}
	got, err := n.dp.Services()
	if err != nil || len(got) != len(svcs) {
		t.Fatalf("services read back: %v %v", got, err)
	}

	wantPeer := func(line string, frontend netip.AddrPort) {
		t.Helper()
		want := fmt.Sprintf("peer=%s server-saw=%s:", frontend, w[0].IPv4)
		if !strings.HasPrefix(line, want) || !strings.HasSuffix(line, " err=<nil>") {
			t.Fatalf("got %q, want it to start with %q", line, want)
		}
	}
	for i := 0; i < 30 && (servers[1].Accepted() == 0 || servers[2].Accepted() == 0); i++ {
		wantPeer(client(t, w[0].Namespace, cg, "tcp", both), both)
	}
	if servers[1].Accepted() == 0 || servers[2].Accepted() == 0 {
		t.Fatalf("30 connects reached the backends %d and %d times; want both", servers[1].Accepted(), servers[2].Accepted())
	}
	if line := client(t, w[0].Namespace, cg, "udp", dns); line != fmt.Sprintf("from=%s data=pong:ping err=<nil>", dns) {
		t.Fatalf("UDP through a frontend: %q", line)
	}
	// One socket sending to two frontends of the same backend, then back:
	// each answer names the frontend its datagram was sent to.
	lines := clientLines(t, w[0].Namespace, cg, "udp", dns.String()+" "+dns2.String()+" "+dns.String())
	want := []string{
		fmt.Sprintf("from=%s data=pong:ping err=<nil>", dns),
		fmt.Sprintf("from=%s data=pong:ping err=<nil>", dns2),
		fmt.Sprintf("from=%s data=pong:ping err=<nil>", dns),
	}
	if !slices.Equal(lines, want) {
		t.Fatalf("UDP to two frontends of one backend from one socket:\n%q\nwant\n%q", lines, want)
	}
	if line := client(t, w[0].Namespace, cg, "udp", dns6); line != fmt.Sprintf("from=%s data=pong:ping err=<nil>", dns6) {
		t.Fatalf("UDP through an IPv6 frontend: %q", line)
	}
	// IPv6 sockets: an IPv6 frontend reaches its IPv6 backend, and an IPv4
	// frontend written v4-mapped reaches its IPv4 backend; both report the
	// frontend as the peer.
	if line, want := client(t, w[0].Namespace, cg, "tcp", v6), fmt.Sprintf("peer=%s server-saw=[%s]:", v6, w[0].IPv6); !strings.HasPrefix(line, want) || !strings.HasSuffix(line, " err=<nil>") {
		t.Fatalf("TCP through an IPv6 frontend: %q, want it to start with %q", line, want)
	}
	wantPeer(client(t, w[0].Namespace, cg, "tcp6mapped", toW1), toW1)
	if line := client(t, w[0].Namespace, cg, "tcp", empty); !strings.Contains(line, "operation not permitted") {
		t.Fatalf("frontend without backends: %q, want the connect refused", line)
	}

	// Egress policy: workload 0 may reach workload 1's identity on the
	// backend port, nothing else.
	pol := model.Policy{
		Enforce: map[model.Identity]model.Enforcement{ident(0): model.EnforceEgress},
		Entries: []model.PolicyEntry{{Subject: ident(0), Remote: ident(1), Direction: model.Egress, Proto: model.ProtoTCP, Port: backendPort, Verdict: model.Allow}},
	}
	if err := n.dp.SyncPolicy(pol); err != nil {
		t.Fatal(err)
	}
	before := servers[2].Accepted()
	wantPeer(client(t, w[0].Namespace, cg, "tcp", toW1), toW1)
	if line := client(t, w[0].Namespace, cg, "tcp", toW2); !strings.HasPrefix(line, "error=") {
		t.Fatalf("egress to a Pod the policy does not allow, through its frontend: %q", line)
	}
	if servers[2].Accepted() != before {
		t.Fatal("the denied backend accepted a connection")
	}
	drops := func(r model.Reason) uint64 {
		c, err := n.dp.Counters()
		if err != nil {
			t.Fatal(err)
		}
		return c[datapath.CounterKey{Reason: r, Direction: model.Egress}].Packets
	}
	if drops(model.DropPolicy) == 0 {
		t.Fatal("no egress policy drop counted")
	}
	// Outside the Pod cgroup nothing translates: the flow still names the
	// frontend and must not be judged as it.
	if line := client(t, w[0].Namespace, "", "tcp", toW1); !strings.HasPrefix(line, "error=") {
		t.Fatalf("untranslated connect to a frontend under egress enforcement: %q", line)
	}
	if drops(model.DropServiceFrontend) == 0 {
		t.Fatal("no service-frontend drop counted")
	}
	// Under the same egress policy an IPv6 connect is judged by the
	// backend it was translated to, like an IPv4 one.
	if line, want := client(t, w[0].Namespace, cg, "tcp", v6), fmt.Sprintf("peer=%s server-saw=[%s]:", v6, w[0].IPv6); !strings.HasPrefix(line, want) {
		t.Fatalf("IPv6 frontend of an allowed backend under egress enforcement: %q, want it to start with %q", line, want)
	}
	// Outside the Pod cgroup the IPv6 frontend stays untranslated and is
	// refused as one.
	before6 := drops(model.DropServiceFrontend)
	if line := client(t, w[0].Namespace, "", "tcp", v6); !strings.HasPrefix(line, "error=") {
		t.Fatalf("untranslated connect to an IPv6 frontend under egress enforcement: %q", line)
	}
	if drops(model.DropServiceFrontend) == before6 {
		t.Fatal("no service-frontend drop counted for the IPv6 frontend")
	}

	// An agent restart keeps translating: the pinned cgroup links switch
	// to the new programs, the Service table stays.
	n.restart()
	wantPeer(client(t, w[0].Namespace, cg, "tcp", toW1), toW1)
	if err := n.dp.AttachCgroup(cg); err != nil {
		t.Fatalf("attaching again to the same cgroup: %v", err)
	}
	wantPeer(client(t, w[0].Namespace, cg, "tcp", toW1), toW1)
}
