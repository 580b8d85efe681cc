package policy

import (
	"fmt"
	"net/netip"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	ciliumv2 "github.com/nodemesh/nodemesh/api/cilium/v2"
)

// benchInput is n applications of two Pods each (server and client),
// each server guarded by one L7 policy with two HTTP rules.
func benchInput(n int) Input {
	var in Input
	for i := 0; i < n; i++ {
		app := fmt.Sprintf("app-%d", i)
		for j, role := range []string{"server", "client"} {
			in.Pods = append(in.Pods, &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Namespace: "bench", Name: fmt.Sprintf("%s-%s", app, role), Labels: map[string]string{"app": app, "role": role}},
				Status:     corev1.PodStatus{PodIP: netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), byte(j + 1)}).String()},
			})
		}
		in.CiliumNetworkPolicies = append(in.CiliumNetworkPolicies, &ciliumv2.CiliumNetworkPolicy{
			ObjectMeta: metav1.ObjectMeta{Namespace: "bench", Name: app},
			Spec: &ciliumv2.Rule{
				EndpointSelector: &ciliumv2.EndpointSelector{MatchLabels: map[string]string{"app": app, "role": "server"}},
				Ingress: []ciliumv2.IngressRule{{
					IngressCommonRule: ciliumv2.IngressCommonRule{FromEndpoints: []ciliumv2.EndpointSelector{{MatchLabels: map[string]string{"app": app, "role": "client"}}}},
					ToPorts: []ciliumv2.PortRule{{
						Ports: []ciliumv2.PortProtocol{{Port: "80", Protocol: "TCP"}},
						Rules: &ciliumv2.L7Rules{HTTP: []ciliumv2.PortRuleHTTP{{Method: "GET", Path: "/api/v1/.*"}, {Method: "POST", Path: "/api/v1/users"}}},
					}},
				}},
			},
		})
	}
	return in
}

// BenchmarkCompile reports the cost of compiling every policy of a node
// (identities, datapath rows, L7 policy) at 10, 100 and 1000 policies.
func BenchmarkCompile(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("policies=%d", n), func(b *testing.B) {
			in := benchInput(n)
			c, err := New(testOptions())
			if err != nil {
				b.Fatal(err)
			}
			res := c.Compile(in)
			if len(res.Datapath.Entries) != n || len(res.L7.HTTP) != 2*n {
				b.Fatalf("%d rows, %d HTTP policies", len(res.Datapath.Entries), len(res.L7.HTTP))
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				c.Compile(in)
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/float64(n), "µs/policy")
		})
	}
}
