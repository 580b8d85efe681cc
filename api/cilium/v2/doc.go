// Package v2 holds the cilium.io/v2 policy kinds nodemesh reads —
// CiliumNetworkPolicy and CiliumClusterwideNetworkPolicy — with Cilium's
// JSON field names, so manifests written for Cilium decode unchanged.
//
// The types describe every field a Cilium 1.18 policy may carry, including
// the ones nodemesh does not enforce (toFQDNs, toServices, DNS rules, TLS
// interception, CIDR groups, ...): a manifest must decode so that policy
// compilation (mesh/policy) can reject exactly the rule it cannot honour,
// with an error naming it, while the policy's other rules and every other
// policy keep being enforced. Decoding in mesh/input is strict, so an
// unknown field is still an error.
//
// Values are plain data: nothing here validates or defaults (compilation
// does), and the same types are filled from files in standalone mode and
// from the API server in Kubernetes mode. Deep copies are hand-written
// (deepcopy.go) and checked against randomly filled values by a test.
package v2
