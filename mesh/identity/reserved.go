package identity

import "strconv"

// NumericIdentity is a security identity's number.
type NumericIdentity uint32

// Reserved identities, numbered as in Cilium.
const (
	Unknown       NumericIdentity = 0
	Host          NumericIdentity = 1
	World         NumericIdentity = 2
	Unmanaged     NumericIdentity = 3
	Health        NumericIdentity = 4
	Init          NumericIdentity = 5
	RemoteNode    NumericIdentity = 6
	KubeAPIServer NumericIdentity = 7
	Ingress       NumericIdentity = 8
)

// Allocation ranges.
const (
	MinWorkload NumericIdentity = 256
	MaxWorkload NumericIdentity = 65535
	MinCIDR     NumericIdentity = 1 << 24
	MaxCIDR     NumericIdentity = 1<<25 - 1
)

var reserved = []struct {
	id   NumericIdentity
	name string
}{
	{Host, "host"}, {World, "world"}, {Unmanaged, "unmanaged"}, {Health, "health"},
	{Init, "init"}, {RemoteNode, "remote-node"}, {KubeAPIServer, "kube-apiserver"}, {Ingress, "ingress"},
}

// ReservedName returns the name of a reserved identity ("host", ...).
func ReservedName(id NumericIdentity) (string, bool) {
	for _, r := range reserved {
		if r.id == id {
			return r.name, true
		}
	}
	return "", false
}

// ReservedByName returns the reserved identity of a name.
func ReservedByName(name string) (NumericIdentity, bool) {
	for _, r := range reserved {
		if r.name == name {
			return r.id, true
		}
	}
	return 0, false
}

// IsReserved reports whether id is one of the reserved identities.
func (id NumericIdentity) IsReserved() bool { _, ok := ReservedName(id); return ok }

// String returns "reserved:<name>" for reserved identities and the number
// otherwise.
func (id NumericIdentity) String() string {
	if n, ok := ReservedName(id); ok {
		return "reserved:" + n
	}
	return strconv.FormatUint(uint64(id), 10)
}

// reservedIdentities returns every reserved identity with its label.
func reservedIdentities() []Identity {
	out := make([]Identity, len(reserved))
	for i, r := range reserved {
		out[i] = Identity{ID: r.id, Labels: Labels{{Source: SourceReserved, Key: r.name}}}
	}
	return out
}
