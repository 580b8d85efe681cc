package localroute

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Protocol marks the routes this package adds (rtm_protocol). 0x4e is
// not assigned in iproute2's rt_protos and is used by nothing else here.
const Protocol netlink.RouteProtocol = 0x4e

// Routes keeps local routes for a set of addresses in the network
// namespace of the handle it was made with. Not safe for concurrent use:
// the agent calls Sync from its Apply goroutine only.
type Routes struct {
	nl *netlink.Handle
	lo int
}

// New returns Routes for the current network namespace.
func New() (*Routes, error) {
	nl, err := netlink.NewHandle()
	if err != nil {
		return nil, fmt.Errorf("opening netlink: %w", err)
	}
	lo, err := nl.LinkByName("lo")
	if err != nil {
		nl.Close()
		return nil, fmt.Errorf("finding the loopback device: %w", err)
	}
	return &Routes{nl: nl, lo: lo.Attrs().Index}, nil
}

// Close releases the netlink handle; the routes stay (traffic keeps
// reaching a restarted proxy).
func (r *Routes) Close() { r.nl.Close() }

// Sync makes exactly addrs (those not otherwise local) have a local route
// of ours. Every address is tried; the errors are joined.
func (r *Routes) Sync(addrs []netip.Addr) error {
	have, err := r.ours()
	if err != nil {
		return err
	}
	want := map[netip.Addr]bool{}
	var errs []error
	for _, a := range addrs {
		a = a.Unmap()
		// IPv6 binds check the interface addresses, not routes, so a
		// local route would not let the proxy listen: not supported.
		if !a.Is4() || want[a] {
			continue
		}
		want[a] = true
		if have[a] {
			continue
		}
		local, err := r.isLocal(a)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if local {
			continue
		}
		if err := r.nl.RouteAdd(r.route(a)); err != nil && !errors.Is(err, unix.EEXIST) {
			errs = append(errs, fmt.Errorf("adding local route for %s: %w", a, err))
		}
	}
	for a := range have {
		if want[a] {
			continue
		}
		if err := r.nl.RouteDel(r.route(a)); err != nil && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, fmt.Errorf("removing local route for %s: %w", a, err))
		}
	}
	return errors.Join(errs...)
}

// Owned lists the addresses that have a local route of ours.
func (r *Routes) Owned() ([]netip.Addr, error) {
	have, err := r.ours()
	if err != nil {
		return nil, err
	}
	out := make([]netip.Addr, 0, len(have))
	for a := range have {
		out = append(out, a)
	}
	return out, nil
}

func (r *Routes) route(a netip.Addr) *netlink.Route {
	return &netlink.Route{
		LinkIndex: r.lo,
		Dst:       &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(32, 32)},
		Table:     unix.RT_TABLE_LOCAL,
		Type:      unix.RTN_LOCAL,
		Scope:     netlink.SCOPE_HOST,
		Protocol:  Protocol,
		Family:    netlink.FAMILY_V4,
	}
}

// ours lists the routes of our protocol in the local table.
func (r *Routes) ours() (map[netip.Addr]bool, error) {
	out := map[netip.Addr]bool{}
	{
		rs, err := r.nl.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: unix.RT_TABLE_LOCAL, Protocol: Protocol},
			netlink.RT_FILTER_TABLE|netlink.RT_FILTER_PROTOCOL)
		if err != nil {
			return nil, fmt.Errorf("listing local routes: %w", err)
		}
		for _, rt := range rs {
			if rt.Dst == nil {
				continue
			}
			if a, ok := netip.AddrFromSlice(rt.Dst.IP); ok {
				out[a.Unmap()] = true
			}
		}
	}
	return out, nil
}

// isLocal reports whether the kernel already delivers a to this
// namespace (its own address, a loopback range, someone else's local
// route).
func (r *Routes) isLocal(a netip.Addr) (bool, error) {
	rs, err := r.nl.RouteGet(a.AsSlice())
	if err != nil {
		// No route at all (an isolated namespace): not local.
		if errors.Is(err, unix.ENETUNREACH) || errors.Is(err, unix.EHOSTUNREACH) {
			return false, nil
		}
		return false, fmt.Errorf("looking up the route to %s: %w", a, err)
	}
	for _, rt := range rs {
		if rt.Type == unix.RTN_LOCAL {
			return true, nil
		}
	}
	return false, nil
}
