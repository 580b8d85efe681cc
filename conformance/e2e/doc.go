// Package e2e holds nodemesh's end-to-end scenarios: Gateway API YAML goes
// through the agent, the real xDS server (gRPC over a Unix socket) and the
// builtin proxy to real HTTP backends on loopback, and the tests look at
// what clients and backends see. It has no non-test code.
//
// BenchmarkPolicyHop (root) prints the latency the eBPF redirect and the
// proxy's HTTP policy add to a request between two test-bed workloads at a
// fixed 1k req/s per path; make bench runs it (HOP_N requests per path).
// Its load generator (hopGen) and backend run as separate processes of
// this test binary, the generator on a CPU of its own. It interleaves
// direct and redirected requests one by one (pairs in a random order), so
// the generator's own costs and the machine's noise are shared by both
// rows, and it states the added latency with a 95 % confidence interval
// from a paired block bootstrap (pairedQuantileDiffs).
package e2e
