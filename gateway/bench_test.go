package gateway

import (
	"fmt"
	"net/netip"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/nodemesh/nodemesh/mesh/input"
	"github.com/nodemesh/nodemesh/mesh/ir"
)

const benchNamespaces = 10

// benchSnapshot builds one Gateway and n HTTPRoutes spread over several
// namespaces: 2-4 rules of 3 matches each (about 9 IR routes per HTTPRoute),
// header filters, two weighted backends per rule (one across namespaces,
// allowed by a ReferenceGrant), n/2 Services with three endpoints each.
func benchSnapshot(n int) (*input.Snapshot, Options) {
	ns := func(i int) string { return fmt.Sprintf("team-%d", i%benchNamespaces) }
	str := func(s string) *string { return &s }
	s := &input.Snapshot{
		GatewayClasses: []*gwv1.GatewayClass{{
			ObjectMeta: metav1.ObjectMeta{Name: "nodemesh"},
			Spec:       gwv1.GatewayClassSpec{ControllerName: ControllerName},
		}},
		Gateways: []*gwv1.Gateway{{
			ObjectMeta: metav1.ObjectMeta{Name: "eg", Namespace: "infra"},
			Spec: gwv1.GatewaySpec{GatewayClassName: "nodemesh", Listeners: []gwv1.Listener{{
				Name: "http", Port: 80, Protocol: gwv1.HTTPProtocolType,
				AllowedRoutes: &gwv1.AllowedRoutes{Namespaces: &gwv1.RouteNamespaces{From: ptr(gwv1.NamespacesFromAll)}},
			}}},
		}},
	}
	var from []gwv1.ReferenceGrantFrom
	for i := 0; i < benchNamespaces; i++ {
		from = append(from, gwv1.ReferenceGrantFrom{Group: gwv1.GroupName, Kind: "HTTPRoute", Namespace: gwv1.Namespace(ns(i))})
	}
	for i := 0; i < benchNamespaces; i++ {
		s.ReferenceGrants = append(s.ReferenceGrants, &gwv1.ReferenceGrant{
			ObjectMeta: metav1.ObjectMeta{Name: "routes", Namespace: ns(i)},
			Spec:       gwv1.ReferenceGrantSpec{From: from, To: []gwv1.ReferenceGrantTo{{Kind: "Service"}}},
		})
	}
	services := max(n/2, 1)
	for k := 0; k < services; k++ {
		name := fmt.Sprintf("svc-%d", k)
		s.Services = append(s.Services, &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns(k)},
			Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 8080}}},
		})
		es := &discoveryv1.EndpointSlice{
			ObjectMeta:  metav1.ObjectMeta{Name: name + "-abc", Namespace: ns(k), Labels: map[string]string{discoveryv1.LabelServiceName: name}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Ports:       []discoveryv1.EndpointPort{{Name: str("http"), Port: ptr(int32(80))}},
		}
		for e := 0; e < 3; e++ {
			es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{Addresses: []string{fmt.Sprintf("10.%d.%d.%d", k>>8&255, k&255, e+1)}})
		}
		s.EndpointSlices = append(s.EndpointSlices, es)
	}
	for i := 0; i < n; i++ {
		k := i / 2
		r := &gwv1.HTTPRoute{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("route-%d", i), Namespace: ns(k)},
			Spec: gwv1.HTTPRouteSpec{
				CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: []gwv1.ParentReference{{Name: "eg", Namespace: ptr(gwv1.Namespace("infra"))}}},
				Hostnames:       []gwv1.Hostname{gwv1.Hostname(fmt.Sprintf("app-%d.example.com", i/4))},
			},
		}
		for j := 0; j < 2+i%3; j++ {
			prefix := fmt.Sprintf("/r%d/rule%d", i, j)
			get := gwv1.HTTPMethodGet
			r.Spec.Rules = append(r.Spec.Rules, gwv1.HTTPRouteRule{
				Matches: []gwv1.HTTPRouteMatch{
					{Path: &gwv1.HTTPPathMatch{Value: str(prefix)}},
					{Path: &gwv1.HTTPPathMatch{Value: str(prefix + "/v2")}, Headers: []gwv1.HTTPHeaderMatch{{Name: "x-version", Value: "2"}}},
					{Path: &gwv1.HTTPPathMatch{Value: str(prefix + "/read")}, Method: &get},
				},
				Filters: []gwv1.HTTPRouteFilter{
					{Type: gwv1.HTTPRouteFilterRequestHeaderModifier, RequestHeaderModifier: &gwv1.HTTPHeaderFilter{Set: []gwv1.HTTPHeader{{Name: "x-route", Value: r.Name}}}},
					{Type: gwv1.HTTPRouteFilterResponseHeaderModifier, ResponseHeaderModifier: &gwv1.HTTPHeaderFilter{Add: []gwv1.HTTPHeader{{Name: "x-served-by", Value: "nodemesh"}}}},
				},
				BackendRefs: []gwv1.HTTPBackendRef{
					{BackendRef: gwv1.BackendRef{BackendObjectReference: gwv1.BackendObjectReference{Name: gwv1.ObjectName(fmt.Sprintf("svc-%d", k)), Port: ptr(gwv1.PortNumber(8080))}, Weight: ptr(int32(90))}},
					{BackendRef: gwv1.BackendRef{BackendObjectReference: gwv1.BackendObjectReference{
						Name: gwv1.ObjectName(fmt.Sprintf("svc-%d", (k+1)%services)), Namespace: ptr(gwv1.Namespace(ns((k + 1) % services))), Port: ptr(gwv1.PortNumber(8080)),
					}, Weight: ptr(int32(10))}},
				},
			})
		}
		s.HTTPRoutes = append(s.HTTPRoutes, r)
	}
	opts := Options{Addresses: map[input.Key]netip.Addr{{Namespace: "infra", Name: "eg"}: netip.MustParseAddr("127.0.0.10")}}
	return s, opts
}

