package datapath

import (
	"fmt"
	"net/netip"

	nmbpf "github.com/nodemesh/nodemesh/bpf"
	"github.com/nodemesh/nodemesh/datapath/model"
)

// SyncEndpoints makes the endpoint table hold exactly these endpoints.
// Register an endpoint before attaching its interface: packets from an
// address the table does not know are dropped as spoofed.
func (d *Datapath) SyncEndpoints(eps []model.Endpoint) error {
	want := map[nmbpf.WorkloadEndpointKey]nmbpf.WorkloadEndpointInfo{}
	for i, ep := range eps {
		if ep.Identity == model.IdentityAny {
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

// SyncIPCache makes the ipcache hold exactly these prefixes. Addresses
// nothing covers have identity world. Local endpoints need no entry: the
// endpoint table is consulted first.
func (d *Datapath) SyncIPCache(entries []model.IPCacheEntry) error {
	want := map[nmbpf.WorkloadIpcacheKey]nmbpf.WorkloadIpcacheValue{}
	for i, e := range entries {
		if !e.Prefix.IsValid() {
			return fmt.Errorf("ipcache[%d]: prefix: invalid", i)
		}
		if e.Identity == model.IdentityAny {
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
