package datapath_test

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netlink"

	"github.com/nodemesh/nodemesh/datapath"
	"github.com/nodemesh/nodemesh/datapath/model"
	"github.com/nodemesh/nodemesh/datapath/testbed"
)

func TestRestartKeepsEstablishedConnections(t *testing.T) {
	n := newNode(t, 3, false)
	pol := enforce(ingressOnly(ident(1)),
		allowIn(ident(1), ident(0), appPort),
		redirectRow(ident(1), ident(2), model.Ingress),
	)
	n.policy(pol)
	p := n.startProxy(t, false)
	var direct, proxied []*testbed.Conn
	for _, to := range n.addrs(1, appPort) {
		direct = append(direct, mustConnect(t, n.w(0).Namespace, to))
		proxied = append(proxied, mustConnect(t, n.w(2).Namespace, to))
	}
	echoAll := func(when string) {
		t.Helper()
		for i, c := range append(direct, proxied...) {
			if err := c.Echo([]byte(fmt.Sprintf("%s #%d", when, i)), 2*time.Second); err != nil {
				t.Fatalf("connection %d %s: %v", i, when, err)
			}
		}
	}
	before, err := n.dp.Counters()
	if err != nil {
		t.Fatal(err)
	}

	if err := n.dp.Close(); err != nil {
		t.Fatal(err)
	}
	n.dp = nil
	echoAll("while the agent is down")
	mustNotConnect(t, n.w(2).Namespace, n.addrs(1, otherPort)[0])

	n.open()
	n.syncAll()
	n.policy(pol)
	echoAll("after the restart")
	mustNotConnect(t, n.w(2).Namespace, n.addrs(1, otherPort)[1])
	for _, to := range n.addrs(1, appPort) {
		mustConnect(t, n.w(0).Namespace, to)
	}
	after, err := n.dp.Counters()
	if err != nil {
		t.Fatal(err)
	}
	k := datapath.CounterKey{Reason: model.ReasonRedirected, Direction: model.Ingress}
	if after[k].Packets <= before[k].Packets {
		t.Fatalf("redirect counter %d -> %d: counters (and with them the pinned maps) did not survive", before[k].Packets, after[k].Packets)
	}
	if got := p.Accepted(); got != int64(len(proxied)) {
		t.Fatalf("proxy accepted %d connections, want %d: a connection was re-established", got, len(proxied))
	}
	ifs, err := n.dp.Attached()
	if err != nil || len(ifs) != 3 {
		t.Fatalf("attached after restart: %v (%v)", ifs, err)
	}
}

