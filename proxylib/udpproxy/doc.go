// Package udpproxy serves listeners bound to UDP addresses with Envoy's
// udp_proxy listener filter (UDPRoute): a datagram from a client address
// not seen before opens a session to one endpoint of the configured
// cluster, chosen by the cluster's load balancer, over its own connected
// upstream socket; the session relays datagrams both ways — replies leave
// from the listener's socket towards the client — until it is idle.
//
// How data enters and leaves: config.Store hands the desired UDP listeners
// to Manager.Apply after every accepted update; clusters are looked up per
// new session through Lookup, so endpoint and cluster changes apply to new
// sessions while established ones keep their endpoint (Envoy's behaviour;
// an endpoint that leaves the cluster does not end its sessions before
// their idle timeout).
//
// Decisions, with Envoy's semantics where the API has a knob:
//   - A session is keyed by the client's address and port (the listener's
//     local address is fixed per socket). idle_timeout (default 60 s) ends
//     a session without a datagram in either direction.
//   - Sessions count against the cluster's circuit breaker max_connections
//     (default 1024), as Envoy's udp_proxy does; beyond it, datagrams of
//     new clients are dropped. That is the bound on sessions per cluster;
//     each session holds one socket and one goroutine.
//   - A datagram larger than max_rx_datagram_size (the listener's
//     downstream_socket_config, or upstream_socket_config for replies;
//     default 1500) is dropped, not truncated, as Envoy drops truncated
//     datagrams.
//   - No cluster, no healthy host or a failed socket drops the datagram
//     (UDP has no way to refuse); the next datagram tries again.
//   - A write that fails (a full socket buffer, ICMP unreachable reported
//     on the connected upstream socket) drops that datagram only.
//   - Replies are sent from the listener's socket: on a wildcard address
//     the kernel picks their source address, so a client on a host with
//     several addresses should reach a listener bound to a specific one.
//   - Updates keep a socket whose address is unchanged, and its sessions;
//     a new udp_proxy configuration applies to new sessions. A removed
//     listener closes its socket and sessions at once (UDP has nothing to
//     drain).
package udpproxy
