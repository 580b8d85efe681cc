// Package v1 is the root of Hubble's API as Go code generated from the
// .proto files of the Cilium release pinned by the nested module
// internal/tools/hubble: package flow (flow.Flow, flow.FlowFilter and the
// enums, among them flow.DropReason with Cilium's drop-reason codes),
// package relay (node states, referenced by observer) and package observer
// (the observer.Observer gRPC service).
//
// The generated files are committed; `make generate` rewrites them from
// the module cache (gen.sh) and `make check-generate` fails when they
// differ. Nothing here is edited by hand. The proto package and file names
// are Cilium's, so the real hubble CLI and Hubble UI talk to nodemesh's
// Observer unchanged; mesh/flow/observer explains why the API is generated
// rather than imported from github.com/cilium/cilium.
package v1
