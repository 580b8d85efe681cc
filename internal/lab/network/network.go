package network

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/nodemesh/nodemesh/datapath/testbed"
)

// Address plan (see doc.go).
var (
	// ControlPlaneIP is the control-plane namespace's address on the lab
	// network: the API server, etcd and the cluster DNS listen there.
	ControlPlaneIP = netip.MustParseAddr("10.250.0.1")
	// LabPrefix is the lab network.
	LabPrefix = netip.MustParsePrefix("10.250.0.0/24")
	// ClusterCIDR holds every node's Pod CIDR.
	ClusterCIDR = netip.MustParsePrefix("10.244.0.0/16")
)

// MaxNodes bounds a lab: node addresses and Pod CIDRs are numbered by
// node, and a laptop runs few nodes anyway.
const MaxNodes = 16

// NodeIP is node i's address on the lab network (i counts from 1).
func NodeIP(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, 250, 0, byte(10 + i)}) }

// PodCIDR is node i's Pod CIDR.
func PodCIDR(i int) netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 244, byte(i), 0}), 24)
}

// NodeName is node i's Kubernetes name.
func NodeName(i int) string { return fmt.Sprintf("node-%d", i) }

// Config sizes a lab network.
type Config struct {
	// ID prefixes every namespace name; testbed.NewID() when empty.
	ID string
	// Nodes is the number of nodes, 1..MaxNodes.
	Nodes int
	// ResolvConf, when set, is written as the nodes' resolv.conf (for
	// commands run with `ip netns exec` in a node namespace).
	ResolvConf []byte
}

// Network is the lab network: the control-plane namespace and the nodes.
type Network struct {
	ID           string
	ControlPlane *testbed.Namespace
	Nodes        []*Node
}

// Node is one node namespace and the Pods on it.
type Node struct {
	*testbed.Namespace
	// Index counts from 1.
	Index   int
	Name    string
	IP      netip.Addr
	PodCIDR netip.Prefix
	// Gateway is the Pods' next hop (on the node's loopback).
	Gateway netip.Addr
	// IngressIP is the node's ingress address (on its loopback, reserved
	// from its Pod CIDR so every node routes it here): the source of the
	// node proxy's connections to Gateway backends, which the node's Node
	// announces (model.IngressIPAnnotation) and every agent maps to
	// the ingress identity.
	IngressIP netip.Addr

	id   string
	mu   sync.Mutex
	used map[netip.Addr]bool
}

// Pod is one Pod's namespace and its veth.
type Pod struct {
	*testbed.Namespace
	IP netip.Addr
	// HostIf and HostIfIndex name the host end of the veth, in the node
	// namespace: where a chained datapath attaches.
	HostIf      string
	HostIfIndex int
}

// PodNamespace is the name of the namespace of the Pod with this UID in
// the lab whose namespaces start with id.
func PodNamespace(id, uid string) string { return id + "-pod-" + uid }

// Create builds the network. On error everything created so far is
// removed.
func Create(cfg Config) (_ *Network, err error) {
	if cfg.Nodes < 1 || cfg.Nodes > MaxNodes {
		return nil, fmt.Errorf("creating lab network: %d nodes is outside 1..%d", cfg.Nodes, MaxNodes)
	}
	if cfg.ID == "" {
		cfg.ID = testbed.NewID()
	}
	n := &Network{ID: cfg.ID}
	defer func() {
		if err != nil {
			err = errors.Join(err, n.Close())
		}
	}()
	if n.ControlPlane, err = testbed.NewNamespace(cfg.ID + "-cp"); err != nil {
		return nil, err
	}
	err = n.ControlPlane.Netlink(func(nl *netlink.Handle) error {
		br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "lab0"}}
		if err := nl.LinkAdd(br); err != nil {
			return fmt.Errorf("creating bridge lab0: %w", err)
		}
		if err := nl.AddrAdd(br, nlAddr(netip.PrefixFrom(ControlPlaneIP, LabPrefix.Bits()))); err != nil {
			return fmt.Errorf("adding %s to lab0: %w", ControlPlaneIP, err)
		}
		return nl.LinkSetUp(br)
	})
	if err != nil {
		return nil, err
	}
	for i := 1; i <= cfg.Nodes; i++ {
		node, err := n.addNode(i, cfg.ResolvConf)
		if err != nil {
			return nil, err
		}
		n.Nodes = append(n.Nodes, node)
	}
	// Native routing: every Pod CIDR is reached through its node.
	for _, node := range n.Nodes {
		err := n.ControlPlane.Netlink(func(nl *netlink.Handle) error {
			return addVia(nl, node.PodCIDR, node.IP)
		})
		if err != nil {
			return nil, err
		}
		for _, other := range n.Nodes {
			if other == node {
				continue
			}
			err := node.Netlink(func(nl *netlink.Handle) error { return addVia(nl, other.PodCIDR, other.IP) })
			if err != nil {
				return nil, err
			}
		}
	}
	return n, nil
}

