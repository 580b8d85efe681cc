package node

import (
	"net/netip"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestResolvConf(t *testing.T) {
	dns := netip.MustParseAddr("10.96.0.10")
	two := "2"
	for _, tc := range []struct {
		name string
		spec corev1.PodSpec
		want string
	}{
		{"cluster first", corev1.PodSpec{},
			"search shop.svc.cluster.local svc.cluster.local cluster.local\nnameserver 10.96.0.10\noptions ndots:5\n"},
		{"cluster first with dnsConfig", corev1.PodSpec{DNSConfig: &corev1.PodDNSConfig{
			Searches: []string{"example.internal"}, Options: []corev1.PodDNSConfigOption{{Name: "ndots", Value: &two}, {Name: "edns0"}}}},
			"search shop.svc.cluster.local svc.cluster.local cluster.local example.internal\nnameserver 10.96.0.10\noptions ndots:2 edns0\n"},
		{"none", corev1.PodSpec{DNSPolicy: corev1.DNSNone, DNSConfig: &corev1.PodDNSConfig{Nameservers: []string{"10.250.0.1"}}},
			"nameserver 10.250.0.1\n"},
		{"default has no resolver in the lab", corev1.PodSpec{DNSPolicy: corev1.DNSDefault}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "cart", Namespace: "shop"}, Spec: tc.spec}
			got := string(resolvConf(p, dns, "cluster.local"))
			want := "# written by the nodemesh lab for Pod shop/cart\n" + tc.want
			if got != want {
				t.Fatalf("got\n%s\nwant\n%s", got, want)
			}
		})
	}
}
