// Package identity turns workloads into Cilium-compatible security
// identities and maps addresses to them (the ipcache).
//
// # Data in and out
//
// The agent hands Resolve the Pods and Namespaces of a snapshot, the
// node's own addresses and the CIDR prefixes policies name; out comes a
// State: every identity in use with its labels, the endpoints (Pods with
// addresses) and the ipcache rows (prefix → identity). Policy compilation
// (mesh/policy) matches selectors against State.Identities; the datapath
// receives the ipcache and the node's endpoints. Nothing here knows about
// Envoy or the datapath's types.
//
// # Semantics (FEATURES.md §1.13)
//
//   - Labels are source-qualified (ID-01): a Pod's labels get source
//     "k8s", and every Pod also carries k8s:io.kubernetes.pod.namespace,
//     k8s:io.cilium.k8s.policy.serviceaccount (default "default"),
//     k8s:io.cilium.k8s.policy.cluster (the cluster name, default
//     "default") and k8s:io.cilium.k8s.namespace.labels.<key> for every
//     label of its Namespace. Every Namespace has
//     kubernetes.io/metadata.name=<name>, as the API server guarantees,
//     whether or not a Namespace object was supplied.
//   - Only identity-relevant labels count (ID-05). Filter implements
//     Cilium's `labels` setting: patterns are RE2 expressions anchored at
//     the start of the label key, optionally prefixed with a source
//     ("k8s:") and negated with '!'. The defaults ignore io.kubernetes,
//     kubernetes.io (except the namespace and app.kubernetes.io labels),
//     k8s.io, beta.kubernetes.io and the controller/template hashes.
//     Custom patterns are appended to the defaults; the first inclusive
//     custom pattern switches to allow-list mode, where only matching
//     labels count plus the reserved, namespace, namespace-label, cluster,
//     service-account and app.kubernetes.io labels. When an inclusive and
//     an exclusive pattern both match, the label counts if the inclusive
//     match is longer than the shortest exclusive one.
//   - Reserved identities have Cilium's numbers (ID-03): host 1, world 2,
//     unmanaged 3, health 4, init 5, remote-node 6, kube-apiserver 7,
//     ingress 8; each carries the label reserved:<name>. The numbers and
//     names are the one table in datapath/model, which also types every
//     identity number (model.Identity) here, in policy rows and in the
//     datapath.
//   - Workload identities are allocated from 256 to 65535 (ID-07: 16 bits
//     cluster-wide), CIDR identities from 1<<24 (Cilium's local scope).
//     A CIDR identity stands for one prefix a policy names; its labels are
//     cidr:<prefix> for that prefix and for every policy prefix containing
//     it, plus reserved:world, so the world entity covers it.
//
// # Decisions where Cilium's behaviour could not carry over
//
//   - Workload numbers come from an Allocator the Manager asks, from
//     Resolve, for every label set a snapshot needs. Standalone mode uses
//     NewLocalAllocator (the default): a label set keeps its number for
//     the life of the Manager, numbers are handed out in order of the
//     label sets' canonical text when a snapshot brings several new ones
//     (so equal input gives equal numbers), and a released number is not
//     reused before the range has wrapped. Kubernetes mode passes the
//     cluster-wide allocator of mesh/provider/kube/ciliumidentity, which
//     keeps numbers in CiliumIdentity objects so every node resolves the
//     same Pod to the same number, across restarts. This package stays
//     free of API clients; a set the Allocator cannot number is reported
//     in State.Problems and its Pods get no identity. CIDR identities stay
//     node-local, as in Cilium.
//   - Pods that are finished (Succeeded, Failed), use the host network or
//     have no address yet get no endpoint and no ipcache row. Two Pods
//     claiming one address: the first by namespace/name keeps it and the
//     other is reported in State.Problems.
//   - Addresses: the node's own addresses map to host, the other nodes'
//     addresses (Input.RemoteNodeIPs: their Nodes' InternalIP and
//     ExternalIP) to remote-node, below host and Pod addresses, as Cilium
//     maps them, so fromEntities [remote-node] admits the other nodes
//     themselves (kubelet-like probes, host-network clients) and nothing
//     else; every node's ingress address (Input.IngressIPs) maps to
//     ingress, below all of those, so an address already the host's, a
//     Pod's or a node's never becomes ingress; a prefix that is a
//     Pod or node address stays theirs (CIDR rules never select cluster
//     workloads, as in Cilium); /0 prefixes get no CIDR identity (they mean
//     the world entity, see mesh/policy).
package identity