func (n *Network) addNode(i int, resolv []byte) (*Node, error) {
	ns, err := testbed.NewNamespace(fmt.Sprintf("%s-node-%d", n.ID, i))
	if err != nil {
		return nil, err
	}
	cidr := PodCIDR(i)
	node := &Node{
		Namespace: ns, Index: i, Name: NodeName(i), IP: NodeIP(i), PodCIDR: cidr,
		Gateway: cidr.Addr().Next(), IngressIP: lastAddr(cidr).Prev(), id: n.ID, used: map[netip.Addr]bool{},
	}
	node.used[node.IngressIP] = true
	for _, kv := range [][2]string{
		{"net.ipv4.ip_forward", "1"},
		{"net.ipv4.conf.all.rp_filter", "0"},
		{"net.ipv4.conf.default.rp_filter", "0"},
	} {
		if err := ns.Sysctl(kv[0], kv[1]); err != nil {
			return node, err
		}
	}
	if resolv != nil {
		if err := writeEtc(ns, resolv); err != nil {
			return node, err
		}
	}
	peer, err := openNS(ns)
	if err != nil {
		return node, err
	}
	defer peer.Close()
	wire := fmt.Sprintf("node%d", i)
	err = n.plugIn(wire, peer)
	if err != nil {
		return node, err
	}
	err = ns.Netlink(func(nl *netlink.Handle) error {
		eth, err := nl.LinkByName("eth0")
		if err != nil {
			return err
		}
		if err := nl.AddrAdd(eth, nlAddr(netip.PrefixFrom(node.IP, LabPrefix.Bits()))); err != nil {
			return fmt.Errorf("adding %s to %s: %w", node.IP, ns.Name, err)
		}
		if err := nl.LinkSetUp(eth); err != nil {
			return err
		}
		lo, err := nl.LinkByName("lo")
		if err != nil {
			return err
		}
		if err := nl.AddrAdd(lo, nlAddr(netip.PrefixFrom(node.Gateway, 32))); err != nil {
			return fmt.Errorf("adding the Pod gateway %s: %w", node.Gateway, err)
		}
		if err := nl.AddrAdd(lo, nlAddr(netip.PrefixFrom(node.IngressIP, 32))); err != nil {
			return fmt.Errorf("adding the ingress address %s: %w", node.IngressIP, err)
		}
		// Addresses nothing in the lab owns (a Service IP before
		// kube-proxy's DNAT, say) need a route to be looked up at all;
		// the control plane does not forward, so the lab stays closed.
		def := &netlink.Route{LinkIndex: eth.Attrs().Index, Gw: ControlPlaneIP.AsSlice()}
		if err := nl.RouteAdd(def); err != nil {
			return fmt.Errorf("adding default route in %s: %w", ns.Name, err)
		}
		return nil
	})
	return node, err
}

// plugIn joins the namespace peer to the lab0 bridge: a veth whose end
// wire is a bridge port (up) and whose other end is peer's eth0.
func (n *Network) plugIn(wire string, peer netnsHandle) error {
	return n.ControlPlane.Netlink(func(nl *netlink.Handle) error {
		br, err := nl.LinkByName("lab0")
		if err != nil {
			return err
		}
		v := &netlink.Veth{
			LinkAttrs: netlink.LinkAttrs{Name: wire, MasterIndex: br.Attrs().Index},
			PeerName:  "eth0", PeerNamespace: netlink.NsFd(int(peer)),
		}
		if err := nl.LinkAdd(v); err != nil {
			return fmt.Errorf("creating veth %s: %w", wire, err)
		}
		l, err := nl.LinkByName(wire)
		if err != nil {
			return err
		}
		return nl.LinkSetUp(l)
	})
}

