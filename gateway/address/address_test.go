package address

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/nodemesh/nodemesh/mesh/input"
)

func gw(name string, age int, addrs ...string) *gwv1.Gateway {
	g := &gwv1.Gateway{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name,
		CreationTimestamp: metav1.NewTime(time.Unix(1000+int64(age), 0))}}
	for _, a := range addrs {
		g.Spec.Addresses = append(g.Spec.Addresses, gwv1.GatewaySpecAddress{Value: a})
	}
	return g
}

func key(name string) input.Key { return input.Key{Namespace: "ns", Name: name} }

func TestAllocatorStickyAndReleases(t *testing.T) {
	a := New(netip.MustParsePrefix("10.0.0.0/29"))
	got, problems := a.Assign([]*gwv1.Gateway{gw("b", 2), gw("a", 1)})
	if len(problems) != 0 {
		t.Fatalf("problems: %v", problems)
	}
	// Oldest first, lowest address first, network address skipped.
	if got[key("a")] != netip.MustParseAddr("10.0.0.1") || got[key("b")] != netip.MustParseAddr("10.0.0.2") {
		t.Fatalf("assignments: %v", got)
	}
	// A newer Gateway never moves an older one; deleting a frees .1.
	got, _ = a.Assign([]*gwv1.Gateway{gw("b", 2), gw("c", 3)})
	if got[key("b")] != netip.MustParseAddr("10.0.0.2") || got[key("c")] != netip.MustParseAddr("10.0.0.1") {
		t.Fatalf("after deleting a: %v", got)
	}
	if _, ok := got[key("a")]; ok {
		t.Fatal("deleted Gateway kept its address")
	}
}

func TestAllocatorExhaustion(t *testing.T) {
	a := New(netip.MustParsePrefix("10.0.0.0/30")) // .1 .2 .3 usable
	gws := []*gwv1.Gateway{gw("a", 1), gw("b", 2), gw("c", 3), gw("d", 4)}
	got, problems := a.Assign(gws)
	if len(got) != 3 || !strings.Contains(problems[key("d")], "exhausted") {
		t.Fatalf("got %v, problems %v", got, problems)
	}
}

func TestAllocatorRequestedAddresses(t *testing.T) {
	a := New(netip.MustParsePrefix("10.0.0.0/24"))
	got, problems := a.Assign([]*gwv1.Gateway{
		gw("dyn", 1),
		gw("static", 2, "192.0.2.1", "10.0.0.1"), // first outside pool, second taken? no: explicit first
		gw("clash", 3, "10.0.0.1"),
		gw("outside", 4, "192.0.2.9"),
	})
	if got[key("static")] != netip.MustParseAddr("10.0.0.1") {
		t.Fatalf("static: %v (problems %v)", got, problems)
	}
	if got[key("dyn")] == netip.MustParseAddr("10.0.0.1") || !got[key("dyn")].IsValid() {
		t.Fatalf("dynamic Gateway took a requested address or none: %v", got)
	}
	if _, ok := got[key("clash")]; ok || !strings.Contains(problems[key("clash")], "already used by Gateway ns/static") {
		t.Fatalf("clash: %v %q", got, problems[key("clash")])
	}
	if !strings.Contains(problems[key("outside")], "outside the address pool") {
		t.Fatalf("outside: %q", problems[key("outside")])
	}
}

func TestAllocatorAdoptsStatusOnStart(t *testing.T) {
	a := New(netip.MustParsePrefix("10.0.0.0/24"))
	g := gw("a", 1)
	g.Status.Addresses = []gwv1.GatewayStatusAddress{{Value: "10.0.0.7"}}
	outside := gw("b", 2)
	outside.Status.Addresses = []gwv1.GatewayStatusAddress{{Value: "172.16.0.1"}}
	got, _ := a.Assign([]*gwv1.Gateway{g, outside})
	if got[key("a")] != netip.MustParseAddr("10.0.0.7") {
		t.Fatalf("restart moved Gateway a: %v", got)
	}
	if got[key("b")] != netip.MustParseAddr("10.0.0.1") {
		t.Fatalf("address outside the pool was adopted: %v", got)
	}
}
