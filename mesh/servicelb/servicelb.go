package servicelb

import (
	"cmp"
	"net/netip"
	"slices"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"

	"github.com/nodemesh/nodemesh/datapath/model"
)

// Table builds the Service rows of a snapshot's Services and slices.
func Table(svcs []*corev1.Service, eps []*discoveryv1.EndpointSlice) []model.Service {
	type key struct {
		ns, name string
		v4       bool
	}
	byService := map[key][]*discoveryv1.EndpointSlice{}
	for _, s := range eps {
		if s == nil || (s.AddressType != discoveryv1.AddressTypeIPv4 && s.AddressType != discoveryv1.AddressTypeIPv6) {
			continue
		}
		name := s.Labels[discoveryv1.LabelServiceName]
		if name == "" {
			continue
		}
		k := key{s.Namespace, name, s.AddressType == discoveryv1.AddressTypeIPv4}
		byService[k] = append(byService[k], s)
	}
	var out []model.Service
	type frontend struct {
		vip   netip.Addr
		port  uint16
		proto uint8
	}
	seen := map[frontend]bool{}
	add := func(fe model.Service) {
		f := frontend{fe.Frontend, fe.Port, fe.Proto}
		if seen[f] {
			return
		}
		seen[f] = true
		out = append(out, fe)
	}
	for _, svc := range svcs {
		if svc == nil {
			continue
		}
		for _, p := range svc.Spec.Ports {
			proto, ok := protocol(p.Protocol)
			if !ok || p.Port <= 0 || p.Port > 65535 {
				continue
			}
			for _, vip := range frontends(svc) {
				fe := model.Service{Frontend: vip, Port: uint16(p.Port), Proto: proto}
				if proto != model.ProtoSCTP {
					fe.Backends = backends(byService[key{svc.Namespace, svc.Name, vip.Is4()}], p, vip.Is4())
				}
				add(fe)
			}
			if p.NodePort > 0 && p.NodePort <= 65535 && (svc.Spec.Type == corev1.ServiceTypeNodePort || svc.Spec.Type == corev1.ServiceTypeLoadBalancer) {
				add(model.Service{Frontend: model.NodePortFrontend, Port: uint16(p.NodePort), Proto: proto})
			}
		}
	}
	slices.SortFunc(out, func(a, b model.Service) int {
		return cmp.Or(a.Frontend.Compare(b.Frontend), cmp.Compare(a.Port, b.Port), cmp.Compare(a.Proto, b.Proto))
	})
	return out
}

// Ranges are the Service ranges of a snapshot: every ServiceCIDR and
// every ClusterIP as a host prefix (so a cluster whose ServiceCIDRs are
// not known still covers the addresses its Services hold), sorted and
// without duplicates.
func Ranges(cidrs []*networkingv1.ServiceCIDR, svcs []*corev1.Service) []netip.Prefix {
	seen := map[netip.Prefix]bool{}
	var out []netip.Prefix
	add := func(p netip.Prefix) {
		p = p.Masked()
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	for _, c := range cidrs {
		if c == nil {
			continue
		}
		for _, s := range c.Spec.CIDRs {
			p, err := netip.ParsePrefix(s)
			if err != nil || p.Addr().Is4In6() || p.Addr().Zone() != "" {
				continue
			}
			add(p)
		}
	}
	for _, svc := range svcs {
		if svc == nil {
			continue
		}
		for _, a := range clusterIPs(svc) {
			add(netip.PrefixFrom(a, a.BitLen()))
		}
	}
	slices.SortFunc(out, func(a, b netip.Prefix) int {
		return cmp.Or(a.Addr().Compare(b.Addr()), cmp.Compare(a.Bits(), b.Bits()))
	})
	return out
}

// frontends are the addresses kube-proxy answers for a Service inside
// the cluster: its ClusterIPs, its externalIPs and the IPs of its load
// balancer (except those in Proxy mode, whose traffic really goes to the
// load balancer).
func frontends(svc *corev1.Service) []netip.Addr {
	out := clusterIPs(svc)
	for _, s := range svc.Spec.ExternalIPs {
		if a, ok := plainAddr(s); ok {
			out = append(out, a)
		}
	}
	if svc.Spec.Type == corev1.ServiceTypeLoadBalancer {
		for _, in := range svc.Status.LoadBalancer.Ingress {
			if in.IPMode != nil && *in.IPMode == corev1.LoadBalancerIPModeProxy {
				continue
			}
			if a, ok := plainAddr(in.IP); ok {
				out = append(out, a)
			}
		}
	}
	return out
}

func clusterIPs(svc *corev1.Service) []netip.Addr {
	ips := svc.Spec.ClusterIPs
	if len(ips) == 0 && svc.Spec.ClusterIP != "" {
		ips = []string{svc.Spec.ClusterIP}
	}
	var out []netip.Addr
	for _, s := range ips {
		if a, ok := plainAddr(s); ok {
			out = append(out, a) // "None" (headless) and garbage are not
		}
	}
	return out
}

func plainAddr(s string) (netip.Addr, bool) {
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" || a.Is4In6() || a.IsUnspecified() {
		return netip.Addr{}, false
	}
	return a, true
}

func protocol(p corev1.Protocol) (uint8, bool) {
	switch p {
	case corev1.ProtocolTCP, "":
		return model.ProtoTCP, true
	case corev1.ProtocolUDP:
		return model.ProtoUDP, true
	case corev1.ProtocolSCTP:
		return model.ProtoSCTP, true
	}
	return 0, false
}

// backends are the ready endpoints of the slices for one Service port.
func backends(sl []*discoveryv1.EndpointSlice, sp corev1.ServicePort, v4 bool) []model.Backend {
	proto := sp.Protocol
	if proto == "" {
		proto = corev1.ProtocolTCP
	}
	seen := map[model.Backend]bool{}
	var out []model.Backend
	for _, s := range sl {
		var port int32 = -1
		for _, p := range s.Ports {
			pp := corev1.ProtocolTCP
			if p.Protocol != nil {
				pp = *p.Protocol
			}
			name := ""
			if p.Name != nil {
				name = *p.Name
			}
			if name == sp.Name && pp == proto && p.Port != nil {
				port = *p.Port
				break
			}
		}
		if port <= 0 || port > 65535 {
			continue
		}
		for _, e := range s.Endpoints {
			if e.Conditions.Ready != nil && !*e.Conditions.Ready {
				continue
			}
			for _, a := range e.Addresses {
				ip, err := netip.ParseAddr(a)
				if err != nil || ip.Is4() != v4 || ip.Is4In6() || ip.Zone() != "" {
					continue
				}
				b := model.Backend{Addr: ip, Port: uint16(port)}
				if seen[b] || len(out) >= model.MaxBackends {
					continue
				}
				seen[b] = true
				out = append(out, b)
			}
		}
	}
	slices.SortFunc(out, func(a, b model.Backend) int {
		return cmp.Or(a.Addr.Compare(b.Addr), cmp.Compare(a.Port, b.Port))
	})
	return out
}
