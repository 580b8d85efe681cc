// Package localroute makes the node accept traffic for the Gateway
// addresses its proxy serves: for each address that is not already local
// to the node's network namespace it keeps a route of type local for
// that one address (/32 or /128) on the loopback device, and it removes
// the ones it added when their address goes away.
//
// Why the proxy listens on the address itself, and not TPROXY or
// bpf_sk_assign from the lab-network interface: the node proxy already
// binds every Gateway listener to the Gateway's address, so a local route
// is all the kernel needs to hand it the connection, with the client's
// own source address and nothing rewritten (the backend sees it in
// X-Forwarded-For). It works the same for connections from Pods (routed
// to the node), from the node itself and from outside; it needs no
// program on any interface and no per-packet work; and the kernel answers
// ARP for the address on every node, so whichever node a client's
// packets reach serves them (every node's proxy serves every Gateway).
// The costs: an address is local on every node that runs the agent with
// the option (so on a shared L2 segment several nodes answer ARP for it;
// the last answer wins, and any of them serves), and a load balancer
// outside the cluster must send traffic to the address unchanged (what
// Cilium's LB-IPAM with L2 or BGP announcements does), not to a node
// port.
//
// Routes the package owns carry their own routing protocol number
// (Protocol), so a restarted agent finds and reconciles the ones an
// earlier run left, and never touches routes anyone else added. Addresses
// already local (loopback ranges, the node's own addresses) are left
// alone.
package localroute
