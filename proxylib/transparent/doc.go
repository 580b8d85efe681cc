// Package transparent gives the node proxy the socket plumbing of
// transparent interception, without knowing how traffic is steered to it
// (the eBPF datapath's bpf_sk_assign or an iptables TPROXY rule both work):
//
//   - Listen / ListenGroup open IP_TRANSPARENT listeners. Such a socket may
//     accept connections addressed to any destination; the accepted
//     socket's local address is the original destination. ListenGroup opens
//     several SO_REUSEPORT listeners on one port so each core can run its
//     own accept loop; the datapath assigns to one and the kernel spreads
//     connections over the group.
//   - OriginalDestination recovers where the client meant to connect:
//     SO_ORIGINAL_DST when a NAT redirect rewrote the destination, the
//     accepted socket's local address otherwise (TPROXY semantics).
//   - Dialer opens upstream sockets carrying the proxy mark (SO_MARK), so
//     the datapath judges them as the original source's identity (and, by
//     the mark's magic, redirects them to the proxy's ingress policy
//     listener or not), and optionally bound to the
//     original source address (IP_TRANSPARENT + IP_BIND_ADDRESS_NO_PORT;
//     the port stays ephemeral to avoid 5-tuple collisions with the
//     client's connection).
//
// The mark layout (UpstreamMark) is shared with the datapath: magic 0xA00
// in bits 8-11, the source identity's low 16 bits in bits 16-31 and its
// high 8 bits in bits 0-7. Identity 0 means "judge by source address".
// Magic 0xA00 is for a policy listener's upstream connections (the
// destination's L7 ingress rules were applied: never redirected again);
// RouteUpstreamMark's 0xB00 for those of a listener that applied none
// (Gateway, GAMMA, CiliumEnvoyConfig, ...), which the datapath still hands
// to the destination's ingress policy listener.
//
// Everything here needs CAP_NET_ADMIN. The package imports nothing of the
// datapath or Kubernetes; sockets are created in the calling thread's
// network namespace.
package transparent
