package translator

import (
	"net/netip"
	"sort"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/nodemesh/nodemesh/mesh/ir"
)

// loadAssignment emits the endpoints of a cluster. Only ready endpoints are
// emitted (as HEALTHY): stock Envoy's panic threshold would otherwise send
// traffic to not-ready endpoints as soon as fewer than half are ready.
// Endpoints are sorted and de-duplicated by address and port, so the order
// producers list them in never causes a push. An empty assignment is valid
// and makes requests to the cluster fail with 503.
func (b *builder) loadAssignment(c *ir.Cluster, name string) (*endpointv3.ClusterLoadAssignment, error) {
	type hostPort struct {
		addr   netip.Addr
		port   uint32
		weight uint32
	}
	eps := make([]hostPort, 0, len(c.Endpoints))
	for i, ep := range c.Endpoints {
		if !ep.Ready {
			continue
		}
		a, _ := netip.ParseAddr(ep.Address) // validated by ir.Config.Validate
		if !protoText(a.String()) {
			b.warn("cluster "+quote(c.Name), fieldf("endpoints[%d].address", i), "address zone cannot be carried in Envoy config; endpoint dropped")
			continue
		}
		eps = append(eps, hostPort{a, ep.Port, ep.Weight})
	}
	sort.Slice(eps, func(i, j int) bool {
		if c := eps[i].addr.Compare(eps[j].addr); c != 0 {
			return c < 0
		}
		return eps[i].port < eps[j].port
	})
	cla := &endpointv3.ClusterLoadAssignment{ClusterName: name}
	if len(eps) > 0 {
		lbs := make([]*endpointv3.LbEndpoint, 0, len(eps))
		for i, ep := range eps {
			if i > 0 && eps[i-1].addr == ep.addr && eps[i-1].port == ep.port {
				// Listed twice: one endpoint, whose weight is the sum.
				if w := lbs[len(lbs)-1].LoadBalancingWeight; w != nil {
					w.Value += max(ep.weight, 1)
				}
				continue
			}
			lb := &endpointv3.LbEndpoint{
				HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
					Address: socketAddress(ep.addr.String(), ep.port),
				}},
				HealthStatus: corev3.HealthStatus_HEALTHY,
			}
			if ep.weight > 0 {
				lb.LoadBalancingWeight = wrapperspb.UInt32(ep.weight)
			}
			lbs = append(lbs, lb)
		}
		cla.Endpoints = []*endpointv3.LocalityLbEndpoints{{LbEndpoints: lbs}}
	}
	if err := checked("cluster load assignment", name, cla); err != nil {
		return nil, err
	}
	return cla, nil
}

// socketAddress is a TCP address as Envoy spells it.
func socketAddress(addr string, port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address:       addr,
		PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
	}}}
}
