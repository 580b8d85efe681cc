// Package api holds nodemesh's own Kubernetes API: the Go types (package
// v1alpha1) and their CustomResourceDefinition manifests, embedded here so
// the controller, the test harnesses and the Helm chart install exactly the
// same schema.
package api
