// Package chart renders the Helm chart in charts/nodemesh with the real
// helm CLI for the lab (Render), and tests it with that CLI
// (helm.sh/helm/v4, pinned by the nested module internal/tools/helm and
// built once into conformance/.cache/helm-<version>/ by Helm): `helm
// lint`, and `helm template` of the default values, of
// proxy.engine=envoy and of the ingressController values against golden
// manifests (testdata/*.yaml, rewritten with -update). It also
// checks that the chart's crds/ equal api/crds/, the CRDs controller-gen
// generates, so the API has one source of truth (`make generate` copies
// them).
//
// The chart's RBAC is derived from the clients the code uses: the informers
// of mesh/provider/kube (list, watch, Ingresses and IngressClasses
// included), gateway/nodereport (get Node; get, create, update
// NodeProxyStatus), gateway/controller (list, watch NodeProxyStatus; get
// and update status of GatewayClass, Gateway, HTTPRoute, Ingress; create
// Event for Ingress problems; create, update, delete each Gateway's
// LoadBalancer Service), the policy watch of mesh/provider/kube (list, watch Pods,
// Nodes, NetworkPolicies and the cilium.io policy kinds; get and patch the
// status of the cilium.io ones), mesh/provider/kube/ciliumidentity (agent:
// get, list, watch, create CiliumIdentities; controller: list, watch Pods,
// list, watch, delete CiliumIdentities), the controller's XMesh
// acceptance (list, get XMeshes, update their status), its SPIRE
// registration (list, watch Nodes), the agent's Events on Ingresses whose
// resources its proxy rejected (create Event) and client-go's LeaseLock
// (get, create, update Lease); each rule says where it comes from in a
// template comment. Rules follow the values that decide whether the code
// runs: the agent's policy rules (Pods, Nodes, NetworkPolicies,
// ServiceCIDRs, the cilium.io policy kinds and their status,
// CiliumIdentities) are rendered only when agent.policy.enabled or
// agent.datapath.enabled gives it --policy, and the Event rules of agent
// and controller (about Ingresses of ours) only with
// ingressController.enabled. The rest is needed whatever the values: the
// translation watches every kind it reads (Ingresses included, as one
// snapshot, even when none is ours), the controller clears the
// addresses it wrote on Ingresses no longer ours, deletes the Services
// Gateways got when host-network mode is turned on, and always runs the
// identity collector; the Lease rules follow
// controller.leaderElection.enabled. The proxy's ServiceAccount mounts no token: it talks
// only to its agent. nodemesh lab installs these objects from the
// rendered chart and runs the agents and the controller with tokens of
// their own ServiceAccounts on an API server that authorizes with RBAC,
// and every lab test fails on a request the roles refused
// (internal/lab, TestLabChartRBAC), so a missing verb shows.
//
// Metrics: agent, builtin proxy and controller each have
// <component>.prometheus.enabled (default true) and .port (9962, 9964,
// 9963, Cilium's agent, Envoy and operator ports). When enabled the
// binary gets --metrics-address=:<port> (the node's addresses for the
// host-network agent and proxy, the Pod's for the controller), the
// container a "prometheus" port, and the Pod the prometheus.io/scrape and
// prometheus.io/port annotations that annotation-based Prometheus
// configurations discover; when off, metrics stay on the binary's
// loopback default (internal/metrics). With proxy.engine=envoy the
// proxy's setting does not apply: Envoy's metrics are on its admin
// endpoint.
//
// Worker count: proxy.workers (default 1, schema 1..256, the bound of
// nodemesh-proxy --workers) is how many single-threaded serving loops
// each node's proxy runs. 1 renders no flag: each engine's default of one
// process using every core (the builtin proxy's GOMAXPROCS; Envoy's
// hardware threads). n > 1 renders --workers=n for the builtin engine (n
// single-threaded processes, each with its own SO_REUSEPORT sockets) and
// --concurrency=n for Envoy (n worker threads): the same knob, so
// switching engines keeps the node's parallelism. Envoy refuses an option given twice, so the render fails
// when proxy.extraArgs also carries --concurrency; the builtin proxy takes
// the last --workers, so an extraArgs one still wins there, as before.
// There is no 0 for "one per CPU": the count a process can see is the
// node's every core when the container has no CPU limit (the chart sets
// none), and Go rounds a limit up to at least 2, so a node-sized count
// would make the memory (about n-fold) and the per-process circuit
// breaker thresholds (a node admits n times each) vary with the node the
// Pod lands on; an explicit count keeps them the operator's choice.
// Nothing else in the chart changes with the count: /metrics stays on
// one port, served by worker 0 with every series labelled worker="<i>";
// the DaemonSet has no probes (/ready, on the loopback admin endpoint,
// covers every worker); resources are the user's to size (memory per
// process, limits.cpu at least n).
//
// Event loops: proxy.eventLoops (default auto; schema: auto or 0..256,
// the bound of nodemesh-proxy --event-loops) renders --event-loops=n for
// the builtin engine when it is a count, 0 included (goroutines only), and
// nothing for auto, so the proxy's own default applies: a loop per CPU,
// or under a CPU limit one fewer than the limit rounded up (at least one),
// none with --workers above 1. Unlike proxy.workers, a node-sized
// default is safe here: loops share one process, its circuit breakers
// and its upstream pools' limits. What grows with the count: a thread per
// loop; per loop, a table indexed by descriptor number (24 bytes per
// number up to the highest the loop has served, never shrunk: about 1.5
// MB per loop at 65 000 descriptors); and idle upstream connections, kept
// per loop (a loop reuses only its own, so more are dialled and held
// open, until a request queued on the pool has them given back). The
// render fails, rather than leaving the proxy to exit at start or the
// setting to be dropped, when n > 0 meets proxy.workers > 1 (the proxy
// refuses the pair: loops live in one process, workers are several
// single-P processes) or proxy.engine=envoy (Envoy has no such option, and
// --concurrency is not the same thing, so mapping it silently would change
// what was asked). As with --workers, an --event-loops in proxy.extraArgs
// comes later and wins, and a --workers there that conflicts is the
// proxy's to refuse. The proxy raises GOMAXPROCS to n+1 when it is lower
// (a busy loop keeps its P; one loop where the budget is one CPU shares
// GOMAXPROCS=1 instead), so a container CPU limit below n+1 throttles it
// under load; the chart sets no limit and does not parse one, and
// values.yaml says to keep limits.cpu, if set, at n+1 or more.
//
// Ingress: ingressController.enabled (default true; Cilium's default is
// false, but nodemesh has always served Ingresses that name its class, so
// turning it on by default takes nothing over unasked), .default,
// .loadbalancerMode, .enforceHttps and .defaultSecretNamespace/.Name are
// Cilium's value names. They render into the --ingress-* flags
// (gateway/ingressflags.go), the same on the agent and the controller,
// which must agree; enabled=false renders --enable-ingress-controller=false
// and no IngressClass. When enabled the chart installs the IngressClass
// named by ingressController.className (default "nodemesh"; controller
// nodemesh.io/ingress-controller), marked is-default-class when .default
// is set, and gives agent and controller --ingress-class with that name.
// className is not a Cilium value (Cilium's class is always "cilium"):
// it is how manifests written for Cilium, which name class cilium, are
// served unchanged (className=cilium) without taking over that name by
// default where Cilium may also run. A secret namespace without a
// name (or the reverse) fails the render.
//
// Rendering for a process, not a cluster: Render runs `helm template` with
// a values file and decodes the objects; nodemesh lab starts the agent,
// proxy and controller from what it returns (internal/lab). Values the lab
// needs and a real cluster may too are chart values, not lab flags:
// kubeConfigPath (--kubeconfig, the file mounted at its own path; empty
// means the ServiceAccount), agent.nodeIPs (--node-ips),
// agent.datapath.netnsPath (--datapath-netns) and agent.datapath.cgroup
// (--datapath-cgroup). helm runs as the CLI built from the pinned nested
// module rather than linked as a library: helm v4.3.2 requires
// k8s.io/* v0.37, which would move the whole main module's Kubernetes
// libraries with it (see internal/tools/helm).
package chart
