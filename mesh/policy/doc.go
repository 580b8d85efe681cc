// Package policy compiles network policy — cilium.io/v2
// CiliumNetworkPolicy and CiliumClusterwideNetworkPolicy, and Kubernetes
// NetworkPolicy — into the two things that enforce it: the datapath's
// policy rows (model.Policy, the plain rows of datapath/model, so this
// package never links the eBPF loader) and the node proxy's L7 policy
// (ir.Policy, which xds/translator turns into Envoy RBAC for HTTP and gRPC
// and the project's Kafka filter for Kafka).
//
// # Data in and out
//
// The agent calls Compiler.Compile with the policy objects, Pods,
// Namespaces and Secrets of a snapshot and the node's own addresses. The
// compiler resolves identities and the ipcache (mesh/identity), applies
// every accepted policy to the identities of the endpoints on this node,
// and returns a Result: the identity state, the local endpoints, the
// datapath rows with their enforcement flags, the L7 policy (nil when no
// rule needs the proxy), a status per policy object, and the rule behind
// every row cookie. Compile is deterministic: equal input gives equal
// output.
//
// # Status
//
// A PolicyStatus says which version is in force (State) and why not
// more (Reason, Message, Error): Enforced; EnforcedPrevious (the current
// version was rejected, the last accepted one stays); Pending (accepted,
// but some rules wait — authentication today, and, set by the agent, the
// proxies' acknowledgement of new listeners or a datapath that refused
// the rows); Rejected (no version in force; the endpoints it selects are
// held closed, see below; the agent also reports a proxied policy
// Rejected while a proxy rejects the L7 configuration). A status never
// says Enforced for a rule the datapath cannot enforce yet: without an
// authentication provider (Options.Authentication) a policy with
// authentication.mode required is Pending (WaitingForAuthentication) and
// its auth-required rows keep those flows blocked (the datapath drops a
// flow that needs an auth entry nobody writes). With one, the policy is
// marked Authenticated and the agent, which knows whether its identity
// source is ready, reports it Pending for as long as it is not. Proxied marks policies whose traffic the
// datapath redirects to the proxy.
//
// # Invariants
//
//   - A policy is applied whole or not at all. A policy that fails to
//     parse, that conflicts with policies before it, or that would expand
//     to more than MaxRowsPerPolicy rows is rejected with an error naming
//     the policy, the rule and the field; if an earlier version of it was
//     accepted, that version stays enforced (EnforcedPrevious) so a bad
//     update never opens an endpoint up.
//   - Fail closed: a rejected policy never leaves the endpoints it selects
//     with less enforcement than its accepted version would have had. Its
//     scope — the endpoints each rule selects and the directions it has an
//     allow or deny section for — is read even when the policy does not
//     parse (failclosed.go): an endpointSelector that does not parse
//     stands for every endpoint the policy could select (its namespace;
//     every endpoint for a cluster-wide policy), an unreadable rule for
//     both directions. In a covered direction the endpoints go into
//     default deny (whatever enableDefaultDeny says) and the policy's own
//     rules, valid siblings included, are not applied: only what other
//     policies allow passes. Where the rejected policy has deny rules,
//     authentication or L7 rules, those could have narrowed what other
//     policies allow (a deny wins over every allow; authentication spreads
//     to more specific allows; an L7 rule puts the port behind the proxy
//     even for peers an L4 rule allows), so that direction is blocked
//     entirely: a deny row for every peer, port and protocol (cookie
//     "<policy>/fail-closed/<direction>"). This is the least that is never
//     weaker than the accepted policy. With an enforced previous version,
//     what that version covers (its endpoints and directions) keeps its
//     rows — the last good configuration keeps serving — and only what
//     the rejected version adds is held closed. Host policies
//     (nodeSelector) select no endpoint here. Status: Reason FailClosed,
//     Message per direction, Selected counts the endpoints held.
//     Other policies are otherwise unaffected.
//   - Policies are applied in a fixed order: cluster-wide policies by
//     name, namespaced ones by namespace and name, NetworkPolicies by
//     namespace and name. A conflict rejects the later policy.
//   - Rows only ever exist for identities of local endpoints; rows are
//     sorted; at most one row per key; every Result passes
//     model.Policy.Validate and its L7 part ir.Config.Validate.
//
// # Cilium semantics (FEATURES.md §1.7–1.10, §1.13)
//
//   - POL-03 default deny: an endpoint selected by a rule with an ingress
//     (egress) section — allow or deny, even an empty one, as in
//     "ingress: [{}]" — is default-deny in that direction. With
//     enableDefaultDeny false the rule's redirects and denies still apply
//     and everything else stays allowed (an allow-all wildcard row).
//     NetworkPolicy follows policyTypes (default Ingress, plus Egress when
//     egress rules exist).
//   - Selectors (ID-01): keys carry a label source ("k8s:app",
//     "reserved:host"; none means any source). In a CiliumNetworkPolicy
//     the endpointSelector, and every peer selector that names neither the
//     namespace label nor a reserved label, only see the policy's
//     namespace; in a cluster-wide policy the empty peer selector means
//     every workload. A rule naming no peer applies to every peer when it
//     names ports (L4-only) and to none otherwise.
//   - Entities: all (the wildcard), world (and world-ipv4/-ipv6: world
//     plus every CIDR identity), cluster (every workload of the cluster
//     plus host, remote-node, kube-apiserver, ingress, health, init,
//     unmanaged), host, remote-node, kube-apiserver, ingress, health,
//     init, unmanaged, none. Addresses of the reserved identities: the
//     node's own (host), other Nodes' InternalIP/ExternalIP
//     (remote-node), every Node's IngressIPAnnotation (ingress: where the
//     node proxy's Gateway upstream connections come from).
//   - CIDR peers select the CIDR identities inside the prefix and outside
//     its exceptions, never cluster workloads; a /0 prefix also selects
//     world.
//   - Ports: a number, "0" for every port, a range (endPort, expanded
//     into exact rows), or a named container port (resolved against the
//     selected endpoints for ingress, the peers for egress). Protocol ANY
//     with a port stands for TCP, UDP and SCTP. ICMP types by number or
//     name, except type 0 (see parseICMP).
//   - POL-12 L7: rules of the same kind on one port of one endpoint merge
//     (from any number of policies); different kinds on one port are a
//     conflict and reject the later policy; a request is allowed if any
//     rule matches; an empty rule ("http: [{}]") allows all; an L4-only
//     rule for the same port and peer nullifies the L7 restriction for
//     that peer, and so does an L3-only rule (no toPorts) for every port
//     of its peer — Cilium synthesises wildcard L7 rules for L3-only and
//     L4-only rules, so a broader allow pokes a hole through an L7 rule.
//     The traffic stays redirected (visible to the proxy) either way.
//     Every allowed peer of a port that has L7 rules is redirected.
//   - HTTP-02: method, path and host are RE2 expressions matching the
//     whole value; path is matched against the request's path with its
//     query, as Cilium does with Envoy's :path — the path as the proxy's
//     connection manager normalised it before RBAC runs (dot segments, also
//     %2e, removed; unreserved escapes decoded; runs of "/" merged; a path
//     holding %2F or %5C is answered 307 to its decoded form before any
//     rule sees it), the same path HTTPRoutes match and backends receive.
//     So "/public/.*" does not admit /public/%2e%2e/admin: it is judged as
//     /admin. headers "Name" requires
//     presence, "Name: value" the exact value; headerMatches without a
//     mismatch action require the value, or presence when there is none
//     (from a Secret holding exactly one entry when secret is set; a
//     missing Secret without a fallback value makes the rule never match,
//     reported as a warning, whatever the mismatch action). A headerMatch
//     with a mismatch action (LOG, ADD, DELETE, REPLACE) never restricts
//     its rule: it becomes an ir.HeaderAction that the proxy's header
//     match filter takes on every request the rule matches (LOG records
//     the header as missing in the flow, ADD adds it with the value,
//     DELETE removes a present header with another value, REPLACE sets
//     the value), as Cilium's proxy does; a value from a Secret is marked
//     so logs redact it. An action may not name Host, a pseudo-header or
//     a header that frames the message or the connection
//     (headermatchv1.ForbiddenHeader): the policy is rejected. GRPC-05:
//     gRPC rules are HTTP path rules ("/pkg.Service/Method").
//   - KAF-02: role produce expands to Produce, Metadata, ApiVersions;
//     consume to Fetch, ListOffsets, Metadata, OffsetCommit, OffsetFetch,
//     FindCoordinator, JoinGroup, Heartbeat, LeaveGroup, SyncGroup,
//     ApiVersions; apiKey takes Cilium's names and the protocol's own,
//     case-insensitively; role and apiKey exclude each other; apiVersion
//     is a non-negative integer; topics follow Kafka's character rules.
//   - MA-06: authentication.mode required makes the rule's rows
//     auth-required; a more specific row inherits the requirement from a
//     less specific allow row covering it (the datapath stops at the most
//     specific row).
//   - Deny rules win over every allow, in the same table and in the
//     datapath's lookup chain.
//
// # The ingress endpoint (AT-ING-06)
//
// Cilium models every node's Gateway and Ingress proxy as an endpoint
// with the reserved identity ingress (8), whose only label is
// reserved:ingress, and enforces its policy in that proxy: its ingress
// policy against the client (world → ingress), its egress policy against
// the backend (ingress → backend). With Options.IngressEndpoint the
// compiler adds a virtual local endpoint with that identity and applies
// every policy to it like to a Pod, selectors included: "ingress" without
// a source and "reserved:ingress" both match the label; an empty
// endpointSelector in a cluster-wide policy selects it, and so does a
// NotIn or DoesNotExist on a label it lacks (io.kubernetes.pod.namespace
// NotIn [kube-system]); a namespaced policy never does, since its
// endpointSelector is confined to its namespace and the endpoint has no
// namespace label. Its contributions never become datapath rows or
// policy listeners: Compile moves them into Result.Ingress
// (ir.IngressPolicy), rules of address sets per protocol and port, which
// the Gateway and Ingress listeners enforce (see xds/translator). A
// direction no policy selects stays allow-all; deny rules are kept beside
// the allows and win. The endpoint counts in PolicyStatus.Selected, a
// policy that applies to it is marked PolicyStatus.Ingress (its
// enforcement is the proxy's: the agent reports it Pending until the
// proxies acknowledged the listeners carrying it), and
// fail closed covers it like any endpoint: a rejected policy selecting it
// puts the direction into default deny, or denies every flow when it is
// strict (ir.IngressDirection.DenyAll). What the two check points cannot
// enforce denies the whole direction (DenyAll, Reason
// ReasonIngressFailClosed in the policy's status) instead of passing: L7
// rules (HTTP, Kafka) in either direction — the Gateway listeners do not
// evaluate Cilium's L7 rules — and authentication.mode required. ICMP
// rules do not reach the proxy and are dropped. Port numbers are the
// listener's port for ingress and the backend's port for egress.
//
// # Decisions where Cilium's behaviour could not carry over
//
//   - Rejected with an error naming the field (nodemesh has no DNS proxy,
//     no TLS interception, no CiliumEnvoyConfig listeners, no host
//     firewall): toFQDNs, DNS rules other than the one below, generic
//     l7proto rules,
//     terminatingTLS/originatingTLS/serverNames/listener, nodeSelector,
//     fromNodes/toNodes, fromGroups/toGroups, toServices, CIDR group
//     references, fromRequires/toRequires, authentication mode
//     test-always-fail. Each holds its endpoints closed (see Invariants).
//   - An egress DNS rule list in which every entry is exactly
//     matchPattern "*" (Cilium: every name allowed, the usual kube-dns
//     rule of an egress lockdown) compiles to the L4 allow of its ports
//     and protocols toward its peers, the rows the rule gives without
//     rules: it admits every well-formed query, so refusing it would
//     close DNS itself and make such manifests unusable. What is lost is
//     that Cilium's DNS proxy drops payloads that are not DNS, and the
//     learning of names for toFQDNs (still rejected). The status says so
//     (Enforced, Reason ReasonDNSEnforcedAtL4, naming the fields). Any
//     other list — matchName, another pattern, an empty entry, "*" mixed
//     with anything — on ingress (Cilium's DNS rules are egress-only),
//     or without an explicit port is rejected. On the ingress endpoint
//     the rule is the same L4 allow of its egress, not an L7 rule that
//     closes the direction. An empty list (dns: []) is no rule at all, as
//     before.
//   - headerMatches mismatch actions need a filter that edits headers,
//     which Envoy's RBAC filter cannot do: they travel as ir.HeaderAction
//     to the project's header match filter (see xds/translator), which
//     only the builtin proxy runs.
//   - L7 rules need TCP and an explicit port; on UDP or SCTP, or on port
//     0, the policy is rejected. With protocol ANY the L7 part applies to
//     TCP and the UDP/SCTP rows of that port are not created.
//   - The proxy tells peers apart by address: an L7 policy's peers are the
//     ipcache prefixes of its peer identities (ir.PeerSet), with the
//     prefixes of other identities nested inside carved out, and world as
//     every address no known prefix covers. With the datapath
//     (Listeners.ConntrackMap) ingress HTTP policies also name the peer
//     identities (PeerSet.Identities): the policy listener learns each
//     connection's identity from the datapath's connection tracking, and
//     a routing listener's connection from the node's address (a
//     Gateway's, as ingress) is judged by that identity only. Such
//     peers match even without an address; their header match mismatch
//     actions are not applied (that filter matches sources by address),
//     and Kafka and egress rules still need addresses. Otherwise peers
//     without any address (remote-node and other reserved identities
//     without ipcache rows) cannot match at L7.
//   - L7 policy names: "<cnp|ccnp|knp>/<namespace>/<name>[/specs/<k>]/
//     <direction>/<rule>/port/<port>/<http|kafka>/<index>", and
//     ".../port/<port>" for the allow-all policy of an L4-only or L3-only
//     rule. Row cookies are FNV-32a hashes of the rule name (Result.Cookies
//     maps them back).
//   - A rule whose expansion (ports × peers) exceeds MaxRowsPerPolicy
//     rejects its policy instead of filling the datapath table.
//   - Identities are local to the agent (see mesh/identity).
package policy
