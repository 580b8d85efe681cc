// Package controlplane builds and runs a real Kubernetes control plane on
// this machine: etcd, kube-apiserver and kube-controller-manager built
// from their Go modules, not faked. It is the bottom half of the lab
// (package lab puts it in a network namespace of its own, with nodes
// beside it) and, alone on loopback, what the integration tests of
// nodemesh's Kubernetes code run against.
//
// Builds. The programs come from the nested module conformance/kube (its
// own go.mod, so k8s.io/kubernetes never enters the main module's). Build
// compiles etcd, kube-apiserver, kube-controller-manager, kube-proxy,
// kubectl, the Gateway API conformance suite's echo-basic backend and the
// compiled conformance suite into conformance/.cache/kube-<key>/, where key
// hashes the nested module's go.mod, go.sum and Go files and the Go
// version: a cached build is reused until an input changes. Parallel
// callers share one build through a file lock; a new build removes the
// builds of earlier inputs. A cold build takes the better part of an hour
// on two busy cores (kube-apiserver and kubectl dominate); Go's own build
// cache makes a rebuild after a small change a matter of linking.
//
// Clusters. Start runs etcd (no fsync: the data is disposable) and
// kube-apiserver on free ports of the given host with a static admin
// token (system:masters), AlwaysAllow authorization (RBAC with
// Options.RBAC, which the lab sets), a generated service-account key pair
// and zero shutdown delays, so a cluster starts in seconds and stops at
// once. The API server's certificate is signed by a cluster CA generated
// per cluster and names the bind address, 127.0.0.1, the "kubernetes"
// Service's ClusterIP (10.96.0.1) and its DNS names, so the same CA
// verifies it however a client reaches it; kube-controller-manager
// publishes that CA to every namespace. Nothing binds outside the given
// host. Child processes get SIGKILL if the parent dies (Pdeathsig), so a
// crashed test leaves no control plane behind. Apply creates objects from
// YAML through discovery and the dynamic client and waits for CRDs to be
// established.
//
// Tests use ForTest: it skips with a clear message when the binaries are
// not built (a plain `go test ./...`), and builds them when
// NODEMESH_INTEGRATION=1 (what `make integration` sets), so CI runs the
// integration tests against the real API server without every developer's
// `make test` paying for the build.
package controlplane
