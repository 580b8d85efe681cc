// Package model holds the datapath's plain row types: identity numbers
// with the one table of reserved identities, directions, policy rows and
// keys (PolicyEntry, PolicyKey, Enforcement, Policy with its Validate and
// the reference lookup PolicyIndex.Decide), endpoint and ipcache rows,
// auth keys and types, and the reasons the programs give for what they
// did with a packet.
//
// It imports only the standard library, so whoever needs only the shape of
// a datapath row — policy compilation (mesh/policy), identity allocation
// (mesh/identity), the agent, the auth manager, the CLI — can use it
// without linking the eBPF loader (cilium/ebpf) or netlink.
// boundaries_test.go keeps it that way. Package datapath takes and returns
// these types and owns everything that touches the kernel: the raw map
// encodings (package bpf), the update order of policy rows, attachment.
//
// Identities are Cilium's numbers: reserved ones (host 1, world 2, ...,
// ingress 8) are the table in identity.go and nowhere else; 0 is
// IdentityAny, the wildcard of a policy row, never an identity of its own.
// mesh/identity allocates workload (256-65535) and CIDR (2^24-) numbers.
//
// The auth manager (auth/) should take identities as Identity and write
// AuthKey rows, so that a relation it proved reads the same in the auth
// map, in policy rows and in events. It reaches the auth map through an
// interface of its own (implemented by *datapath.Datapath's UpsertAuth,
// DeleteAuth, SyncAuth), so it links this package and not the loader.
package model
