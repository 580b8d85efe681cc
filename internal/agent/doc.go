// Package agent is the per-node control loop: it takes each view of user
// intent a provider publishes (a folder of YAML in standalone mode, the API
// server in Kubernetes mode), assigns Gateway addresses, runs the pure
// translators, checks the IR, and hands it to the data plane publisher (the
// xDS server). It also answers "what is the state of my configuration":
// per-object status from translation, overlaid with what the node's proxies
// acknowledged or rejected.
//
// Data flow: provider → Agent.Apply(snapshot, source errors) →
// address.Allocator → gateway.Translate → dataplane.Publisher.Publish
// (which validates the IR and translates it). Status() merges the stored translation
// status with Publisher.Proxies() at the moment it is asked, so an ACK or
// NACK shows up without a new translation.
//
// Invariants:
//   - Apply is called from one goroutine; Status may be called from any.
//   - A configuration that fails Publish (invalid IR included) is never
//     half-applied: the publisher keeps serving the last good one, and the
//     failure is reported in Status.PublishError.
//   - Gateway addresses are sticky for the life of the agent (see
//     address.Allocator); restarting the agent reassigns them in age order,
//     which yields the same result unless Gateways were deleted meanwhile.
//     In Kubernetes mode Config.Addresses replaces the allocator: the
//     controller assigns addresses cluster-wide and the agent reads them
//     from Gateway status (kube.StatusAddresses).
//
// Network policy (policy.go): with a policy.Compiler configured, every
// Apply also compiles CiliumNetworkPolicy, CiliumClusterwideNetworkPolicy
// and NetworkPolicy; the L7 part rides in the published IR
// (ir.Config.Policy), and with a Datapath configured the endpoints, the
// ipcache and the policy rows are synced to it after the publication.
// Rows that redirect to a policy listener the datapath did not redirect
// to before are written only once every connected proxy acknowledged the
// publication carrying it (or after ackWait; a redirect to a port nothing
// listens on drops, it never lets traffic through). A proxy that rejects
// a publication's listeners or filter configurations (ECDS) keeps running
// its previous L7 policy, which may allow more than the published one; so
// while a connected proxy's latest answer to the current publication is a
// rejection, every redirect row is written as a drop instead (the proxy
// rejects a type's update whole, so any listener rejection counts: the
// policy listeners' changes in it did not apply either), and the
// proxied policies are reported Rejected (ProxyRejected, with the
// proxy's message). The agent follows the proxies' answers by polling
// the publisher (20 ms while rows wait, backing off to 1 s) until every
// connected proxy acknowledged the publication or a newer compilation
// supersedes it. Policy status is also honest about the
// datapath: while rows wait for acknowledgements, or the datapath refused
// them, accepted policies are Pending (WaitingForProxies, DatapathError).
// Endpoint ids are
// sticky per Pod. The flow store (mesh/flow), fed by the access log
// service, is served on /v1/flows and resolved with the latest ipcache.
//
// The agent never imports Envoy code: the publisher is an interface from
// mesh/dataplane, wired to the xDS server by cmd/nodemesh-agent.
package agent
