// Package e2e holds nodemesh's end-to-end scenarios: Gateway API YAML goes
// through the agent, the real xDS server (gRPC over a Unix socket) and the
// builtin proxy to real HTTP backends on loopback, and the tests look at
// what clients and backends see. It has no non-test code.
package e2e
