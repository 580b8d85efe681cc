// Package envoyconfig translates cilium.io/v2 CiliumEnvoyConfig and
// CiliumClusterwideEnvoyConfig objects (Envoy resources users write) into
// what this node's proxy runs: the resources themselves, renamed and
// checked (ir.Resource, carried verbatim by the IR), the endpoints of the
// Services they name (EDS ClusterLoadAssignments), and the redirects of
// Services' traffic to their listeners (Redirect, for the datapath).
//
// It is the one package under mesh/ that imports Envoy's protos
// (boundaries_test.go): it has to decode them. Data in: an input.Snapshot
// (the configs, Services, EndpointSlices) and Options (this node's labels,
// the address listeners without one bind, the sockets Gateways and
// Ingresses bind). Data out: a Result. Translate is pure and
// deterministic.
//
// # Fail closed, per config
//
// Every problem refuses the whole config it is in, never a part of it,
// and never another config: a Status with Valid false, a reason and a
// message naming each resource and field (the resource's index in
// spec.resources, its type and the user's name for it). Reasons:
// Invalid (the JSON does not decode as the type its "@type" names, an
// unknown field or type, Envoy's own validation (ValidateAll) fails, a
// reference points at nothing), Unsupported (the builtin proxy's decoder
// — the very code that would NACK it, proxylib/resource — refuses it;
// its message is the NACK's), Conflict (a listener socket or a Service
// port is already claimed). So the user reads on the config, before
// anything is delivered, what Cilium reports only in an agent log after
// Envoy rejected it. A refused config's Services are not left to bypass
// the proxy the user put in their path: their redirects are emitted with
// Refused set, and the agent makes connections to those ports fail.
//
// A node that cannot redirect Services at all (Options.CannotRedirect:
// the agent has no datapath Service table, i.e. runs without
// --datapath-cgroup) can neither send a Service's traffic to a listener
// nor make it fail. A config with spec.services is then refused as
// NotRedirected, naming the flag, and none of its resources is served:
// Cilium users expect that Service's traffic to pass the listener, and a
// listener served while the traffic goes straight to the backends would
// read as in force when it is not. The same holds for a Service
// annotated lb-l7. A config with only backendServices (and listeners with
// their own addresses) does not depend on redirection and is served.
//
// Where the verdict is read: `nodemesh status` on a node, and, in
// Kubernetes mode, the config's status.conditions (type Valid; nodemesh's
// CRDs add the status subresource Cilium's lack). Every node's agent
// writes it (mesh/provider/kube StatusWriter), not the controller,
// because a verdict can be the node's own: a socket conflict, a listener
// its proxy could not bind, a Service it cannot redirect, a nodeSelector.
// A False condition names its node ("node N: ...") and carries the exact
// error; another node's True never hides it for the same generation;
// each node writes only when its own verdict changes, so the writes stay
// bounded whatever the number of nodes. A proxy's rejection (NACK) of one
// of the config's resources is read back to the config by the resource's
// name (see Names) and reported with reason ProxyRejected and the NACK's
// text. A node the config does not select writes nothing.
//
// # Names
//
// Every resource name, and every reference between a config's resources
// (RDS route configuration names, route and tcp_proxy clusters, mirror
// clusters, SDS secret names in TLS contexts, a ClusterLoadAssignment's
// cluster_name), is qualified with the config: "cec/<namespace>/<name>/"
// for a CiliumEnvoyConfig, "ccec/<name>/" for a clusterwide one
// (mesh/ir names.go). Cilium qualifies as "<namespace>/<name>/" and
// leaves names that contain a "/" alone, so two configs that both define
// the cluster "default/echo" (as its examples do) collide, and a config
// can shadow resources generated for a Gateway; here they cannot, and
// xds/translator.OriginOf reads a rejected resource back to its config.
// The cost is that one config cannot refer to another's resources.
// One reference is left unqualified: a cluster named envoy-admin, when
// the config has no cluster of that name, is the proxy's own admin
// cluster (proxylib/resource.AdminClusterName), as in Cilium, where its
// Envoy bootstrap defines it; Cilium's Prometheus listener example routes
// /metrics there, rewritten to /stats/prometheus.
//
// EDS clusters ask for their endpoints by eds_cluster_config.service_name,
// or, as in Envoy, their own (unqualified) name. A name that is a
// ClusterLoadAssignment of the same config gets that one; otherwise it
// must be a Service EDS name as Cilium makes them, "<namespace>/<name>"
// (the endpoints of every TCP port of the Service) or
// "<namespace>/<name>:<port>" (one Service port, by number or name), of a
// Service the config lists in spec.services or spec.backendServices.
// Those answers are not qualified: their content is a function of the
// Service alone, so configs share them. An entry that selects ports
// (services[].ports, backendServices[].number) admits only names of those
// ports. eds_config is filled in as ADS when unset, as Cilium does.
//
// A listener without an address binds Options.ListenAddress (a node
// address) on a port from FirstPort-LastPort (default 14000-14999): the
// first free one at or after the FNV-1a hash of its qualified name, so a
// listener keeps its port while other configs come and go. Configs are
// translated clusterwide ones first, then namespaced ones, each in name
// order; that order decides which config a port or socket conflict
// refuses.
//
// Other decisions:
//   - A namespaced config may only name Services of its own namespace
//     (services and backendServices); an entry without a namespace is in
//     the config's namespace, or "default" for a clusterwide config.
//   - services[].listener defaults to the config's first listener; a
//     Service entry redirects its listed ports (all TCP ports when none
//     are listed).
//   - An HTTP filter named envoy.filters.http.router without
//     typed_config gets the Router's (Envoy finds it by that name).
//   - spec.nodeSelector is a label selector over the Node's labels (a
//     Cilium source prefix "k8s:" or "any:" on a key is dropped); a
//     config that does not select this node is reported NotSelected and
//     contributes nothing here.
//   - One resource's JSON is bounded to 1.5 MiB, what the API server
//     stores for a whole object.
//
// # Original source address
//
// As in Cilium, a config's upstream connections keep the client's address
// (the backend, and its policy, see the client Pod rather than the node)
// unless the config says otherwise: the cec.cilium.io/use-original-source-address
// annotation (Cilium 1.19+) decides; when it is absent or not a boolean,
// the cilium.io/use-original-source-address label (what Cilium up to 1.18
// reads, deprecated since) does; when neither decides, it is true. A config
// owned (ownerReferences) by an Ingress or a Gateway, which is what
// Cilium's Ingress and Gateway controllers generate, never keeps it. A
// value that is not a boolean is passed over, as in Cilium, and the
// config's status says so. The Services of lb-l7 keep it too (there is no
// object to say otherwise; they are east-west Service traffic, as a user
// config with spec.services is). GAMMA routes are translated by package
// gateway, not here, and keep the client's address under the same
// condition and by the same mechanism (Cilium sets the annotation "true"
// on the configs it generates for GAMMA; see package gateway, "GAMMA").
//
// Keeping it means an original_src listener filter (mark: the routing
// listeners' mark with no identity, Options.OriginalSourceMark) on each of the config's
// TCP listeners that spec.services redirects to and that has none already.
// Only those: their clients are this node's Pods (the redirect happens in
// this node's socket hooks), so replies to a client's address come back
// through this node. A listener with an address of its own and no
// Service may be reached from other nodes, to which the replies would
// go instead; its connections come from the node. It takes effect only where the
// datapath steers the backends' replies to the client's address back to
// the proxy's socket (the agent runs with --datapath and
// --policy-original-source, the default): without that steering a reply
// would go to the client itself and the connection would hang. On a node
// without it (no datapath, standalone, or --policy-original-source=false)
// nothing is added, upstream connections come from the node, and the
// status of every config that asked for the client's address says the
// original source is not in effect; it is never claimed where it does not
// hold. An accepted config's status always says which of the two holds.
// Through the eBPF datapath this is checked end to end by
// conformance/e2e (TestEnvoyConfigOriginalSourceThroughTheDatapath: each
// client Pod's address reaches the backend, whose L3 policy then judges
// the client's identity; TestOriginalSourceOff: "false", or a node
// without the steering, gives the node's address).
//
// Marks. Where the datapath runs, every upstream connection of a config's
// clusters and of lb-l7 clusters carries the routing listeners' mark
// (Options.UpstreamMark, datapath.ProxyRouteMark(0): magic 0xB00, no
// identity), as an SO_MARK socket option added to the cluster's
// upstream_bind_config, and the original_src filters use the same mark.
// It says "a listener that applied no L7 ingress policy": the datapath
// judges the connection by its source (the client Pod with the original
// source, else the node) and, where the backend's ingress policy has L7
// rules on the port, hands it to the ingress policy listener, so those
// rules hold for a same-node backend (conformance/e2e
// TestEnvoyConfigOriginalSourceWithL7Policy). Without the mark a
// node-sourced connection would be taken for the host's own, which the
// datapath admits to every workload; with it, a backend whose policy does
// not admit the node refuses it (TestOriginalSourceOffWithL7Policy): the
// datapath cannot know the client then, so it fails closed. A config may
// not set a mark itself (an SO_MARK socket option in a cluster, an
// original_src mark): it could claim the policy listeners' mark
// (FROM_PROXY, "L7 rules already applied") or another identity, so such a
// config is refused (Invalid) on a node with the datapath; an original_src
// a config gives without a mark gets the routing mark. Nor may a cluster
// bind its upstream connections to a source address of its choice
// (upstream_bind_config.source_address other than 0.0.0.0 or :: with port
// 0): marked without an identity, they are judged by that address, so
// binding a Pod's (with IP_TRANSPARENT) would borrow the Pod's identity.
//
// The 5-tuple collisions Cilium warns about (Envoy binding the client's
// address and port for pipelined HTTP/1.1 or HTTP/2 connection pools) do
// not occur with the builtin proxy: it binds the address only, the source
// port is the kernel's choice, and it pools connections per endpoint and
// client address (proxylib/upstream BindSource); original_src's bind_port
// is refused. So "false" is a choice about identity (the backend sees the
// node), not a workaround.
package envoyconfig
