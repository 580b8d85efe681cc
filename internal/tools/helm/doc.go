// Package helm is the root of a nested Go module that pins the helm CLI
// (helm.sh/helm/v4/cmd/helm). The chart tests in internal/chart build it once
// into conformance/.cache/helm-<version>/ and run `helm template` and
// `helm lint` with it, so the chart is rendered by the real Helm engine.
//
// It is a module of its own because helm v4 requires well over a hundred
// modules (OCI registries, Kubernetes kubectl libraries, cobra, ...) none of
// nodemesh's binaries link; pinning them in the main go.mod would widen every
// build and every dependency review for one test tool.
package helm
