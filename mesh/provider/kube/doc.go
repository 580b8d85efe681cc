// Package kube is the Kubernetes-mode provider: it watches the API server
// with client-go informers and publishes the same input.Snapshot the file
// provider builds from a folder, so both modes run the same translation.
//
// Data flow: informers (GatewayClass, Gateway, HTTPRoute, GRPCRoute,
// TLSRoute, TCPRoute, UDPRoute, ListenerSet, BackendTLSPolicy (v1, Gateway API v1.6
// CRDs), ReferenceGrant, Service, EndpointSlice, TLS Secrets, ConfigMaps
// (the CA bundles of BackendTLSPolicies), Namespace, Ingress, IngressClass;
// with WithEnvoyConfigs the cilium.io Envoy config kinds; with WithPolicy
// also Pod, Node, NetworkPolicy and the cilium.io policies) → change signal →
// debounce → Snapshot built from the informer caches → subscriber. The
// subscriber is called from one goroutine, one call at a time, so a burst
// of events (a `kubectl apply` of fifty objects) yields one translation,
// and a slow translation simply coalesces the events that arrive meanwhile.
//
// Decisions:
//   - Snapshots hold the informer caches' objects themselves, not copies.
//     Informer objects are shared and must never be modified; translation
//     reads only, which is the input package's contract anyway.
//   - Only Secrets of type kubernetes.io/tls are watched (a field selector),
//     since certificateRefs may only name those; a reference to another
//     Secret then reads as "not found", which gives the same
//     InvalidCertificateRef condition the spec asks for, without caching
//     every Secret of the cluster in every agent.
//   - Every ConfigMap is watched: a BackendTLSPolicy may name any of its
//     namespace, and no selector narrows them to CA bundles. They are
//     small next to Services and EndpointSlices.
//   - managedFields are dropped from cached objects to save memory.
//   - Each object is hashed once as it enters (input.HashObject; see
//     Provider.Snapshot): an informer replaces an object with a new one
//     for every version, so a snapshot reuses the hash of every object the
//     previous snapshot held and hashes only new versions.
//   - Updates that cannot change translation are ignored: a GatewayClass or
//     route update with the same generation, labels and annotations is
//     a status write (often our own). Gateway updates always count, because
//     in Kubernetes mode a Gateway's address comes from its status (the
//     controller assigns it; see StatusAddresses). Ingress updates always
//     count for the same reason: the controller writes each Ingress's
//     address to status.loadBalancer, and agents read it there through
//     gateway.IngressAddressRequests' stand-ins.
//   - Watch publishes nothing until every informer has synced, so the first
//     translation never sees a half-listed cluster (which would withdraw
//     configuration that is in fact still wanted).
//   - GRPCRoute, TLSRoute, TCPRoute, UDPRoute and ListenerSet are optional
//     (optional.go):
//     a cluster may lack their CRDs, and an informer on a resource the API
//     server does not serve never syncs, which would block every other
//     kind. Start asks discovery which of them gateway.networking.k8s.io/v1
//     serves, watches those, and logs a warning for each missing one; its
//     snapshot list stays empty. Discovery has no watch, so a background
//     loop rechecks it every WithDiscoveryInterval (default 30s) and starts
//     the informer of a kind whose CRD appeared — no restart needed; the
//     kind joins snapshots once that informer has synced. A discovery
//     error fails Start rather than guessing (assuming a kind present
//     would hang the sync, assuming it absent would withdraw its routes).
//     A CRD deleted while watched is not unwatched: its informer keeps the
//     last listing and retries, as client-go does for any kind.
//   - The Envoy config kinds (CiliumEnvoyConfig,
//     CiliumClusterwideEnvoyConfig; WithEnvoyConfigs) do not depend on
//     network policy: a user with Envoy configs and no policy gets them.
//     Without WithPolicy they are optional kinds like the route kinds
//     above (a cluster without Cilium's CRDs loses nothing, and the kinds
//     join once their CRDs appear); with WithPolicy they are required
//     with the policy kinds. They are read as the policy kinds are (strict
//     spec, last good version kept, Problems), and only spec, label and
//     annotation changes count, so the status the agents write on them
//     causes no translation.
//
// Network policy (WithPolicy, policy.go): the provider also watches Pods
// and Nodes of the whole cluster, NetworkPolicies, ServiceCIDRs (the
// datapath drops what a Pod under egress enforcement sends into them
// untranslated; Kubernetes 1.33+ serves them, and an API server that does
// not fails the preflight rather than leaving that hole open) and the
// cilium.io/v2 CiliumNetworkPolicy and CiliumClusterwideNetworkPolicy
// kinds (a dynamic informer each, decoded into the api/cilium/v2 types in
// the informer's transform), and fills the snapshot's policy fields; the
// agent compiles them exactly as in standalone mode. Decisions:
//   - Every agent sees every Pod: ingress policy on one node judges a
//     client on another by the identity its Pod IP maps to, so the
//     ipcache needs the remote Pods (the compiler applies rules only to
//     the local ones, by spec.nodeName).
//   - A Pod bound to a node that has no Node object is left out of the
//     snapshot: when a node is deleted, its Pods' rows disappear from
//     every other node at once, rather than when the Pod garbage
//     collector gets to them (their addresses may soon belong to another
//     node's Pods).
//   - Pod updates count only when something identity or policy reads
//     changed (labels, node, addresses, phase, service account, host
//     network); Node updates only when a Node appears or goes or its
//     status.addresses change (other nodes' addresses are remote-node in
//     the ipcache; the snapshot carries the Nodes for that); policy
//     updates only on a spec (generation), label or annotation change, so
//     status writes (ours included) never cause a recompilation.
//   - Objects from the API server are hostile: the rule part (spec,
//     specs) of a cilium.io policy is decoded strictly — a field nodemesh
//     does not know could narrow what the policy allows, so ignoring it
//     could open endpoints up (the CRDs preserve unknown fields in places,
//     and a cluster may run Cilium's own CRDs) — metadata and status
//     leniently. A version that does not decode stays in the informer
//     cache as it is; Snapshot uses the last version of that object that
//     did decode (none: the object is not applied, as a file that does not
//     decode in standalone mode) and Problems reports it, which the agent
//     shows as a configuration error.
//   - Start fails with ErrNoPolicySource when a policy kind cannot be
//     listed (CRD not installed, no permission): an informer on it would
//     never sync, and enforcing without it would be a silent no-op.
//   - StatusWriter (policystatus.go) writes the Valid condition of the
//     cilium.io policies, as Cilium 1.15+ does, and of the Envoy config
//     kinds, bounded and idempotent across nodes (see its comment).
//     NetworkPolicy has no status field in networking.k8s.io/v1.
//
// The other direction, this node's NodeProxyStatus report, is written by
// gateway/nodereport, beside the controller that reads it.
package kube
