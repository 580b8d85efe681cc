package datapath_test

import (
	"net/netip"
	"testing"

	"github.com/nodemesh/nodemesh/datapath"
	"github.com/nodemesh/nodemesh/datapath/model"
	"github.com/nodemesh/nodemesh/datapath/testbed"
)

// LookupIdentities reads a running datapath's pins the way the programs
// look an address up: a local endpoint first (even inside an ipcache
// prefix), then the longest ipcache prefix, then world; ReadPolicy reads
// its policy rows and enforcement.
func TestInspectionReadsThePins(t *testing.T) {
	n := newNode(t, 1, false)
	remote := model.Identity(4242)
	entries := append(n.ipcache(),
		model.IPCacheEntry{Prefix: netip.MustParsePrefix("10.248.0.0/16"), Identity: remote},
		model.IPCacheEntry{Prefix: netip.MustParsePrefix("192.0.2.0/24"), Identity: remote + 1},
		model.IPCacheEntry{Prefix: netip.MustParsePrefix("192.0.2.7/32"), Identity: remote + 2})
	if err := n.dp.SyncIPCache(entries); err != nil {
		t.Fatal(err)
	}
	w := n.bed.Workloads[0]
	want := map[netip.Addr]model.Identity{
		w.IPv4:                               ident(0),
		w.IPv6:                               ident(0),
		testbed.NodeIPv4:                     model.IdentityHost,
		netip.MustParseAddr("192.0.2.9"):     remote + 1,
		netip.MustParseAddr("192.0.2.7"):     remote + 2,
		netip.MustParseAddr("203.0.113.1"):   model.IdentityWorld,
		netip.MustParseAddr("2001:db8::1"):   model.IdentityWorld,
		netip.MustParseAddr("10.248.200.10"): remote,
	}
	var addrs []netip.Addr
	for a := range want {
		addrs = append(addrs, a)
	}
	got, err := datapath.LookupIdentities(n.pinDir, addrs)
	if err != nil {
		t.Fatal(err)
	}
	for a, id := range want {
		if got[a] != id {
			t.Errorf("%s: identity %d, want %d", a, got[a], id)
		}
	}
	if _, err := datapath.LookupIdentities(t.TempDir(), addrs); err == nil {
		t.Error("a directory without pins: no error")
	}

	// ReadPolicy sees what SyncPolicy wrote, and its removal.
	pol := model.Policy{
		Enforce: map[model.Identity]model.Enforcement{ident(0): model.EnforceIngress},
		Entries: []model.PolicyEntry{{Subject: ident(0), Remote: remote, Direction: model.Ingress, Proto: model.ProtoTCP, Port: 8443, Verdict: model.Allow}},
	}
	n.policy(pol)
	got2, err := datapath.ReadPolicy(n.pinDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(got2.Entries) != 1 || got2.Entries[0] != pol.Entries[0] || got2.Enforce[ident(0)] != model.EnforceIngress {
		t.Fatalf("read back %+v, want %+v", got2, pol)
	}
	n.policy(model.Policy{})
	if got2, err = datapath.ReadPolicy(n.pinDir); err != nil || len(got2.Entries) != 0 || len(got2.Enforce) != 0 {
		t.Fatalf("after clearing: %+v, %v", got2, err)
	}
}
