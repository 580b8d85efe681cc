// Package modbuild holds what the builds of pinned tools share: the
// Kubernetes binaries (internal/lab/controlplane), SPIRE
// (internal/spiretest) and the hubble CLI (internal/hubble) are each pinned by a nested Go module, built once
// into a gitignored cache directory named by a hash of every build input,
// and shared between parallel test packages through a file lock.
//
// It uses the standard library only.
package modbuild
