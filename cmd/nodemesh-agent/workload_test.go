package main

import (
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/nodemesh/nodemesh/auth"
	"github.com/nodemesh/nodemesh/auth/workload"
	"github.com/nodemesh/nodemesh/datapath/model"
)

type addrTable map[netip.Addr]model.Identity

func (t addrTable) LocalIdentityOf(a netip.Addr) (model.Identity, bool) {
	id, ok := t[a]
	return id, ok
}

// TestAttestRefusesClaimedAddresses: a caller is attested by the Pod
// address in its namespace, and refused when another namespace holds the
// same address (a process adding a victim Pod's address to its own
// namespace) or when its addresses belong to two identities.
func TestAttestRefusesClaimedAddresses(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("needs root: creates network namespaces")
	}
	// The attestor scans its own directory, holding links to this run's
	// namespaces only: another run's namespaces in /run/netns (a second
	// checkout testing at once) may hold the same addresses, which the
	// attestor rightly counts as claims. The names carry the pid, as
	// datapath/testbed's do, so runs never collide and its Sweep removes
	// what a crashed run leaves behind.
	dir := t.TempDir()
	mk := func(role string, addrs ...string) workload.NetNS {
		t.Helper()
		name := fmt.Sprintf("nmtb-%d-attest-%s", os.Getpid(), role)
		runCmd(t, "ip", "netns", "add", name)
		t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
		runCmd(t, "ip", "-n", name, "link", "set", "lo", "up")
		for _, a := range addrs {
			runCmd(t, "ip", "-n", name, "addr", "add", a+"/32", "dev", "lo")
		}
		link := filepath.Join(dir, role)
		if err := os.Symlink(filepath.Join("/run/netns", name), link); err != nil {
			t.Fatal(err)
		}
		ns, err := workload.NetNSOfPath(link)
		if err != nil {
			t.Fatal(err)
		}
		return ns
	}
	victim := mk("victim", "10.99.0.1")
	other := mk("other", "10.99.0.2")
	table := addrTable{netip.MustParseAddr("10.99.0.1"): 300, netip.MustParseAddr("10.99.0.2"): 301}
	att := &netnsAttestor{dir: dir, a: table, log: slog.New(slog.DiscardHandler)}
	if id, ok := att.Attest(victim); !ok || id != auth.Identity(300) {
		t.Fatalf("victim attested as %d, %v; want 300", id, ok)
	}
	if id, ok := att.Attest(other); !ok || id != auth.Identity(301) {
		t.Fatalf("other attested as %d, %v; want 301", id, ok)
	}
	spoof := mk("spoof", "10.99.0.1")
	if id, ok := att.Attest(spoof); ok {
		t.Fatalf("a namespace holding the victim's address was attested as %d", id)
	}
	if _, ok := att.Attest(victim); ok {
		t.Fatal("the victim stays attested while another namespace holds its address")
	}
	both := mk("both", "10.99.0.3", "10.99.0.4")
	table[netip.MustParseAddr("10.99.0.3")] = 302
	table[netip.MustParseAddr("10.99.0.4")] = 303
	if id, ok := att.Attest(both); ok {
		t.Fatalf("a namespace with addresses of two identities was attested as %d", id)
	}
	if _, ok := att.Attest(mk("nobody", "10.99.0.9")); ok {
		t.Fatal("a namespace with no Pod address was attested")
	}
}

func runCmd(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v: %s", name, args, err, out)
	}
}
