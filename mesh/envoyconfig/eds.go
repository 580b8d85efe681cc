package envoyconfig

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/nodemesh/nodemesh/mesh/input"
)

// maxEndpoints bounds the endpoints of one EDS answer, as the datapath's
// Service table bounds backends.
const maxEndpoints = 65535

// serviceIndex finds Services and their EndpointSlices by key.
type serviceIndex struct {
	services map[input.Key]*corev1.Service
	slices   map[input.Key][]*discoveryv1.EndpointSlice
}

func newServiceIndex(snap *input.Snapshot) *serviceIndex {
	x := &serviceIndex{services: map[input.Key]*corev1.Service{}, slices: map[input.Key][]*discoveryv1.EndpointSlice{}}
	for _, s := range snap.Services {
		x.services[input.Key{Namespace: s.Namespace, Name: s.Name}] = s
	}
	for _, es := range snap.EndpointSlices {
		svc := es.Labels[discoveryv1.LabelServiceName]
		if svc == "" {
			continue
		}
		k := input.Key{Namespace: es.Namespace, Name: svc}
		x.slices[k] = append(x.slices[k], es)
	}
	return x
}

// edsName is an EDS service name for a Service: "<namespace>/<name>" for
// the selected ports of the Service, "<namespace>/<name>:<port>" for one
// port (by number or name), as Cilium names them.
type edsName struct {
	svc  input.Key
	port string // "" for every selected port
}

func (e edsName) String() string {
	s := e.svc.Namespace + "/" + e.svc.Name
	if e.port != "" {
		s += ":" + e.port
	}
	return s
}

func parseEDSName(s string) (edsName, bool) {
	ns, rest, ok := strings.Cut(s, "/")
	if !ok || ns == "" || rest == "" || strings.Contains(rest, "/") {
		return edsName{}, false
	}
	name, port, _ := strings.Cut(rest, ":")
	if name == "" {
		return edsName{}, false
	}
	return edsName{svc: input.Key{Namespace: ns, Name: name}, port: port}, true
}

// servicePorts are the ports of svc an entry selects: every TCP port when
// sel is empty, else those whose number or name sel lists.
func servicePorts(svc *corev1.Service, sel []string) []corev1.ServicePort {
	var out []corev1.ServicePort
	for _, p := range svc.Spec.Ports {
		if p.Protocol != "" && p.Protocol != corev1.ProtocolTCP {
			continue
		}
		if len(sel) == 0 || slices.Contains(sel, strconv.Itoa(int(p.Port))) || (p.Name != "" && slices.Contains(sel, p.Name)) {
			out = append(out, p)
		}
	}
	return out
}

// loadAssignment answers an EDS name with the ready endpoints of the
// Service ports it names, among those sel selects. A port the Service
// does not have is an error; a Service without ready endpoints is an
// empty answer (the proxy then answers 503, as Envoy does).
func (x *serviceIndex) loadAssignment(e edsName, sel []string) (*endpointv3.ClusterLoadAssignment, error) {
	svc := x.services[e.svc]
	cla := &endpointv3.ClusterLoadAssignment{ClusterName: e.String()}
	if svc == nil {
		return cla, nil // the Service may come later; until then, no endpoints
	}
	ports := servicePorts(svc, sel)
	if e.port != "" {
		ports = slices.DeleteFunc(ports, func(p corev1.ServicePort) bool {
			return strconv.Itoa(int(p.Port)) != e.port && p.Name != e.port
		})
		if len(ports) == 0 {
			return nil, fmt.Errorf("Service %s has no selected TCP port %q", e.svc, e.port)
		}
	}
	type ep struct {
		addr netip.Addr
		port uint32
	}
	seen := map[ep]bool{}
	var eps []ep
	for _, sp := range ports {
		for _, es := range x.slices[e.svc] {
			var port int32
			for _, p := range es.Ports {
				if p.Name != nil && *p.Name == sp.Name && p.Port != nil && (p.Protocol == nil || *p.Protocol == corev1.ProtocolTCP) {
					port = *p.Port
				}
			}
			if port <= 0 || port > 65535 {
				continue
			}
			for _, en := range es.Endpoints {
				if en.Conditions.Ready != nil && !*en.Conditions.Ready {
					continue
				}
				for _, a := range en.Addresses {
					ip, err := netip.ParseAddr(a)
					if err != nil || ip.Zone() != "" {
						continue
					}
					k := ep{ip.Unmap(), uint32(port)}
					if seen[k] || len(eps) >= maxEndpoints {
						continue
					}
					seen[k] = true
					eps = append(eps, k)
				}
			}
		}
	}
	slices.SortFunc(eps, func(a, b ep) int { return cmp.Or(a.addr.Compare(b.addr), cmp.Compare(a.port, b.port)) })
	if len(eps) == 0 {
		return cla, nil
	}
	lle := &endpointv3.LocalityLbEndpoints{}
	for _, p := range eps {
		lle.LbEndpoints = append(lle.LbEndpoints, &endpointv3.LbEndpoint{
			HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
				Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
					Address:       p.addr.String(),
					PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: p.port},
				}}},
			}},
		})
	}
	cla.Endpoints = []*endpointv3.LocalityLbEndpoints{lle}
	return cla, nil
}
