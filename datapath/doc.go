// Package datapath is the Go side of the eBPF datapath: it loads the
// programs of package bpf, pins their maps, attaches them to workload
// interfaces, installs the routing that eBPF TPROXY needs, and reconciles
// desired state (endpoints, ipcache, policy, auth) into the maps.
//
// # Data in and out
//
// Callers hand in whole desired tables — SyncEndpoints, SyncIPCache,
// SyncPolicy, SyncAuth, SyncAttachments, SyncServices (Service frontends
// and their backends, read at connect time by the socket programs that
// AttachCgroup attaches to the node's Pod cgroup), SyncServiceRanges (what
// from_workload treats as a Service address) — and the datapath makes
// the kernel match them: idempotent upserts, deletes of what is no longer wanted,
// nothing written when nothing changed. The current state is always read
// back from the kernel, so a restarted agent converges from whatever the
// previous run left. UpsertAuth/DeleteAuth serve the auth manager's
// incremental path. Out come Counters (per reason and direction), an
// EventReader over the ring buffer (drops, redirects, auth-required), and
// Policy() for inspection.
//
// Policy rows (model.PolicyEntry) are plain numbers produced by policy
// compilation; model.PolicyIndex.Decide is the reference model of the
// kernel's lookup and is what tests compare the programs against. The row
// types, identities and reasons live in the stdlib-only datapath/model, so
// their producers do not link this package; RouteInterfaces (finding a
// workload's host-side interface by route lookup) lives here because it
// speaks netlink.
//
// # Invariants
//
//   - Bad input never half-applies: tables are validated whole before the
//     first write; a desired state that cannot fit fails with ErrMapFull
//     before any write; a policy that fails to build is never published.
//   - A policy update never opens a window: each new flow is judged by
//     the old policy or the new one, never by a mix (see Policy updates
//     below). When SyncPolicy returns, no packet is judged by the old one.
//   - Attach is all or nothing per interface: both hooks or neither.
//   - Close leaves the datapath running (pinned links keep the programs
//     attached, pinned maps keep connection tracking and policy), so an
//     agent restart does not drop established connections; New adopts the
//     pins and swaps in the new programs atomically. Uninstall is the clean
//     removal: programs detached, routing rules and pins removed.
//   - Nothing here touches iptables; the routing footprint is one fwmark
//     rule per family and one local default route per family in table
//     RouteTable.
//
// # Decisions where the design was silent
//
//   - Policy is keyed by local identity, not endpoint: policies select by
//     labels, so all endpoints of an identity share rows and the table
//     stays small. Enforcement (default deny) is per identity and
//     direction, switched on by Policy.Enforce (Cilium: the first rule
//     selecting an endpoint enables enforcement). EnforcementMode
//     always/never mirror Cilium's policy-enforcement-mode.
//   - Precedence: L4 specificity first (exact port, any port of the
//     protocol, any protocol), then the exact remote identity before the
//     wildcard; the first row found decides, and a deny row anywhere in the
//     chain always wins. Ports are exact; ranges are expanded by policy
//     compilation.
//   - Policy updates swap whole tables. The programs do up to seven
//     lookups to judge a flow (the enforcement entry, then up to six rows
//     from the most to the least specific), and a program can be held up
//     between two of them (an interrupt, a vCPU the hypervisor paused)
//     while the agent goes on writing. Rows written in place, in whatever
//     order, can then be seen torn: an early lookup before a write, a
//     later one after others; e.g. swapping "deny the intruder on every
//     TCP port" for "deny it on port 80, allow anyone on port 80" admits
//     it when the exact-port lookup misses the new deny row, the wildcard
//     lookup finds the new allow row and the any-port lookup misses the
//     old deny row (TestPolicyUpdatesNeverOpenAWindow saw this under
//     load). So nm_policy is an array of one map whose slot holds the
//     table in force, rule rows and enforcement rows together (one per
//     enforced identity, direction 0, flags in the verdict byte). A
//     program looks the slot up once per packet and judges by that table
//     only; SyncPolicy fills a new table and publishes it with one write
//     of the slot, and a published table is never written again. The
//     kernel waits for running programs before that write returns (it
//     does so for every update of a map-in-map slot), and frees the old
//     table when the last program using it is done. Cost: every change
//     rebuilds the whole table (one batch write; see BenchmarkSyncPolicy)
//     plus that wait (an RCU grace period, milliseconds whatever the
//     size), against a few row writes before. A double buffer (two
//     tables, the idle one brought up to date in place) would write only
//     the difference, but its safety would rest on that wait alone, and
//     the idle table is more state to keep in step (after a failed write,
//     after a restart); a fresh table needs neither. Policy size
//     (MapSizes.Policy) counts enforcement rows, and only one version has
//     to fit: old and new rows never share a table. The slot is never
//     empty (the loader publishes an empty table before attaching); if it
//     were, the programs drop every new flow policy could judge.
//   - Reading the policy back (ReadPolicy, Policy, the loader's checks)
//     races publication: user space gets the slot's table as an ID and
//     opens it by that ID, and a table published in between can free the
//     old one first, so the open fails with ENOENT (ErrKeyNotExist, which
//     also wraps ENOENT, is the empty slot and is told apart first). The
//     reader then looks the slot up again, a few times at most, and
//     after that fails with an error: it never reports an empty policy
//     for a read that failed, which would claim nothing is enforced. An
//     open table stays alive and is never written, so a read that opened
//     it returns one whole version of the policy
//     (TestReadPolicyWhileThePolicyIsSwapped).
//   - Auth-required is a flag on an allow or redirect row (AuthType), not a
//     verdict of its own, so an L7 rule can also require authentication.
//     Auth expiries are stored on CLOCK_BOOTTIME, converted when written.
//   - Stateful like Cilium: established connections and replies pass
//     through connection tracking; a policy change judges new connections
//     only. Connection tracking is an LRU map: when full it evicts the
//     oldest flow instead of refusing new ones.
//   - The local host (identity 1 in the ipcache) always reaches workloads,
//     except through the proxy: proxy traffic is judged with the identity
//     in its mark, so the proxy cannot become a confused deputy.
//   - L7 redirect is TCP only; a redirect row for another protocol is
//     rejected by Validate. Install a Redirect row only once the proxy
//     listens on its ProxyPort (after the proxy ACKed the listener): until
//     then the flow is dropped with DropProxyUnavailable, never let
//     through unfiltered.
//   - Original-source upstreams (the proxy binds the client's address):
//     replies are steered back to the proxy's socket by socket lookup, on
//     the workload's veth for destinations on this node and by from_netdev
//     for destinations beyond it.
//   - Traffic from outside the node that policy redirects is handed to the
//     proxy by from_netdev on the device it enters through (AttachNetdev /
//     SyncNetdevs): after the proxy accepted such a connection, the IP
//     stack's early demultiplexing would otherwise match later packets to
//     the proxy's socket on the uplink and then drop them as unroutable.
//     Without from_netdev, to_workload still redirects by looping packets
//     to the veth's own ingress hook (bpf_sk_assign works on tc ingress
//     only), which is correct only with net.ipv4.ip_early_demux=0 (what
//     Cilium's iptables fallback does).
//   - Multi-core: the proxy opens one SO_REUSEPORT listener per core on
//     each port (GOMAXPROCS of them; proxylib/transparent.ListenGroup; with
//     nodemesh-proxy --workers n, one in each of the n processes); the
//     program assigns whichever listener of the group its socket lookup
//     returns and the kernel then picks one of the group by flow hash
//     (Linux 6.5+; older kernels refuse reuseport sockets in bpf_sk_assign
//     and such packets are dropped with DropProxyAssign). This was chosen
//     over a BPF_MAP_TYPE_REUSEPORT_SOCKARRAY with an sk_reuseport program
//     or N sockets in a sockmap picked by the tc program: the kernel's
//     group already tracks listeners as they open and close, so the
//     datapath holds no per-socket state the proxy would have to keep in
//     step (a socket map entry left behind by a closed listener would
//     black-hole its share of flows), and nothing changes for a proxy that
//     opens one listener. The selection is the kernel's flow hash, the same
//     that spreads connections on a plain SO_REUSEPORT group.
//   - A closing listener loses no connection: the datapath turns on
//     net.ipv4.tcp_migrate_req in the node namespace (Linux 5.14+; older
//     kernels log a warning), so the connections waiting in its accept
//     queue move to another listener of the group instead of being reset,
//     e.g. when a restarted proxy's new group takes over from the old one.
//     Uninstall leaves the setting on: without a group it changes nothing.
//     The setting covers every SO_REUSEPORT group of the namespace; an
//     sk_reuseport program attached for migration
//     (BPF_SK_REUSEPORT_SELECT_OR_MIGRATE) would cover only the proxy's,
//     but the proxy would then need CAP_BPF, which it otherwise does not.
//   - Programs are attached with TCX links where the kernel has them (6.6+)
//     and tc clsact filters otherwise (AttachAuto); a restart in the other
//     mode moves every attachment over.
//   - Drop events are emitted per dropped packet; when the ring buffer is
//     full they are counted (LostEvents), never waited for.
//   - Packets from a workload whose source address is not registered for
//     its interface are dropped (DropSpoofedSource); IPv6 neighbour
//     discovery and MLD always pass, ARP and other non-IP frames are not
//     looked at.
//   - Two proxy marks. ProxyMark (magic 0xA00) is for the upstream
//     connections of the proxy's policy listeners, which applied the
//     destination's L7 ingress rules: to_workload never redirects them
//     again. ProxyRouteMark (0xB00) is for every other listener's
//     (Gateway, Ingress, GAMMA, CiliumEnvoyConfig, lb-l7), which applied
//     none: to_workload judges them like any flow from their identity,
//     L7 redirect to the destination's ingress policy listener included,
//     so a same-node backend's L7 rules hold whichever listener the
//     request came through (Cilium likewise enforces the destination's
//     ingress L7 rules on its egress-side proxy's traffic). A routing
//     connection without an identity in its mark from the node's own
//     address is judged as the host by policy, not admitted as the host's
//     own connections are: the datapath cannot name the client, so it
//     fails closed. When the routing connection was bound to a client
//     Pod's address (original source) and redirected, the policy
//     listener's replies are routed towards that Pod; to_workload loops
//     them to the interface's ingress (PROXY_REPLY mark, CT_F_PROXY_CLIENT
//     on the flow), where from_workload assigns them to the proxy's socket
//     or drops them (DropProxyUnavailable). A routing connection from the
//     node's own address re-enters through the workload interface's
//     ingress when hairpinned, which the stack drops as a martian unless
//     the interface has accept_local: Attach sets it on every workload
//     interface (safe: from_workload drops any source the interface does
//     not own, and only the programs set the hairpin marks;
//     conformance/e2e TestGatewayWithL7Policy). The other node's datapath sees
//     no mark (marks do not cross nodes) and redirects such a connection
//     to its own proxy like any other, so only a same-node backend needed
//     this (from_netdev judges the arriving packet by its source address
//     and redirects; read from bpf/netdev.c). The policy listener tells
//     peers apart by address (mesh/policy), so the identity it judges is
//     the source address's: the client Pod's with the original source,
//     the node ingress address's (ingress) for Gateway traffic where the
//     Node has one. A routing connection whose mark names an identity
//     its source address does not have (Gateway traffic from a node
//     without an ingress address of that family, or from a cluster the
//     agent could not bind to one) is redirected like any other, and its
//     connection-tracking entry records the marked identity with
//     CT_F_MARK_IDENTITY. The policy listener reads that entry for every
//     accepted connection (proxylib/conntrack; the pin path is
//     ConntrackPin) and judges a flagged connection by the identity
//     only, never by its address, which is the host's: the Gateway does
//     not borrow the host's L7 allowance, and the backend's L7 rules for
//     ingress apply (conformance/e2e TestGatewayWithL7Policy,
//     TestGatewayDoesNotBorrowHostL7Allowance). That needs a proxy that
//     reads the entry (WithProxyIdentity, CONFIG_F_PROXY_CT_IDENTITY in
//     the config row): without one (Envoy judges peers by address only)
//     to_workload drops such a connection instead (DropRouteIdentity; in
//     Hubble NO_CONFIGURATION_AVAILABLE_TO_PERFORM_POLICY_DECISION), so
//     it never borrows the host's allowance either way.
//   - Gateway traffic keeps its identity: the agent gives every Gateway
//     backend cluster an upstream SO_MARK of ProxyRouteMark(IdentityIngress), so
//     to_workload judges the node proxy's connections to a backend as the
//     reserved ingress identity (8), as Cilium does, and a backend policy
//     needs fromEntities [ingress] to admit them. The mark does not cross
//     nodes, so the identity travels in the source address instead, as
//     Cilium's per-node ingress IP does: a node whose Node carries an
//     ingress address (model.IngressIPAnnotation, reserved from its Pod
//     CIDR by the node's networking) has the proxy bind its Gateway
//     upstream connections to it, and every agent maps every node's
//     ingress address to ingress (8) in its ipcache, so a backend on
//     another node judges them as ingress too. Without one, a backend on
//     another node sees the proxy's node address, which the agents map to
//     remote-node (6), not ingress.
//   - Services: socket-level translation (Cilium's socket-LB), beside
//     kube-proxy. A Pod's packets reach its host-side interface's hook
//     before the node's netfilter, so kube-proxy's DNAT of a ClusterIP has
//     not happened yet where the sender's egress policy is judged and
//     where an L7 redirect must be made (from_workload, tc ingress: the
//     only hook that can still hand the flow to the proxy). Egress rules
//     are looked up by the destination's identity, and a ClusterIP has
//     none. So the datapath translates before the first packet exists:
//     cgroup/connect4/6 and sendmsg4/6 programs (bpf/sock.c), attached with
//     AttachCgroup to the cgroup of the node's Pods (kubelet's kubepods;
//     never the machine's root cgroup), rewrite a connect or datagram to
//     a Service frontend into one of its ready backends, from the Service
//     table the agent fills (SyncServices, from Services and
//     EndpointSlices); recvmsg4/6 and getpeername4/6 turn the backend back
//     into the frontend in what the socket reports (a resolver checks the
//     source of its answer). The packets then carry the backend Pod's
//     address, so egress policy, L7 redirect (the proxy sees the Pod as
//     the original destination) and the receiver's ingress policy all
//     judge the real peer, and kube-proxy has nothing left to translate
//     for these flows. It keeps serving what socket hooks do not see:
//     the node's own processes, traffic from outside the node, NodePorts.
//     Rejected alternatives: translating in from_workload (per-packet NAT
//     and reverse NAT in tc, a second kube-proxy with its own connection
//     tracking, for the same result), and judging after kube-proxy's DNAT
//     at a later hook (there is no later tc ingress hook on the sender's
//     side, so an L7 redirect could no longer be made there, and the
//     sender's node would have to judge flows leaving through the uplink).
//     Fail closed: a frontend without ready backends refuses the connect
//     (EPERM) instead of passing the ClusterIP on. When the sender's
//     egress is enforced, from_workload drops with DropServiceFrontend
//     every new flow that still names a Service when it leaves the Pod,
//     since no rule can judge where the node's NAT will send it; without
//     enforcement such flows are left to kube-proxy. "Names a Service" is
//     decided without trusting the table to be complete:
//   - any address of the Service ranges (SyncServiceRanges: every
//     ServiceCIDR the API server serves, and every ClusterIP as a host
//     prefix), whatever the port and protocol: an address no Service
//     owns, a Service deleted (or not yet learnt) while kube-proxy still
//     forwards it, a port of a ClusterIP no frontend has, ICMP;
//   - an exact frontend row: ClusterIPs, externalIPs and load-balancer
//     IPs (not in Proxy mode), which the socket programs translate, so
//     what reaches from_workload came from outside the Pod cgroup;
//   - SCTP frontends: marker rows on every frontend address, never
//     translated (socket hooks see TCP and UDP only), so an SCTP Service
//     is unusable under egress enforcement rather than judged as its
//     address;
//   - NodePorts: marker rows keyed by port alone (model.NodePortFrontend);
//     a new flow to such a port on an address the ipcache gives the host
//     or remote-node identity is dropped, since kube-proxy would DNAT it
//     to a backend that an egress rule allowing the node never judged.
//     NodePorts are not translated (it would need every node's addresses
//     in the table); Pods reach those Services by ClusterIP. A NodePort on
//     an address the ipcache does not know as a node (an external load
//     balancer in front of the nodes) is an external destination and is
//     judged as one.
//     Both families are translated: connect6, sendmsg6, recvmsg6 and
//     getpeername6 use the same table (an IPv4 frontend reached through a
//     dual-stack IPv6 socket arrives v4-mapped, which is how the table keys
//     IPv4, and gets its IPv4 backend v4-mapped). Backends are
//     picked at random per connect; session affinity and topology hints
//     are not implemented.
package datapath
