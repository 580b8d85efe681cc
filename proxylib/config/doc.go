// Package config is the proxy's configuration state: it receives resources
// from the xDS client, decodes them (package resource), keeps the last
// accepted set of every type, decides what is warm, and publishes an
// immutable routing snapshot (hcm.Routing) and the desired listeners
// (listener.Manager) after every accepted update.
//
// Decisions (as Envoy behaves, where the API leaves room):
//   - An update with any invalid resource is rejected as a whole (NACK) and
//     the previous configuration of that type keeps serving; nothing of the
//     update is applied. A listener update that cannot bind a new address is
//     rejected the same way.
//   - Warming: an EDS cluster becomes active once its
//     ClusterLoadAssignment is present (STATIC and ORIGINAL_DST clusters at
//     once), and a cluster originating TLS once its SDS Secrets are; a
//     listener once the RouteConfigurations, Secrets and ECDS
//     TypedExtensionConfigs its chains reference are present. While an updated listener or cluster
//     warms, its previous version keeps serving. After Envoy's default
//     initial_fetch_timeout (15 s) a resource stops waiting: a cluster
//     serves with no endpoints (503), a listener with its missing route
//     configurations treated as empty (404).
//   - RouteConfigurations, ClusterLoadAssignments, Secrets and
//     TypedExtensionConfigs are subscribed by name from what listeners and
//     clusters reference (a discovered filter's name is its
//     TypedExtensionConfig's name); they
//     are dropped when no longer referenced. For state-of-the-world RDS,
//     EDS and SDS a response updates the resources it carries and leaves the
//     others as they were.
//   - Decoded resources are cached by their serialized bytes, so an
//     unchanged resource is neither decoded nor rebuilt again: unchanged
//     filter chains keep their handler (their connections are untouched)
//     and unchanged clusters keep their balancer state. A changed
//     RouteConfiguration decodes only the virtual hosts whose bytes
//     changed and keeps the others' decoded form (routes.go): the result
//     and any rejection are those of decoding it whole.
//   - ECDS updates publish a new routing snapshot only: listeners and their
//     chain handlers are untouched, so a policy update never drains a
//     connection. Types are checked both ways: a TypedExtensionConfig its
//     filters do not accept, or a listener referencing one of the wrong
//     type, is NACKed.
//   - Memory goes back to the OS after configuration changes: once updates
//     pause for 100 ms (or 5 s after the first of a run that never
//     pauses), the heap is collected and its free pages are returned
//     (debug.FreeOSMemory). Decoding a configuration makes garbage many
//     times the size of the result (1 000 routes: about 5 MB live, a heap
//     of twice that afterwards), while serving HTTP/1.1 allocates next to
//     nothing, so without this the heap would stay at its configuration
//     peak until the runtime's two-minute forced collection and its
//     gradual scavenging. A release costs a full collection; the next one
//     waits at least 20 times the CPU time the last took (CPU, not wall
//     time, which a loaded machine stretches), so releasing spends at most
//     5 % of a CPU however fast updates come (release.go).
//
// Close stops the warming timer and a pending release when the proxy
// stops, so no publication races the listeners' shutdown.
//
// UDP listeners (udp_proxy) are published to a udpproxy.Manager next to
// the TCP ones: new UDP addresses are bound first and the two updates
// apply together or not at all; a TCP and a UDP listener may share an
// address and port.
//
// Data enters through Update (called by the xDS client's goroutine) and
// leaves through hcm.Runtime.Store and listener.Manager.Apply; Status and
// Ready serve the admin endpoint.
package config
