package kube

import (
	"fmt"
	"maps"
	"net"
	"net/netip"
	"strings"

	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/nodemesh/nodemesh/mesh/input"
)

// StatusAddresses reads each Gateway's address from its status, where
// nodemesh-controller writes the address it assigned. It implements
// agent.AddressAssigner for Kubernetes mode: every node serves a Gateway
// on the one address the controller chose, so agents never allocate.
type StatusAddresses struct{}

// Assign returns the first IPAddress in each Gateway's status.addresses.
func (StatusAddresses) Assign(gws []*gwv1.Gateway) (map[input.Key]netip.Addr, map[input.Key]string) {
	addrs := make(map[input.Key]netip.Addr, len(gws))
	problems := map[input.Key]string{}
	for _, gw := range gws {
		key := input.Key{Namespace: gw.Namespace, Name: gw.Name}
		addr, problem := statusAddress(gw)
		if problem != "" {
			problems[key] = problem
			continue
		}
		addrs[key] = addr
	}
	return addrs, problems
}

func statusAddress(gw *gwv1.Gateway) (netip.Addr, string) {
	for i, a := range gw.Status.Addresses {
		if a.Type != nil && *a.Type != gwv1.IPAddressType {
			continue
		}
		addr, err := netip.ParseAddr(a.Value)
		if err != nil {
			return netip.Addr{}, fmt.Sprintf("status.addresses[%d]: %q is not an IP address", i, a.Value)
		}
		return addr, ""
	}
	return netip.Addr{}, "waiting for nodemesh-controller to assign an address"
}

// Assigner decides addresses as agent.AddressAssigner does (restated so
// this package does not import the agent): the Gateways it is given, and
// Ingress load balancers presented as stand-in Gateways
// (gateway.IngressAddressRequests).
type Assigner interface {
	Assign(gws []*gwv1.Gateway) (map[input.Key]netip.Addr, map[input.Key]string)
}

// SplitAddresses assigns Gateways with Gateways and Ingress load
// balancers with Ingresses, so each kind follows its own mode: Gateways
// may be on load-balancer addresses while Ingresses are on the node's
// (host-network mode), and the other way round. An Ingress stand-in is
// told apart by its namespace, which holds a colon no real namespace can.
type SplitAddresses struct {
	Gateways, Ingresses Assigner
}

// Assign implements agent.AddressAssigner.
func (s SplitAddresses) Assign(gws []*gwv1.Gateway) (map[input.Key]netip.Addr, map[input.Key]string) {
	var real, standIns []*gwv1.Gateway
	for _, gw := range gws {
		if strings.Contains(gw.Namespace, ":") {
			standIns = append(standIns, gw)
		} else {
			real = append(real, gw)
		}
	}
	addrs, problems := s.Gateways.Assign(real)
	ia, ip := s.Ingresses.Assign(standIns)
	maps.Copy(addrs, ia)
	maps.Copy(problems, ip)
	return addrs, problems
}

// HostNetworkAddresses serves Gateways, or Ingress load balancers, in
// host-network mode: the controller lists in each one's status the
// address of every node selected to serve it (a Gateway's
// status.addresses; an Ingress's status.loadBalancer, which its stand-in
// carries), and a node's agent gives it the first of those that is one of
// its own (Local), so its proxy listens on the node's address. A node
// whose address is not listed serves nothing for it. The controller alone
// decides which nodes serve, so agents need no Node labels.
type HostNetworkAddresses struct {
	// Local returns the node's own addresses (those of its network
	// interfaces); called on every Assign, so an address added later is
	// seen at the next translation.
	Local func() ([]netip.Addr, error)
}

// Assign implements agent.AddressAssigner.
func (h HostNetworkAddresses) Assign(gws []*gwv1.Gateway) (map[input.Key]netip.Addr, map[input.Key]string) {
	addrs := make(map[input.Key]netip.Addr, len(gws))
	problems := map[input.Key]string{}
	if len(gws) == 0 {
		return addrs, problems
	}
	local, err := h.Local()
	own := make(map[netip.Addr]bool, len(local))
	for _, a := range local {
		own[a.Unmap()] = true
	}
	for _, gw := range gws {
		key := input.Key{Namespace: gw.Namespace, Name: gw.Name}
		if err != nil {
			problems[key] = fmt.Sprintf("host-network mode: reading this node's addresses: %v", err)
			continue
		}
		problems[key] = "host-network mode: waiting for nodemesh-controller to select the nodes serving it"
		for _, a := range gw.Status.Addresses {
			if a.Type != nil && *a.Type != gwv1.IPAddressType {
				continue
			}
			addr, perr := netip.ParseAddr(a.Value)
			if perr != nil {
				continue
			}
			problems[key] = "host-network mode: this node is not among the nodes selected to serve it"
			if own[addr.Unmap()] {
				addrs[key] = addr.Unmap()
				delete(problems, key)
				break
			}
		}
	}
	return addrs, problems
}

// InterfaceAddresses returns the addresses of this network namespace's
// interfaces, loopback excluded: HostNetworkAddresses.Local for an agent
// running in the node's network namespace.
func InterfaceAddresses() ([]netip.Addr, error) {
	ifAddrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, fmt.Errorf("listing interface addresses: %w", err)
	}
	var out []netip.Addr
	for _, a := range ifAddrs {
		p, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		addr, ok := netip.AddrFromSlice(p.IP)
		if !ok || addr.Unmap().IsLoopback() {
			continue
		}
		out = append(out, addr.Unmap())
	}
	return out, nil
}
