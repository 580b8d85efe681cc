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
// into a Flow and calls Store.AddAll from its stream goroutines, once per
// message of the proxy (about 64 entries). The store fills in identities
// and workloads with the Resolver the agent installs after every policy
// compilation, keeps the most recent flows in a ring buffer (the oldest
// are overwritten, never blocking the proxy), writes each one as a JSON
// line to an optional writer, and answers Query with the newest flows
// matching a Filter. The agent's event reader adds the datapath's events
// one at a time with Store.Add (internal/agent.RecordEvents).
//
// Followers (the /v1/flows stream, the observer's GetFlows --follow) wait
// on Changed and Read the ring by sequence number at their own pace: adds
// never wait for them, and a follower that falls more than the ring's
// capacity behind is told how many flows it lost. An AddAll's flows get
// consecutive sequence numbers and appear at once: a reader sees all of
// them or none.
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
//   - The access log's path costs little per flow, because the agent
//     shares a CPU with the proxy and the workloads and each of its runs
//     delays whoever is woken meanwhile (conformance/e2e, "Where the
//     hop's tail goes"). AddAll takes the lock once per message, wakes
//     the followers once, resolves each distinct address of the message
//     once (a memo of at most 32 addresses, searched in order: the policy
//     hop's messages have two) and tallies Counts by runs of equal keys.
//     Changed's channel is made only when a follower asks for one, and
//     closed and dropped by the next add, so an add with no follower
//     waiting allocates nothing, and one with followers allocates one
//     channel, not one per flow. Before, every flow took the lock, asked
//     the resolver for both addresses and allocated and closed a channel,
//     waking every follower per flow. BenchmarkStore (64 hop flows, a
//     follower waiting), five rounds alternated on a 2-vCPU machine
//     other builds kept loaded: one Add per flow on the previous store
//     354-730 ns a flow, 64 allocations (7 KB) a message; AddAll 103-172
//     ns a flow and one allocation (the follower's channel).
//   - Counts tallies every flow ever added (eviction does not lower it)
//     by kind (L7 or L3/L4), protocol, verdict and, for datapath flows,
//     the reason; metrics read it. Its keys come from fixed sets (an
//     unknown protocol or verdict from a reporter counts as other/OTHER;
//     L7 reason text, which the access log carries unbounded, is not a
//     key), so a hostile reporter cannot grow the number of series.
package flow
