package kube

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/nodemesh/nodemesh/mesh/input"
)

// TestHostNetworkAddresses: a node serves a Gateway on the first of its
// own addresses the controller listed, and serves nothing when none of
// its addresses is listed; Ingress stand-ins follow their own mode
// (SplitAddresses): their status address as the load balancer's, or, in
// host-network mode, the listed address that is this node's.
func TestHostNetworkAddresses(t *testing.T) {
	ip := gwv1.IPAddressType
	host := gwv1.HostnameAddressType
	gw := func(ns, name string, addrs ...gwv1.GatewayStatusAddress) *gwv1.Gateway {
		return &gwv1.Gateway{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Status: gwv1.GatewayStatus{Addresses: addrs}}
	}
	local := []netip.Addr{netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("fd00::2")}
	h := HostNetworkAddresses{Local: func() ([]netip.Addr, error) { return local, nil }}
	addrs, problems := SplitAddresses{Gateways: h, Ingresses: StatusAddresses{}}.Assign([]*gwv1.Gateway{
		gw("a", "listed", gwv1.GatewayStatusAddress{Type: &host, Value: "edge.example"}, gwv1.GatewayStatusAddress{Type: &ip, Value: "10.0.0.1"}, gwv1.GatewayStatusAddress{Type: &ip, Value: "10.0.0.2"}),
		gw("a", "other-nodes", gwv1.GatewayStatusAddress{Type: &ip, Value: "10.0.0.1"}),
		gw("a", "pending"),
		gw("ingress:a", "ing", gwv1.GatewayStatusAddress{Type: &ip, Value: "127.0.50.1"}),
	})
	key := func(ns, n string) input.Key { return input.Key{Namespace: ns, Name: n} }
	if got := addrs[key("a", "listed")]; got != netip.MustParseAddr("10.0.0.2") {
		t.Errorf("listed: %v, want this node's 10.0.0.2", got)
	}
	if _, ok := addrs[key("a", "other-nodes")]; ok || !strings.Contains(problems[key("a", "other-nodes")], "not among the nodes selected") {
		t.Errorf("other-nodes: address %v problem %q", addrs[key("a", "other-nodes")], problems[key("a", "other-nodes")])
	}
	if _, ok := addrs[key("a", "pending")]; ok || !strings.Contains(problems[key("a", "pending")], "waiting for nodemesh-controller") {
		t.Errorf("pending: problem %q", problems[key("a", "pending")])
	}
	if got := addrs[key("ingress:a", "ing")]; got != netip.MustParseAddr("127.0.50.1") {
		t.Errorf("Ingress stand-in: %v, want its status address", got)
	}

	// Ingresses in host-network mode, Gateways on load-balancer
	// addresses.
	addrs, problems = SplitAddresses{Gateways: StatusAddresses{}, Ingresses: h}.Assign([]*gwv1.Gateway{
		gw("a", "lb", gwv1.GatewayStatusAddress{Type: &ip, Value: "127.0.50.2"}),
		gw("ingress:a", "on-this-node", gwv1.GatewayStatusAddress{Type: &ip, Value: "10.0.0.1"}, gwv1.GatewayStatusAddress{Type: &ip, Value: "10.0.0.2"}),
		gw("ingress:", "shared", gwv1.GatewayStatusAddress{Type: &ip, Value: "10.0.0.2"}),
		gw("ingress:a", "elsewhere", gwv1.GatewayStatusAddress{Type: &ip, Value: "10.0.0.1"}),
	})
	if got := addrs[key("a", "lb")]; got != netip.MustParseAddr("127.0.50.2") {
		t.Errorf("load-balancer Gateway: %v, want its status address", got)
	}
	for _, k := range []input.Key{key("ingress:a", "on-this-node"), key("ingress:", "shared")} {
		if got := addrs[k]; got != netip.MustParseAddr("10.0.0.2") {
			t.Errorf("host-network Ingress %s: %v, want this node's 10.0.0.2", k, got)
		}
	}
	if _, ok := addrs[key("ingress:a", "elsewhere")]; ok || !strings.Contains(problems[key("ingress:a", "elsewhere")], "not among the nodes selected") {
		t.Errorf("Ingress served on other nodes only: address %v problem %q", addrs[key("ingress:a", "elsewhere")], problems[key("ingress:a", "elsewhere")])
	}

	failing := HostNetworkAddresses{Local: func() ([]netip.Addr, error) { return nil, errors.New("boom") }}
	addrs, problems = failing.Assign([]*gwv1.Gateway{gw("a", "listed", gwv1.GatewayStatusAddress{Type: &ip, Value: "10.0.0.2"})})
	if len(addrs) != 0 || !strings.Contains(problems[key("a", "listed")], "boom") {
		t.Errorf("unreadable local addresses: %v %v", addrs, problems)
	}
}
