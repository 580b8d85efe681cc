// Package lbipam is the lab's load balancer: it gives every Service of
// type LoadBalancer (without a spec.loadBalancerClass) an address from a
// pool on the lab network and writes it to status.loadBalancer.ingress,
// as Cilium's LB-IPAM does on a cluster. What makes traffic for the
// address reach a node is not here: the lab network is one L2 segment,
// and the nodes' agents make Gateway addresses local
// (--gateway-address-routes), so the kernel of every node answers ARP
// for them.
//
// Decisions:
//   - Requests: the lbipam.cilium.io/ips annotation (comma-separated, as
//     Cilium's LB-IPAM reads it) asks for specific addresses; the Service
//     gets the first one that is in the pool and not taken, and none when
//     no requested address is usable (the Service stays pending, as with
//     LB-IPAM). Without the annotation the lowest free address.
//   - Assignments are sticky while the Service keeps type LoadBalancer
//     and its address stays requested; contested requests go to the older
//     Service (creationTimestamp, then namespace/name). On start the
//     addresses already in Service status are adopted.
//   - ipMode is Proxy: traffic for the address must reach the node proxy
//     listening on it, not be short-circuited to endpoints by kube-proxy
//     (which skips load-balancer addresses in Proxy mode) or by nodemesh's
//     socket-level translation (which does the same). A Gateway's Service
//     has no endpoints; with VIP mode kube-proxy would reject its traffic.
//   - One reconcile at a time, over every Service, on each change and
//     every resync (10 s), so a failed status write is retried.
package lbipam
