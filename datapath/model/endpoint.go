package model

import "net/netip"

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

// IPCacheEntry maps an address or prefix to the identity behind it.
type IPCacheEntry struct {
	Prefix   netip.Prefix
	Identity Identity
	// Node is the id of the node hosting the prefix (0 = this node); it is
	// part of the auth table key for mutual authentication.
	Node uint16
}
