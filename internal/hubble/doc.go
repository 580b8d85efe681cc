// Package hubble builds the real hubble CLI for the tests that run it
// against nodemesh's Hubble Observer (mesh/flow/observer).
//
// The CLI comes from the nested module internal/tools/hubble, which pins
// the Cilium release. Build compiles it once into the gitignored
// conformance/.cache/hubble-<key>/, where the key hashes every input of the
// build (that module's go.mod, go.sum and Go files, the Go version and the
// build flags), so a changed pin builds afresh and an unchanged one costs
// nothing; older builds are removed. Concurrent test packages share one
// build through a file lock.
//
// A cold build compiles a large part of Cilium and takes minutes; `make
// hubble` (run by `make integration`) does it once. ForTest never skips: a
// missing CLI is built and a failed build fails the test, so a test that
// needs the CLI cannot pass silently without it.
package hubble
