// Package ir is nodemesh's intermediate representation: what one node's L7
// proxy should run, with no trace of where it came from (Gateway API,
// Ingress, policy) and no trace of how it is delivered (Envoy xDS).
//
// Producers (gateway/, mesh/) build a Config from user intent; consumers
// (xds/translator) turn it into proxy resources. The package imports only the
// standard library so both sides can depend on it without dragging in
// Kubernetes or Envoy types.
//
// Invariants a Config must hold before it is handed to a consumer (checked by
// Config.Validate):
//   - every Listener, RouteTable, Cluster and Secret name is non-empty and
//     unique in its kind; names are hierarchical ("gateway/<ns>/<name>/...")
//     and deterministic, so outputs diff cleanly;
//   - routes inside a VirtualHost are already in final precedence order: the
//     consumer evaluates them first-match-wins and never re-sorts;
//   - every route has exactly one action (forward, redirect, direct response);
//   - a forward whose backend cannot be resolved names no cluster
//     (WeightedBackend.Cluster == ""): its share of traffic is answered with
//     500, which is what Gateway API requires for invalid backendRefs;
//   - regular expressions are RE2 and match the whole subject (the proxy and
//     Envoy both use RE2 full-match semantics);
//   - slices are sorted where order carries no meaning (Listeners, Clusters,
//     Secrets by name) so equal intent yields equal Configs.
//
// Nothing here allocates IDs or talks to the outside world; values are plain
// data, safe to share read-only between goroutines once built, and never
// modified after that: producers that reuse work hand over the same object
// for unchanged content, and Validator relies on it, skipping the routes of
// a VirtualHost it already validated.
//
// # Change detection
//
// There is one scheme, content hashes, from the input objects to the
// proxy. It starts upstream of the IR:
//   - every input object (Gateway API and core objects) is hashed once as
//     it enters its provider (input.HashObject: SHA-256 of its JSON
//     encoding) and the hash travels with it in the snapshot
//     (input.Snapshot.RecordHash, HashOf). The file provider hashes an
//     object when it decodes its document, and decodes only documents
//     whose bytes changed; the Kubernetes provider hashes each new
//     version an informer hands over;
//   - gateway.Translator keys what it compiled on (kind, namespace/name,
//     content hash): a route whose hash is unchanged, while the hashes of
//     the objects compilation reads (Services, EndpointSlices,
//     ReferenceGrants, Namespaces, Secrets) and of the Gateways it
//     attaches to are unchanged too, keeps its compiled form and its IR
//     objects. A re-decoded object with the same content is unchanged;
//     object identity decides nothing.
//
// In the IR, a content hash of each IR object (hash.go) is computed once
// per object (Hashes remembers it by the object, which never changes) and
// carried to the proxy:
//   - Validator skips an object whose hash it already validated;
//   - xds/translator reuses the Envoy output of an IR object whose hash is
//     unchanged and versions every resource from the hashes it was built
//     from (xds/translator version.go); xds/server takes those versions as
//     they are, with no digest or validation of its own, and pushes only
//     resources whose version changed (delta xDS);
//   - every Envoy resource is validated once, when the translator builds it.
//
// A Config full of new routes (a cold start) has thousands to hash and
// check; Validator does both in its walk, on the calling goroutine (see
// "Cold translation" in the xds/translator package documentation for why
// nothing is hashed or checked ahead on other cores). What that walk
// costs is mostly memory: each route's fields, and one table entry per
// route in each memory of routes, are read where they lie. So:
//   - a route list held by several virtual hosts (a Gateway's HTTP and
//     HTTPS listeners) is hashed once: Hashes finds the first one by its
//     first route and length, and reuses its route hashes and list hash
//     after comparing the two lists pointer by pointer, instead of one
//     memo lookup per route;
//   - a Validator with no valid route remembered (a first Config) does
//     not look each route up before checking it, only records it;
//   - the encoder works on a copy on the stack, so appends to its buffer
//     do not pass the collector's write barrier while it marks;
//   - a route's check extends its field path (a value of a few hundred
//     bytes, copied at each step) only for the parts the route has, or
//     for a problem.
//
// Hashes stay SHA-256, truncated to 128 bits. A user who writes routes
// controls what is hashed, and a collision would leave an old
// configuration serving (a route skipped as validated, an Envoy resource
// kept as unchanged); a hash that is fast but not collision-resistant
// would let such a user aim for one. SHA-256 runs on the SHA extensions
// of the CPUs the targets are set for, and was a few percent of a cold
// translation's CPU profile at 5 000 HTTPRoutes: not worth that risk.
//
// The hash covers every field (TestHashSeesEveryField mutates each one), so
// equal content gives equal hashes across processes and any change a new
// hash. An input hash covers every field of the object too (the JSON
// encoding writes them all), so an unchanged input hash means the IR made
// from it would be the same, and reusing it only saves work.
package ir
