// Package testbed builds a node with workloads out of network namespaces,
// for the datapath's privileged tests, its benchmarks and the standalone
// demo.
//
// A bed is one "node" namespace plus one namespace per workload, each
// joined to the node by a veth pair created directly inside the node
// namespace (the host-side end is lxc<i>, the workload side eth0). An
// optional "external" namespace sits behind the node as the rest of the
// world. Nothing — no interface, address, route, rule or qdisc — is ever
// created in the caller's own namespace; every address below exists only
// inside the bed:
//
//	node         lo: 10.248.255.254/32, fd00:6e6d::fffe/128; lxc<i>: fe80::1
//	workload i   eth0: 10.248.0.<i+1>/32, fd00:6e6d::<i+1>/128,
//	             default via 10.248.255.254 / fe80::1
//	external     eth0: 10.249.0.1/24, fd00:6e6e::1/64 (node: .254 / ::fffe)
//
// Names are "nmtb-<pid>-<seq>-<role>", so parallel test binaries never
// collide; New registers removal with t.Cleanup (it runs when a test fails
// too) and Sweep removes leftovers of crashed runs whose process is gone.
// Beds are independent: each has its own node namespace, so the same
// addresses can exist in many beds at once.
//
// Code runs inside a namespace through Namespace.Do (a locked OS thread);
// sockets opened there keep living in that namespace.
package testbed
