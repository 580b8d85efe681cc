package identity

import "github.com/nodemesh/nodemesh/datapath/model"

// Allocation ranges (Cilium's): workload identities are cluster-local
// label sets, CIDR identities are node-local prefixes. The reserved
// identities below them, with their names, are model's table.
const (
	MinWorkload model.Identity = 256
	MaxWorkload model.Identity = 65535
	MinCIDR     model.Identity = 1 << 24
	MaxCIDR     model.Identity = 1<<25 - 1
)

// reservedIdentities returns every reserved identity with its label.
func reservedIdentities() []Identity {
	ids := model.Reserved()
	out := make([]Identity, len(ids))
	for i, id := range ids {
		name, _ := model.ReservedName(id)
		out[i] = Identity{ID: id, Labels: Labels{{Source: SourceReserved, Key: name}}}
	}
	return out
}
