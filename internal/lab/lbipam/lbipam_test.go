package lbipam

import (
	"net/netip"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func svc(name string, age int, ips string, status string) *corev1.Service {
	s := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name,
			CreationTimestamp: metav1.NewTime(time.Unix(int64(1000+age), 0))},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer},
	}
	if ips != "" {
		s.Annotations = map[string]string{IPsAnnotation: ips}
	}
	if status != "" {
		s.Status.LoadBalancer = ingressFor(netip.MustParseAddr(status))
	}
	return s
}

// TestPlan: lowest free addresses, requests honoured when usable, sticky
// assignments, the older Service winning a contested request, other
// Service types and classes left alone.
func TestPlan(t *testing.T) {
	pool := netip.MustParsePrefix("10.250.0.192/30")
	class := "other"
	foreign := svc("foreign", 0, "", "")
	foreign.Spec.LoadBalancerClass = &class
	cluster := svc("cip", 0, "", "")
	cluster.Spec.Type = corev1.ServiceTypeClusterIP
	cases := []struct {
		name string
		svcs []*corev1.Service
		want map[string]string // name -> address ("" clears)
	}{
		{"lowest free first, broadcast never", []*corev1.Service{svc("a", 1, "", ""), svc("b", 2, "", ""), svc("c", 3, "", "")},
			map[string]string{"a": "10.250.0.193", "b": "10.250.0.194"}},
		{"sticky", []*corev1.Service{svc("a", 1, "", "10.250.0.194"), svc("b", 2, "", "")},
			map[string]string{"b": "10.250.0.193"}},
		{"request honoured, unusable skipped", []*corev1.Service{svc("a", 1, "192.0.2.1, 10.250.0.194", "")},
			map[string]string{"a": "10.250.0.194"}},
		{"nothing usable requested stays pending", []*corev1.Service{svc("a", 1, "192.0.2.1", "")}, map[string]string{}},
		{"a changed request moves the address", []*corev1.Service{svc("a", 1, "10.250.0.193", "10.250.0.194")},
			map[string]string{"a": "10.250.0.193"}},
		{"request no longer usable clears", []*corev1.Service{svc("a", 1, "192.0.2.1", "10.250.0.194")},
			map[string]string{"a": ""}},
		{"older Service wins a contested request", []*corev1.Service{svc("new", 5, "10.250.0.193", ""), svc("old", 1, "10.250.0.193", "")},
			map[string]string{"old": "10.250.0.193"}},
		{"other classes and types untouched", []*corev1.Service{foreign, cluster}, map[string]string{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := map[string]string{}
			for _, w := range Plan(pool, tc.svcs) {
				v := ""
				if w.Addr.IsValid() {
					v = w.Addr.String()
				}
				got[w.Service.Name] = v
			}
			if len(got) != len(tc.want) {
				t.Fatalf("writes %v, want %v", got, tc.want)
			}
			for k, v := range tc.want {
				if got[k] != v {
					t.Fatalf("writes %v, want %v", got, tc.want)
				}
			}
		})
	}
	// The written status says Proxy, so kube-proxy leaves the address to
	// the node proxy.
	st := ingressFor(netip.MustParseAddr("10.250.0.193"))
	if m := st.Ingress[0].IPMode; m == nil || *m != corev1.LoadBalancerIPModeProxy {
		t.Fatalf("ipMode %v, want Proxy", m)
	}
}
