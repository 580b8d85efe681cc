// Package suite runs the official Gateway API conformance suite
// (sigs.k8s.io/gateway-api/conformance). The harness compiles it with
// `go test -c` and runs the binary with the suite's own flags
// (-gateway-class, -conformance-profiles, -report-output, ...) against the
// cluster in $KUBECONFIG.
package suite
