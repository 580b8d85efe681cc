// Package headermatchv1 holds nodemesh's header match HTTP filter
// configuration (headermatch.proto, generated Go committed; `go generate`
// rebuilds it with protoc and protoc-gen-go) and the validation both the
// translator and the proxy run on it.
//
// The filter carries what Envoy's RBAC filter cannot: Cilium's
// headerMatches with a mismatch action (LOG, ADD, DELETE, REPLACE), which
// act on a request instead of denying it. Its configuration reaches the
// proxy through ECDS as a TypedExtensionConfig of type TypeURL, and the
// HTTP filter is named after that TypedExtensionConfig, as Envoy requires
// of discovered filters. Stock Envoy has no such filter and rejects a
// listener that uses it; the translator says so in a warning.
//
// Validate (and ValidateAll, the protoc-gen-validate-style alias) rejects
// what the proxy would NACK, naming the field. ForbiddenHeader is the one
// definition of the headers an action may not touch, shared with the
// policy compiler.
package headermatchv1
