package policy

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestRemoteNodeIPs: every other Node's InternalIP and ExternalIP, not
// this node's, not its host name, and nothing from an address that does
// not parse.
func TestRemoteNodeIPs(t *testing.T) {
	node := func(name string, addrs ...corev1.NodeAddress) *corev1.Node {
		return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: corev1.NodeStatus{Addresses: addrs}}
	}
	nodes := []*corev1.Node{
		node("node-1", corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: "10.250.0.11"}),
		node("node-2", corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: "10.250.0.12"},
			corev1.NodeAddress{Type: corev1.NodeHostName, Address: "node-2"},
			corev1.NodeAddress{Type: corev1.NodeExternalIP, Address: "2001:db8::2"}),
		node("node-3", corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: "not-an-ip"},
			corev1.NodeAddress{Type: corev1.NodeInternalDNS, Address: "10.9.9.9"}),
		nil,
	}
	got := remoteNodeIPs(nodes, "node-1")
	want := []netip.Addr{netip.MustParseAddr("10.250.0.12"), netip.MustParseAddr("2001:db8::2")}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Fatalf("(-want +got):\n%s", diff)
	}
}
