// Package kafkav1 holds nodemesh's Kafka policy filter configuration
// (kafka.proto, generated Go committed; `go generate` rebuilds it with
// protoc and protoc-gen-go) and the validation both the translator and the
// proxy run on it.
//
// The filter is named FilterName and its typed config has type URL TypeURL;
// it reaches the proxy through ECDS as a TypedExtensionConfig. Validate (and
// ValidateAll, the protoc-gen-validate-style alias) rejects what the proxy
// would NACK, naming the field, so a translator can check every resource it
// emits the way it checks Envoy resources.
//
// Roles expand to API keys as Cilium expands them, plus one key per role
// that today's default clients need (RoleAPIKeys); the policy compiler
// uses the same function, so there is one definition of a role.
package kafkav1
