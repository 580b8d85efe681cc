// Package flow holds the node's flows: one structured event per request
// the node proxy judged (HTTP, gRPC, Kafka) or per relayed connection,
// with time, source and destination (address, identity, workload),
// verdict, the protocol's own fields and latency; and the eBPF datapath's
// L3/L4 events (drops with their reason, redirects to the proxy,
// auth-required drops; Flow.Datapath). It is what `nodemesh flows`, the
// agent's /v1/flows and Hubble's Observer API (package observer, read by
// the hubble CLI) show (FEATURES.md VIS-03, VIS-04).
//
// # Data in and out
//
// The access log service (xds/accesslog) turns each Envoy access-log entry
// into a Flow and calls Store.Add from its stream goroutines. The store
// fills in identities and workloads with the Resolver the agent installs
// after every policy compilation, keeps the most recent flows in a ring
// buffer (the oldest are overwritten, never blocking the proxy), writes
// each one as a JSON line to an optional writer, and answers Query with
// the newest flows matching a Filter. The agent's event reader adds the
// datapath's events the same way (internal/agent.RecordEvents).
//
// Followers (the /v1/flows stream, the observer's GetFlows --follow) wait
// on Changed and Read the ring by sequence number at their own pace: Add
// never waits for them, and a follower that falls more than the ring's
// capacity behind is told how many flows it lost.
//
// # Decisions
//
//   - Verdicts use Hubble's names: FORWARDED, DROPPED (policy denied),
//     ERROR (the request failed otherwise).
//   - Identity filters match the source or the destination, as Hubble's
//     --identity does.
//   - Resolution happens when a flow is added, so a flow keeps the
//     identity its peer had at the time even after the ipcache changes.
//     An identity the reporter already set (the datapath's) is kept; the
//     workload is filled in only if the address still has that identity.
//   - The package is plain Go with no Envoy or Kubernetes types, so the
//     agent can serve flows without importing Envoy code.
//   - Counts tallies every flow ever added (eviction does not lower it)
//     by kind (L7 or L3/L4), protocol, verdict and, for datapath flows,
//     the reason; metrics read it. Its keys come from fixed sets (an
//     unknown protocol or verdict from a reporter counts as other/OTHER;
//     L7 reason text, which the access log carries unbounded, is not a
//     key), so a hostile reporter cannot grow the number of series.
package flow
