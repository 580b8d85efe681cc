// Package header owns the proxy's protocol-neutral header representation: an
// ordered list of name/value byte slices, and the compiled header edits of
// Envoy's request_headers_to_add / request_headers_to_remove family.
//
// Invariants:
//   - Names in a List are lower-case. The HTTP/1.1 codec lower-cases names in
//     place while parsing; HTTP/2 names are lower-case on the wire; names that
//     come from configuration are lower-cased when compiled.
//   - A List never owns its bytes: fields point into a connection's read
//     buffer or into immutable configuration, so a List is only valid while
//     the buffer it views is. Nothing here allocates unless a List outgrows its
//     capacity.
//
// Data enters as a List built by a codec and leaves as the same List after a
// Mutation was applied; writers serialise it for the next hop.
package header
