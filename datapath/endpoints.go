package datapath

import (
	"fmt"
	"net/netip"

	nmbpf "github.com/nodemesh/nodemesh/bpf"
)

// Endpoint is a local workload as the datapath sees it.
type Endpoint struct {
	// ID is the node-local endpoint id, echoed in events.
	ID uint16
	// Identity is the workload's security identity.
	Identity Identity
	// IfIndex is the host-side interface of the workload's veth in the
	// datapath's namespace. Packets from the workload's addresses arriving
	// on any other interface are dropped as spoofed.
	IfIndex int
	// IPs are the workload's addresses (IPv4 and/or IPv6).
	IPs []netip.Addr
}

// SyncEndpoints makes the endpoint table hold exactly these endpoints.
// Register an endpoint before attaching its interface: packets from an
// address the table does not know are dropped as spoofed.
func (d *Datapath) SyncEndpoints(eps []Endpoint) error {
	want := map[nmbpf.WorkloadEndpointKey]nmbpf.WorkloadEndpointInfo{}
	for i, ep := range eps {
		if ep.Identity == IdentityAny {
			return fmt.Errorf("endpoints[%d] (id %d): identity: must not be 0", i, ep.ID)
		}
		if ep.IfIndex <= 0 {
			return fmt.Errorf("endpoints[%d] (id %d): ifIndex: %d is not an interface index", i, ep.ID, ep.IfIndex)
		}
		if len(ep.IPs) == 0 {
			return fmt.Errorf("endpoints[%d] (id %d): ips: at least one address is needed", i, ep.ID)
		}
		for j, ip := range ep.IPs {
			if !ip.IsValid() {
				return fmt.Errorf("endpoints[%d] (id %d): ips[%d]: invalid address", i, ep.ID, j)
			}
			k := nmbpf.WorkloadEndpointKey{Addr: addr16(ip)}
			if _, dup := want[k]; dup {
				return fmt.Errorf("endpoints[%d] (id %d): ips[%d]: %s belongs to another endpoint too", i, ep.ID, j, ip)
			}
			want[k] = nmbpf.WorkloadEndpointInfo{Identity: uint32(ep.Identity), Ifindex: uint32(ep.IfIndex), Id: ep.ID}
		}
	}
	d.tablesMu.Lock()
	defer d.tablesMu.Unlock()
	return syncMap(d.objs.NmEndpoints, "endpoint", want)
}

// IPCacheEntry maps an address or prefix to the identity behind it.
type IPCacheEntry struct {
	Prefix   netip.Prefix
	Identity Identity
	// Node is the id of the node hosting the prefix (0 = this node); it is
	// part of the auth table key for mutual authentication.
	Node uint16
}

// SyncIPCache makes the ipcache hold exactly these prefixes. Addresses
// nothing covers have identity world. Local endpoints need no entry: the
// endpoint table is consulted first.
func (d *Datapath) SyncIPCache(entries []IPCacheEntry) error {
	want := map[nmbpf.WorkloadIpcacheKey]nmbpf.WorkloadIpcacheValue{}
	for i, e := range entries {
		if !e.Prefix.IsValid() {
			return fmt.Errorf("ipcache[%d]: prefix: invalid", i)
		}
		if e.Identity == IdentityAny {
			return fmt.Errorf("ipcache[%d] (%s): identity: must not be 0", i, e.Prefix)
		}
		k := ipcacheKey(e.Prefix)
		if _, dup := want[k]; dup {
			return fmt.Errorf("ipcache[%d]: prefix %s listed twice", i, e.Prefix)
		}
		want[k] = nmbpf.WorkloadIpcacheValue{Identity: uint32(e.Identity), Node: e.Node}
	}
	d.tablesMu.Lock()
	defer d.tablesMu.Unlock()
	return syncMap(d.objs.NmIpcache, "ipcache", want)
}

func ipcacheKey(p netip.Prefix) nmbpf.WorkloadIpcacheKey {
	p = p.Masked()
	bits := p.Bits()
	if p.Addr().Is4() {
		bits += 96
	}
	return nmbpf.WorkloadIpcacheKey{Prefixlen: uint32(bits), Addr: addr16(p.Addr())}
}
