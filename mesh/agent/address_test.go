package agent

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nodemesh/nodemesh/mesh/input"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

func gatewayObj(name string, age int, addrs ...string) *gwv1.Gateway {
	gw := &gwv1.Gateway{ObjectMeta: metav1.ObjectMeta{
		Namespace: "default", Name: name,
		CreationTimestamp: metav1.NewTime(time.Unix(1_700_000_000, 0).Add(time.Duration(age) * time.Second)),
	}}
	for _, a := range addrs {
		gw.Spec.Addresses = append(gw.Spec.Addresses, gwv1.GatewaySpecAddress{Value: a})
	}
	return gw
}

func key(name string) input.Key { return input.Key{Namespace: "default", Name: name} }

func TestAddressAllocatorSticky(t *testing.T) {
	a := newAddressAllocator(netip.MustParsePrefix("127.0.100.0/24"))
	got, problems := a.assign([]*gwv1.Gateway{gatewayObj("a", 1), gatewayObj("b", 2)})
	want := map[input.Key]netip.Addr{key("a"): netip.MustParseAddr("127.0.100.1"), key("b"): netip.MustParseAddr("127.0.100.2")}
	if diff := cmp.Diff(want, got, addrEq); diff != "" || len(problems) > 0 {
		t.Fatalf("first assignment (-want +got):\n%s\nproblems: %v", diff, problems)
	}
	// Removing a does not move b; a newcomer takes the freed address.
	got, _ = a.assign([]*gwv1.Gateway{gatewayObj("b", 2), gatewayObj("c", 3)})
	want = map[input.Key]netip.Addr{key("b"): netip.MustParseAddr("127.0.100.2"), key("c"): netip.MustParseAddr("127.0.100.1")}
	if diff := cmp.Diff(want, got, addrEq); diff != "" {
		t.Fatalf("after churn (-want +got):\n%s", diff)
	}
}

func TestAddressAllocatorRequests(t *testing.T) {
	a := newAddressAllocator(netip.MustParsePrefix("127.0.100.0/30"))
	got, problems := a.assign([]*gwv1.Gateway{
		gatewayObj("old", 1, "127.0.100.1"),
		gatewayObj("young", 2, "127.0.100.1"), // taken by an older Gateway
		gatewayObj("remote", 3, "10.0.0.1"),   // not loopback
		gatewayObj("two", 4, "127.0.0.2", "127.0.0.3"),
		gatewayObj("pool1", 5),
		gatewayObj("pool2", 6), // /30 has .1 .2 .3; .1 requested, .2 and .3 left
		gatewayObj("pool3", 7),
	})
	want := map[input.Key]netip.Addr{
		key("old"):   netip.MustParseAddr("127.0.100.1"),
		key("pool1"): netip.MustParseAddr("127.0.100.2"),
		key("pool2"): netip.MustParseAddr("127.0.100.3"),
	}
	if diff := cmp.Diff(want, got, addrEq); diff != "" {
		t.Errorf("addresses (-want +got):\n%s", diff)
	}
	for name, substr := range map[string]string{
		"young":  "already used by Gateway default/old",
		"remote": "not a loopback address",
		"two":    "only one address",
		"pool3":  "exhausted",
	} {
		if msg := problems[key(name)]; !contains(msg, substr) {
			t.Errorf("problem for %s = %q, want it to mention %q", name, msg, substr)
		}
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

var addrEq = cmp.Comparer(func(a, b netip.Addr) bool { return a == b })