func countRoutes(c *ir.Config) int {
	n := 0
	for _, l := range c.Listeners {
		for _, ch := range l.Chains {
			for _, vh := range ch.Routes.VirtualHosts {
				n += len(vh.Routes)
			}
		}
	}
	return n
}

// BenchmarkTranslate measures a full translation. It reports the IR routes
// produced; the cost per HTTPRoute should not grow with the input.
func BenchmarkTranslate(b *testing.B) {
	for _, n := range []int{10, 100, 1000, 5000} {
		b.Run(fmt.Sprintf("routes=%d", n), func(b *testing.B) {
			snap, opts := benchSnapshot(n)
			res := Translate(snap, opts)
			checkResult(b, res)
			if res.Routes[0].Status.Parents[0].Conditions[1].Status != metav1.ConditionTrue {
				b.Fatalf("benchmark input does not resolve: %+v", res.Routes[0].Status.Parents[0].Conditions)
			}
			routes := countRoutes(res.Config)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				Translate(snap, opts)
			}
			b.ReportMetric(float64(routes), "irroutes")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/httproute")
		})
	}
}

// TestBenchmarkInput keeps the benchmark's input honest: every route is
// accepted and resolved, and the output has the expected size.
func TestBenchmarkInput(t *testing.T) {
	snap, opts := benchSnapshot(100)
	res := Translate(snap, opts)
	checkResult(t, res)
	if len(res.Routes) != 100 {
		t.Fatalf("got %d route statuses, want 100", len(res.Routes))
	}
	for _, r := range res.Routes {
		if r.Kind != "HTTPRoute" {
			t.Fatalf("route %s: kind %q, want HTTPRoute", r.Key, r.Kind)
		}
		for _, c := range r.Status.Parents[0].Conditions {
			if c.Status != metav1.ConditionTrue {
				t.Fatalf("HTTPRoute %s: %s=%s: %s", r.Key, c.Type, c.Status, c.Message)
			}
		}
	}
	// 100 routes with 2-4 rules (300 rules) of 3 matches.
	want := 0
	for i := 0; i < 100; i++ {
		want += (2 + i%3) * 3
	}
	if got := countRoutes(res.Config); got != want {
		t.Errorf("got %d IR routes, want %d", got, want)
	}
	if got := len(res.Config.Clusters); got != 50 {
		t.Errorf("got %d clusters, want 50", got)
	}
}
