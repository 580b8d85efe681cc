package translator

import (
	"cmp"
	"net/netip"
	"slices"

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
// and makes requests to the cluster fail with 503. viaIngress leaves out
// the endpoints the ingress endpoint's egress denies (ingresspolicy.go).
func (b *builder) loadAssignment(c *ir.Cluster, name string, viaIngress bool) (*endpointv3.ClusterLoadAssignment, error) {
	type hostPort struct {
		addr   netip.Addr
		text   string // addr as emitted
		port   uint32
		weight uint32
	}
	// A cluster has a few endpoints, usually: room for them on the stack,
	// since clusters come by the thousand.
	var room [8]hostPort
	eps := room[:0]
	var scratch [64]byte
	for i, ep := range c.Endpoints {
		if !ep.Ready {
			continue
		}
		a, _ := netip.ParseAddr(ep.Address) // validated by ir.Config.Validate
		// The address as netip writes it, which is how it is emitted:
		// the IR's own string when it is written that way already.
		text := ep.Address
		if buf := a.AppendTo(scratch[:0]); string(buf) != text {
			text = string(buf)
		}
		if viaIngress && !b.backendAllowed(c, a, ep.Port) {
			continue // ingress → backend denies it (ingresspolicy.go)
		}
		if !protoText(text) {
			if viaIngress {
				continue // the unfiltered assignment warned
			}
			b.warn("cluster "+quote(c.Name), fieldf("endpoints[%d].address", i), "address zone cannot be carried in Envoy config; endpoint dropped")
			continue
		}
		eps = append(eps, hostPort{a, text, ep.Port, ep.Weight})
	}
	slices.SortFunc(eps, func(a, b hostPort) int {
		if c := a.addr.Compare(b.addr); c != 0 {
			return c
		}
		return cmp.Compare(a.port, b.port)
	})
	// The assignment and its one locality in one allocation.
	blk := new(struct {
		cla      endpointv3.ClusterLoadAssignment
		locality endpointv3.LocalityLbEndpoints
		list     [1]*endpointv3.LocalityLbEndpoints
	})
	cla := &blk.cla
	cla.ClusterName = name
	if len(eps) > 0 {
		lbs := make([]*endpointv3.LbEndpoint, 0, len(eps))
		// The messages of every endpoint in one allocation: clusters come
		// by the thousand.
		parts := make([]endpointParts, len(eps))
		for i, ep := range eps {
			if i > 0 && eps[i-1].addr == ep.addr && eps[i-1].port == ep.port {
				// Listed twice: one endpoint, whose weight is the sum.
				if w := lbs[len(lbs)-1].LoadBalancingWeight; w != nil {
					w.Value += max(ep.weight, 1)
				}
				continue
			}
			p := &parts[i]
			p.port.PortValue = ep.port
			p.socket.Address, p.socket.PortSpecifier = ep.text, &p.port
			p.sa.SocketAddress = &p.socket
			p.addr.Address = &p.sa
			p.endpoint.Address = &p.addr
			p.host.Endpoint = &p.endpoint
			lb := &p.lb
			lb.HostIdentifier, lb.HealthStatus = &p.host, corev3.HealthStatus_HEALTHY
			if ep.weight > 0 {
				p.weight.Value = ep.weight
				lb.LoadBalancingWeight = &p.weight
			}
			lbs = append(lbs, lb)
		}
		blk.locality.LbEndpoints = lbs
		blk.list[0] = &blk.locality
		cla.Endpoints = blk.list[:]
	}
	if err := checked("cluster load assignment", name, cla); err != nil {
		return nil, err
	}
	return cla, nil
}

// endpointParts are the messages of one endpoint of a load assignment.
type endpointParts struct {
	lb       endpointv3.LbEndpoint
	host     endpointv3.LbEndpoint_Endpoint
	endpoint endpointv3.Endpoint
	addr     corev3.Address
	sa       corev3.Address_SocketAddress
	socket   corev3.SocketAddress
	port     corev3.SocketAddress_PortValue
	weight   wrapperspb.UInt32Value
}

// socketAddress is a TCP address as Envoy spells it.
func socketAddress(addr string, port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address:       addr,
		PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
	}}}
}
