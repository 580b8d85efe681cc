// Package xdsclient is the proxy's xDS client: one aggregated (ADS) gRPC
// stream to the agent over a Unix socket or TCP, state-of-the-world by
// default and incremental (delta) as an option.
//
// Subscriptions follow Envoy: Clusters and Listeners are wildcard;
// ClusterLoadAssignments, RouteConfigurations and Secrets are requested by
// name, with the names the Handler reports after each accepted update (EDS
// names from clusters, RDS and SDS names from listeners). Every response is
// answered: an ACK carries the response's version and nonce; a NACK
// carries the last accepted version, the nonce and an error_detail
// (google.rpc.Status INVALID_ARGUMENT) whose message is the Handler's error,
// which names the resource and field path.
//
// When the stream breaks the client reconnects with jittered exponential
// backoff (250 ms doubling to 30 s, reset after a stream that delivered a
// response); the Handler keeps its last accepted configuration meanwhile,
// and the first requests of a new stream carry the accepted versions
// (state of the world) or initial_resource_versions (delta) so the server
// can skip unchanged resources.
//
// Run may be called again after it returned (never concurrently): the new
// stream resumes the same way, so a caller can drop the connection and
// pick it up later while its Handler keeps serving.
//
// A response for any of the six supported types is applied, also in the
// delta protocol before the stream subscribed to that type (as the state
// of the world client does); any other type is NACKed. The protocol state
// of a stream lives in a session (sotw.go, delta.go) that turns each
// response into the requests answering it; the stream loop only moves
// messages, so FuzzResponses drives the same code with the real
// configuration store and no connection.
//
// Concurrency: Run owns the stream; Handler methods are called from Run's
// goroutine only, one at a time.
package xdsclient
