// Package gateway translates Gateway API objects into nodemesh's IR and
// computes the status of the GatewayClasses, Gateways and routes this
// controller owns; it also serves Kubernetes Ingresses of its class.
// HTTPRoute, GRPCRoute, TLSRoute (passthrough and terminate), TCPRoute and
// UDPRoute are the route kinds supported today, BackendTLSPolicy the
// policy kind, and ListenerSet adds listeners to Gateways ("ListenerSets");
// the model below ("Route kinds") is shared by every kind, and Ingress
// ("Ingress") compiles into it.
//
// Data enters as an immutable input.Snapshot plus Options (the controller
// name and the address the caller assigned to each Gateway) and leaves as a
// Result: an ir.Config that always passes Config.Validate, and statuses in
// the gateway-api v1 types. Translate is a pure function: no clock (status
// writers stamp lastTransitionTime), no I/O, no shared state; user errors
// become conditions, never failures, and one bad object never takes down
// another's configuration.
//
// Ownership. Only GatewayClasses whose controllerName is ours are
// processed. Gateways of other classes, and parentRefs to them, get no
// status from here. Route parentRefs to Services (GAMMA) are always ours:
// nodemesh is the cluster's mesh (see "GAMMA").
//
// Gateways and listeners. HTTP, HTTPS (TLS mode Terminate), TLS (modes
// Passthrough and Terminate, which may share a port), TCP and UDP
// listeners are supported; others are Accepted=False/UnsupportedProtocol. Listeners
// of one Gateway sharing a port must share a protocol (else every one of
// them is Conflicted/ProtocolConflict) and differ in hostname (else
// Conflicted/HostnameConflict); conflicted listeners are not accepted and
// none of a conflicting group wins. HTTPS listeners of one port whose
// hostnames overlap get OverlappingTLSConfig. An HTTPS listener serves only
// when every certificateRef is a core Secret of type kubernetes.io/tls
// holding a parseable key pair, in the Gateway's namespace or allowed by a
// ReferenceGrant; otherwise ResolvedRefs=False (InvalidCertificateRef or
// RefNotPermitted) and the listener is not programmed. Decisions where the
// spec is silent:
//   - a Gateway with no address assigned is Programmed=False /
//     AddressNotAssigned and produces no IR; one whose spec.addresses asks
//     for a different IP than assigned is Programmed=False /
//     AddressNotUsable; non-IPAddress address types are Accepted=False /
//     UnsupportedAddress;
//   - when two Gateways are assigned the same address, the older one
//     (creationTimestamp, then namespace/name) keeps each shared port; the
//     newer one's listeners on it are Accepted=False/PortUnavailable;
//   - GatewayClass parametersRef (classconfig.go) may name a
//     CiliumGatewayClassConfig (cilium.io/v2alpha1, with its namespace);
//     the class is Accepted when it exists and every field it sets can be
//     honoured, and its Gateways' Services then follow it (the
//     controller). Anything else is InvalidParameters naming the
//     reference or the fields: another kind, a missing config, and fields
//     nodemesh cannot honour — service.type NodePort (the node proxies
//     listen on the load-balancer address; the datapath does not serve
//     NodePorts and kube-proxy refuses NodePort traffic for a Service
//     without endpoints), loadBalancerSourceRanges (nothing would enforce
//     them: the proxies accept every source there), dual stack (two
//     ipFamilies or a policy other than SingleStack: a Gateway is served
//     on one address), allocateLoadBalancerNodePorts true (nothing
//     listens on node ports), and any service fields in host-network
//     mode (no Service exists). Ignoring them would expose a Gateway
//     other than asked. externalTrafficPolicy, loadBalancerClass, one
//     ipFamily, SingleStack and trafficDistribution are set on the
//     Service as asked. Gateway infrastructure.parametersRef is still
//     rejected (InvalidParameters): no Gateway parameters are supported;
//   - host-network mode (Options.HostNetwork; the controller's and the
//     agents' --gateway-host-network, the chart's gatewayAPI.hostNetwork):
//     the node proxy runs in the node's network namespace, so a Gateway's
//     listeners bind the node's own address, its Node's InternalIP, at
//     each listener's port: the controller selects the nodes (Node labels)
//     and lists their addresses in status.addresses, and each selected
//     node's agent assigns the Gateway the listed address that is one of
//     its own (kube.HostNetworkAddresses); other nodes bind nothing for
//     it. The node's address, not the wildcard 0.0.0.0/:: Cilium binds:
//     a wildcard socket would also take the port on every other address
//     of the node (loopback, Pod-facing interfaces, the load-balancer and
//     Ingress addresses made local there) and clash with the listeners
//     bound there; the node address serves exactly what status.addresses
//     announces. One address per node (the first InternalIP), so a
//     dual-stack node is served on one family. Every Gateway is given the
//     same address on a node, so two Gateways on one port clash exactly
//     as above (the older keeps it, the newer's listeners are
//     PortUnavailable) with the same verdict on every node and in the
//     controller. A port another listener of the node already binds (a
//     GAMMA or CiliumEnvoyConfig listener, another program) is refused by
//     the proxy, and the Gateway is Programmed=False/Invalid with the
//     proxy's message. spec.addresses cannot be honoured (the nodes'
//     addresses are what they are): AddressNotUsable;
//   - spec.infrastructure labels and annotations are accepted; the
//     controller copies them onto the one object it generates per
//     Gateway, its LoadBalancer Service (gateway/controller, service.go),
//     which is where the Gateway's address comes from. With that Service
//     the GatewayInfrastructure feature is claimed; translation itself
//     only sees the address the caller assigned;
//   - client certificate validation (spec.tls.frontend, frontend.go) puts
//     the CA bundle on the HTTPS listeners' TLS chains; a listener left
//     without a usable CA is not served rather than served unvalidated;
//   - spec.tls.backend.clientCertificateRef (backendcert.go) is presented
//     to backends a BackendTLSPolicy makes TLS; Gateways with spec.tls
//     carry a ResolvedRefs condition;
//   - a listener whose name repeats an earlier one is dropped and the
//     Gateway is Accepted=False/Invalid;
//   - allowedRoutes kinds that are not supported route kinds attaching to
//     the listener's protocol (today HTTPRoute, on HTTP and HTTPS) are
//     InvalidRouteKinds, and supportedKinds lists only the valid ones.
//     HTTP and HTTPS listeners support HTTPRoute and GRPCRoute, TLS
//     listeners TLSRoute, TCP listeners TCPRoute, UDP listeners UDPRoute.
//
// IR shape. An IR Listener is one (Gateway address, port), named
// gateway/<ns>/<gw>/<port>. The HTTP listeners of a port share one
// plaintext chain and route table; each HTTPS listener is a TLS chain
// selected by SNI (its hostname; none is the catch-all) with its own route
// table, offering ALPN h2 and http/1.1. A route table holds one virtual host
// per domain: each listener's own hostname ("*" without one), so a listener
// with no routes answers 404 for its hosts, and each hostname routes are
// served on. Listener isolation: a domain belongs to the most specific
// listener covering it, and only that listener's routes are served there.
// An HTTPS chain also answers 421 Misdirected Request for the hosts
// another HTTPS listener of its port owns (and, when its listener has a
// hostname, for every host it does not cover), so a client coalescing
// HTTP/2 connections never reaches the wrong listener's routes (table in
// build.go).
// A virtual host holds every route of its listener whose hostname covers
// the domain — a "*.example.com" route also serves "foo.example.com" —
// ordered as precedence.go describes (hostname specificity first, as the
// HTTPRoute hostnames spec requires). The order is total: two distinct
// route objects that tie on every criterion (same creation time, key and
// kind, which the API server never lets exist; a provider that let such
// duplicates through) are ordered by rule and match index like one route's
// items, not left to the sort.
//
// ListenerSets (listenerset.go). A ListenerSet whose parentRef names one
// of our Gateways is reported on (Result.ListenerSets); its listeners join
// the Gateway's when spec.allowedListeners.namespaces admits the set's
// namespace (None, the default, admits none; Same, Selector over
// Namespace labels, All) and the Gateway is accepted, else the set is
// Accepted=False/NotAllowed (or ParentNotAccepted) with no listeners.
// Joined listeners are the Gateway's in every way that matters for
// traffic: they share its address, ports, route tables, SNI selection and
// listener isolation, and its port claims against other Gateways. The
// merged order is the spec's precedence: the Gateway's own listeners,
// then ListenerSets oldest first, then by namespace/name. Decisions:
//   - a ListenerSet listener using a port with another protocol than an
//     earlier listener of the merged list, or the port, protocol and
//     hostname of one, is Conflicted (ProtocolConflict, HostnameConflict)
//     and the earlier one keeps serving, as the spec's precedence asks;
//     this holds inside one ListenerSet too. Conflicts among a Gateway's
//     own listeners keep the rule above (none of the group wins);
//   - a set is Accepted when at least one of its listeners is valid
//     (reason ListenersNotValid when some are not) and Programmed when one
//     is served; a conflicted listener counts as not valid. The Gateway's
//     status lists only its own listeners and counts accepted sets in
//     attachedListenerSets (written whenever it has sets or
//     allowedListeners);
//   - a set's listener resolves certificateRefs as the set: Secrets of its
//     namespace, or others a ReferenceGrant from ListenerSet allows (the
//     Gateway's grants do not extend to it), and allowedRoutes Same means
//     the set's namespace. The Gateway's spec.tls (frontend validation,
//     backend client certificate) applies to every listener of its ports;
//   - a route attaches to a set's listeners only through a parentRef of
//     kind ListenerSet (sectionName and port select among them); a Gateway
//     parentRef selects among the Gateway's own listeners only, so its
//     sectionName never names a set's listener. A parentRef to a set the
//     Gateway does not admit is Accepted=False/NoMatchingParent. Route
//     status has one entry per parentRef, as for Gateways;
//   - IR chains and tables of a set's listener are named after the set
//     (listenerset/<ns>/<name>/<listener>), since listener names are only
//     unique within their object.
//
// Attachment. A parentRef selects listeners by sectionName and port; a
// listener admits a route when its allowedRoutes kinds include the route's
// kind and its namespace policy (Same, All, or Selector over Namespace labels,
// where kubernetes.io/metadata.name is always present) admits the route's
// namespace; the hostnames must then intersect. Failing each step in turn
// gives NoMatchingParent, NotAllowedByListeners, then
// NoMatchingListenerHostname. As the spec prescribes for attachedRoutes,
// attachment ignores listener and Gateway status: a route attached to a
// listener that is not programmed is still Accepted and counted, and serves
// once the listener does. A route attached to one listener through several
// parentRefs counts once; attachedRoutes counts routes of every kind.
//
// Routes. Route hostnames are intersected with listener hostnames exactly
// as the spec describes (the more specific of two intersecting names wins).
// A rule whose matches, filters or fields cannot be honoured is dropped
// from the configuration (the spec's "Drop Rule" option): the route is
// Accepted with PartiallyInvalid=True naming the dropped rules, or
// Accepted=False when no rule is left. Decisions where the spec is silent
// or leaves a choice:
//   - regular expressions are RE2 and match the whole subject;
//     RegularExpression paths rank between Exact and PathPrefix, longer
//     first;
//   - filters supported: RequestHeaderModifier, ResponseHeaderModifier,
//     RequestRedirect, URLRewrite, CORS and RequestMirror (any number) on
//     rules, the two header modifiers on backendRefs. CORS
//     (httproute_cors.go) becomes the IR route's CORS policy, and a chain
//     runs the CORS filter exactly when a route of its table has one;
//     RequestMirror and the rule's retry stanza become the IR route's
//     mirrors and retry policy (httproute_retry.go gives the mapping and
//     its defaults); any other filter type, and sessionPersistence,
//     invalidates the rule (UnsupportedValue) instead of being skipped;
//   - ReplacePrefixMatch needs exactly one PathPrefix match in its rule,
//     as the API's validation requires;
//   - timeouts.request sets the route timeout (IR Route.Timeout) and
//     timeouts.backendRequest the timeout of each request to a backend
//     (IR Route.BackendTimeout), each independently; unset or "0s" means
//     none. A backendRequest longer than a non-zero request invalidates the
//     rule, as the API's validation requires;
//   - a rule without backendRefs and without a redirect answers 500;
//   - redirect ports are resolved here (explicit port, else 80/443 for an
//     explicit scheme, else the listener's port), so one rule attached to
//     listeners on different ports yields one IR route per port.
//
// Backends. Only core Services (not ExternalName) are backends; each
// (Service, port) is one cluster service/<ns>/<name>/<port> whose endpoints
// come from the EndpointSlices labelled kubernetes.io/service-name, using
// the slice port whose name equals the Service port's name (the
// EndpointSlice controller's contract). An endpoint is ready when
// conditions.ready is true or unset. appProtocol kubernetes.io/h2c selects
// HTTP/2 cleartext; https, tls and kubernetes.io/wss are refused
// (UnsupportedProtocol) unless a BackendTLSPolicy targets the port; other
// values are hints that do not change the protocol. BackendTLSPolicy
// (backendtls.go, which holds its decisions) puts verified upstream TLS on
// the clusters of the ports it targets, and has a status of its own
// (Result.Policies). An unresolvable backendRef (InvalidKind,
// BackendNotFound, RefNotPermitted, UnsupportedProtocol) keeps its weight
// with no cluster, so its share of requests gets 500.
//
// Route kinds. Translation is written once over a kind-neutral model;
// only compiling a route's spec is per kind. The pieces:
//   - routekind.go: routeKinds, the table of supported kinds. A row gives
//     the kind's group and kind, the listener protocols it attaches to
//     (which drives supportedKinds and allowedRoutes.kinds validation),
//     its plural for messages, the prefix of its IR route names, and how
//     to list its objects in a snapshot. The table order is the order of
//     Result.Routes.
//   - route (routekind.go): the interface a kind implements over its API
//     type, as a struct holding only the object's pointer: metadata,
//     parentRefs, hostnames (nil for kinds without), and compileRules.
//   - routeState and ruleState (route.go): the compiled route and the one
//     compiled-rule type, whatever the kind. compileRoute handles identity
//     and hostnames for every kind; compileRules fills the rules: matches
//     (each becomes an IR route), filters, timeouts and backends.
//   - attach.go: parentRef resolution, allowedRoutes kind and namespace
//     matching, hostname intersection and attachedRoutes counting.
//     resolveParent depends only on the compiled route, the Gateway's
//     listeners and the route namespace's labels, and names listeners by
//     position, so a later translation may reuse its answer while none of
//     those changed.
//   - backend.go: backendRef weight and resolution to a Service cluster,
//     with ReferenceGrants checked from the route's own group, kind and
//     namespace.
//   - routestatus.go: the route status writer, producing gwv1.RouteStatus
//     (parents with Accepted, ResolvedRefs and PartiallyInvalid), the part
//     every kind's status shares; Result.Routes carries it with the kind.
//   - build.go turns attached routes' rules into IR; the kind enters
//     only through IR route names.
//
// GRPCRoute (grpcroute.go) is such a row: its method matches become path
// matches, its header matches, header modifiers and RequestMirror filters
// are HTTPRoute's, and its backends, mirrors included, must speak h2c
// (routeKind.backendProtocol); the file's comment gives the mapping and
// the precedence among its matches.
//
// TLSRoute and TCPRoute (l4route.go) have rules without matches; the
// build turns their attachments into IR TCP chains (SNI-selected on TLS
// listeners, terminating TLS on Terminate ones; one catch-all on TCP
// listeners) to TCP clusters
// (service/<ns>/<name>/<port>/tcp), as l4route.go describes.
//
// UDPRoute (udproute.go) is the same with a UDP listener and UDP clusters;
// several backends become one cluster of the route with weighted
// endpoints, as udproute.go describes.
//
// A new kind is a row in
// routeKinds, a file <kind>.go with the wrapper type implementing route
// and its compileRules, a snapshot field for its objects, golden cases in
// testdata/<kind>/, and a status writer for the kind in the controller.
// Kinds that do not terminate HTTP (TLS passthrough, TCP, UDP) leave
// matches empty and need listener protocols and IR chains of their own.
// Two later sources plug into the same model: GAMMA (an HTTPRoute or
// GRPCRoute whose parentRef is a Service) resolves that parentRef to the
// Service's ports instead of listeners and reuses compileRules, ruleState
// and the status writer unchanged, with the Service as the parent; Ingress
// (networking.k8s.io/v1) compiles its rules into the same ruleState, with
// an implicit parent per IngressClass instead of parentRefs, and reports
// addresses rather than route conditions.
//
// GAMMA. An HTTPRoute or GRPCRoute parentRef {group: "", kind: Service}
// (mesh.go, meshbuild.go) steers the traffic clients send to that
// Service's cluster IP and port through the node proxy. Resolution
// reuses compileRules, ruleState and the status writer: the route's
// status gets one parent per Service parentRef, after its Gateway
// parents, with our controllerName. Service parents are resolved afresh
// on every translation (the Translator keeps no GAMMA state; routes
// naming only Services are compiled each time). Decisions:
//   - a parentRef selects the Service's ports by sectionName (the port's
//     name) and port, both when both are set, all ports when neither.
//     Only ports clients speak plaintext HTTP to attach: TCP, no
//     appProtocol naming TLS or raw TCP (https, tls, kubernetes.io/wss,
//     tcp), without appProtocol no name "https", "tls", "tcp" or "udp"
//     (alone or before "-"), and no BackendTLSPolicy targeting the port
//     (its clients speak TLS). Proxying such a port as HTTP would break
//     every connection to it.
//   - gRPC (GRPCRoute parents, and the HTTP version of every mesh
//     cluster): what a port says decides (mesh/appprotocol, shared
//     with lb-l7 Services): appProtocol kubernetes.io/h2c, grpc, h2c or
//     http2, or without appProtocol the name grpc, h2c or http2 (alone
//     or before "-"; grpc-web is HTTP/1.1), is h2c, upstream too. A port
//     that says nothing (no appProtocol, a name naming no protocol) takes
//     the GRPCRoute attached to it at its word: the route's backendRefs
//     to that Service go over h2c, through a cluster of their own
//     (service/<ns>/<svc>/<port>/h2c), so the port's HTTP/1.1 cluster
//     stays as it is for every other route. A GRPCRoute on a port that
//     says HTTP/1.1 (appProtocol http, a name http or http-*, grpc-web)
//     is refused for that port (NoMatchingParent, naming the port and
//     what to set): no gRPC call survives HTTP/1.1, and overriding what
//     the Service's owner declared would break its HTTP/1.1 clients.
//     HTTPRoutes and GRPCRoutes on one port share its listener, whose
//     codec is negotiated (HTTP/1.1 or h2c prior knowledge); each
//     keeps its backends' protocol. A chain with routes sends unmatched
//     requests nowhere (a 404, below); the one default route, of a chain
//     without routes, speaks what the port says.
//   - Accepted=False/NoMatchingParent: the Service does not exist, has no
//     port the parentRef selects, or none of them carries HTTP (gRPC for
//     a GRPCRoute; the message names each port and why); Accepted=False/UnsupportedValue:
//     a headless or ExternalName Service (the spec's parents are
//     ClusterIP Services: there is no cluster IP to steer). A route's
//     invalid hostnames or rules fail it as for a Gateway.
//   - producer and consumer (GEP-1294): a route in the Service's
//     namespace is a producer route and applies to every client; a route
//     in another namespace is a consumer route and applies only to the
//     clients in its own namespace. Neither needs a ReferenceGrant for
//     its parentRef (the spec exempts Service parents). For a namespace
//     with consumer routes on a port, those routes replace the producer
//     routes for its clients: consumer routes take precedence, and
//     mixing two owners' rules in one table would let a producer rule
//     catch what the consumer meant to leave to the Service.
//   - backends: a backendRef to another namespace needs a ReferenceGrant
//     (RefNotPermitted otherwise), except to a Service the route names as
//     its parent: a consumer route sending its clients on to the Service
//     they asked for reaches nothing new (the MESH conformance suite's
//     consumer route does exactly this, without a grant).
//   - hostnames are not matched: the Service's cluster IP, not the Host
//     header, selects the routes (a client may name the Service by short
//     name, FQDN or IP), as the MeshFrontendHostname conformance test
//     requires. Route tables have the one domain "*".
//   - routes replace the Service's behaviour, they do not add to it
//     (GEP-1294, "Route presence"): a request none of a chain's routes
//     matches gets a 404, as MeshHTTPRouteQueryParamMatching checks. Only
//     clients no route applies to keep the Service: the producer chain
//     of a port with consumer routes only is the port's default route
//     (mesh/<ns>/<svc>/<port>/default) to the Service's own cluster,
//     without a timeout.
//   - how the proxy knows the client's namespace: the datapath redirects
//     the Service port at connect() to one listener per (Service, port)
//     (mesh/<ns>/<svc>/<port>, on Options.Mesh.ListenAddress, a port
//     from a hash of the name into 15000-15999 by default), so the proxy
//     sees the client Pod's own address. The listener has a producer
//     chain for every client and one chain per namespace with consumer
//     routes, selected by source prefix: the /32 and /128 of that
//     namespace's Pods (Envoy's filter_chain_match.source_prefix_ranges;
//     the longest prefix wins, the producer chain takes the rest). Pods
//     on the host network (their address is the node's), Pods that ended
//     (their address may be reused) and an address two namespaces claim
//     are nobody's consumer and get the producer routes. The chains
//     follow the Pods: a new client Pod gets its consumer routes with the
//     next translation, and until then the producer routes. The
//     Kubernetes provider lists Pods with network policy, which every
//     agent that can steer Services runs: the Service table comes only
//     with --datapath, and --datapath implies the policy compiler and its
//     Pod watch (run --policy-enforcement=never for a mesh that enforces
//     no policy). An agent without it refuses every Service parent
//     (NotRedirected, below), so a consumer route is never Accepted
//     where its clients cannot be told apart. An identity
//     the datapath already knows was the alternative; it would need the
//     redirect to carry it to the proxy (a PROXY-protocol-like header or
//     a per-identity listener), where the source address is already
//     there and already the identity's key.
//   - Result.Mesh lists each steered port with its listener and socket;
//     the agent feeds them to the same Service table redirect as lb-l7
//     Services and CiliumEnvoyConfigs (internal/agent), which sends the
//     port to the listener only once the proxies acknowledged it and
//     refuses connections before, never bypassing the routes. A port
//     with no free listener port is Refused (connections refused). On a
//     port both claim, GAMMA routes win over the lb-l7 annotation and a
//     CiliumEnvoyConfig wins over both. Without a ListenAddress
//     (standalone translation) statuses are computed and nothing is
//     steered.
//   - fail closed where nothing steers: MeshOptions.CannotRedirect
//     refuses every Service parent that would be accepted with
//     Accepted=False/NotRedirected (the word a CiliumEnvoyConfig gets for
//     the same refusal) and the reason, and serves no listener for it.
//     An agent sets it when it has no datapath Service table, its
//     datapath has no socket hooks (no --datapath-cgroup) or it has no
//     mesh listen address (internal/agent CannotRedirect); it reports
//     that in its NodeProxyStatus (cannotRedirect), and the controller,
//     which writes route status, refuses while any live node of ours
//     reports it, naming the nodes: Accepted means every client's
//     connections pass the routes, and one node's Pods would bypass
//     them. With no node reporting, the controller's verdict is
//     translation's alone.
//   - the original source (as Cilium, which marks the configs it
//     generates for GAMMA to keep it): a mesh listener's upstream
//     connections keep the client Pod's address where the node's
//     datapath steers the backends' replies to that address back to the
//     proxy (MeshOptions.OriginalSourceMark, set by an agent with
//     --datapath and --policy-original-source, the default; the listener
//     gets original_src with the routing listeners' mark,
//     datapath.ProxyRouteMark, ir.Listener.OriginalSourceMark). The
//     backend, its access logs and its network policy then see the
//     client Pod and its identity instead of the node: an L3 policy
//     admitting one client Pod admits only it through the mesh
//     (conformance/e2e TestMeshOriginalSourceThroughTheDatapath). The
//     backend's L7 ingress rules apply too: a mesh listener applies no L7
//     policy, and its mark (FROM_PROXY_ROUTE, not the policy listeners'
//     FROM_PROXY) tells the datapath to hand the connection to the
//     ingress policy listener where the backend's policy has L7 rules on
//     the port, as it would the client's own connection
//     (TestMeshOriginalSourceWithL7Policy: A's GET / passes, A's GET
//     /other gets the policy's 403, B is refused). The same holds for
//     CiliumEnvoyConfig and lb-l7 listeners, and for Gateway and Ingress
//     listeners, whose connections carry the routing mark with the
//     reserved ingress identity (the policy listener judges their
//     source address: the node's ingress address where the Node has
//     one; without one the datapath refuses the redirect rather than
//     let the policy listener judge the node's address as host,
//     TestGatewayWithL7Policy; see datapath/doc.go; nodemesh-agent's
//     GatewayUpstreamMark;
//     GAMMA clusters get it too, which is what they carry where the
//     client's address is not kept).
//     This holds for every mesh listener because its clients are always
//     Pods of this node: the redirect happens in this node's socket
//     hooks, so the replies pass through it. The proxy pools upstream
//     connections per endpoint and client address (proxylib/upstream
//     BindSource), so one client's requests never ride another's
//     connection. Where nothing steers the replies (no datapath,
//     standalone translation, --policy-original-source=false, and the
//     controller, which builds no listener) the mark is zero and
//     upstream connections come from the node. Route status says nothing
//     about it either way (it is a node's property, not the route's: the
//     controller writes one status for every node); an agent's own
//     listeners show it (original_src in its xDS, nodemesh translate
//     with the node's options).
//   - routes from several Services' parentRefs, and a route with both
//     Gateway and Service parents, share their compiled IR routes.
//
// Ingress. Ingresses (networking.k8s.io/v1) of our class are compiled
// into the same ruleState and matchState as routes and ordered by the same
// precedence, but attach implicitly to Ingress listeners instead of
// Gateways (ingress.go compiles, ingressbuild.go assembles, ingressaddress.go
// feeds the address allocator). Result.Ingresses says, per Ingress, its
// mode, its address (status.loadBalancer) and every problem, each naming
// the field. Decisions:
//   - class: spec.ingressClassName naming our class (Options.Ingress
//     ClassName, default "nodemesh") or an IngressClass whose controller
//     is nodemesh.io/ingress-controller; without it the legacy
//     kubernetes.io/ingress.class annotation; with neither, ours only when
//     we are the default class (option, or an IngressClass of ours with
//     ingressclass.kubernetes.io/is-default-class "true"). Other
//     Ingresses get no status at all.
//   - paths: Exact and Prefix as Kubernetes defines them (Prefix matches
//     whole segments, a trailing / is ignored); ImplementationSpecific is
//     an RE2 expression matching the whole path, as in Cilium, so a path
//     without metacharacters behaves as Exact. Order is Cilium's: Exact,
//     then expressions, then prefixes, each longest first, so / is last
//     and /impl.* shadows /impl. A path without a value matches
//     everything. Hosts: a virtual host serves the paths of its own host,
//     then of the wildcards and the host-less rules covering it (host
//     specificity first, as for routes).
//   - defaultBackend answers, after every path, on the Ingress's own hosts
//     and on hosts no Ingress names; only the most specific host's default
//     applies.
//   - a path that cannot be served (missing Service or port, resource
//     backend, bad expression, repeated path) is dropped and reported; the
//     rest serves. An Ingress with nothing left is not served.
//   - TLS: a spec.tls entry's Secret (in the Ingress's namespace) or, without
//     secretName, Options.Ingress.DefaultCertificate serves its hosts on the
//     HTTPS port, one TLS chain per certificate selected by SNI (an entry
//     without hosts is the catch-all). A host in two entries keeps the
//     first. A Secret that is missing or not a usable key pair is reported
//     and its hosts stay plaintext only.
//   - force-https (annotation, else Options.Ingress.EnforceHTTPS): on the
//     plaintext listener every path of a host the Ingress has TLS for
//     redirects with 301 to https on the HTTPS port; the TLS listener
//     serves the paths.
//   - load-balancer mode (annotation, else Options.Ingress.Mode, else
//     dedicated, Cilium's Helm default): shared Ingresses share one address
//     and listener set (ingress/shared/<port>), a dedicated one has its own
//     (ingress/<ns>/<name>/<port>). On the shared set the older Ingress
//     (creationTimestamp, then namespace/name) keeps a contested host and
//     path, default backend or TLS host; the newer one is told which
//     Ingress holds it and keeps the rest.
//   - the annotations that shape Cilium's per-Ingress Service
//     (loadbalancer-class, service-type, service-external-traffic-policy,
//     insecure-node-port, secure-node-port) are validated but change
//     nothing: the Service the controller makes per Ingress load balancer
//     (gateway/controller, with its Gateway Services) is always a
//     LoadBalancer on ports 80 and 443, and with pool addresses there is
//     no Service at all. Port annotations take decimal digits only, 1 to
//     65535 (no sign, space or leading zero). host-listener-port is
//     validated the same way and used in host-network mode (below). An unreadable loadbalancer-mode,
//     force-https or tls-passthrough leaves the Ingress unserved rather
//     than guessing a security-relevant intent.
//   - tls-passthrough: enabled (Cilium's rules): each rule's host takes
//     the TLS connections whose SNI names it on the HTTPS port, relayed
//     untouched by a TCP chain (the TLSRoute passthrough machinery) to the
//     backend of its path "/" as a TCP cluster; the backend terminates TLS
//     and sees the proxy's address as the source. Reported and ignored: a
//     rule without a host (SNI is all there is to select by), paths other
//     than "/" (they cannot be read without decrypting), the default
//     backend, spec.tls; with nothing left the Ingress is not served. A
//     dedicated passthrough Ingress has no plaintext listener. On the
//     shared set passthrough and terminated hosts share the HTTPS
//     listener, told apart by SNI; a host both relayed and terminated
//     belongs to the older Ingress and the other is told.
//   - client addresses: Ingress listeners use the same HTTP connection
//     manager as Gateways (use_remote_address, no trusted hops), so the
//     backend sees X-Forwarded-For with the connection's address appended
//     and X-Envoy-External-Address, as Cilium's default of 0 trusted hops.
//   - addresses come from the Gateway allocator through stand-in Gateways
//     (IngressAddressRequests), so Ingress and Gateway addresses never
//     collide; a listener whose address and port another listener already
//     binds is not built and its Ingresses are told which Ingress (or
//     listener) holds it. Load balancers claim their ports oldest first,
//     the shared set as old as its oldest Ingress, so the older keeps a
//     contested port; Gateway listeners are placed before every Ingress.
//   - host-network mode (IngressOptions.HostNetwork; the controller's and
//     the agents' --ingress-host-network, the chart's
//     ingressController.hostNetwork; a switch of its own, as in Cilium, so
//     Gateways and Ingresses each keep their mode): every Ingress load
//     balancer is given the node's address, as host-network Gateways are
//     (see above: the node's InternalIP, not the wildcard Cilium binds,
//     for the same reasons; the controller lists the selected nodes'
//     addresses in status.loadBalancer and each selected agent binds its
//     own, kube.HostNetworkAddresses behind kube.SplitAddresses; other
//     nodes bind nothing). One port per load balancer carries plain HTTP
//     and HTTPS: the shared set's SharedListenerPort (default 8080,
//     Cilium's), a dedicated Ingress's host-listener-port annotation
//     (default 8080). Its listener is one ir.Listener with PlainAndTLS:
//     the plaintext chain beside the TLS chains (terminated and
//     passthrough), told apart by whether the first bytes are a TLS
//     ClientHello (Envoy's tls_inspector and
//     filter_chain_match.transport_protocol), so TLS for an unknown server
//     name is closed rather than read as HTTP, and force-https redirects
//     to the same port. As every load balancer shares the node address,
//     ports must be unique per Ingress: two dedicated Ingresses on one
//     port, or a dedicated one on the shared port, are a clash the older
//     wins (above), with the same verdict on every node and in the
//     controller; the newer is not served and is told who holds the port.
//     A dedicated Ingress whose host-listener-port cannot be read is not
//     served (guessing 8080 could take another Ingress's port); the
//     annotation on a shared Ingress is ignored and reported. Ports below
//     1024 are allowed (the proxy keeps NET_BIND_SERVICE), though, as
//     Cilium advises, ports above 1023 avoid clashing with services of
//     the node. The reserved:ingress policy (AT-ING-06) holds on these
//     listeners as on load-balancer ones: RBAC on the client's direct
//     address on every HTTP chain, network RBAC on passthrough chains.
//
// Golden cases live in testdata/<group>/: gateway for GatewayClass,
// Gateway, listener and attachment behaviour, one folder per route kind
// (httproute, grpcroute, tlsroute, tcproute, udproute) for what compiling that kind
// decides, gamma for Service parents.
//
// Performance. Everything is indexed by name once per call; no list is
// scanned per route, and each route, rule and IR route is built once
// however many listeners and virtual hosts it lands in (IR routes are
// shared between virtual hosts). Cost is linear in the input plus the
// output. Everything runs on the calling goroutine: "Cold translation" in
// the xds/translator package documentation says why nothing is compiled
// ahead on other cores. A Translator lists the clusters of the IR from
// its virtual hosts (clusterList); only Translate collects them route by
// route, so a cold Translator fills no map per route and listener.
// Rules come by the thousand, so what one rule allocates decides what a
// large input costs: a rule of one or two matches comes in one allocation
// with its matches, their header matches and their IR routes
// (newRuleState), and one more with its backends and their clusters
// (newBackends); the names of a route's IR routes are cut from one
// string (nameRoutes); the paths of fields and the names of parents that
// only a problem's message needs are made when there is a problem; a
// route's one parent status comes with its two conditions. At the shape
// of conformance/perf BenchmarkSnapshot this took a cold translation
// from about 16 to under 9 allocations per rule (alloc_test.go holds the
// bound). What a cold translation spends besides allocations, and how it
// was cut, from CPU profiles at 5 000 HTTPRoutes:
//   - putting a virtual host's matches in precedence order: nearly every
//     comparison of two matches of one hostname falls through to the
//     route criterion (age, then namespace/name), which read two routes'
//     timestamps and names through three pointers each time. The sort
//     (itemSorter) ranks the distinct routes once, copies each match's
//     keys and its route's rank next to each other, and sorts indexes
//     over them; compareItems stays the one statement of the order, and
//     a test holds the sort to it on random items;
//   - resolving backendRefs: a Service is the backend of many rules, and
//     each reference looked the Service, its BackendTLSPolicy, whether a
//     policy targets it and its cluster up in four maps. The first
//     reference to a Service port records what was found
//     (translator.servicePorts, one lookup after that); the checks that
//     depend on the referring route (ReferenceGrants, parents, the route
//     kind's protocol) still run per reference;
//   - checking that a match's or a header filter's header names are
//     distinct: a few names in an array (nameSet), a map only for a long
//     list, rather than a map per match and per filter.
//
// Incremental translation. The agent and the controller keep one
// Translator, which reuses the previous call's compiled routes and
// virtual hosts where the input objects have the same content hashes
// (computed once per object by the providers; see "Change detection" in
// the mesh/ir package documentation), so a one-route edit costs about that
// route, its virtual host and a walk over the routes' states. Compiled
// routes are keyed on kind, namespace/name and content hash: an object
// decoded again with the same content is not compiled again. What an edit
// no longer does for every route, while the Gateways and the objects
// routes read are unchanged (alloc_test.go holds that a one-route edit
// allocates alike at 100 and 800 routes):
//   - read its content hash from the snapshot's table: the compiled route
//     holds the object it was compiled from and that object's hash, and
//     objects never change once translated (hashOf); the same holds for
//     the Services, EndpointSlices and other objects the index is built
//     from (objectHashes);
//   - attach it to the listeners: the listeners take over the previous
//     translation's attachments (the routes by hostname, attachedRoutes)
//     and only routes compiled or resolved again, or gone, are attached or
//     detached (takeAttachments). A hostname's routes may then be listed
//     in another order than a fresh translation lists them, which nothing
//     depends on (virtual hosts order routes by precedence, a total order);
//   - read its parentRefs for Service parents (compilation notes them) or
//     its IR routes for CORS (remembered per virtual host), and make the
//     name and covering hostnames of every unchanged virtual host.
//
// A re-list (every object decoded again, the same content) is matched by
// content, and the Translator then holds the new objects in place of the
// old: its record of the world and its index are made of them (the index
// built again, keeping the verdicts on certificates), so the next
// translation finds them by identity again and no second copy of the
// objects, Secrets among them, stays alive.
//
// Status is rendered for a route whose parents were resolved again, and
// reused otherwise; the list of statuses is made afresh. A Translator's
// result always equals Translate's (held by tests over golden cases and
// random edits of every route kind, parentRefs, listeners and backends). Translate stays the pure one-shot function the CLI, tests
// and fuzzers use.
package gateway
