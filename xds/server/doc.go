// Package server is the node agent's xDS server: it serves the Envoy
// resources of xds/translator to every L7 proxy on the node over ADS, in
// both the state-of-the-world and the delta (incremental) protocol, keeps
// an ACK/NACK table per proxy, and rolls out changes make-before-break.
//
// # Data in and out
//
// The agent creates one Server (New), listens on the node's Unix socket
// (ListenUnix: parent directory created, stale socket replaced, mode 0660)
// and optionally on TCP (ListenTCP), and runs Serve for each listener. After
// every translation it calls Update with the new translator.Resources; the
// call versions them and returns without waiting for proxies. WaitForAck
// blocks until every connected proxy runs a given version; Status returns
// the ACK/NACK table for `nodemesh status` and for mapping NACKs back to the
// objects they came from (resource names are the IR's hierarchical names).
// Counters returns the cumulative pushes, ACKs and NACKs per resource type
// and the served versions, for the agent's metrics (answers to a stale or
// unknown nonce count as neither ACK nor NACK, as the table ignores them).
// Stop ends everything.
//
// Built on go-control-plane: a snapshot cache in ADS mode (responses are
// ordered and a named request is only answered when it names every
// resource of its type) behind the v3 gRPC server with ordered ADS. A
// rollout that adds clusters makes the cache drop one such request per
// proxy (its ACK of the new clusters still names the old endpoints; its
// next request names the new set): expected, so logged at debug level. All
// proxies map to one cache key — the agent is per node and every proxy on
// the node runs the same configuration — while the ACK/NACK table records
// each node ID (and each stream) separately.
//
// # Versions
//
// A resource's version comes from the translator (translator.Resources
// Version): a hash of the IR content the resource was built from, the
// same across processes for the same content (mesh/ir/doc.go describes
// the scheme). The server trusts it: it neither marshals, digests nor
// validates a resource the translator versioned, since the translator
// validated what it built. A later update carrying the very same object
// under the same name reuses its entry outright; another object with the
// same version keeps the previous entry, so the cache sees no change. A
// resource without a translator version (one a caller put into the
// Resources) is validated here and versioned by the hash of its
// serialized form, as go-control-plane versions resources. A type's
// version is the hash of its (name, version) pairs, so an Update equal to
// the last one reports Changed=false and pushes nothing. A list holding
// exactly the previous update's objects, in the same order, reuses the
// previous set whole, without a look at each resource.
//
// go-control-plane writes its own resource versions into delta responses
// (the whole-marshalling hash), so wherever a delta client's versions are
// compared — the cache's version map, the ACK table — the server uses that
// hash, computed for a composed resource the first time a delta client
// needs it and never otherwise. Every new part of a resource has passed
// ValidateAll (in the translator, or here for a resource it did not
// version) and the whole new state must be consistent (every cluster
// has its endpoints, every listener's routes exist, nothing is left over:
// go-control-plane's Snapshot.Consistent, from references remembered per
// resource; a cluster's is go-control-plane's rule written out, which a
// test holds equal to GetResourceReferences) before anything of it is
// published; a failed Update changes
// nothing and the last good configuration keeps being served.
//
// # Make-before-break
//
// A route change under load must not fail a single request. A proxy fails
// a request when a route names a cluster it does not know yet (or whose
// endpoints have not arrived), or when a cluster, its endpoints or a
// listener's certificate disappear while an applied route or listener
// still refers to them. The publisher (publish.go) therefore moves the
// served snapshot toward the desired one in three steps, each a pure
// function of (published, desired, ACK table):
//
//  1. make — clusters, endpoints and secrets become desired ∪ published;
//     listeners and routes stay. ADS delivers clusters, then endpoints.
//  2. switch — once every connected proxy has answered those clusters and
//     endpoints (acknowledged, or rejected), the desired listeners and
//     routes are published. A proxy that neither accepts nor rejects is
//     waited for at most the stage timeout (WithStageTimeout).
//  3. break — once every connected proxy has acknowledged those listeners
//     and routes, the snapshot becomes exactly the desired state, removing
//     the clusters, endpoints and secrets nothing refers to any more. A
//     proxy that rejected the new listeners or routes still runs the old
//     ones, so removal waits until it accepts a later configuration or
//     disconnects; there is no timeout for this step.
//
// An Update arriving mid-rollout changes the target; retained resources
// carry over. With no proxy connected the desired state is published at
// once. Endpoint-only changes (the common case) take a single push.
//
// Secrets differ by protocol. In ADS mode go-control-plane answers a named
// state-of-the-world request only when it names every resource of the
// type, and drops the request otherwise; a proxy names the secrets of its
// listeners and clusters (client certificates of upstream TLS), so a
// retained secret would starve it of every secret update.
// State-of-the-world proxies are therefore served from a second cache whose
// secrets are exactly those the published listeners and clusters use (they
// need no retention: for named types a resource missing from a response is not a
// deletion), while delta proxies, which receive explicit removals, get the
// retained set. New secrets reach state-of-the-world proxies with the
// listeners that use them (the listener warms until they arrive).
//
// # Extension configurations
//
// ECDS resources (TypedExtensionConfig: the L7 policy filters'
// configurations) are a sixth kind, treated like secrets: listeners name
// them, a new one is published in the make step (retained until break),
// and state-of-the-world proxies are served exactly the ones their
// published listeners use (extension.go). Update rejects a listener that
// names an extension configuration the update does not define. A rule
// change only changes extension configurations, which reach proxies in a
// single push without touching any listener.
//
// # NACKs
//
// A proxy rejects an update of a type as a whole and keeps serving its
// previous configuration of that type (the contract with proxylib). The
// rejection is recorded with its version, nonce, error message, time and
// the names of the rejected resources. In the state-of-the-world protocol a
// NACK carries the proxy's previous version; left alone, the cache would
// answer it at once with the same rejected content, forever. The server
// therefore treats a NACKed version as delivered: the proxy is not sent it
// again, and receives the next configuration that differs.
//
// A rejection also names the resources the proxy did not already run
// (Nack.Changed): in the state of the world, those of the rejected
// response whose content differs from the version the proxy last
// accepted (all of them when that version is no longer remembered); in
// delta, the resources the response carried. The rejected resource is
// among them, and since every name is the IR's hierarchical name, the
// agent traces the rejection to the objects they were made for without
// reading the proxy's message.
//
// Only an answer to the response a stream was sent last counts in the
// state of the world, as in go-control-plane (which drops the request) and
// Envoy's protocol: an ACK or NACK that names an older response's nonce
// (a newer response is on its way) or a nonce never sent is ignored. In
// delta, each response is answered on its own, so only a nonce the stream
// was never sent (or has forgotten, sentHistory) is ignored.
//
// # Events
//
// Changed returns a channel closed at the next change of the table or of
// what is published; WaitForAck and the agent's waiters sleep on it. No
// waiter in the tree polls the table.
//
// # Limits
//
//   - Make-before-break covers connected proxies. A proxy that was away while
//     a cluster its routes used was removed catches up on reconnecting in
//     delivery order (clusters first), so its old routes may briefly name a
//     cluster it no longer has; serving per-proxy histories would be needed
//     to avoid that.
//   - Waiting assumes Envoy-like clients that subscribe to every cluster's
//     endpoints and every listener's routes and secrets. A client that
//     subscribes to a subset never counts as up to date for that type (the
//     stage timeout still moves routes forward; WaitForAck waits).
//   - Whatever reaches the socket is untrusted, and what it makes the
//     server hold is bounded (limits.go): at most WithMaxStreams gRPC
//     streams at once over every service and listener (default 1024; one
//     more is refused with ResourceExhausted before any handler state
//     exists, and counted in Counters.Refused), and at most
//     WithMaxStreamsPerClient (default 256) of them from one client, so
//     that one client cannot keep every proxy out. A client is the
//     connecting process on a Unix socket (its pid from SO_PEERCRED, taken
//     at accept; a connection without credentials is closed) and the
//     remote IP address over TCP, so a client that forks many processes
//     or connects from many addresses can still fill the global bound. A
//     node ID or cluster of at most 1 KiB (a longer one ends the stream
//     with InvalidArgument); 4 MiB per received message. The table keeps the nodes with an open stream
//     (so at most the stream bound) and, for status, the
//     WithMaxDisconnectedNodes (default 64) most recently disconnected
//     ones; older ones are forgotten. A request for a resource type the
//     server does not serve (anything but the six above: Envoy as
//     xds/bootstrap configures it and proxylib/xdsclient ask for no other)
//     ends the stream with InvalidArgument, so a stream holds at most six
//     subscriptions, each with the type's latest request (go-control-plane
//     keeps it with the watch). Per stream, the sent history remembers of
//     a request's names only those of the responded set, sentHistory
//     responses per type. A delta stream holds at most MaxSubscribedNames
//     names (and MaxSubscribedBytes of them) subscribed per type at once,
//     however they accumulate over requests; a type's first request
//     presents at most as many initial_resource_versions, and later
//     requests' are ignored. A request going past either ends the stream
//     with InvalidArgument. A stream's state is thus bounded by these
//     constants, not by the served configuration, and the server's by
//     them times the stream bound. Requests are not rate-limited: each
//     costs work bounded by its size, under gRPC's flow control.
//   - UpdateResult.TypeVersions gives the delta secret version. It equals
//     the state-of-the-world one whenever every secret is used by a
//     listener, which xds/translator guarantees.
//
// # Concurrency
//
// Update, WaitForAck, Changed and Status may be called from any goroutine.
// Update, Changed and Status do not block on proxies; WaitForAck does,
// until its context ends. go-control-plane invokes the table's callbacks on stream
// goroutines; they only take the server's mutex briefly. One publisher
// goroutine calls SetSnapshot, never while holding the mutex.
package server
