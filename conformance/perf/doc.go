// Package perf holds nodemesh's performance scenarios: programs and
// benchmarks that print numbers for BENCHMARKS.md. Nothing here asserts a
// speed; the numbers are read by people, next to peers measured on the same
// machine in the same run.
//
//   - proxybench: throughput and latency of a backend served directly,
//     through nginx, through haproxy and through nodemesh-proxy (configured
//     by nodemesh-agent from Gateway API YAML): HTTP/1.1 keep-alive under
//     wrk on one core and on two cores each, HTTP/2 (h2c and TLS) under
//     h2load next to nginx, and nodemesh-proxy's memory with 1000 routes.
//   - translate benchmarks (translate_test.go): Gateway API objects to
//     Envoy resources, the whole pipeline, at several sizes.
//   - BenchmarkFirstConnection (auth_test.go, root): how long the first
//     connection of a relation that needs mutual authentication takes,
//     authenticated eagerly from policy versus on demand after the
//     datapath dropped its SYN; auth/handshake's BenchmarkHandshake gives
//     the handshake rate.
package perf
