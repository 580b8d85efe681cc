package testbed

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync/atomic"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Prefix starts the name of everything a bed creates: namespaces are
// "<Prefix>-<pid>-<seq>-<role>", so parallel test binaries never collide
// and Sweep can tell a crashed run's leftovers from a live one's.
const Prefix = "nmtb"

// Address plan. Every address lives only inside the bed's namespaces.
var (
	// NodeIPv4 and NodeIPv6 are the node's own addresses (on its loopback);
	// workloads use them as their router, so the ipcache should map them
	// to the host identity.
	NodeIPv4 = netip.MustParseAddr("10.248.255.254")
	NodeIPv6 = netip.MustParseAddr("fd00:6e6d::fffe")
	// routerLL is the link-local router address on every host-side veth.
	routerLL = netip.MustParseAddr("fe80::1")
	// External namespace link.
	extNodeV4 = netip.MustParsePrefix("10.249.0.254/24")
	extNodeV6 = netip.MustParsePrefix("fd00:6e6e::fffe/64")
	extPeerV4 = netip.MustParsePrefix("10.249.0.1/24")
	extPeerV6 = netip.MustParsePrefix("fd00:6e6e::1/64")
)

// WorkloadIPv4 and WorkloadIPv6 return the addresses of workload i.
func WorkloadIPv4(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{10, 248, byte(i >> 8), byte(i + 1)})
}

// WorkloadIPv6 is WorkloadIPv4's IPv6 twin.
func WorkloadIPv6(i int) netip.Addr {
	a := netip.MustParseAddr("fd00:6e6d::").As16()
	a[14], a[15] = byte(i>>8), byte(i+1)
	return netip.AddrFrom16(a)
}

// Config sizes a bed.
type Config struct {
	// Workloads is the number of workload namespaces.
	Workloads int
	// External adds a namespace behind the node playing "the rest of the
	// world": it reaches workloads through the node like another node or
	// the internet would (identity world unless the ipcache says
	// otherwise).
	External bool
}

// Workload is one workload namespace and its veth.
type Workload struct {
	*Namespace
	Index int
	// HostIf and HostIfIndex name the host side of the veth, in the node
	// namespace: where the datapath attaches.
	HostIf      string
	HostIfIndex int
	IPv4, IPv6  netip.Addr
}

// Bed is a node namespace with workloads attached to it by veth pairs.
type Bed struct {
	ID        string
	Node      *Namespace
	Workloads []*Workload
	// External is set when Config.External asked for it; its IPv4/IPv6
	// are its addresses on the link to the node.
	External *Workload
}

var seq atomic.Uint64

// NewID returns a fresh name prefix owned by this process,
// "<Prefix>-<pid>-<seq>": namespaces named with it are removed by Sweep
// once this process is gone.
func NewID() string {
	return fmt.Sprintf("%s-%d-%d", Prefix, os.Getpid(), seq.Add(1))
}

