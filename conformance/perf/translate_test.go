package perf

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/nodemesh/nodemesh/gateway"
	"github.com/nodemesh/nodemesh/mesh/input"
	"github.com/nodemesh/nodemesh/xds/publish"
	"github.com/nodemesh/nodemesh/xds/server"
	"github.com/nodemesh/nodemesh/xds/translator"
)

// scenario builds the benchmark's input: one Gateway with an HTTP listener
// accepting routes from all namespaces, `routes` HTTPRoutes spread over 10
// namespaces, each with 2-4 rules of 1-5 matches (about 9 Envoy routes per
// HTTPRoute), weighted backends over routes/2 Services, header filters.
func scenario(routes int) *input.Snapshot {
	ptr := func(s string) *string { return &s }
	from := gwv1.NamespacesFromAll
	snap := &input.Snapshot{
		GatewayClasses: []*gwv1.GatewayClass{{
			ObjectMeta: metav1.ObjectMeta{Name: "nodemesh"},
			Spec:       gwv1.GatewayClassSpec{ControllerName: gateway.ControllerName},
		}},
		Gateways: []*gwv1.Gateway{{
			ObjectMeta: metav1.ObjectMeta{Namespace: "infra", Name: "gw"},
			Spec: gwv1.GatewaySpec{
				GatewayClassName: "nodemesh",
				Listeners: []gwv1.Listener{{Name: "http", Protocol: gwv1.HTTPProtocolType, Port: 80,
					AllowedRoutes: &gwv1.AllowedRoutes{Namespaces: &gwv1.RouteNamespaces{From: &from}}}},
			},
		}},
	}
	// routes/2 Services (at least 10, a multiple of 10), Service s in
	// namespace team-(s%10) like the routes that use it.
	services := max((routes/2+9)/10*10, 10)
	ns := func(i int) string { return fmt.Sprintf("team-%d", i%10) }
	for s := range services {
		name := fmt.Sprintf("svc-%d", s)
		snap.Services = append(snap.Services, &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns(s), Name: name},
			Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)}}},
		})
		port := int32(8080)
		var eps []discoveryv1.Endpoint
		for e := range 3 {
			eps = append(eps, discoveryv1.Endpoint{Addresses: []string{fmt.Sprintf("10.%d.%d.%d", s/250, s%250, e+1)}})
		}
		snap.EndpointSlices = append(snap.EndpointSlices, &discoveryv1.EndpointSlice{
			ObjectMeta:  metav1.ObjectMeta{Namespace: ns(s), Name: name + "-x", Labels: map[string]string{discoveryv1.LabelServiceName: name}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Ports:       []discoveryv1.EndpointPort{{Name: ptr("http"), Port: &port}},
			Endpoints:   eps,
		})
	}
	gwNS := gwv1.Namespace("infra")
	for r := range routes {
		backend := func(k int) gwv1.HTTPBackendRef {
			s := ((r/10+k)%(services/10))*10 + r%10
			w := int32(1 + k*3)
			return gwv1.HTTPBackendRef{BackendRef: gwv1.BackendRef{
				BackendObjectReference: gwv1.BackendObjectReference{Name: gwv1.ObjectName(fmt.Sprintf("svc-%d", s)), Port: portPtr(80)},
				Weight:                 &w,
			}}
		}
		var rules []gwv1.HTTPRouteRule
		for k := range 2 + r%3 {
			var matches []gwv1.HTTPRouteMatch
			for m := range 1 + (r+k)%5 {
				pt := gwv1.PathMatchPathPrefix
				matches = append(matches, gwv1.HTTPRouteMatch{
					Path:    &gwv1.HTTPPathMatch{Type: &pt, Value: ptr(fmt.Sprintf("/r%d/k%d/m%d", r, k, m))},
					Headers: []gwv1.HTTPHeaderMatch{{Name: "x-tenant", Value: fmt.Sprintf("t%d", m)}},
				})
			}
			rules = append(rules, gwv1.HTTPRouteRule{
				Matches: matches,
				Filters: []gwv1.HTTPRouteFilter{{
					Type: gwv1.HTTPRouteFilterRequestHeaderModifier,
					RequestHeaderModifier: &gwv1.HTTPHeaderFilter{
						Set: []gwv1.HTTPHeader{{Name: "x-route", Value: fmt.Sprintf("r%d", r)}},
					},
				}},
				BackendRefs: []gwv1.HTTPBackendRef{backend(0), backend(1)},
			})
		}
		snap.HTTPRoutes = append(snap.HTTPRoutes, &gwv1.HTTPRoute{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns(r), Name: fmt.Sprintf("route-%d", r)},
			Spec: gwv1.HTTPRouteSpec{
				CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: []gwv1.ParentReference{{Name: "gw", Namespace: &gwNS}}},
				Hostnames:       []gwv1.Hostname{gwv1.Hostname(fmt.Sprintf("app%d.example.com", r%50))},
				Rules:           rules,
			},
		})
	}
	return snap
}

