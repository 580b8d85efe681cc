package model

import (
	"net/netip"
	"strconv"
	"strings"
)

// Identity is a numeric security identity, as allocated from labels by the
// identity allocator. The reserved values below are numerically identical
// to Cilium's so flows and policies read the same in both systems.
type Identity uint32

// Reserved identities.
const (
	// IdentityAny is not an identity: in a PolicyEntry it is the wildcard
	// that matches every remote identity.
	IdentityAny           Identity = 0
	IdentityHost          Identity = 1 // the local node's own addresses
	IdentityWorld         Identity = 2 // anything outside the cluster; the ipcache's default
	IdentityUnmanaged     Identity = 3
	IdentityHealth        Identity = 4
	IdentityInit          Identity = 5
	IdentityRemoteNode    Identity = 6
	IdentityKubeAPIServer Identity = 7
	IdentityIngress       Identity = 8 // source of connections made by ingress/gateway proxies
)

// MaxMarkIdentity is the largest identity that fits in the 24 bits an skb
// mark carries (see proxylib/transparent.UpstreamMark).
const MaxMarkIdentity Identity = 0xFFFFFF

// reserved is the one table of reserved identities: their numbers (Cilium's)
// and the names that follow "reserved:" in labels, flows and status.
// Identity allocation (mesh/identity), the datapath and the auth manager
// all read it from here.
var reserved = [...]struct {
	id   Identity
	name string
}{
	{IdentityHost, "host"}, {IdentityWorld, "world"}, {IdentityUnmanaged, "unmanaged"}, {IdentityHealth, "health"},
	{IdentityInit, "init"}, {IdentityRemoteNode, "remote-node"}, {IdentityKubeAPIServer, "kube-apiserver"}, {IdentityIngress, "ingress"},
}

// Reserved returns every reserved identity, in numeric order.
func Reserved() []Identity {
	out := make([]Identity, len(reserved))
	for i, r := range reserved {
		out[i] = r.id
	}
	return out
}

// ReservedName returns the name of a reserved identity ("host", ...).
func ReservedName(id Identity) (string, bool) {
	for _, r := range reserved {
		if r.id == id {
			return r.name, true
		}
	}
	return "", false
}

// ReservedByName returns the reserved identity of a name.
func ReservedByName(name string) (Identity, bool) {
	for _, r := range reserved {
		if r.name == name {
			return r.id, true
		}
	}
	return 0, false
}

// IsReserved reports whether id is one of the reserved identities
// (IdentityAny is not: it is no identity at all).
func (id Identity) IsReserved() bool { _, ok := ReservedName(id); return ok }

// String returns "any" for the wildcard, "reserved:<name>" for reserved
// identities and the number otherwise.
func (id Identity) String() string {
	if id == IdentityAny {
		return "any"
	}
	if n, ok := ReservedName(id); ok {
		return "reserved:" + n
	}
	return strconv.FormatUint(uint64(id), 10)
}

// IngressIPAnnotation on a Node names its ingress address(es), comma
// separated: the source the node proxy binds its connections to Gateway
// backends to. Every node maps it to IdentityIngress, so a backend on
// another node, which the proxy's mark does not reach, still judges
// Gateway traffic as ingress (Cilium gives each node an ingress IP for
// the same reason). Whoever runs the node's networking (the CNI, or the
// lab) reserves the address from the node's Pod CIDR, makes it local to
// the node, and writes the annotation; an address outside the Node's
// spec.podCIDRs is ignored (mesh/policy.NodeIngressIPs), so a node cannot
// make an arbitrary address count as ingress everywhere.
const IngressIPAnnotation = "nodemesh.io/ingress-ip"

// ParseIngressIPs reads an IngressIPAnnotation value: the addresses of
// either family, with anything that is not a plain unicast address left
// out (garbage, zones, loopback, unspecified, multicast).
func ParseIngressIPs(v string) []netip.Addr {
	var out []netip.Addr
	for _, s := range strings.Split(v, ",") {
		a, err := netip.ParseAddr(strings.TrimSpace(s))
		if err != nil || a.Zone() != "" || a.IsUnspecified() || a.IsLoopback() || a.IsMulticast() {
			continue
		}
		out = append(out, a.Unmap())
	}
	return out
}
