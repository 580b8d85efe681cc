// Package nodemesh is a sidecar-less L7 service mesh: a per-node agent turns
// Gateway API and L7 network policy into Envoy xDS resources served to a
// per-node proxy, eBPF programs redirect workload traffic to that proxy, and
// a SPIFFE-backed handshake gates which identities may talk.
//
// This root package holds no code; its tests hold the project's import
// boundaries (see boundaries_test.go).
package nodemesh