// AddExternal creates a host on the lab network that is not a node: a
// namespace (<id>-ext-<name>) with eth0 on the lab0 bridge holding ip
// (which must be in LabPrefix and not a node's) and no other route, so it
// reaches only what answers on the lab network, as a client outside the
// cluster on the nodes' segment would. Close removes it.
func (n *Network) AddExternal(name string, ip netip.Addr) (*testbed.Namespace, error) {
	if !LabPrefix.Contains(ip) || ip == ControlPlaneIP {
		return nil, fmt.Errorf("adding external host %s: %s is not a free lab-network address", name, ip)
	}
	ns, err := testbed.NewNamespace(n.ID + "-ext-" + name)
	if err != nil {
		return nil, err
	}
	peer, err := openNS(ns)
	if err != nil {
		_ = ns.Delete()
		return nil, err
	}
	defer peer.Close()
	wire := "ext" + strconv.FormatUint(uint64(fnv32(name)%100000), 10)
	err = n.plugIn(wire, peer)
	if err == nil {
		err = ns.Netlink(func(nl *netlink.Handle) error {
			eth, err := nl.LinkByName("eth0")
			if err != nil {
				return err
			}
			if err := nl.AddrAdd(eth, nlAddr(netip.PrefixFrom(ip, LabPrefix.Bits()))); err != nil {
				return fmt.Errorf("adding %s: %w", ip, err)
			}
			return nl.LinkSetUp(eth)
		})
	}
	if err != nil {
		_ = ns.Delete()
		return nil, fmt.Errorf("adding external host %s: %w", name, err)
	}
	return ns, nil
}

