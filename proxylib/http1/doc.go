// Package http1 is the proxy's zero-allocation HTTP/1.1 codec: it parses
// request and response heads in place over a caller-owned buffer, decodes
// chunked bodies incrementally, and appends heads and chunk framing to
// caller-owned output buffers.
//
// Invariants:
//   - Parsing never allocates: every []byte in a parsed Request or Response
//     points into the buffer it was parsed from, and header names are
//     lower-cased in place in that buffer.
//   - Parsing is strict, as a proxy must be to avoid request smuggling: lines
//     end in CRLF; header names are tokens with no whitespace before the
//     colon; values hold no control bytes but HTAB; obsolete line folding is
//     rejected; Transfer-Encoding may only be "chunked"; a message with both
//     Content-Length and Transfer-Encoding is rejected; repeated
//     Content-Length values must agree; chunk sizes are bounded hexadecimal.
//   - Heads are bounded (MaxHeadBytes bytes, MaxHeaders fields); exceeding a
//     bound is an error, never a silent truncation.
//
// Data enters as bytes read by the caller and leaves as parsed views; the
// caller decides what to forward and owns every buffer.
package http1
