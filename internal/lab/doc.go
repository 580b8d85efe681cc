// Package lab is the local cluster: the one harness every multi-node test,
// the Gateway API conformance runner and `nodemesh lab` use. Start brings
// up, on this machine and inside network namespaces it creates:
//
//   - the control plane (package controlplane): etcd, kube-apiserver and
//     kube-controller-manager built from their Go modules, in a
//     control-plane namespace on the lab network (10.250.0.1);
//   - N nodes (package network): namespaces on the lab network with a Pod
//     CIDR each (10.244.<i>.0/24) and native routing between them, as a
//     CNI would set up; each node runs
//   - the lab's kubelet (package node), which registers the Node (with
//     spec.podCIDR) and runs the Pods bound to it as local processes, each
//     in its own namespace behind a veth; images map to built-in workloads
//     (package workload), a command naming a local program runs as is;
//   - kube-proxy (built from the same Kubernetes release), one per node in
//     the node's namespace, in iptables mode: ClusterIP traffic is
//     translated by the real thing, and nodemesh runs beside it as it runs
//     beside a cluster's CNI and kube-proxy (chained, like Cilium);
//   - a Pod cgroup per node (cgroup v2, <mount>/nodemesh-lab/<lab id>/
//     <node>, like kubelet's kubepods): every container of the node's Pods
//     starts in it, and `lab exec` commands join it, so the node's agent
//     can attach socket-level Service translation there
//     (--datapath-cgroup=<Node.Cgroup>, or {cgroup} in --agent-arg) and
//     connects to ClusterIPs reach the datapath already addressed to a
//     backend Pod; Close and the sweep of killed labs remove them;
//   - nodemesh in Kubernetes mode: nodemesh-agent and nodemesh-proxy per
//     node (in the node's namespace, the agent's sockets under
//     <dir>/nodes/<node>/, Hubble's hubble.sock among them, so `hubble
//     observe --server unix://<dir>/nodes/<node>/hubble.sock` watches a
//     node; their /metrics on the defaults 127.0.0.1:9962 (agent) and
//     127.0.0.1:9964 (proxy) of the node's namespace),
//     nodemesh-controller once (control plane, 127.0.0.1:9963 there;
//     TestLabHubbleAndMetrics scrapes all three and runs the hubble CLI);
//
// plus the lab's scheduler (package scheduler: spread, nodeSelector,
// required node affinity) and a cluster DNS (package dns) for
// *.svc.cluster.local, published as kube-system/kube-dns at 10.96.0.10.
//
// Decisions:
//   - Addresses: lab network 10.250.0.0/24 (control plane .1, node i
//     .<10+i>), Pods 10.244.<i>.0/24, Services 10.96.0.0/16, DNS
//     10.96.0.10, Gateway addresses from the lab's load balancer
//     (package lbipam: each Gateway's LoadBalancer Service gets one from
//     10.250.0.192/27, Options.LoadBalancerPool, which every node's agent
//     makes local with --gateway-address-routes so its proxy listens on
//     it), and so does each Ingress load balancer's Service
//     (nodemesh-ingress-<name>, or the shared nodemesh-ingress in
//     kube-system), hosts outside the cluster on the lab network
//     (Network.AddExternal, <id>-ext-<name>, e.g. 10.250.0.240: a
//     namespace of their own, not the machine's, whose address is no
//     Node's or Pod's, so every agent's ipcache leaves it world, as a
//     client on the Internet is, until a policy's CIDR names it;
//     TestLabIngressPolicy checks it),
//     and each node's ingress address 10.244.<i>.254 (reserved from its Pod CIDR, so the other
//     nodes route it there) on its loopback, announced on its Node
//     (nodemesh.io/ingress-ip): the source of its proxy's connections to
//     Gateway backends, which every agent maps to the ingress identity. Nothing is added to the
//     machine's own namespace except one loopback port (below); the
//     control-plane namespace does not forward, so the lab is an island.
//   - The cluster DNS runs in the lab's process, listening in the
//     control-plane namespace; the kube-dns Service has no selector and an
//     EndpointSlice naming 10.250.0.1, so Pods reach it through kube-proxy
//     like CoreDNS. It never forwards: names outside cluster.local are
//     refused. (Policy work should know that DNS traffic goes to the
//     control plane's address, not to a Pod.)
//   - The API server's "kubernetes" Service has live endpoints (the lease
//     reconciler), so in-cluster clients work through 10.96.0.1.
//   - Kubeconfig (<dir>/kubeconfig) points at a loopback port of the
//     caller's namespace that the lab forwards into the control-plane
//     namespace, so kubectl, helm and tests on this machine reach the lab;
//     LabKubeconfig (<dir>/cluster/kubeconfig) is the in-lab one the nodes
//     and the mesh use.
//   - Every process the lab starts gets SIGKILL when the lab's process
//     dies (Pdeathsig) and its namespaces carry that process's id
//     (testbed.NewID). Close stops Pods, runners, the mesh and the control
//     plane, then kills whatever still runs in the lab's namespaces and
//     deletes them (with their /etc/netns files). A lab killed with -9 is
//     swept by the next Start or Down (testbed.Sweep: namespaces of dead
//     owners, processes still inside them, /etc/netns entries).
//   - State for other processes: Start writes <dir>/lab.json (State: pid,
//     namespace prefix, nodes, kubeconfigs, kubectl) — what `nodemesh lab
//     exec` uses to find a Pod's namespace (network.PodNamespace of its
//     UID) and `nodemesh lab down` to stop the lab's process.
//   - Readiness: Start returns once the DNS serves, every Node is Ready,
//     every kube-proxy's /healthz answers, every nodemesh-proxy has its
//     configuration (/ready) and the default ServiceAccount exists (Pods
//     are refused before it does).
//
// The chart: the mesh is what charts/nodemesh renders. Start renders it
// once per node with `helm template` (internal/chart; release nodemesh in
// kube-system) and starts nodemesh-agent and nodemesh-proxy from the
// rendered agent and proxy DaemonSets and nodemesh-controller (once, from
// the first render) from the controller Deployment: each container's
// command (its program looked up by name in Options.BinDir), args and env,
// resolved as kubelet would: fieldRef env from the Pod the lab plays
// (spec.nodeName, metadata.name nodemesh-agent-<node>, metadata.namespace
// kube-system, …), then $(VAR) in command and args. The process gets PATH
// and the container's env, nothing else of the lab's environment. The
// values per node (written with the manifest to <dir>/chart/<node>/) map
// the chart's host paths into the lab: stateDir is the node's state
// directory, agent.datapath.bpffsPath <lab bpffs>/<node> (pins in its
// nodemesh/), kubeConfigPath the in-lab kubeconfig; and give the node's
// facts: agent.nodeIPs, agent.datapath.netnsPath, .devices and .cgroup,
// addressPool. Options.AgentArgs and ControllerArgs are agent.extraArgs
// and controller.extraArgs, and Options.ChartValues are laid over all of
// it (TestLabRunsTheChart moves the agent's metrics port and the
// controller's Lease that way; NODEMESH_LAB_EVENT_LOOPS=n lays
// proxy.eventLoops=n over every test lab, so with 0 the scenarios also
// run with the proxy on a goroutine per connection). What the lab cannot run is refused, not
// skipped: a hostPath mounted elsewhere than its own path, another volume
// kind, an init container (proxy.engine=envoy), an env source other than
// fieldRef, a program that is not nodemesh's. The securityContext is not
// applied (everything runs as root). Of the cluster-wide objects the
// render holds, the lab installs the RBAC ones (below) and the
// IngressClass (ingressController.className, marked default with
// ingressController.default), so the class Ingresses name is the chart's
// (TestLabChartIngressClass).
//
// RBAC: the API server authorizes with RBAC (controlplane.Options.RBAC),
// and the mesh runs under the chart's roles, not as admin. Start applies
// the ServiceAccounts, ClusterRoles, Roles and bindings of the first
// render, then gives the agents and the controller what kubelet would
// give their Pods: a token of the ServiceAccount their Pod template
// names, from the TokenRequest API (an hour, refreshed at 80 % of it), in
// a kubeconfig at <dir>/cluster/serviceaccounts/<agent|controller>/
// kubeconfig whose user reads the token file beside it (tokenFile; the
// lab shares the file system, where a Pod would mount the projected
// token). That path is the chart's kubeConfigPath: the agents' renders
// name the agent's, and the controller is started from a render of its
// own (<dir>/chart/controller/) that names the controller's, since the
// chart has one kubeConfigPath for both. The proxy's Pod template mounts
// no token, and it gets none. kube-proxy, the lab's kubelets, scheduler
// and load balancer keep the admin kubeconfig (system:masters). A
// request the roles refuse shows in the component's log as the API
// server's "forbidden: User "system:serviceaccount:..."", and ForTest
// fails the test on any (Lab.Forbidden), so every lab test exercises the
// chart's RBAC; TestLabChartRBAC also checks that the agent's and the
// controller's credentials cannot delete a Secret or create a Pod.
//
// Network policy is on by default, as on a cluster that runs nodemesh for
// it: every node's agent gets the datapath values (--datapath on the node's
// namespace; --node-ips with the node's lab address and its Pods' gateway;
// --datapath-devices=eth0 so connections from other nodes that policy
// redirects reach the proxy; a pin directory per node; and, where the
// machine has cgroup v2, --datapath-cgroup=<Node.Cgroup> so Services are
// translated at the socket and egress and L7 policy hold on connections
// dialled through a ClusterIP, TestLabEgressPolicyThroughClusterIP).
// Options.NoPolicy (`nodemesh lab up --no-policy`) runs the Gateway API
// mode only; the Gateway API conformance harness uses it, as its suite
// applies no policy. Options.AgentArgs (`lab up --agent-arg`, with {node},
// {ip}, {netnsPath}, {stateDir}, {pinDir} and {cgroup} replaced per node)
// adds agent flags after the chart's (a later flag wins).
//
// Decisions for policy:
//   - Pins live on a bpf filesystem the lab mounts at <dir>/bpffs/<ID>
//     (a directory per node), not under /sys/fs/bpf: pinned datapaths
//     outlive their agent by design, so the lab must own them. Close
//     unmounts it after deleting the namespaces; the name carries the
//     lab's process id, so testbed.Sweep unmounts the one of a killed lab.
//     `ip netns exec` gives the agents a mount namespace of their own that
//     starts as a copy of the lab's, so they see it.
//   - `lab up -f` returns once every node reports every applied policy
//     Enforced (WaitPolicies, from the NodeProxyStatus reports that
//     `nodemesh status --nodes` reads): the first request after up meets
//     the policy. A policy an agent rejects ends the wait with its reason.
//   - Each node namespace routes every local Pod IP (/32) to the Pod's
//     host-side veth (lxc + 8 hex digits of the Pod UID), so an agent
//     finds a Pod's interface from its IP with a route lookup, as a
//     chained datapath does on a real node.
//
// Tests: TestLabGatewayLoadBalancer (a client outside the cluster reaches
// a Gateway by its load-balancer address through either node, and the
// backend sees the client's address in X-Forwarded-For),
// TestLabPolicyAcrossNodes (Star Wars L3/L4 then L7 on two nodes,
// every request through the deathstar's ClusterIP, the L7 verdict given
// by the deathstars' node), TestLabCommand (the same L3/L4 outcome right
// after `nodemesh lab up`), TestLabGatewayIngressIdentity (Gateway
// traffic reaches a backend as the ingress identity),
// TestLabKafkaPolicyAcrossNodes (a franz-go producer against the kfake
// broker on the other node), TestLabPolicyUpdateUnderLoad (no denied
// request answered while rule1 changes 30 times under load; an allowed
// request may fail in the moment of an update, as the datapath's update
// order allows a drop), TestLabRemoteNodeIdentity (the other node's
// address is remote-node), TestLabEnvoyConfigExamples (Cilium's
// CiliumEnvoyConfig examples from examples/envoyconfig, unchanged: the
// 90/10 traffic shift and the 50/50 split with its /foo rewrite within
// exact binomial bounds, and the circuit breaker's 503s) and
// TestLabServiceLBGRPC (service.cilium.io/lb-l7 spreads 100 gRPC calls on
// one connection over both backends; the test binary is the client,
// started in the client Pod by TestLabGRPCClient) and
// TestLabIngressCiliumExamples (Cilium's Ingress examples from
// examples/ingress, unchanged, with the chart's IngressClass named cilium
// (ingressController.className) and the echo workload standing in for bookinfo under the same
// Service names and ports: basic-ingress through either node from a host
// outside the cluster, the client's address in X-Forwarded-For and
// X-Envoy-External-Address; the path types before and after the /impl.*
// patch; TLS termination with a test CA; dedicated and shared load
// balancers) and TestLabIngressPolicy (AT-ING-06, Cilium's Ingress and
// network policy guide on basic-ingress: external-lockdown answers the
// outside clients 403 and lets the client Pod in, allow-cidr admits one
// outside /32, the guide's default-deny — its DNS rule allowing every
// name is enforced as the L4 allow of 53/UDP — leaves the Ingress no
// backend (403, as Cilium; see xds/translator) and drops the client Pod's
// own requests, until allow-ingress-egress opens the ingress endpoint's
// egress again).
//
// Mutual authentication: every Pod gets SPIFFE_ENDPOINT_SOCKET naming its
// node agent's Workload API socket (WorkloadSocket), served when the agent
// runs with --mutual-auth. With --mutual-auth=builtin each node's agent
// runs its own issuer; --auth-peer-authorities-dir=<a directory of the
// lab> lets them trust each other (TestLabMutualAuth). The bad-peer
// cases (TestLabMutualAuthBadPeers) use a rogue node the test plays: a
// Pod bound to a node no agent runs, whose status.hostIP is the control
// plane's address, where the test listens on the handshake port with a CA
// it publishes in that directory. With SPIRE
// (TestLabMutualAuthSPIRE) spire-server and one spire-agent per node run
// on this machine (internal/spiretest), the agents get
// --mutual-auth=spire with their node's admin socket and the controller
// --spire-server-socket through Options.ControllerArgs.
package lab
