// Package conntrack reads the datapath's pinned connection-tracking map
// (nm_ct) so that a policy listener learns the source identity the
// datapath judged an accepted connection with.
//
// Why the datapath's word and not the peer address: the node proxy's
// routing listeners (Gateway, Ingress, GAMMA, CiliumEnvoyConfig, lb-l7)
// connect on behalf of an identity they put in the socket mark, often
// from the node's own address. The datapath judges such a connection by
// the marked identity and, when the destination's policy sends it to a
// policy listener, records that identity in the connection-tracking entry
// of the redirected flow before the first packet reaches the listener.
// Judged by its address, the same connection would be the host's.
//
// Alternatives weighed and rejected:
//   - net.ipv4.tcp_fwmark_accept plus SO_MARK on the accepted socket: a
//     node-wide sysctl; every accepted socket on the node would inherit
//     the mark of its SYN (kube-proxy's masquerade mark on host services'
//     replies included), and it says nothing about connections the
//     datapath redirected without a mark.
//   - An ingress address local to the node: the policy listener could
//     tell it apart, but packets from it would not route back from other
//     nodes, and dual-stack clusters whose endpoints mix families would
//     need one of each.
//   - A table of the proxy's own upstream sockets: with --workers n the
//     routing connection and the accepting policy listener may live in
//     different processes (SO_REUSEPORT), so no process knows both ends.
//
// Layout: the key and value layouts restate bpf/lib/common.h's struct
// tuple and struct ct_entry (addresses 16 bytes, IPv4-mapped; ports and
// identities in host order; lifetime in CLOCK_BOOTTIME nanoseconds). Open
// checks the pinned map's key and value sizes and type, so a datapath of
// another layout is refused instead of misread. The package uses raw
// bpf(2) calls (read-only) and links no eBPF loader: the proxy stays free
// of the datapath package.
//
// Lookups are a map lookup and a clock read (two system calls), safe for
// concurrent use, and allocate nothing when they find an entry. A missing
// entry, or one whose lifetime has passed, is ErrNotFound; a map that
// could not be opened fails every lookup (Shared): the caller fails
// closed either way.
package conntrack
