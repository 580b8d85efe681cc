// Package input defines the immutable snapshot of user intent that every
// translator reads — Gateway API objects, Ingresses and IngressClasses
// (networking.k8s.io/v1), and the core objects they refer to — and the decoder that turns streams of ordinary Kubernetes YAML or JSON
// into it. Providers build snapshots: the file provider from a directory of
// YAML (Decode per file, Build over all files), the Kubernetes provider from
// informers. The same pure translation code consumes both, so standalone
// mode and Kubernetes mode cannot drift apart.
//
// Invariants:
//   - a Snapshot is never mutated after a provider publishes it: translators
//     read it from any goroutine without locks;
//   - every slice of a Snapshot is sorted by namespace then name, so equal
//     intent yields byte-identical translation output;
//   - a Snapshot holds at most one object per (kind, namespace, name).
//
// Decoding follows what kubectl and the API server would do with the same
// files, so a folder that works here also applies to a cluster:
//   - documents are separated by "---" lines; empty documents (nothing but
//     whitespace and comments) are skipped; a stream whose first
//     non-blank byte is '{' is read as a sequence of JSON objects;
//   - a v1 List expands to its items;
//   - decoding is strict: unknown and duplicate fields are errors, field
//     names are case-sensitive; YAML is read as kubectl reads it (YAML 1.1
//     scalars: an unquoted y or no is a boolean);
//   - gateway.networking.k8s.io v1beta1 Gateway, GatewayClass, HTTPRoute and
//     ReferenceGrant are read as their v1 form (the shapes are identical);
//     so are the experimental channel's TLSRoute v1alpha2 and v1alpha3 and
//     TCPRoute and UDPRoute v1alpha2, whose rules and status are the v1
//     types; GRPCRoute, ListenerSet and BackendTLSPolicy are read as v1
//     only; ConfigMaps are read for the CA certificates of
//     BackendTLSPolicies;
//   - namespaced objects without metadata.namespace land in "default";
//     metadata.namespace on cluster-scoped kinds (GatewayClass, Namespace,
//     CiliumClusterwideNetworkPolicy) is dropped, as the API server does;
//   - metadata.name must be a DNS-1123 subdomain and metadata.namespace a
//     DNS-1123 label, so names can be embedded in hierarchical resource
//     names without escaping;
//   - Secret stringData is merged into data (stringData wins), as the API
//     server does on write.
//
// A Snapshot also carries cilium.io/v2 CiliumEnvoyConfig and
// CiliumClusterwideEnvoyConfig (mesh/envoyconfig translates them); their
// spec.resources stay raw JSON here, and a field of the spec the types
// do not know is an error like anywhere else.
//
// Besides Gateway API and its core objects, a Snapshot carries network
// policy — cilium.io/v2 CiliumNetworkPolicy and
// CiliumClusterwideNetworkPolicy (api/cilium/v2), networking.k8s.io/v1
// NetworkPolicy — and the Pods policy is about. A Pod needs no spec beyond
// what identity and policy read (labels, spec.nodeName,
// spec.serviceAccountName, named container ports) and status.podIP(s), so
// standalone mode can declare a workload that runs outside Kubernetes as a
// few lines of YAML.
//
// Change detection is by content hash (Hash): Decode hashes every object it
// produces, Build records the hashes in the Snapshot (RecordHash), and
// consumers compare hashes (HashOf), never object identity or fields.
//
// Errors never half-apply: Decode returns either every object of a stream
// or an error joining one *DecodeError per problem, each naming the
// source, line, document, kind, name and (when known) field. Bad input
// never panics.
package input