func portPtr(p gwv1.PortNumber) *gwv1.PortNumber { return &p }

var sizes = []int{10, 100, 1000, 5000}

var addrs = map[input.Key]netip.Addr{{Namespace: "infra", Name: "gw"}: netip.MustParseAddr("127.0.100.1")}

// BenchmarkFullTranslation is Gateway API objects to validated Envoy
// resources: gateway.Translate, ir.Config.Validate, translator.Translate.
// It reports Envoy routes produced, so sizes compare with other projects'
// published numbers.
func BenchmarkFullTranslation(b *testing.B) {
	for _, n := range sizes {
		snap := scenario(n)
		b.Run(fmt.Sprintf("httproutes=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			var envoyRoutes int
			for b.Loop() {
				res := gateway.Translate(snap, gateway.Options{Addresses: addrs})
				if err := res.Config.Validate(); err != nil {
					b.Fatal(err)
				}
				out, err := translator.Translate(res.Config)
				if err != nil {
					b.Fatal(err)
				}
				envoyRoutes = 0
				for _, rc := range out.RouteConfigurations {
					for _, vh := range rc.VirtualHosts {
						envoyRoutes += len(vh.Routes)
					}
				}
			}
			b.ReportMetric(float64(envoyRoutes), "envoy-routes")
		})
	}
}

// BenchmarkOneRouteChange is the cost of a single HTTPRoute edit at each
// size along the agent's real path: the incremental Gateway API
// translation (gateway.Translator), then xds/publish: IR validation, the
// memoizing Envoy translator and the xDS server's versioning (no proxy is
// connected, so nothing is sent).
func BenchmarkOneRouteChange(b *testing.B) {
	for _, n := range sizes {
		snap := scenario(n)
		b.Run(fmt.Sprintf("httproutes=%d", n), func(b *testing.B) {
			srv := server.New(server.WithLogger(slog.New(slog.DiscardHandler)))
			defer srv.Stop(0)
			pub := publish.New(srv)
			tr := gateway.NewTranslator()
			publish := func(s *input.Snapshot) {
				// As the agent does: the publisher validates the IR.
				res := tr.Translate(s, gateway.Options{Addresses: addrs})
				if _, err := pub.Publish(context.Background(), res.Config); err != nil {
					b.Fatal(err)
				}
			}
			publish(snap)
			edited := *snap
			edited.HTTPRoutes = append([]*gwv1.HTTPRoute(nil), snap.HTTPRoutes...)
			orig := snap.HTTPRoutes[0]
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				r := orig.DeepCopy()
				r.Spec.Rules[0].Filters[0].RequestHeaderModifier.Set[0].Value = fmt.Sprintf("edit-%d", i)
				edited.HTTPRoutes[0] = r
				i++
				publish(&edited)
			}
		})
	}
}
