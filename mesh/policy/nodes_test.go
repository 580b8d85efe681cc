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

// TestNodeIngressIPs: the annotation's addresses, of either family, with
// garbage, loopback and unspecified addresses left out, and only those
// inside the Node's own Pod CIDRs; every Node's count, this node's too.
func TestNodeIngressIPs(t *testing.T) {
	node := func(name, ann string, podCIDRs ...string) *corev1.Node {
		n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.NodeSpec{PodCIDRs: podCIDRs}}
		if ann != "" {
			n.Annotations = map[string]string{IngressIPAnnotation: ann}
		}
		return n
	}
	nodes := []*corev1.Node{
		node("node-1", "10.244.1.254", "10.244.1.0/24"),
		node("node-2", " 10.244.2.254 , fd00:244:2::fe,garbage,127.0.0.1,0.0.0.0,fe80::1%eth0,10.244.1.253,203.0.113.9",
			"10.244.2.0/24", "fd00:244:2::/64"),
		node("node-3", ""),
		node("node-4", "10.244.4.254"), // no Pod CIDR: nothing is its own
		nil,
	}
	// The single-family field alone counts too.
	old := node("node-5", "10.244.5.254")
	old.Spec.PodCIDR = "10.244.5.0/24"
	nodes = append(nodes, old)
	got := ingressIPs(nodes)
	want := []netip.Addr{netip.MustParseAddr("10.244.1.254"), netip.MustParseAddr("10.244.2.254"), netip.MustParseAddr("fd00:244:2::fe"),
		netip.MustParseAddr("10.244.5.254")}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Fatalf("(-want +got):\n%s", diff)
	}
}
