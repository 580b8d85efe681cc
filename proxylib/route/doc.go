// Package route compiles a decoded RouteConfiguration into an immutable
// lookup table and matches requests against it with Envoy's semantics.
//
// Virtual host selection (by Host/:authority, case-insensitively; a port in
// the host is part of the name unless the connection manager stripped it):
// exact domain, then the longest "*suffix" wildcard (the "*" stands for at
// least one character, so "*.example.com" matches "a.b.example.com" but not
// "example.com"), then the longest "prefix*" wildcard, then "*". Within the
// virtual host, routes are tried in configuration order and the first match
// wins. No virtual host or no route yields nil, which the caller answers
// with 404.
//
// Path matchers: prefix is a plain byte prefix of :path (query included, as
// in Envoy); path and safe_regex compare the path without its query string
// (safe_regex must match all of it); path_separated_prefix requires the
// prefix to be followed by the end of the path or "/". Header matchers see
// all values of a repeated header joined with ","; a missing header never
// satisfies string_match, not even with invert_match (Envoy's documented
// behaviour without treat_missing_header_as_empty), while present_match
// false, or present_match true with invert_match, matches it. Query parameter matchers use the first occurrence of the
// name; names and values are percent-decoded and "+" reads as a space.
//
// Invariants: a Table is built once per RouteConfiguration version and never
// mutated; matching allocates nothing (scratch buffers live in the Request).
package route
