// Package servicelb turns Services and EndpointSlices into the datapath's
// Service table (datapath/model.Service rows), which socket-level
// translation uses to send a Pod's connect to a ClusterIP straight to a
// ready backend Pod.
//
// Data in: the Services and EndpointSlices of a snapshot. Data out: one
// row per {ClusterIP, port, protocol} of every Service with a ClusterIP
// (headless Services and other types' extra frontends are not rows: a
// NodePort or LoadBalancer address is reached from outside the node, where
// socket hooks do not run). Decisions:
//   - Backends are the endpoints whose conditions.ready is not false
//     (unset counts as ready, as kube-proxy reads it), deduplicated by
//     address and port across the Service's slices, sorted so the table is
//     stable; the backend port is the slice port with the Service port's
//     name (kube-proxy's matching), so a named targetPort resolves per Pod.
//   - A Service port without any ready backend is still a row, with no
//     backends: the datapath refuses such connects instead of passing the
//     ClusterIP on unjudged.
//   - Only TCP and UDP. IPv6 ClusterIPs are rows too (with the backends
//     of the Service's IPv6 slices): the socket programs translate IPv4
//     only, but from_workload refuses to judge a flow to any frontend in
//     the table under egress enforcement. Everything else is skipped,
//     never an error: this is a cache of cluster state, not user input to
//     reject.
//   - Slices are bounded by the API server's own limits (1000 endpoints
//     per slice); Backends per frontend are capped at model.MaxBackends.
package servicelb
