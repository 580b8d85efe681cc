// Package modbuild holds what the builds of pinned tools share: the
// Kubernetes binaries (internal/lab/controlplane), SPIRE
// (internal/spiretest) and the hubble CLI (internal/hubble) are each pinned by a nested Go module, built once
// into a gitignored cache directory named by a hash of every build input,
// and shared between parallel test packages through a file lock.
//
// Cache is that once: a tool's builds live in
// conformance/.cache/<prefix>-<key> (Key over the nested module's files,
// the build flags and `go env`), so a changed input builds into a fresh
// directory and an unchanged one costs a hash. The tool's own package
// keeps only what differs: what it builds (Cache.Go and GoOutput run the
// go command in the nested module, with the command line and its output
// in the build's log) and where its outputs are.
//
// Invariants. A build directory is used only once its "complete" marker
// exists, and the marker is written last, after the tool's build function
// returned without error: an interrupted or failed build is never found,
// and the next caller builds again into the same directory. The marker
// may hold a note from the build (the Kubernetes build keeps the path of
// the Gateway API CRDs, which live in the Go module cache); Usable lets a
// tool reject a complete build whose outside files are gone. Build takes
// an exclusive flock on <dir>/.lock and looks for the complete build again
// under it, so concurrent callers in any process run one build and share
// it; Find takes no lock, as the marker alone says a build is finished. A
// new build removes the tool's other directories (<prefix>-*): builds of
// earlier inputs are hundreds of megabytes and never used again.
//
// It uses the standard library only.
package modbuild