func TestTCAttachmentWorksAndDetachesCleanly(t *testing.T) {
	n := newNode(t, 3, false, datapath.WithAttachMode(datapath.AttachTC))
	if n.dp.Mode() != datapath.AttachTC {
		t.Fatalf("mode %s, want tc", n.dp.Mode())
	}
	n.policy(enforce(ingressOnly(ident(1)), allowIn(ident(1), ident(0), appPort)))
	to := n.addrs(1, appPort)
	mustConnect(t, n.w(0).Namespace, to[0])
	mustNotConnect(t, n.w(2).Namespace, to[1])

	n.restart()
	mustConnect(t, n.w(0).Namespace, to[1])
	mustNotConnect(t, n.w(2).Namespace, to[0])
	if ifs, err := n.dp.Attached(); err != nil || len(ifs) != 3 {
		t.Fatalf("attached: %v (%v)", ifs, err)
	}

	if err := n.dp.Uninstall(); err != nil {
		t.Fatal(err)
	}
	n.dp = nil
	err := n.bed.Node.Netlink(func(nl *netlink.Handle) error {
		for _, w := range n.bed.Workloads {
			l, err := nl.LinkByIndex(w.HostIfIndex)
			if err != nil {
				return err
			}
			for _, parent := range []uint32{netlink.HANDLE_MIN_INGRESS, netlink.HANDLE_MIN_EGRESS} {
				fs, err := nl.FilterList(l, parent)
				if err != nil {
					return err
				}
				for _, f := range fs {
					return fmt.Errorf("filter %+v left on %s", f, w.HostIf)
				}
			}
		}
		rules, err := nl.RuleList(netlink.FAMILY_ALL)
		if err != nil {
			return err
		}
		for _, r := range rules {
			if r.Table == datapath.RouteTable {
				return fmt.Errorf("routing rule %v left behind", r)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(n.pinDir); !os.IsNotExist(err) {
		t.Fatalf("pin directory survived Uninstall: %v", err)
	}
	mustConnect(t, n.w(2).Namespace, to[0])
}

func TestAttachToAMissingInterfaceFailsCleanly(t *testing.T) {
	n := newNode(t, 1, false)
	err := n.dp.Attach(9999)
	if !errors.Is(err, datapath.ErrInterfaceNotFound) {
		t.Fatalf("Attach(9999) = %v, want ErrInterfaceNotFound", err)
	}
	if matches, _ := filepath.Glob(filepath.Join(n.pinDir, "links", "9999_*")); len(matches) != 0 {
		t.Fatalf("failed attach left pins %v", matches)
	}
}

func TestInterfaceThatDisappearsIsPruned(t *testing.T) {
	n := newNode(t, 3, false)
	gone := n.w(2).HostIfIndex
	if err := n.bed.RemoveWorkload(2); err != nil {
		t.Fatal(err)
	}
	ifs, err := n.dp.Attached()
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range ifs {
		if i == gone {
			t.Fatalf("interface %d reported attached after it was deleted", gone)
		}
	}
	if err := n.dp.Attach(gone); !errors.Is(err, datapath.ErrInterfaceNotFound) {
		t.Fatalf("attach to deleted interface: %v", err)
	}
	err = n.dp.SyncAttachments([]int{n.w(0).HostIfIndex, n.w(1).HostIfIndex, gone})
	if !errors.Is(err, datapath.ErrInterfaceNotFound) || !strings.Contains(err.Error(), fmt.Sprint(gone)) {
		t.Fatalf("sync with a deleted interface: %v, want an error naming it", err)
	}
	// The others are still attached and enforcing.
	n.policy(enforce(ingressOnly(ident(1))))
	mustNotConnect(t, n.w(0).Namespace, n.addrs(1, appPort)[0])
	if err := n.dp.SyncAttachments([]int{n.w(0).HostIfIndex, n.w(1).HostIfIndex}); err != nil {
		t.Fatal(err)
	}
	if matches, _ := filepath.Glob(filepath.Join(n.pinDir, "links", fmt.Sprintf("%d_*", gone))); len(matches) != 0 {
		t.Fatalf("pins of the deleted interface survived a sync: %v", matches)
	}
}

func TestStalePinsOfAnEarlierRunAreRepaired(t *testing.T) {
	n := newBareNode(t, 3, false)
	// An earlier build left a policy map of another layout, a directory of
	// an older layout, and a link whose interface is gone.
	n.open()
	n.syncAll()
	staleIf := n.w(2).HostIfIndex
	if err := n.dp.Close(); err != nil {
		t.Fatal(err)
	}
	n.dp = nil
	if err := n.bed.RemoveWorkload(2); err != nil {
		t.Fatal(err)
	}
	policyPin := filepath.Join(n.pinDir, "maps_v1", "nm_policy")
	if err := os.Remove(policyPin); err != nil {
		t.Fatal(err)
	}
	wrong, err := ebpf.NewMap(&ebpf.MapSpec{Name: "nm_policy", Type: ebpf.Hash, KeySize: 12, ValueSize: 4, MaxEntries: 16})
	if err != nil {
		t.Fatal(err)
	}
	if err := wrong.Pin(policyPin); err != nil {
		t.Fatal(err)
	}
	wrong.Close()
	if err := os.MkdirAll(filepath.Join(n.pinDir, "maps_v0"), 0o700); err != nil {
		t.Fatal(err)
	}

	// A map this build no longer has (enforcement moved into the policy
	// tables) is unpinned.
	retired := filepath.Join(n.pinDir, "maps_v1", "nm_enforce")
	old, err := ebpf.NewMap(&ebpf.MapSpec{Name: "nm_enforce", Type: ebpf.Hash, KeySize: 4, ValueSize: 4, MaxEntries: 16})
	if err != nil {
		t.Fatal(err)
	}
	if err := old.Pin(retired); err != nil {
		t.Fatal(err)
	}
	old.Close()

	n.open()
	m, err := ebpf.LoadPinnedMap(policyPin, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if m.Type() != ebpf.ArrayOfMaps {
		t.Fatalf("pinned policy map is still a %s", m.Type())
	}
	if _, err := os.Stat(retired); !os.IsNotExist(err) {
		t.Fatalf("pin of a retired map survived: %v", err)
	}
	if _, err := os.Stat(filepath.Join(n.pinDir, "maps_v0")); !os.IsNotExist(err) {
		t.Fatalf("pins of an older layout survived: %v", err)
	}
	if matches, _ := filepath.Glob(filepath.Join(n.pinDir, "links", fmt.Sprintf("%d_*", staleIf))); len(matches) != 0 {
		t.Fatalf("link pins of a deleted interface survived a restart: %v", matches)
	}
	// The repaired datapath enforces on the interfaces that remain.
	s, err := n.w(0).StartServer(appPort)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	to := n.addrs(0, appPort)[0]
	mustConnect(t, n.w(1).Namespace, to)
	n.policy(enforce(ingressOnly(ident(0))))
	mustNotConnect(t, n.w(1).Namespace, to)
}

func mustPrefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }

func TestFullMapsRejectAnUpdateWithoutWritingIt(t *testing.T) {
	sizes := smallMaps
	sizes.Policy = 4
	sizes.IPCache = 3
	n := newNode(t, 2, false, datapath.WithMapSizes(sizes))
	row := func(port uint16) model.PolicyEntry { return allowIn(ident(1), ident(0), port) }
	three := enforce(ingressOnly(ident(1)), row(1), row(2), row(3))
	n.policy(three)

	// The enforcement row of identity 1 takes the fourth place.
	four := enforce(ingressOnly(ident(1)), row(1), row(2), row(3), row(4))
	if err := n.dp.SyncPolicy(four); !errors.Is(err, datapath.ErrMapFull) {
		t.Fatalf("4 rules and an enforcement row into a 4-row map: %v, want ErrMapFull", err)
	}
	got, err := n.dp.Policy()
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Entries) != 3 || got.Entries[0].Port != 1 || got.Entries[2].Port != 3 {
		t.Fatalf("policy after a rejected update: %+v, want the three-row policy untouched", got.Entries)
	}
	// Each version of the policy has a table of its own, so three new
	// rows replace three old ones in a full map.
	other := enforce(ingressOnly(ident(1)), row(7), row(8), row(9))
	if err := n.dp.SyncPolicy(other); err != nil {
		t.Fatalf("replacing every row of a full map: %v", err)
	}

	entries := n.ipcache()
	entries = append(entries, model.IPCacheEntry{Prefix: mustPrefix("192.0.2.0/24"), Identity: 7000}, model.IPCacheEntry{Prefix: mustPrefix("198.51.100.0/24"), Identity: 7001})
	if err := n.dp.SyncIPCache(entries); !errors.Is(err, datapath.ErrMapFull) {
		t.Fatalf("4 prefixes into a 3-entry ipcache: %v, want ErrMapFull", err)
	}
	if err := n.dp.SyncIPCache(entries[:3]); err != nil {
		t.Fatal(err)
	}
}

func TestInvalidInputIsRejectedWholesale(t *testing.T) {
	n := newNode(t, 2, false)
	good := enforce(ingressOnly(ident(1)), allowIn(ident(1), ident(0), appPort))
	n.policy(good)
	bad := enforce(ingressOnly(ident(1)),
		allowIn(ident(1), ident(0), 1),
		model.PolicyEntry{Subject: ident(1), Direction: model.Ingress, Proto: model.ProtoUDP, Port: 53, Verdict: model.Redirect, ProxyPort: proxyPort},
	)
	err := n.dp.SyncPolicy(bad)
	if !errors.Is(err, model.ErrInvalidPolicy) || !strings.Contains(err.Error(), "entries[1]") || !strings.Contains(err.Error(), "proto") {
		t.Fatalf("invalid policy: %v, want an error naming entries[1] and its proto", err)
	}
	got, _ := n.dp.Policy()
	if len(got.Entries) != 1 || got.Entries[0].Port != appPort {
		t.Fatalf("policy after a rejected update: %+v", got.Entries)
	}
	eps := n.endpoints()
	eps[1].IfIndex = 0
	if err := n.dp.SyncEndpoints(eps); err == nil || !strings.Contains(err.Error(), "endpoints[1]") {
		t.Fatalf("endpoint without interface: %v", err)
	}
	mustConnect(t, n.w(0).Namespace, n.addrs(1, appPort)[0])
}

func TestLoadFailureLeavesThePreviousDatapathRunning(t *testing.T) {
	n := newNode(t, 2, false)
	n.policy(enforce(ingressOnly(ident(1)), allowIn(ident(1), ident(0), appPort)))
	if err := n.dp.Close(); err != nil {
		t.Fatal(err)
	}
	n.dp = nil
	bad := smallMaps
	bad.EventBytes = 1000 // not a power of two: the kernel refuses the ring buffer
	_, err := datapath.New(append(n.opts, datapath.WithMapSizes(bad))...)
	if err == nil || !strings.Contains(err.Error(), "loading BPF") {
		t.Fatalf("New with an impossible map: %v, want a load error", err)
	}
	// The earlier run's programs and maps are untouched and enforcing.
	mustConnect(t, n.w(0).Namespace, n.addrs(1, appPort)[0])
	n.open()
	if ifs, err := n.dp.Attached(); err != nil || len(ifs) != 2 {
		t.Fatalf("attached after recovering: %v (%v)", ifs, err)
	}
}

// Restarting in the other attach mode moves every attachment over and
// leaves nothing of the old mode behind.
func TestSwitchingAttachModeOnRestart(t *testing.T) {
	n := newNode(t, 2, false)
	n.policy(enforce(ingressOnly(ident(1)), allowIn(ident(1), ident(0), appPort)))
	for _, mode := range []datapath.AttachMode{datapath.AttachTC, datapath.AttachTCX} {
		if err := n.dp.Close(); err != nil {
			t.Fatal(err)
		}
		n.dp = nil
		n.opts = append(n.opts, datapath.WithAttachMode(mode))
		n.open()
		if err := n.dp.SyncAttachments(n.ifindexes()); err != nil {
			t.Fatal(err)
		}
		pins, _ := filepath.Glob(filepath.Join(n.pinDir, "links", "*"))
		filters := 0
		err := n.bed.Node.Netlink(func(nl *netlink.Handle) error {
			for _, w := range n.bed.Workloads {
				l, err := nl.LinkByIndex(w.HostIfIndex)
				if err != nil {
					return err
				}
				for _, parent := range []uint32{netlink.HANDLE_MIN_INGRESS, netlink.HANDLE_MIN_EGRESS} {
					fs, err := nl.FilterList(l, parent)
					if err != nil {
						return err
					}
					filters += len(fs)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if mode == datapath.AttachTC && (len(pins) != 0 || filters != 4) {
			t.Fatalf("tc mode: %d link pins, %d filters; want 0 and 4", len(pins), filters)
		}
		if mode == datapath.AttachTCX && (len(pins) != 4 || filters != 0) {
			t.Fatalf("tcx mode: %d link pins, %d filters; want 4 and 0", len(pins), filters)
		}
		mustConnect(t, n.w(0).Namespace, n.addrs(1, appPort)[0])
		mustNotConnect(t, n.w(0).Namespace, n.addrs(1, otherPort)[0])
	}
}

// The published policy table lives on through a restart (the pinned
// slot holds it); a restart with another policy size replaces the slot,
// since the kernel accepts only tables of the size the slot was made for.
func TestRestartKeepsThePublishedPolicyOfTheSameSize(t *testing.T) {
	n := newNode(t, 2, false)
	pol := enforce(ingressOnly(ident(1)), allowIn(ident(1), ident(0), appPort))
	n.policy(pol)
	n.restart()
	got, err := n.dp.Policy()
	if err != nil || len(got.Entries) != 1 || got.Entries[0] != pol.Entries[0] || got.Enforce[ident(1)] != model.EnforceIngress {
		t.Fatalf("policy after a restart: %+v (%v), want %+v", got, err, pol)
	}
	mustNotConnect(t, n.w(0).Namespace, n.addrs(1, otherPort)[0])
	mustConnect(t, n.w(0).Namespace, n.addrs(1, appPort)[0])

	sizes := smallMaps
	sizes.Policy = 2
	n.opts = append(n.opts, datapath.WithMapSizes(sizes))
	n.restart()
	if got, err := n.dp.Policy(); err != nil || len(got.Entries) != 0 || len(got.Enforce) != 0 {
		t.Fatalf("policy after a restart with another size: %+v (%v), want a fresh empty table", got, err)
	}
	n.policy(pol)
	two := enforce(ingressOnly(ident(1)), allowIn(ident(1), ident(0), appPort), allowIn(ident(1), ident(0), otherPort))
	if err := n.dp.SyncPolicy(two); !errors.Is(err, datapath.ErrMapFull) {
		t.Fatalf("2 rules and an enforcement row into the new 2-row table: %v, want ErrMapFull", err)
	}
}
