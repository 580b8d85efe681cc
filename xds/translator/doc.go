// Package translator turns the IR (mesh/ir) into Envoy v3 resources: the
// documented subset that both the builtin proxy (proxylib/) and stock Envoy
// run.
//
// # Data in and out
//
// The node agent calls Translate with a Config after every change of
// intent, from any goroutine. Translate validates the Config (an invalid one
// is rejected whole), then builds Resources: typed slices of Listeners,
// RouteConfigurations, Clusters, ClusterLoadAssignments and Secrets, each
// sorted by name, plus Warnings. The result goes to xds/server, which
// versions and serves it over ADS. Translate is a pure function: no I/O, no
// clock, no state between calls; equal Configs give proto-equal Resources.
//
// The agent normally keeps a Translator (New) instead: same result, but the
// Envoy objects of IR objects whose content hash (mesh/ir Hashes) is the
// same as last time's (clusters, listeners, virtual hosts, routes, route
// configurations, secrets) are returned again as the very same objects,
// and every resource carries a version composed from those hashes
// (Resources.Version, version.go). A one-route change builds and validates
// one Route, plus new wrappers for its VirtualHost and RouteConfiguration
// that hold the other routes and virtual hosts unchanged; xds/server takes
// the versions as they are and neither marshals nor validates the
// resources again. The IR hash sees every IR field (a test mutates each
// one); memo_test.go checks the memoized output against a fresh
// translation, and validates it whole, over every golden input and over
// random edits, and version_test.go that a version changes whenever the
// content does.
//
// Verbatim resources (Config.Resources, verbatim.go): Envoy resources
// users wrote in a CiliumEnvoyConfig, decoded, renamed and checked by
// mesh/envoyconfig, which the IR carries as serialized protobuf. They are
// decoded and validated (ValidateAll) again here, like every emitted
// resource, and added to the typed slices as they are; they carry no
// translator version, so xds/server versions them by their serialized
// form. Their names never collide with the translator's own (the IR
// checks it), and OriginOf reads them back to their config ("cec/",
// "ccec/") or, for a Service's proxy load balancing ("lb-l7/"), to the
// Service.
//
// # Invariants
//
//   - Every resource and every typed_config inside one passes
//     go-control-plane's ValidateAll before it is emitted; a failure is a
//     translator bug and is returned as an error wrapping ErrInvalidOutput
//     (the caller keeps serving the last good configuration). A
//     RouteConfiguration is validated piecewise — each route, then each
//     virtual host's and the RouteConfiguration's own fields — which is
//     exactly what ValidateAll on the whole checks, since the lists carry
//     no rules of their own; reused pieces are not validated again. The
//     routes a translation builds are validated together once it has
//     built everything, on up to GOMAXPROCS goroutines when there are
//     hundreds (see "Cold translation"); the error names the first
//     failing route in build order, as checking one by one would. A
//     forwarding action several routes share is validated once, with
//     the first of them; each other route's own part (its match) is
//     validated after checking that all else is that route's very
//     messages (validShared, action.go), which proves exactly what
//     ValidateAll on it would.
//   - A route is first checked by validRoute (fastvalid.go), which
//     applies the generated code's rules for the messages the
//     translator builds routes from — Route, RouteMatch, RouteAction,
//     WeightedCluster and its entries, HeaderMatcher, StringMatcher,
//     HeaderValueOption, HeaderValue — by hand, with the string patterns
//     (no NUL/CR/LF; path_separated_prefix's) as byte loops, and hands
//     every other message (retry policy, regex, query parameter
//     matcher…) to its own ValidateAll. It only ever proves a route
//     valid: a rule that fails, a oneof case it does not handle or a
//     typed-nil value makes the caller run ValidateAll, whose error is
//     the one reported. The generated code ran a regular expression per
//     string field, empty ones included, and sorted the (empty)
//     typed_per_filter_config keys of every Route and ClusterWeight:
//     at 5 000 HTTPRoutes of the benchmark's shape that was a fifth of
//     the CPU profile of a cold snapshot (the collector's background
//     marking aside) and 45 000 of its 189 000 allocations; validRoute
//     takes about a twentieth of that time and allocates nothing.
//     Equivalence is tested, not argued:
//     fastvalid_test.go pins the field set of each hand-checked message
//     (a go-control-plane upgrade that adds a field fails until the
//     field is handled), mutates every field of every distinct route of
//     the golden cases and the benchmark input (strings with NUL, CR,
//     LF, invalid UTF-8, '?', '#', trailing '/', empty, 16 KiB ± 1;
//     enums in and out of range; empty, added and removed messages;
//     every oneof case) and requires validRoute never to accept what
//     ValidateAll rejects, and to accept everything valid within that
//     subset; FuzzFastValid requires exact agreement on arbitrary
//     strings.
//   - Every resource name and every reference between resources comes from
//     naming.go. Names are the IR's hierarchical names: a Listener is named
//     after its IR listener, a RouteConfiguration after its IR route table,
//     a Cluster after its IR cluster (which is also its EDS service name
//     and its ClusterLoadAssignment's cluster_name), a Secret after its IR
//     secret. Bytes a proto string cannot carry are %-escaped.
//   - Only upstream Envoy extensions are used: the HTTP connection manager,
//     the router, the TLS inspector, the TLS transport socket and the
//     upstream HTTP protocol options (extensions_test.go pins the set);
//     L7 policy adds its own, pinned by policy_golden_test.go (see below).
//   - Dynamic references (RDS, EDS, SDS) resolve over the same ADS stream
//     with resource_api_version V3.
//   - Output order never depends on map iteration.
//
// # Cold translation
//
// The first translation (and one after the input changed wholesale)
// builds everything: at 5 000 HTTPRoutes of the benchmark's shape
// (conformance/perf BenchmarkSnapshot) that is about 22 500 distinct
// routes, 2 500 clusters and two RouteConfigurations holding all of them, from
// Gateway API objects to a servable xDS snapshot. Which of its stages run
// on more than one goroutine was decided from CPU and allocation profiles
// of that benchmark on the two-vCPU machine the targets are set for:
//
//   - Stages that allocate heavily stay on the calling goroutine. Three
//     such stages used to run ahead on all cores: compiling Gateway API
//     routes (gateway), hashing and checking IR routes and virtual hosts
//     (mesh/ir), and building Envoy routes while the clusters were built
//     (here). In a CPU and an allocation profile at 5 000 routes they
//     held close to 60 % of the samples and of the bytes allocated. The
//     garbage collector takes a quarter of GOMAXPROCS for marking, plus
//     assists from goroutines that allocate, so with two cores much of the
//     second one is the collector's while those stages run: alternated
//     on an idle machine, they gave no wall-time gain and cost 16–23 %
//     more CPU at 5 000 routes (work lists, a second index by hash,
//     per-virtual-host name sets, and each stage's walk done twice). They
//     were removed; the serial path was made cheaper instead: fewer
//     allocations (endpoint messages in one block, the messages every
//     cluster holds alike made once, no per-route cluster map in the
//     gateway's Translator), and a list of routes that several virtual
//     hosts hold (a Gateway's HTTP and HTTPS listeners) is validated in
//     the IR and assembled here once per translation. A second try
//     (route compilation sharded over the cores with a worker's own
//     caches, and IR validation beside the Envoy build sharing prepared
//     hashes) was alternated with the serial path three times on a
//     machine whose idle time went to low-priority compiles: 25.3–33.2 ms
//     against 25.7–27.9 ms at 1 000 routes, 134–139 against 144–153 ms at
//     5 000, at 7–24 % more CPU; and the builder met IR before it was
//     validated (a nil cluster panicked instead of being refused). It was
//     not kept.
//   - The matches of one Gateway API rule become IR routes holding the
//     rule's very objects (backends, header modifiers, CORS, retry,
//     mirrors, rewrite), and their forwarding actions are equal. A
//     translation builds such an action, with its weighted clusters and
//     header edits, once and the routes share the messages (action.go):
//     at the benchmark's shape a third of the actions (7 500 of 22 500
//     at 5 000 HTTPRoutes). Sharing is decided by the identity of those
//     IR objects, which never change once built, and only within one
//     translation; content hashes still decide versions and reuse
//     across translations. Identity was chosen over an action hash: it
//     costs a map lookup (none when the action remembered last is the
//     one: a rule's matches are often next to each other in precedence
//     order), where hashing every action's content again would cost
//     close to what building it does. A route whose path
//     rewrite refers to its own match shares only with routes of the
//     same match path; an action that cannot be expressed is never
//     shared (each route warns on its own). The validation is shared
//     too: the first route holding an action passes ValidateAll whole,
//     and each route sharing it is checked as ValidateAll would check
//     it given that — its match, once every other field is shown to be
//     the first route's very value (validShared). Validating a copy of
//     such a route with the action left out would prove the same but
//     still pay, per route, what dominated the check: the generated
//     code sorts the keys of typed_per_filter_config on every Route and
//     every ClusterWeight, allocating although the maps are empty
//     (about 67 000 of 489 000 allocations of a cold snapshot at 5 000
//     HTTPRoutes, a third of them for shared actions).
//   - Messages that hold nothing but a few values are made once per
//     translation per distinct value and shared by every route holding
//     them, whatever rule the route comes from: weighted_clusters entries
//     without header edits of their own (by cluster name and weight),
//     route timeouts, and header matchers (by name, match type and
//     value). At the benchmark's shape that is 5 000 entries instead of
//     30 000, two header matchers instead of 22 500 and one timeout: 13 %
//     fewer bytes per cold snapshot and 12 of the 72 MiB a snapshot at
//     5 000 HTTPRoutes held (the bytes count more than the allocations:
//     on the target machine a fresh page costs a fault, and what a
//     snapshot holds is what every collection marks). Sharing by content
//     here, unlike actions, costs one map lookup for a message far
//     cheaper to compare than an action. Each route still passes
//     ValidateAll whole (a shared matcher or entry is checked with every
//     route holding it), so what is validated, and the first failure
//     reported, are unchanged.
//   - A cold translation (no previous one: every route is built) takes
//     the messages every route and action has (routeParts, forwardParts,
//     weightedParts, headerBlock, routeMemo) from 64 KiB chunks
//     (chunk.go): a few hundred allocations instead of 90 000 at 5 000
//     HTTPRoutes. A later
//     translation builds only what changed, among values that live on,
//     and allocates those one by one so that a chunk never holds memory
//     for an edit's few values; a chunk of a cold snapshot stays held
//     while any of its routes is served, at most the memory that
//     snapshot's messages took.
//   - Whether a route list names the invalid-backend cluster (part of
//     each virtual host's version) is found once per distinct list, like
//     the list's routes, not once per virtual host holding it.
//   - Validation of the routes a translation built (checkRoutes) stays
//     on up to GOMAXPROCS goroutines from parallelCheckMin routes: it
//     reads only the routes, allocates nothing (validRoute), runs after every
//     route is built (when the collector has little left to do), and is
//     the largest single piece of CPU work left that needs no
//     coordination beyond reporting the first failure in build order.
//
// # Decisions where the IR and Gateway API leave room
//
//   - HttpConnectionManager: codec AUTO, use_remote_address, no trusted XFF
//     hops, path normalisation (below), router last, WebSocket
//     upgrades enabled (upgrade_configs websocket; CONNECT and other
//     upgrade types are refused, as Envoy does by default). Envoy's own
//     defaults stay for everything else (server header "envoy", request
//     IDs generated, no request_timeout), except HTTP/2 and the downstream
//     limits below.
//   - Path normalisation, on every connection manager (Gateway and policy
//     listeners): normalize_path true, merge_slashes true,
//     path_with_escaped_slashes_action UNESCAPE_AND_REDIRECT — Envoy
//     Gateway's defaults. Envoy itself defaults to none of them, and Istio
//     (meshConfig pathNormalization DEFAULT, i.e. BASE) sets only
//     normalize_path, with KEEP_UNCHANGED. Routes and L7 policy match the
//     path as the proxy sees it, and the backend decodes it again, so
//     anything the backend would read differently is a way around a rule:
//     "/public/%2e%2e/admin" or "/public/./../admin" must not match
//     "/public/.*" (normalize_path), "//admin" must not escape a "/admin"
//     rule (merge_slashes), and "/public/..%2fadmin" — which a backend that
//     decodes %2F reads as "/admin" — must not pass as a "/public/" path.
//     For the last one KEEP_UNCHANGED (Istio's default) leaves the hole
//     open; UNESCAPE_AND_FORWARD would close it but silently changes what
//     a backend that treats %2F as data receives; REJECT_REQUEST breaks such
//     clients outright. UNESCAPE_AND_REDIRECT closes the hole and lets a
//     client see and follow the unambiguous path (gRPC requests, which
//     cannot follow it, get 400). An application that needs %2F kept needs
//     a way to override this per listener, which the IR does not offer yet.
//   - HTTP/2 (http2_protocol_options, on every connection manager):
//     max_concurrent_streams 100, initial_stream_window_size 64 KiB,
//     initial_connection_window_size 1 MiB — the values of Envoy's
//     edge-proxy best practices, which Envoy Gateway emits too. Envoy's
//     defaults (2^31-1 streams, 256 MiB windows) let one client open
//     streams and buffer without bound; 100 streams is also what most
//     HTTP/2 servers advertise (nginx 128, Go's 250), so browsers and gRPC
//     clients never notice it. override_stream_error_on_invalid_http_message
//     is true: a malformed request resets its stream (RFC 9113 §8.1.1)
//     rather than the whole connection, Envoy's default.
//   - Downstream limits and timeouts (conn_limits.go) are written out on
//     every listener and connection manager, Gateway and policy alike, so
//     what a client can make the proxy hold is stated in the configuration
//     and is the same on stock Envoy and the builtin proxy:
//     per_connection_buffer_limit_bytes 32 KiB, Envoy's edge best-practice
//     value, which Envoy Gateway sets on its listeners by default (Envoy's
//     own 1 MiB default assumes trusted peers);
//     max_request_headers_kb 60 and common_http_protocol_options
//     .max_headers_count 100, Envoy's defaults (431 past either): large
//     enough for real cookie and token headers, small enough to bound a
//     head; common_http_protocol_options.idle_timeout 1 h and
//     stream_idle_timeout 5 min, Envoy's defaults and its edge
//     recommendation (the stream idle timeout also ends a request on a
//     route without a timeout once nothing moved for 5 minutes, so a
//     long-lived stream must carry keepalives); request_headers_timeout
//     10 s. Envoy leaves the last off, Envoy Gateway does not set it (no
//     API field yet, envoyproxy/gateway#5633) and Istio discussed but did
//     not adopt setting it on gateways (istio/istio#44329); without it a
//     client trickling a head byte by byte holds a connection and its
//     buffer for as long as each byte comes within the stream idle
//     timeout. A head is a few hundred bytes to a few KiB sent at once, so
//     10 s leaves a slow mobile link ample room while cutting such a client
//     off (408). request_timeout stays off: uploads and streams may
//     legitimately last long, and route timeouts bound the response.
//   - RouteConfiguration: ignore_port_in_host_matching, so the Host port
//     takes no part in virtual host selection but still reaches the
//     backend (Gateway API's hostname tests expect "host:port" upstream;
//     strip_any_host_port would rewrite the header).
//   - Route timeout: always written. The IR's 0 means "no timeout" and is
//     emitted as "0s", which disables Envoy's 15 s default that would cut
//     long-lived gRPC streams. A route's BackendTimeout becomes
//     retry_policy.per_try_timeout: it bounds each upstream attempt until
//     its response starts, also when the route timeout is 0; omitted when
//     it is 0 or not below a non-zero route timeout (Envoy ignores such a
//     per-try timeout). Without an IR retry policy it is the policy's only
//     field, so there is one attempt.
//   - Retries and mirrors (retry.go): an IR retry policy adds retry_on
//     connect-failure,reset (and retriable-status-codes with its codes),
//     num_retries and retry_back_off.base_interval; mirrors become
//     request_mirror_policies with runtime_fraction for a share below
//     one; retry.go gives the exact mapping.
//   - Cluster connect timeout: 0 in the IR becomes Envoy's default, 5 s,
//     written out. Every cluster carries HttpProtocolOptions: explicit
//     HTTP/1.1 or HTTP/2 (h2c), or the downstream protocol for the policy
//     ORIGINAL_DST cluster.
//   - Upstream limits, written out on every cluster (the service clusters,
//     the policy ORIGINAL_DST cluster and the access-log cluster), so both
//     proxies enforce the same numbers without relying on defaults:
//     circuit_breakers with one DEFAULT-priority threshold of
//     max_connections, max_pending_requests and max_requests 1024 each —
//     Envoy's own defaults, so stock Envoy behaves exactly as it did
//     without them (Envoy Gateway leaves them there unless a policy sets
//     them); max_retries 1024, Envoy Gateway's default (Envoy's is 3),
//     since only routes that ask for retries retry at all. Note that the ORIGINAL_DST cluster
//     carries all policy-proxied HTTP of a node, so these limits bound that
//     node-wide, as they always did on stock Envoy.
//     HttpProtocolOptions.common_http_protocol_options.idle_timeout 1 h:
//     Envoy's default, which Istio keeps when a DestinationRule sets no
//     idleTimeout; a shorter timeout would mainly trade connection
//     reuse for fewer reuses of connections the server already closed,
//     which both proxies retry anyway. per_connection_buffer_limit_bytes
//     32 KiB: Envoy Gateway's default rather than Envoy's 1 MiB, because a
//     node proxy holds connections of every workload on the node and the
//     builtin proxy's streaming relays never hold more than a 16 KiB read
//     buffer of a connection's body anyway.
//   - Endpoints: only ready ones are emitted (HEALTHY), sorted and
//     de-duplicated; not-ready endpoints are left out rather than marked
//     unhealthy because Envoy's panic threshold would route to them.
//   - Secrets: only those a TLS chain refers to are emitted.
//   - Weights: entries of weight 0 are left out; unresolved backends become
//     one entry on a never-defined cluster with
//     cluster_not_found_response_code 500; nothing resolvable → direct 500.
//   - Host header edits: Envoy refuses Host in headers_to_add, so a request
//     Set/Add of Host becomes host_rewrite_literal (a URL rewrite hostname
//     wins over it); removing Host, or editing Host in responses or per
//     backend, cannot be expressed (see below).
//   - Header values are Envoy format strings: a literal '%' is written "%%".
//   - Request header edits are only emitted on forwarding routes; response
//     edits on every route (Envoy applies them to redirects and direct
//     responses too).
//   - Domains and SNI names are lower-cased; IPv6 literals are bracketed as
//     they appear in a Host header. A domain or server name that an earlier
//     virtual host or chain already claimed (case-insensitively) is dropped
//     from the later one, since Envoy rejects duplicates.
//   - Redirect ports: see redirect.go for exactly how the IR's port rules
//     map onto Envoy's RedirectAction.
//   - TCP chains (tcp.go): a filter chain with tcp_proxy to the chain's
//     cluster or weighted_clusters, matched by SNI when it names servers
//     (the listener then runs the TLS inspector; no transport socket, so
//     TLS passes through); unresolved backends point at the
//     invalid-backend cluster and their connections close. TCP clusters
//     carry no HttpProtocolOptions.
//   - PlainAndTLS listeners (Ingress host-network mode: HTTP and HTTPS
//     on one port): the plaintext chain's filter_chain_match names
//     transport_protocol raw_buffer and every other chain tls, and the
//     listener always runs the TLS inspector, so a ClientHello never
//     reaches the plaintext connection manager; TLS for a server name no
//     chain takes finds no chain and is closed.
//   - UDP listeners (udp.go): a UDP socket address, no filter chains, the
//     UDP proxy (idle_timeout 60 s, Envoy's default) routing through a
//     matcher's on_no_match Route{cluster}; endpoint weights become
//     load_balancing_weight.
//   - Original source (listener.go): a listener with
//     ir.Listener.OriginalSourceMark gets the original_src listener filter
//     with that mark (after the TLS inspector, if any), as the policy
//     listeners that keep the client's address do; bind_port stays unset
//     (the kernel picks the source port). Its hash covers the mark, so
//     turning it on or off is a new listener version.
//   - CORS (cors.go): a chain with ir.HTTPChain.CORS gets the CORS filter
//     (envoy.filters.http.cors, no settings) before the router; a route's
//     policy becomes a CorsPolicy in its typed_per_filter_config under that
//     name. The filter sits in the connection manager only where the IR
//     asks for it, because the listener is versioned apart from its routes.
//     forward_not_matching_preflights is false, so a preflight from an
//     origin that is not allowed is answered by the proxy without
//     allow-origin (Gateway API's behaviour) rather than forwarded;
//     filter_enabled stays unset, so every policy is enforced.
//
// # L7 policy
//
// Config.Policy (policy*.go) becomes one transparent listener per
// direction and protocol ("policy/<direction>/<http|kafka>", with the
// original_dst listener filter), the HTTP listeners' route table (one
// route to the ORIGINAL_DST cluster "policy/original-dst", whose upstream
// sockets carry the proxy mark), the access-log cluster "nodemesh-als"
// (the agent's Unix socket, HTTP/2), and the filter configurations as ECDS
// TypedExtensionConfigs in Resources.ExtensionConfigs: the RBAC filter of
// each HTTP direction ("policy/<direction>/http/rbac") and the Kafka
// policy of each Kafka direction ("policy/<direction>/kafka"). A filter
// configured through ECDS is named after its TypedExtensionConfig, as
// Envoy requires, so a rule change only changes extension configs and
// never drains a listener (adding or removing a header match filter does
// change the listener). Everything is upstream Envoy except the project's
// Kafka filter (nodemesh.filters.network.kafka.v1.KafkaPolicy) and header
// match filter (below), which only the builtin proxy implements. RBAC denials get Cilium's
// "Access denied" body through a local-reply mapper on status 403 (Envoy
// does not accept the RBAC response flag in a mapper's filter). The Kafka
// filter's prefixes cannot carry a peer term's exceptions; such a term is
// used whole and reported as a warning.
//
// Cilium's headerMatches with a mismatch action (ir.HeaderAction) act on a
// request instead of denying it — LOG records a mismatch, ADD, DELETE and
// REPLACE edit the header — and nothing in Envoy's API can express that:
// the RBAC filter only allows or denies, route-level header edits are
// unconditional and cannot see the connection's peer, and a matcher tree
// around a header mutation filter could not log, compare in constant time
// or see earlier edits the way Cilium's proxy does. They therefore go to
// the project's header match filter
// (nodemesh.filters.http.header_match.v1.HeaderMatchPolicy, ECDS
// "policy/<direction>/http/header-match"), emitted only for a direction
// whose policies have header actions and placed right after that
// direction's RBAC filter: it runs on allowed requests only, and never
// denies. Its rules are scoped like the RBAC policies (destination and
// source address terms, port, method/path/authority, required headers),
// one per IR HTTP policy with actions, in name order; every rule that
// applies acts. On the egress listener the ingress filter follows the
// destination RBAC filter, so the server side's actions see the client
// side's edits, as with Cilium's two proxies. Only the builtin proxy
// implements the filter: stock Envoy rejects a listener that names its
// type, and the translator says so in a warning on that policy listener
// (the agent then drops the flows it would redirect; see internal/agent).
//
// With the datapath (ir.PolicyListener.ConntrackMap), every policy
// listener carries nodemesh's datapath identity listener filter
// (nodemesh.filters.listener.datapath_identity.v1.DatapathIdentity, after
// original_dst), and ingress HTTP RBAC principals match the peers'
// identities too (ir.PeerSet.Identities): an or_ids of the address terms
// and one filter_state principal per identity, key
// "nodemesh.source_identity", exact decimal match. The proxy judges a
// connection whose identity the datapath took from a routing listener's
// mark (a Gateway's, from the node's address) by those only. Stock Envoy
// rejects the filter: the agent leaves it out there
// (--proxy-datapath-identity=false) and the datapath refuses such
// connections instead.
//
// Every connection manager's HTTP filters are put in order by one function,
// httpFilters (httpfilters.go): hop by hop (a policy listener's own rules,
// then on the egress listener the local destinations' ingress rules), RBAC
// before header match within a hop, the router last. A new HTTP filter
// gets a role there, at its place; no connection manager orders its
// filters itself.
//
// The datapath never redirects a policy listener's upstream connections a
// second time (their mark's magic is FROM_PROXY; the other listeners'
// clusters carry FROM_PROXY_ROUTE and are redirected to the destination's
// ingress policy listener, see bpf/doc.go), so a connection the egress listener relays to a local workload would
// skip that workload's ingress rules. The egress HTTP listener therefore
// runs a second RBAC filter, "policy/egress/http/destination-rbac": the
// ingress policies plus an allowance for destinations without ingress HTTP
// rules. The Kafka filter cannot be chained that way (the proxy accepts one
// Kafka filter per chain), so ingress Kafka rules are not applied to
// connections that egress Kafka rules already redirected on the same node.
//
// # Ingress endpoint policy
//
// Config.IngressPolicy (ingresspolicy.go) is the policy of the node's
// ingress endpoint (reserved:ingress, see mesh/policy), enforced on the
// listeners whose clients are outside the mesh: every listener of
// Config.Listeners built from Gateways and Ingresses. GAMMA listeners
// (names beginning ir.MeshNamePrefix) are left alone: their clients are
// Pods, east-west traffic that the Pods' own policies govern. So are the
// L7 policy listeners (built from Config.Policy, never from
// Config.Listeners) and the resources of CiliumEnvoyConfigs and lb-l7
// Services (Config.Resources, passed through verbatim).
//
// world → ingress: while it is enforced, every HTTP chain of an ingress
// listener carries an inline ALLOW RBAC filter, before CORS and the
// router, whose one policy admits a downstream peer address
// (direct_remote_ip: the connection's peer, never x-forwarded-for) that
// an allow rule for TCP or ANY on the listener's port admits and no deny
// rule does; a closed direction (DenyAll, or no allow rule) gets a policy
// that never matches. A denied request is answered 403, as Cilium's proxy
// does. Every TCP chain (TLS passthrough or terminated TLSRoute,
// TCPRoute, Ingress tls-passthrough) of an ingress listener carries the
// same rules in an envoy.filters.network.rbac filter before tcp_proxy
// (stat_prefix: the tcp_proxy's): the connection's peer address is
// judged once, before anything is dialled, and a denied connection is
// closed — at L4 there is no request to answer 403. The HTTP and the
// network filter share one rule builder (ingressRules), so the two
// kinds of chain can never disagree about a client. A UDP listener
// (UDPRoute) of an ingress listener is not served at all while the
// direction is enforced, with a warning: the UDP proxy has no filter that
// could judge a client, so it fails closed.
//
// ingress → backend: while egress is enforced, every IR cluster is
// emitted twice: as itself, with all its endpoints, and as
// "<cluster>/via-ingress" (naming.go) without the endpoints the egress
// rules do not admit (address, port, TCP or UDP by the cluster's
// protocol). The routes, TCP and UDP chains of ingress listeners name the
// variant; GAMMA listeners, which may share an IR cluster with a Gateway
// route (gateway reuses it), keep the original. The variant is emitted
// for every cluster, not only where the filter removes an endpoint, so
// that which name a route holds never depends on endpoints: an endpoint
// change then rebuilds one load assignment and no route. Routes built for
// ingress listeners carry a salt in their memo keys, so they are never
// shared with a GAMMA route of the same content. Filtering the endpoints
// rather than checking each request keeps the proxy unchanged and costs
// nothing per request.
//
// A cluster whose ready endpoints the egress rules all deny is "denied"
// (clusterMemo.denied). A route of an ingress listener whose every
// weighted backend is denied does not forward: it answers 403 "Access
// denied" as a direct response, Cilium's answer to a request its egress
// policy denies (the body of the L7 policy's denial; a gRPC client gets
// status 7, PERMISSION_DENIED, from the proxy's local reply; the route's
// response header edits still apply; an unresolved backend's share of
// such a route answers 403 too). A cluster without ready endpoints is not
// denied: its route keeps forwarding and answers 503 (no healthy
// upstream), as it would without a policy — no endpoints is not a policy
// decision. A partly admitted cluster keeps forwarding to the admitted
// endpoints only. Decision: in a weighted split where only some backends
// are denied, the route keeps forwarding and a request picked for a
// denied backend answers 503 rather than Cilium's per-request 403; doing
// better needs a per-weighted-cluster filter override or a
// runtime_fraction split, neither of which the builtin proxy implements
// yet. The set of denied clusters is part of the memo keys of ingress
// routes (viaIngressSalt): every ingress route is rebuilt when a cluster
// becomes denied or admitted again (an endpoint admitted by the policy
// appearing turns 403 into forwarding with the next snapshot), while
// other endpoint changes still rebuild one load assignment and no route.
// The policy's content hash is part of the memo keys of listeners and
// load assignments, so a policy change rebuilds exactly those.
//
// # A valid IR that stock Envoy cannot carry
//
// Some Configs pass ir.Config.Validate yet hold values Envoy's API cannot
// carry: strings that are not UTF-8 or contain NUL/CR/LF, over-long header
// names, values or query parameter names, too many header edits, direct
// response bodies over 4 KiB. Translation never fails for them; each case is
// reported in Resources.Warnings (naming the IR object and field) and
// handled the way Gateway API handles a rule it cannot honour:
//
//   - a match that cannot be expressed can never hold for a well-formed
//     request, so the route is dropped;
//   - an action or header edit that cannot be expressed makes the route
//     answer 500 (a filter must fail requests rather than be skipped);
//   - a domain, server name, ALPN value or endpoint/listener address that
//     cannot be expressed is left out (and a virtual host, chain or
//     listener left with nothing is dropped).
package translator
