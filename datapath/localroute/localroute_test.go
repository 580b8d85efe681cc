package localroute

import (
	"net/netip"
	"os"
	"slices"
	"testing"

	"github.com/nodemesh/nodemesh/datapath/testbed"
)

// TestSyncMakesAddressesLocal: an address with no local route cannot be
// listened on; after Sync it can (and only ours is added: a loopback
// address stays as it is); after a Sync without it, it cannot again.
func TestSyncMakesAddressesLocal(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a network namespace")
	}
	ns, err := testbed.NewNamespace(testbed.NewID() + "-localroute")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ns.Delete() })
	var r *Routes
	if err := ns.Do(func() error { r, err = New(); return err }); err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	lb := netip.MustParseAddr("10.250.0.200")
	lb2 := netip.MustParseAddr("10.250.0.201")
	lb6 := netip.MustParseAddr("fd00:250::200")
	canListen := func(a netip.Addr) bool {
		l, err := ns.Listen("tcp", netip.AddrPortFrom(a, 8080).String())
		if err != nil {
			return false
		}
		l.Close()
		return true
	}
	if canListen(lb) {
		t.Fatal("listening on an address with no local route succeeded before Sync")
	}
	loop := netip.MustParseAddr("127.0.50.1")
	if err := r.Sync([]netip.Addr{lb, loop, lb6, lb2, lb}); err != nil {
		t.Fatal(err)
	}
	if !canListen(lb) || !canListen(lb2) {
		t.Fatal("cannot listen on the synced addresses")
	}
	owned, err := r.Owned()
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(owned, netip.Addr.Compare)
	if want := []netip.Addr{lb, lb2}; !slices.Equal(owned, want) {
		t.Fatalf("owned routes %v, want %v (the loopback address is already local, IPv6 is skipped)", owned, want)
	}
	// A second Sync with the same set changes nothing and fails on nothing.
	if err := r.Sync([]netip.Addr{lb2, lb}); err != nil {
		t.Fatal(err)
	}
	if err := r.Sync([]netip.Addr{lb2}); err != nil {
		t.Fatal(err)
	}
	if canListen(lb) {
		t.Fatal("the address removed from the set is still local")
	}
	if !canListen(lb2) {
		t.Fatal("the address kept in the set is no longer local")
	}
	// A restarted owner finds the routes of the earlier one.
	var r2 *Routes
	if err := ns.Do(func() error { r2, err = New(); return err }); err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	if err := r2.Sync(nil); err != nil {
		t.Fatal(err)
	}
	if canListen(lb2) {
		t.Fatal("a new Routes did not remove the earlier one's route")
	}
}
