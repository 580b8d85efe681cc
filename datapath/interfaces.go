package datapath

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// RouteInterfaces finds a local workload's interface the way standalone
// mode can without a CNI: the kernel's route to the workload's address
// names the host side of its veth.
type RouteInterfaces struct {
	nl *netlink.Handle
}

// NewRouteInterfaces looks routes up in the network namespace at path
// ("" for the caller's).
func NewRouteInterfaces(path string) (*RouteInterfaces, error) {
	ns := netns.None()
	if path != "" {
		h, err := netns.GetFromPath(path)
		if err != nil {
			return nil, fmt.Errorf("opening network namespace %s: %w", path, err)
		}
		defer h.Close()
		ns = h
	}
	nl, err := netlink.NewHandleAt(ns)
	if err != nil {
		return nil, fmt.Errorf("opening netlink: %w", err)
	}
	return &RouteInterfaces{nl: nl}, nil
}

// InterfaceOf returns the interface the route to addr leaves through; a
// route over the loopback (a local address) is an error.
func (r *RouteInterfaces) InterfaceOf(addr netip.Addr) (int, error) {
	routes, err := r.nl.RouteGet(net.IP(addr.AsSlice()))
	if err != nil {
		return 0, fmt.Errorf("looking up the route to %s: %w", addr, err)
	}
	for _, rt := range routes {
		if rt.LinkIndex <= 0 {
			continue
		}
		link, err := r.nl.LinkByIndex(rt.LinkIndex)
		if err != nil {
			return 0, fmt.Errorf("route to %s: interface %d: %w", addr, rt.LinkIndex, err)
		}
		if link.Attrs().Flags&net.FlagLoopback != 0 {
			return 0, fmt.Errorf("%s is a local address, not a workload", addr)
		}
		return rt.LinkIndex, nil
	}
	return 0, fmt.Errorf("no route to %s", addr)
}

// Close releases the netlink handle.
func (r *RouteInterfaces) Close() { r.nl.Close() }
