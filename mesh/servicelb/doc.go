// Package servicelb turns Services and EndpointSlices into the datapath's
// Service table (datapath/model.Service rows), which socket-level
// translation uses to send a Pod's connect to a ClusterIP straight to a
// ready backend Pod.
//
// Data in: the Services, EndpointSlices and ServiceCIDRs of a snapshot.
// Data out: Table, one row per {address, port, protocol} that kube-proxy
// answers for a Service inside the cluster (its ClusterIPs, externalIPs
// and load-balancer IPs), plus marker rows; and Ranges, the prefixes a
// Pod under egress enforcement may not reach untranslated (every
// ServiceCIDR and every ClusterIP). Decisions:
//   - externalIPs and load-balancer IPs are translated like the ClusterIP
//     (kube-proxy short-circuits them for in-cluster clients too, so they
//     would otherwise reach a backend judged as the external address). A
//     load-balancer IP in Proxy mode is not: its traffic really goes to
//     the load balancer.
//   - NodePorts are marker rows (model.NodePortFrontend, no backends):
//     the socket programs do not translate them, and from_workload drops
//     a new flow to one on a node's address under egress enforcement
//     (the node's NAT would send it to a backend judged as host or
//     remote-node). Translating them too would need every node's
//     addresses in the table; no client inside the cluster needs a
//     NodePort to reach a Service it can reach by ClusterIP.
//   - SCTP ports are marker rows on every frontend address: no socket
//     hook translates SCTP, so under egress enforcement such flows are
//     dropped instead of judged as the Service address.
//   - Ranges include each ClusterIP as a host prefix even though a
//     ServiceCIDR holds it: a cluster that serves no ServiceCIDRs still
//     gets every port and protocol of its Services' addresses covered.
//   - Backends are the endpoints whose conditions.ready is not false
//     (unset counts as ready, as kube-proxy reads it), deduplicated by
//     address and port across the Service's slices, sorted so the table is
//     stable; the backend port is the slice port with the Service port's
//     name (kube-proxy's matching), so a named targetPort resolves per Pod.
//   - A Service port without any ready backend is still a row, with no
//     backends: the datapath refuses such connects instead of passing the
//     ClusterIP on unjudged.
//   - TCP and UDP frontends carry backends, SCTP ones are markers. IPv6
//     ClusterIPs are rows too, with the backends of the Service's IPv6
//     slices (the socket programs translate both families). Everything else is skipped, never an error: this is a
//     cache of cluster state, not user input to reject.
//   - Slices are bounded by the API server's own limits (1000 endpoints
//     per slice); Backends per frontend are capped at model.MaxBackends.
package servicelb