// Create builds a bed. On error everything created so far is removed.
func Create(cfg Config) (_ *Bed, err error) {
	if cfg.Workloads < 0 || cfg.Workloads > 250 {
		return nil, fmt.Errorf("workloads: %d is outside 0..250", cfg.Workloads)
	}
	b := &Bed{ID: NewID()}
	defer func() {
		if err != nil {
			_ = b.Close()
		}
	}()
	if b.Node, err = NewNamespace(b.ID + "-node"); err != nil {
		return nil, err
	}
	for _, kv := range [][2]string{
		{"net.ipv4.ip_forward", "1"},
		{"net.ipv6.conf.all.forwarding", "1"},
		{"net.ipv4.conf.all.rp_filter", "0"},
		{"net.ipv4.conf.default.rp_filter", "0"},
		{"net.ipv6.conf.default.accept_dad", "0"},
	} {
		if err := b.Node.Sysctl(kv[0], kv[1]); err != nil {
			return nil, err
		}
	}
	err = b.Node.Netlink(func(nl *netlink.Handle) error {
		lo, err := nl.LinkByName("lo")
		if err != nil {
			return err
		}
		for _, a := range []netip.Prefix{netip.PrefixFrom(NodeIPv4, 32), netip.PrefixFrom(NodeIPv6, 128)} {
			if err := nl.AddrAdd(lo, nlAddr(a)); err != nil {
				return fmt.Errorf("adding %s to node loopback: %w", a, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for i := 0; i < cfg.Workloads; i++ {
		if _, err := b.AddWorkload(); err != nil {
			return nil, err
		}
	}
	if cfg.External {
		if err := b.addExternal(); err != nil {
			return nil, err
		}
	}
	return b, nil
}

func nlAddr(p netip.Prefix) *netlink.Addr {
	a := &netlink.Addr{IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}}
	if p.Addr().Is6() {
		a.Flags = unix.IFA_F_NODAD
	}
	return a
}

func hostRoute(p netip.Prefix, ifindex int) *netlink.Route {
	return &netlink.Route{
		LinkIndex: ifindex,
		Dst:       &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())},
		Scope:     netlink.SCOPE_LINK,
	}
}

// veth creates a veth pair whose host end (hostName) stays in the node
// namespace and whose other end becomes eth0 in ns. Nothing is ever
// created in the caller's own namespace.
func (b *Bed) veth(hostName string, ns *Namespace) (hostIndex int, err error) {
	peer, err := openNS(ns)
	if err != nil {
		return 0, err
	}
	defer peer.Close()
	err = b.Node.Netlink(func(nl *netlink.Handle) error {
		v := &netlink.Veth{
			LinkAttrs:     netlink.LinkAttrs{Name: hostName},
			PeerName:      "eth0",
			PeerNamespace: netlink.NsFd(int(peer)),
		}
		if err := nl.LinkAdd(v); err != nil {
			return fmt.Errorf("creating veth %s: %w", hostName, err)
		}
		l, err := nl.LinkByName(hostName)
		if err != nil {
			return err
		}
		hostIndex = l.Attrs().Index
		if err := nl.AddrAdd(l, nlAddr(netip.PrefixFrom(routerLL, 64))); err != nil {
			return fmt.Errorf("adding router address to %s: %w", hostName, err)
		}
		return nl.LinkSetUp(l)
	})
	return hostIndex, err
}

// AddWorkload creates one more workload namespace and wires it to the node.
func (b *Bed) AddWorkload() (*Workload, error) {
	i := len(b.Workloads)
	ns, err := NewNamespace(fmt.Sprintf("%s-w%d", b.ID, i))
	if err != nil {
		return nil, err
	}
	w := &Workload{Namespace: ns, Index: i, HostIf: fmt.Sprintf("lxc%d", i), IPv4: WorkloadIPv4(i), IPv6: WorkloadIPv6(i)}
	b.Workloads = append(b.Workloads, w)
	if w.HostIfIndex, err = b.veth(w.HostIf, ns); err != nil {
		return nil, err
	}
	err = ns.Netlink(func(nl *netlink.Handle) error {
		eth, err := nl.LinkByName("eth0")
		if err != nil {
			return err
		}
		for _, a := range []netip.Prefix{netip.PrefixFrom(w.IPv4, 32), netip.PrefixFrom(w.IPv6, 128)} {
			if err := nl.AddrAdd(eth, nlAddr(a)); err != nil {
				return fmt.Errorf("adding %s to %s: %w", a, ns.Name, err)
			}
		}
		if err := nl.LinkSetUp(eth); err != nil {
			return err
		}
		idx := eth.Attrs().Index
		if err := nl.RouteAdd(hostRoute(netip.PrefixFrom(NodeIPv4, 32), idx)); err != nil {
			return fmt.Errorf("adding router route in %s: %w", ns.Name, err)
		}
		for _, gw := range []netip.Addr{NodeIPv4, routerLL} {
			r := &netlink.Route{LinkIndex: idx, Gw: gw.AsSlice()}
			if err := nl.RouteAdd(r); err != nil {
				return fmt.Errorf("adding default route via %s in %s: %w", gw, ns.Name, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = b.Node.Netlink(func(nl *netlink.Handle) error {
		for _, p := range []netip.Prefix{netip.PrefixFrom(w.IPv4, 32), netip.PrefixFrom(w.IPv6, 128)} {
			if err := nl.RouteAdd(hostRoute(p, w.HostIfIndex)); err != nil {
				return fmt.Errorf("routing %s to %s: %w", p, w.HostIf, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return w, nil
}

func (b *Bed) addExternal() error {
	ns, err := NewNamespace(b.ID + "-ext")
	if err != nil {
		return err
	}
	w := &Workload{Namespace: ns, Index: -1, HostIf: "ext0", IPv4: extPeerV4.Addr(), IPv6: extPeerV6.Addr()}
	b.External = w
	if w.HostIfIndex, err = b.veth(w.HostIf, ns); err != nil {
		return err
	}
	err = b.Node.Netlink(func(nl *netlink.Handle) error {
		l, err := nl.LinkByIndex(w.HostIfIndex)
		if err != nil {
			return err
		}
		for _, a := range []netip.Prefix{extNodeV4, extNodeV6} {
			if err := nl.AddrAdd(l, nlAddr(a)); err != nil {
				return fmt.Errorf("adding %s to ext0: %w", a, err)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return ns.Netlink(func(nl *netlink.Handle) error {
		eth, err := nl.LinkByName("eth0")
		if err != nil {
			return err
		}
		for _, a := range []netip.Prefix{extPeerV4, extPeerV6} {
			if err := nl.AddrAdd(eth, nlAddr(a)); err != nil {
				return fmt.Errorf("adding %s to %s: %w", a, ns.Name, err)
			}
		}
		if err := nl.LinkSetUp(eth); err != nil {
			return err
		}
		for _, gw := range []netip.Addr{extNodeV4.Addr(), extNodeV6.Addr()} {
			if err := nl.RouteAdd(&netlink.Route{LinkIndex: eth.Attrs().Index, Gw: gw.AsSlice()}); err != nil {
				return fmt.Errorf("adding default route via %s in %s: %w", gw, ns.Name, err)
			}
		}
		return nil
	})
}

// RemoveWorkload deletes workload i's namespace and, with it, its veth:
// the host-side interface disappears from the node.
func (b *Bed) RemoveWorkload(i int) error {
	w := b.Workloads[i]
	err := b.Node.Netlink(func(nl *netlink.Handle) error {
		l, err := nl.LinkByIndex(w.HostIfIndex)
		if err != nil {
			return nil
		}
		return nl.LinkDel(l)
	})
	return errors.Join(err, w.Delete())
}

// Close deletes every namespace of the bed. It is safe to call twice.
func (b *Bed) Close() error {
	var errs []error
	for _, w := range b.Workloads {
		errs = append(errs, w.Delete())
	}
	if b.External != nil {
		errs = append(errs, b.External.Delete())
	}
	if b.Node != nil {
		errs = append(errs, b.Node.Delete())
	}
	return errors.Join(errs...)
}
