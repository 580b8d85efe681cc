// Package flow holds L7 flows: one structured event per request the node
// proxy judged (HTTP, gRPC, Kafka) or per relayed connection, with time,
// source and destination (address, identity, workload), verdict, the
// protocol's own fields and latency. It is what `nodemesh flows` and the
// agent's /v1/flows show, Hubble-style (FEATURES.md VIS-03, VIS-04).
//
// # Data in and out
//
// The access log service (xds/accesslog) turns each Envoy access-log entry
// into a Flow and calls Store.Add from its stream goroutines. The store
// fills in identities and workloads with the Resolver the agent installs
// after every policy compilation, keeps the most recent flows in a ring
// buffer (the oldest are overwritten, never blocking the proxy), writes
// each one as a JSON line to an optional writer, and answers Query with
// the newest flows matching a Filter.
//
// # Decisions
//
//   - Verdicts use Hubble's names: FORWARDED, DROPPED (policy denied),
//     ERROR (the request failed otherwise).
//   - Identity filters match the source or the destination, as Hubble's
//     --identity does.
//   - Resolution happens when a flow is added, so a flow keeps the
//     identity its peer had at the time even after the ipcache changes.
//   - The package is plain Go with no Envoy or Kubernetes types, so the
//     agent can serve flows without importing Envoy code.
package flow
