// Package headermatch runs the header match HTTP filter
// (nodemesh.filters.http.header_match.v1, decoded by package resource):
// Cilium's headerMatches with a mismatch action, which act on a request
// instead of denying it.
//
// For a request, every rule whose scope matches — decided by package rbac
// exactly as an RBAC policy is, on the connection's original destination,
// its peer and the request — runs its header matches in order. A header
// match compares the named header (repeated values joined with ",", in
// constant time) with its value, or checks that it is present for an
// empty value, and on a mismatch:
//
//   - LOG records the header as missing (name and expected value);
//   - ADD appends the header with the value (beside a present one) and
//     records it as missing;
//   - DELETE removes a present header whose value differs from a
//     non-empty value and records the removed value as rejected;
//   - REPLACE sets the header to the value, recording a present value as
//     rejected and the expected one as missing.
//
// Each match and each rule's scope see the headers as the earlier ones
// left them, as in Cilium's proxy. Every rule that applies runs, not
// just the first. Records of secret values read "[redacted]". The
// connection manager forwards the edited headers and puts the records in
// the request's access-log entry.
//
// Engines are immutable and safe for concurrent use.
package headermatch
