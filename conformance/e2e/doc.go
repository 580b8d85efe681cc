// Package e2e holds nodemesh's end-to-end scenarios: Gateway API YAML goes
// through the agent, the real xDS server (gRPC over a Unix socket) and the
// builtin proxy to real HTTP backends on loopback, and the tests look at
// what clients and backends see. It has no non-test code.
//
// BenchmarkPolicyHop (root) prints the latency the eBPF redirect and the
// proxy's HTTP policy add to a request between two test-bed workloads at a
// fixed 1k req/s; make bench runs it. Its load generator (hopGen) and
// backend run as separate processes of this test binary, the generator on
// a CPU of its own, and it alternates blocks of direct and redirected
// requests in one run, so the generator's own costs are the same in both
// rows and small next to the hop.
package e2e