// AddPod creates the namespace of the Pod with this UID, wires it to the
// node with an address from the Pod CIDR, and writes resolv (if not nil)
// as the Pod's resolv.conf.
func (n *Node) AddPod(uid string, resolv []byte) (_ *Pod, err error) {
	ip, err := n.allocate()
	if err != nil {
		return nil, err
	}
	ns, err := testbed.NewNamespace(PodNamespace(n.id, uid))
	if err != nil {
		n.release(ip)
		return nil, err
	}
	p := &Pod{Namespace: ns, IP: ip, HostIf: hostIf(uid)}
	defer func() {
		if err != nil {
			err = errors.Join(err, n.RemovePod(p))
		}
	}()
	if resolv != nil {
		if err := writeEtc(ns, resolv); err != nil {
			return nil, err
		}
	}
	peer, err := openNS(ns)
	if err != nil {
		return nil, err
	}
	defer peer.Close()
	err = n.Netlink(func(nl *netlink.Handle) error {
		v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: p.HostIf}, PeerName: "eth0", PeerNamespace: netlink.NsFd(int(peer))}
		if err := nl.LinkAdd(v); err != nil {
			return fmt.Errorf("creating veth %s: %w", p.HostIf, err)
		}
		l, err := nl.LinkByName(p.HostIf)
		if err != nil {
			return err
		}
		p.HostIfIndex = l.Attrs().Index
		return nl.LinkSetUp(l)
	})
	if err != nil {
		return nil, err
	}
	err = ns.Netlink(func(nl *netlink.Handle) error {
		eth, err := nl.LinkByName("eth0")
		if err != nil {
			return err
		}
		if err := nl.AddrAdd(eth, nlAddr(netip.PrefixFrom(ip, 32))); err != nil {
			return fmt.Errorf("adding %s to %s: %w", ip, ns.Name, err)
		}
		if err := nl.LinkSetUp(eth); err != nil {
			return err
		}
		idx := eth.Attrs().Index
		if err := nl.RouteAdd(linkRoute(netip.PrefixFrom(n.Gateway, 32), idx)); err != nil {
			return fmt.Errorf("adding gateway route in %s: %w", ns.Name, err)
		}
		if err := nl.RouteAdd(&netlink.Route{LinkIndex: idx, Gw: n.Gateway.AsSlice()}); err != nil {
			return fmt.Errorf("adding default route in %s: %w", ns.Name, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = n.Netlink(func(nl *netlink.Handle) error {
		if err := nl.RouteAdd(linkRoute(netip.PrefixFrom(ip, 32), p.HostIfIndex)); err != nil {
			return fmt.Errorf("routing %s to %s: %w", ip, p.HostIf, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return p, nil
}

// RemovePod stops every process left in the Pod's namespace, deletes it
// (and with it the veth and the route) and frees its address.
func (n *Node) RemovePod(p *Pod) error {
	errs := []error{p.KillAll()}
	if p.HostIfIndex != 0 {
		errs = append(errs, n.Netlink(func(nl *netlink.Handle) error {
			if l, err := nl.LinkByIndex(p.HostIfIndex); err == nil {
				return nl.LinkDel(l)
			}
			return nil
		}))
	}
	errs = append(errs, p.Delete())
	n.release(p.IP)
	return errors.Join(errs...)
}

func (n *Node) allocate() (netip.Addr, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for a := n.Gateway.Next(); n.PodCIDR.Contains(a) && a != lastAddr(n.PodCIDR); a = a.Next() {
		if !n.used[a] {
			n.used[a] = true
			return a, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("allocating a Pod address on %s: every address of %s is in use", n.Name, n.PodCIDR)
}

func (n *Node) release(a netip.Addr) {
	n.mu.Lock()
	delete(n.used, a)
	n.mu.Unlock()
}

// Close stops every process in the lab's namespaces and deletes them,
// Pods first. Pod namespaces are found by name, so Pods whose runner
// died are removed too. Safe to call twice.
func (n *Network) Close() error {
	var errs []error
	entries, _ := os.ReadDir("/run/netns")
	for _, e := range entries {
		if len(e.Name()) > len(n.ID)+5 && e.Name()[:len(n.ID)+5] == n.ID+"-pod-" {
			ns := &testbed.Namespace{Name: e.Name(), Path: filepath.Join("/run/netns", e.Name())}
			errs = append(errs, ns.KillAll(), ns.Delete())
		}
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), n.ID+"-ext-") {
			ns := &testbed.Namespace{Name: e.Name(), Path: filepath.Join("/run/netns", e.Name())}
			errs = append(errs, ns.KillAll(), ns.Delete())
		}
	}
	for _, node := range n.Nodes {
		errs = append(errs, node.KillAll(), node.Delete())
	}
	if n.ControlPlane != nil {
		errs = append(errs, n.ControlPlane.KillAll(), n.ControlPlane.Delete())
	}
	return errors.Join(errs...)
}

func writeEtc(ns *testbed.Namespace, resolv []byte) error {
	if err := os.MkdirAll(ns.EtcDir(), 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", ns.EtcDir(), err)
	}
	if err := os.WriteFile(filepath.Join(ns.EtcDir(), "resolv.conf"), resolv, 0o644); err != nil {
		return fmt.Errorf("writing resolv.conf of %s: %w", ns.Name, err)
	}
	return nil
}

// hostIf names a Pod's host-side veth after its UID (interface names
// are at most 15 bytes).
func hostIf(uid string) string {
	h := fnv32(uid)
	return fmt.Sprintf("lxc%08x", h)
}

func fnv32(s string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		h ^= uint32(s[i])
		h *= 16777619
	}
	return h
}

func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().As4()
	host := 32 - p.Bits()
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	v |= (1 << host) - 1
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

func nlAddr(p netip.Prefix) *netlink.Addr {
	return &netlink.Addr{IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}}
}

func linkRoute(p netip.Prefix, ifindex int) *netlink.Route {
	return &netlink.Route{
		LinkIndex: ifindex,
		Dst:       &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())},
		Scope:     netlink.SCOPE_LINK,
	}
}

func addVia(nl *netlink.Handle, dst netip.Prefix, gw netip.Addr) error {
	r := &netlink.Route{Dst: &net.IPNet{IP: dst.Addr().AsSlice(), Mask: net.CIDRMask(dst.Bits(), 32)}, Gw: gw.AsSlice()}
	if err := nl.RouteAdd(r); err != nil {
		return fmt.Errorf("routing %s via %s: %w", dst, gw, err)
	}
	return nil
}

func openNS(ns *testbed.Namespace) (netnsHandle, error) {
	fd, err := unix.Open(ns.Path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("opening network namespace %s: %w", ns.Name, err)
	}
	return netnsHandle(fd), nil
}

type netnsHandle int

func (h netnsHandle) Close() error { return unix.Close(int(h)) }
