// Package datapathv1 holds nodemesh's datapath identity listener filter
// configuration (datapath.proto, generated Go committed; `go generate`
// rebuilds it with protoc and protoc-gen-go) and its validation, which
// both the translator and the proxy run.
//
// The filter is named FilterName and its typed config has type URL
// TypeURL. The RBAC principal that reads what it found is Envoy's
// filter_state principal with key SourceIdentityKey and an exact string
// match on the decimal identity.
package datapathv1
