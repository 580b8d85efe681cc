// Package perf holds nodemesh's performance scenarios: programs and
// benchmarks that print numbers for BENCHMARKS.md. Nothing here asserts a
// speed; the numbers are read by people, next to peers measured on the same
// machine in the same run.
//
//   - proxybench: HTTP/1.1 keep-alive throughput and latency under wrk for
//     a backend served directly, through nginx, through haproxy and through
//     nodemesh-proxy (configured by nodemesh-agent from Gateway API YAML).
//   - translate benchmarks (translate_test.go): Gateway API objects to
//     Envoy resources, the whole pipeline, at several sizes.
package perf
