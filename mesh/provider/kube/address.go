package kube

import (
	"fmt"
	"net/netip"

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
