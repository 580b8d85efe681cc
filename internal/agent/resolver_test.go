package agent

import (
	"net/netip"
	"sort"
	"testing"

	"github.com/nodemesh/nodemesh/datapath/model"
	"github.com/nodemesh/nodemesh/mesh/identity"
)

// TestAddressResolverLongestPrefix: the resolver answers as a search of
// the whole ipcache for the longest prefix containing the address does:
// Pods and host addresses exactly, CIDR identities by their longest
// prefix, world for the rest, and the workload only for a Pod's address.
func TestAddressResolverLongestPrefix(t *testing.T) {
	m := identity.NewManager()
	st := m.Resolve(identity.Input{
		Pods:       hopPods(300),
		HostIPs:    []netip.Addr{netip.MustParseAddr("192.168.1.10"), netip.MustParseAddr("fd00::10")},
		IngressIPs: []netip.Addr{netip.MustParseAddr("192.168.1.11")},
		CIDRs: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("10.244.1.0/24"),
			netip.MustParsePrefix("10.244.0.0/16"), netip.MustParsePrefix("192.0.2.7/32"), netip.MustParsePrefix("fd00::/64")},
	})
	// The reference: every entry, longest prefix first.
	cache := append([]identity.IPCacheEntry(nil), st.IPCache...)
	sort.SliceStable(cache, func(i, j int) bool { return cache[i].Prefix.Bits() > cache[j].Prefix.Bits() })
	pods := map[netip.Addr]string{}
	for _, ep := range st.Endpoints {
		for _, ip := range ep.IPs {
			pods[ip] = ep.Pod.String()
		}
	}
	want := func(a netip.Addr) (uint32, string) {
		for _, e := range cache {
			if e.Prefix.Contains(a) {
				return uint32(e.Identity), pods[a]
			}
		}
		return uint32(model.IdentityWorld), ""
	}
	resolve := addressResolver(st)
	addrs := []string{"10.244.0.17", "10.244.0.18", "10.244.1.40", "10.244.1.250", "10.244.2.1", "10.244.9.9", "10.1.2.3",
		"192.168.1.10", "192.168.1.11", "192.0.2.7", "192.0.2.8", "8.8.8.8", "fd00::10", "fd00::99", "fd01::1", "::ffff:10.244.0.17"}
	seen := map[uint32]bool{}
	for _, s := range addrs {
		a := netip.MustParseAddr(s)
		gotID, gotWL := resolve(a)
		wantID, wantWL := want(a)
		if gotID != wantID || gotWL != wantWL {
			t.Errorf("%s: %d %q, want %d %q", s, gotID, gotWL, wantID, wantWL)
		}
		seen[gotID] = true
	}
	// The addresses reach every kind of entry.
	if id, wl := resolve(netip.MustParseAddr("10.244.0.17")); wl != "default/pod-0" || id < uint32(identity.MinWorkload) {
		t.Errorf("a Pod's address: %d %q", id, wl)
	}
	for _, id := range []model.Identity{model.IdentityHost, model.IdentityIngress, model.IdentityWorld} {
		if !seen[uint32(id)] {
			t.Errorf("no address resolved to %d", id)
		}
	}
	if id, _ := resolve(netip.MustParseAddr("10.244.9.9")); id < uint32(identity.MinCIDR) {
		t.Errorf("an address in CIDRs only: %d", id)
	}
}
