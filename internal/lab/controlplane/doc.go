// Package kubeenv runs a real Kubernetes control plane on this machine for
// the conformance harness and the integration tests of nodemesh's
// Kubernetes code: etcd and kube-apiserver (and, for conformance,
// kube-controller-manager) built from their Go modules, not faked.
//
// Builds. The programs come from the nested module conformance/kube (its
// own go.mod, so k8s.io/kubernetes never enters the main module's). Build
// compiles etcd, kube-apiserver, kube-controller-manager, the conformance
// suite's echo-basic backend and the compiled conformance suite into
// conformance/.cache/kube-<key>/, where key hashes the nested module's
// go.mod, go.sum and Go files and the Go version: a cached build is reused
// until an input changes. Parallel callers share one build through a file
// lock; a new build removes the builds of earlier inputs. A cold build
// takes about seven minutes on two cores (kube-apiserver dominates); Go's
// own build cache makes a rebuild after a small change fast.
//
// Clusters. Start runs etcd (no fsync: test data is disposable) and
// kube-apiserver on free loopback ports with a static admin token,
// AlwaysAllow authorization, a generated service-account key pair and
// zero shutdown delays, so a cluster starts in seconds and stops at once.
// Nothing binds outside the given loopback host. Child processes get
// SIGKILL if the parent dies (Pdeathsig), so a crashed test leaves no
// control plane behind. Apply creates objects from YAML through discovery
// and the dynamic client and waits for CRDs to be established.
//
// Tests use ForTest: it skips with a clear message when the binaries are
// not built (a plain `go test ./...`), and builds them when
// NODEMESH_INTEGRATION=1 (what `make integration` sets), so CI runs the
// integration tests against the real API server without every developer's
// `make test` paying for the build.
package kubeenv
