// Package agent is the per-node composition root: the control loop that
// drives the stages. It takes each view of user intent a provider
// publishes (a folder of YAML in standalone mode, the API server in
// Kubernetes mode), assigns Gateway addresses, runs the pure translators
// (gateway/, mesh/policy), hands the IR to the data plane publisher (the
// xDS server), and syncs the eBPF datapath. It also answers "what is the
// state of my configuration": per-object status from translation,
// overlaid with what the node's proxies acknowledged or rejected, served
// on a Unix socket (api.go; the types and the client are package
// internal/agent/api, so the CLI links that and not the agent).
//
// It sits above everything it drives and only cmd/, conformance/ and
// examples/ import it (boundaries_test.go). It imports no Envoy code and
// no eBPF or netlink code: the publisher is an interface from
// mesh/dataplane and the datapath one of its own (Datapath, taking the
// plain rows of datapath/model), both wired to the real ones by
// cmd/nodemesh-agent.
//
// Data flow: provider → Agent.Apply(snapshot, source errors) →
// address.Allocator → gateway.Translate → dataplane.Publisher.Publish
// (which validates the IR and translates it). Status() merges the stored
// translation status with Publisher.Proxies() at the moment it is asked,
// so an ACK or NACK shows up without a new translation.
//
// Invariants:
//   - Apply is called from one goroutine; Status may be called from any.
//   - A configuration that fails Publish (invalid IR included) is never
//     half-applied: the publisher keeps serving the last good one, and the
//     failure is reported in Status.PublishError.
//   - Gateway addresses are sticky for the life of the agent (see
//     address.Allocator); restarting the agent reassigns them in age order,
//     which yields the same result unless Gateways were deleted meanwhile.
//     In Kubernetes mode Config.Addresses replaces the allocator: the
//     controller assigns addresses cluster-wide and the agent reads them
//     from Gateway status (kube.StatusAddresses).
//   - Nothing waits by polling. The publisher signals every change of
//     its ACK/NACK table (dataplane.Publisher.Changed, the xDS server's
//     event); the agent signals its own changes (an Apply, a datapath
//     sync). Waiters take the signal's channel, read the state, and sleep
//     on the channel only if the state does not satisfy them
//     (WaitStatus, WaitDatapath, the policy rows' waiter below).
//
// NACKs are traced to objects by resource names, never by the proxy's
// text (programmed.go): the xDS server records which resources of a
// rejected response the proxy did not already run, and the publisher
// reads the object each was made for from the naming scheme
// (xds/translator.OriginOf). A rejection of one of a Gateway's resources,
// or of none that belongs to a Gateway or to network policy, makes that
// Gateway Programmed=False/Invalid with the proxy's message; one that only
// concerns other objects (another Gateway, policy, an Ingress, an Envoy
// config) holds it Pending, since a proxy rejects an update of one type
// as a whole. A rejection of an Ingress's listener or route configuration
// ("ingress/<namespace>/<name>/...") is laid on that Ingress, one of the
// shared listener set ("ingress/shared/<port>...") on every Ingress in
// shared mode (ingressnack.go, Status.IngressRejections);
// cmd/nodemesh-agent turns each new set into a Warning Event
// (ProxyRejected) on the Ingress, which has no conditions of its own.
//
// Network policy (policy.go): with a policy.Compiler configured, every
// Apply also compiles CiliumNetworkPolicy, CiliumClusterwideNetworkPolicy
// and NetworkPolicy; the L7 part rides in the published IR
// (ir.Config.Policy), and with a Datapath configured the endpoints, the
// ipcache and the policy rows are synced to it after the publication.
// Rows that redirect to a policy listener the datapath did not redirect
// to before are written only once every connected proxy acknowledged the
// publication carrying it (or after ackWait; a redirect to a port nothing
// listens on drops, it never lets traffic through). A proxy that rejects
// a publication's listeners or filter configurations (ECDS) keeps running
// its previous L7 policy, which may allow more than the published one; so
// while a connected proxy's latest answer to the current publication is a
// rejection, every redirect row is written as a drop instead, and the
// proxied policies are reported Rejected (ProxyRejected, with the
// proxy's message). Here any listener or ECDS rejection counts, whichever
// objects it names: with incremental (delta) xDS a later rejection names
// only its own resources while an earlier rejected policy change is still
// not applied, and failing closed must not depend on which rejection came
// last. A goroutine per compilation follows the proxies' answers on the
// publisher's change events (and the ackWait timer) until every connected
// proxy acknowledged the publication or a newer compilation supersedes
// it. Policy status is also honest about the datapath: while rows wait
// for acknowledgements, or the datapath refused them, accepted policies
// are Pending (WaitingForProxies, DatapathError). A policy of the node's
// ingress endpoint (policy.PolicyStatus.Ingress) has no rows: the Gateway
// and Ingress listeners enforce it, so it is Pending (WaitingForProxies)
// until every connected proxy acknowledged the publication of its
// compilation, and Rejected (ProxyRejected) while one refuses it, as the
// proxy then keeps its previous listeners; with no proxy connected no
// listener serves, and it is Enforced. The status also shows the
// endpoint itself (api.PolicyStatus.IngressEndpoint, ingressendpoint.go):
// its identity and labels, the policies that apply to it, and per
// direction (world → ingress, ingress → backend) Unenforced (no policy
// selects it: allow all), Enforced, FailClosed (DenyAll, with the
// compiler's reason), then the same proxies' view as its policies:
// Pending until every connected proxy acknowledged, Rejected while one
// refuses (the reason keeps a FailClosed verdict visible). Endpoint ids are sticky
// per Pod. Gateway and Ingress connections carry the ingress identity in
// their mark (Config.GatewayUpstreamMark) and leave from the Node's
// ingress address where it has one of the backend's family, else from the
// node's; either way the datapath judges them as ingress and records that
// identity in the connection tracking of a redirect, where the ingress
// policy listener reads it (Config.ProxyIdentity,
// policy.Listeners.ConntrackMap), so the host's L7 allowance never
// applies to them. A proxy that judges peers by address only (Envoy)
// cannot: the datapath then refuses the latter where a backend's L7
// rules would have to judge them, and PolicyStatus.GatewayFromNode names
// the ports concerned (gatewayidentity.go). The flow store (mesh/flow), fed by the access log service, is
// served on /v1/flows and resolved with the latest ipcache.
//
// Envoy configs (envoyconfig.go): every Apply also translates
// CiliumEnvoyConfig and CiliumClusterwideEnvoyConfig, and Services
// annotated service.cilium.io/lb-l7 (mesh/envoyconfig), after the
// Gateway and policy translation whose listener sockets they must not
// take; their resources ride in the published IR (Config.Resources). A
// Service a config (or the annotation) takes over is sent to the proxy by
// the Service table (Config.Services): its ports' one backend is the
// listener's node address and port, written only once every connected
// proxy acknowledged the publication carrying the listener; until then,
// and for as long as the config is refused, those ports have no backend
// and connections to them are refused, never sent to the Service's
// backends around the proxy. The per-config verdicts are in
// Status.EnvoyConfigs, with the proxies' rejections of their resources
// (ProxyRejected) and a pending acknowledgement overlaid; refusals are
// also logged. Without a Service table (no Config.Services) a config
// that redirects Services is refused as NotRedirected (mesh/envoyconfig
// Options.CannotRedirect): nothing could send their traffic through its
// listener. The same holds with a Service table but no socket hooks
// (Config.NoServiceHooks: no --datapath-cgroup), and for GAMMA routes:
// Agent.CannotRedirect says why the node cannot steer (also without a
// mesh listen address), the translation refuses Service parents with it
// (gateway.MeshOptions.CannotRedirect) and the node's report carries it
// to the controller, which writes route status. In Kubernetes mode the agent writes each verdict on its
// object as the Valid condition (cmd/nodemesh-agent, through
// mesh/provider/kube's StatusWriter), following Status.EnvoyConfigs, so
// a proxy's later rejection reaches the object too.
//
// Mutual authentication (auth.go, with Config.Auth): every compilation
// hands the auth manager the relations the auth-required rows need —
// eagerly, before the rows are written, so a first connection finds its
// entry instead of being dropped while a handshake runs — and the manager
// withdraws whatever is no longer named (a Pod, an identity, a node or a
// policy that went). Other nodes get a number of this agent's own (the
// auth key's remote node, carried in the ipcache rows of their Pods),
// sticky per node name and not reused at once, so a relation proven for a
// node that left cannot vouch for a newcomer. The compiler is told a
// provider runs (policy.Options.Authentication) and marks the policies
// concerned; they are Pending (WaitingForAuthentication) whenever
// Auth.Ready reports the identity source not ready, and AuthChanged wakes
// status waiters when that changes. AuthMap adapts the datapath's auth
// table to the manager's Map; /v1/auth reports entries and counters.
package agent
