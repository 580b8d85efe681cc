package servicelb

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/nodemesh/nodemesh/datapath/model"
)

func ptr[T any](v T) *T { return &v }

func service(name, ip string, ports ...corev1.ServicePort) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name},
		Spec:       corev1.ServiceSpec{ClusterIP: ip, ClusterIPs: []string{ip}, Ports: ports},
	}
}

func slice(svc string, ports []discoveryv1.EndpointPort, eps ...discoveryv1.Endpoint) *discoveryv1.EndpointSlice {
	return &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: svc + "-x",
			Labels: map[string]string{discoveryv1.LabelServiceName: svc}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       ports,
		Endpoints:   eps,
	}
}

func ep(ready *bool, addrs ...string) discoveryv1.Endpoint {
	return discoveryv1.Endpoint{Addresses: addrs, Conditions: discoveryv1.EndpointConditions{Ready: ready}}
}

func be(a string, port uint16) model.Backend {
	return model.Backend{Addr: netip.MustParseAddr(a), Port: port}
}

func TestTable(t *testing.T) {
	tcp, udp := corev1.ProtocolTCP, corev1.ProtocolUDP
	for _, tc := range []struct {
		name   string
		svcs   []*corev1.Service
		slices []*discoveryv1.EndpointSlice
		want   []model.Service
	}{{
		name: "named target port resolves per slice, not-ready endpoints are left out, duplicates merged",
		svcs: []*corev1.Service{service("web", "10.96.0.20",
			corev1.ServicePort{Name: "http", Port: 80, TargetPort: intstr.FromString("http")})},
		slices: []*discoveryv1.EndpointSlice{
			slice("web", []discoveryv1.EndpointPort{{Name: ptr("http"), Port: ptr[int32](8080), Protocol: &tcp}},
				ep(nil, "10.244.1.5"), ep(ptr(true), "10.244.2.7"), ep(ptr(false), "10.244.2.9")),
			slice("web", []discoveryv1.EndpointPort{{Name: ptr("http"), Port: ptr[int32](9090), Protocol: &tcp}},
				ep(ptr(true), "10.244.3.3"), ep(ptr(true), "10.244.2.7")),
			slice("web", []discoveryv1.EndpointPort{{Name: ptr("http"), Port: ptr[int32](8080), Protocol: &tcp}},
				ep(ptr(true), "10.244.1.5")),
		},
		want: []model.Service{{Frontend: netip.MustParseAddr("10.96.0.20"), Port: 80, Proto: model.ProtoTCP,
			Backends: []model.Backend{be("10.244.1.5", 8080), be("10.244.2.7", 8080), be("10.244.2.7", 9090), be("10.244.3.3", 9090)}}},
	}, {
		name: "TCP and UDP ports of one Service are separate frontends; a port with no ready backend is a row without backends",
		svcs: []*corev1.Service{service("dns", "10.96.0.10",
			corev1.ServicePort{Name: "dns", Port: 53, Protocol: udp},
			corev1.ServicePort{Name: "dns-tcp", Port: 53, Protocol: tcp},
			corev1.ServicePort{Name: "metrics", Port: 9153, Protocol: tcp})},
		slices: []*discoveryv1.EndpointSlice{slice("dns", []discoveryv1.EndpointPort{
			{Name: ptr("dns"), Port: ptr[int32](53), Protocol: &udp},
			{Name: ptr("dns-tcp"), Port: ptr[int32](53), Protocol: &tcp}},
			ep(nil, "10.250.0.1"))},
		want: []model.Service{
			{Frontend: netip.MustParseAddr("10.96.0.10"), Port: 53, Proto: model.ProtoTCP, Backends: []model.Backend{be("10.250.0.1", 53)}},
			{Frontend: netip.MustParseAddr("10.96.0.10"), Port: 53, Proto: model.ProtoUDP, Backends: []model.Backend{be("10.250.0.1", 53)}},
			{Frontend: netip.MustParseAddr("10.96.0.10"), Port: 9153, Proto: model.ProtoTCP},
		},
	}, {
		name: "headless Services and slices of other Services or namespaces are skipped; SCTP is a marker without backends; IPv6 frontends take IPv6 slices",
		svcs: []*corev1.Service{
			service("headless", "None", corev1.ServicePort{Port: 80}),
			service("v6", "fd00::10", corev1.ServicePort{Port: 80}),
			service("sctp", "10.96.0.30", corev1.ServicePort{Port: 80, Protocol: corev1.ProtocolSCTP}),
			service("web", "10.96.0.31", corev1.ServicePort{Port: 80}),
		},
		slices: []*discoveryv1.EndpointSlice{
			slice("other", []discoveryv1.EndpointPort{{Port: ptr[int32](80)}}, ep(nil, "10.244.1.1")),
			func() *discoveryv1.EndpointSlice {
				s := slice("web", []discoveryv1.EndpointPort{{Port: ptr[int32](80)}}, ep(nil, "10.244.1.2"))
				s.Namespace = "elsewhere"
				return s
			}(),
			slice("web", []discoveryv1.EndpointPort{{Port: ptr[int32](8000)}}, ep(nil, "10.244.1.3", "garbage", "fd00::99")),
			func() *discoveryv1.EndpointSlice {
				s := slice("v6", []discoveryv1.EndpointPort{{Port: ptr[int32](8080)}}, ep(nil, "fd00:244::5", "10.244.1.9"))
				s.AddressType = discoveryv1.AddressTypeIPv6
				return s
			}(),
		},
		want: []model.Service{
			{Frontend: netip.MustParseAddr("10.96.0.30"), Port: 80, Proto: model.ProtoSCTP},
			{Frontend: netip.MustParseAddr("10.96.0.31"), Port: 80, Proto: model.ProtoTCP, Backends: []model.Backend{be("10.244.1.3", 8000)}},
			{Frontend: netip.MustParseAddr("fd00::10"), Port: 80, Proto: model.ProtoTCP, Backends: []model.Backend{be("fd00:244::5", 8080)}},
		},
	}, {
		name: "externalIPs and load-balancer IPs are frontends like the ClusterIP (not a Proxy-mode IP); NodePorts are markers on the unspecified address",
		svcs: []*corev1.Service{func() *corev1.Service {
			s := service("lb", "10.96.0.40",
				corev1.ServicePort{Name: "http", Port: 80, NodePort: 30080},
				corev1.ServicePort{Name: "sig", Port: 9000, NodePort: 30090, Protocol: corev1.ProtocolSCTP})
			s.Spec.Type = corev1.ServiceTypeLoadBalancer
			s.Spec.ExternalIPs = []string{"192.0.2.7", "garbage", "0.0.0.0"}
			proxy := corev1.LoadBalancerIPModeProxy
			s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "198.51.100.1"}, {IP: "198.51.100.2", IPMode: &proxy}, {Hostname: "lb.example"}}
			return s
		}(), func() *corev1.Service {
			// A ClusterIP Service's stray nodePort is no NodePort.
			return service("plain", "10.96.0.41", corev1.ServicePort{Port: 80, NodePort: 30099})
		}()},
		slices: []*discoveryv1.EndpointSlice{
			slice("lb", []discoveryv1.EndpointPort{{Name: ptr("http"), Port: ptr[int32](8080)}}, ep(nil, "10.244.1.4")),
		},
		want: []model.Service{
			{Frontend: netip.MustParseAddr("10.96.0.40"), Port: 80, Proto: model.ProtoTCP, Backends: []model.Backend{be("10.244.1.4", 8080)}},
			{Frontend: netip.MustParseAddr("10.96.0.40"), Port: 9000, Proto: model.ProtoSCTP},
			{Frontend: netip.MustParseAddr("10.96.0.41"), Port: 80, Proto: model.ProtoTCP},
			{Frontend: netip.MustParseAddr("192.0.2.7"), Port: 80, Proto: model.ProtoTCP, Backends: []model.Backend{be("10.244.1.4", 8080)}},
			{Frontend: netip.MustParseAddr("192.0.2.7"), Port: 9000, Proto: model.ProtoSCTP},
			{Frontend: netip.MustParseAddr("198.51.100.1"), Port: 80, Proto: model.ProtoTCP, Backends: []model.Backend{be("10.244.1.4", 8080)}},
			{Frontend: netip.MustParseAddr("198.51.100.1"), Port: 9000, Proto: model.ProtoSCTP},
			{Frontend: model.NodePortFrontend, Port: 30080, Proto: model.ProtoTCP},
			{Frontend: model.NodePortFrontend, Port: 30090, Proto: model.ProtoSCTP},
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			got := Table(tc.svcs, tc.slices)
			if d := cmp.Diff(tc.want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
			for _, s := range got {
				if err := s.Validate(); err != nil {
					t.Errorf("row does not validate: %v", err)
				}
			}
		})
	}
}

func TestRanges(t *testing.T) {
	cidrs := []*networkingv1.ServiceCIDR{
		{Spec: networkingv1.ServiceCIDRSpec{CIDRs: []string{"10.96.0.0/16", "fd00:96::/112"}}},
		{Spec: networkingv1.ServiceCIDRSpec{CIDRs: []string{"10.97.0.1/16", "garbage"}}},
		nil,
	}
	svcs := []*corev1.Service{
		service("web", "10.96.0.20", corev1.ServicePort{Port: 80}),
		service("headless", "None", corev1.ServicePort{Port: 80}),
		service("outside", "10.100.0.5", corev1.ServicePort{Port: 80}),
		service("again", "10.96.0.20", corev1.ServicePort{Port: 81}),
	}
	got := Ranges(cidrs, svcs)
	want := []netip.Prefix{
		netip.MustParsePrefix("10.96.0.0/16"), netip.MustParsePrefix("10.96.0.20/32"),
		netip.MustParsePrefix("10.97.0.0/16"), netip.MustParsePrefix("10.100.0.5/32"),
		netip.MustParsePrefix("fd00:96::/112"),
	}
	if d := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
	for _, p := range got {
		if err := model.ValidateRange(p); err != nil {
			t.Error(err)
		}
	}
}
