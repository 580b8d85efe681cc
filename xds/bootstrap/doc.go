// Package bootstrap renders the Envoy v3 bootstrap that points an Envoy
// proxy at a nodemesh agent, for clusters that run Envoy instead of the
// builtin proxy (the chart's proxy.engine=envoy).
//
// The bootstrap holds only what Envoy needs before its first xDS response:
// the node (id and cluster, which the agent uses to tell proxies apart),
// one static cluster "nodemesh-xds" that reaches the agent's xDS socket over
// HTTP/2, ADS over that cluster for every resource type (LDS and CDS from
// ADS, and RDS, EDS and SDS follow because the agent's listeners and
// clusters name ADS as their source), and the admin endpoint. Everything
// else, including the access-log cluster the policy listeners use, comes
// from the agent over xDS.
//
// Decisions:
//   - Admin binds 127.0.0.1:9901 by default, the builtin proxy's admin
//     address, so probes and `nodemesh status` work the same for both
//     engines; Envoy's admin can change state (/quitquitquit,
//     /runtime_modify), so New refuses an admin address that is not a
//     loopback address.
//   - The agent's socket is a Unix socket (pipe address): no port to
//     collide with on a host-network node, and file permissions on the
//     socket folder decide who may configure the proxy.
//   - set_node_on_first_message_only: the node does not change during a
//     stream, and sending it once keeps each request small.
//   - The bootstrap is validated with go-control-plane's ValidateAll before
//     it is written, so a bad flag fails `nodemesh bootstrap`, not Envoy at
//     start-up.
package bootstrap
