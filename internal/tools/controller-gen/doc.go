// Package controllergen is the root of a nested Go module that pins
// controller-gen (sigs.k8s.io/controller-tools/cmd/controller-gen), the
// generator of the deep copies and CustomResourceDefinition manifests in
// package api. `make generate` builds it into ./bin from this module.
//
// It is a module of its own because controller-tools requires newer k8s.io
// modules than the ones the main module links (and than the API server the
// integration tests build in conformance/kube). controller-gen only parses
// the api packages' source with the main module's own dependencies, so the
// versions it was built with never reach nodemesh's binaries.
package controllergen
