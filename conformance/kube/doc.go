// Package kube is the root of a nested Go module that builds what the lab,
// the conformance harness and the Kubernetes integration tests run but the
// main module must not depend on: etcd (cmd/etcd), kube-apiserver,
// kube-controller-manager, kube-proxy and kubectl (cmd/..., from
// k8s.io/kubernetes and k8s.io/kubectl with every staging module pinned by
// replace directives), the Gateway API conformance suite's echo-basic
// backend, and the suite itself (suite/). Keeping them here keeps
// k8s.io/kubernetes out of the main module's go.mod.
// internal/lab/controlplane builds this module and caches the binaries.
package kube
