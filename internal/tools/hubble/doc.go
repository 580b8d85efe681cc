// Package hubble is the root of a nested Go module that pins the Cilium
// release nodemesh's Hubble support is tested against. It serves two
// purposes:
//
//   - the real hubble CLI (github.com/cilium/cilium/hubble) is built from
//     it for the tests that run `hubble observe`, `hubble status` and
//     `hubble list nodes` against the agent's Observer (package
//     internal/hubble caches the build, keyed by this module's files);
//   - `make generate` reads Hubble's .proto files from this module's copy
//     of Cilium in the module cache and builds protoc-gen-go-grpc from it,
//     to generate mesh/flow/observer/api/v1.
//
// It is a module of its own because Cilium's go.mod would raise the main
// module's Kubernetes libraries (v0.36.3, the release of the API server the
// tests run) to Cilium's and move netlink, which the datapath uses, to an
// untagged commit. Nothing built from this module is linked into
// nodemesh's binaries. The CLI builds from Cilium's own requirements, with
// no replacements.
package hubble
