package model

import "strconv"

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

var reservedNames = map[Identity]string{
	IdentityHost:          "host",
	IdentityWorld:         "world",
	IdentityUnmanaged:     "unmanaged",
	IdentityHealth:        "health",
	IdentityInit:          "init",
	IdentityRemoteNode:    "remote-node",
	IdentityKubeAPIServer: "kube-apiserver",
	IdentityIngress:       "ingress",
}

// String returns "reserved:<name>" for reserved identities and the number
// otherwise.
func (id Identity) String() string {
	if id == IdentityAny {
		return "any"
	}
	if n, ok := reservedNames[id]; ok {
		return "reserved:" + n
	}
	return strconv.FormatUint(uint64(id), 10)
}
