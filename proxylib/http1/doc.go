// Package http1 is the proxy's zero-allocation HTTP/1.1 codec: it parses
// request and response heads in place over a caller-owned buffer, decodes
// chunked bodies incrementally, and appends heads and chunk framing to
// caller-owned output buffers.
//
// Invariants:
//   - Parsing never allocates: every []byte in a parsed Request or Response
//     points into the buffer it was parsed from, and header names are
//     lower-cased in place in that buffer. (Only when Limits allow more
//     than MaxHeaders fields does a Request allocate storage for them,
//     once, growing it to the largest count it saw; callers reuse
//     Requests.)
//   - Parsing is strict, as a proxy must be to avoid request smuggling: lines
//     end in CRLF; header names are tokens with no whitespace before the
//     colon; values hold no control bytes but HTAB; obsolete line folding is
//     rejected; Transfer-Encoding may only be "chunked"; a message with both
//     Content-Length and Transfer-Encoding is rejected; repeated
//     Content-Length values must agree; chunk sizes are bounded hexadecimal.
//   - Line ends: RFC 9112 §2.2 lets a recipient accept a bare LF; this
//     parser does not (ErrBadLineEnd), because two parsers that disagree on
//     where a line ends are how requests get smuggled. A bare LF or a CR not
//     followed by LF is refused as soon as it arrives, even in a head that
//     is not complete yet, so a client using bare line ends gets its 400 at
//     once instead of a wait for a CRLFCRLF it never sends.
//   - Host (RFC 9112 §3.2): an HTTP/1.1 request has exactly one Host field,
//     any request at most one, and its value passes ValidHost, the check
//     HTTP/2 requests pass too (uri-host [":" port] without userinfo; no
//     empty host or port). Anything else is ErrBadHost, answered 400. An
//     absolute-form target ("http://a/x") needs a valid Host field too, but
//     its own authority wins (§3.2.2): Request.Host and the Host field are
//     both rewritten to it, so routing, policy and the upstream see one
//     host.
//   - Heads are bounded (Limits: bytes of the head as received, and header
//     fields; MaxHeadBytes and MaxHeaders by default, Envoy's defaults);
//     exceeding a bound is an error, never a silent truncation. The byte
//     bound counts the request line, the header lines and their line ends,
//     so it is reached a few bytes per line before Envoy's
//     max_request_headers_kb, which counts names and values.
//   - Parsing a request head that arrives in pieces costs linear time:
//     after ErrIncomplete the Request remembers how far it checked the
//     (growing) buffer and resumes there.
//
// Data enters as bytes read by the caller and leaves as parsed views; the
// caller decides what to forward and owns every buffer.
package http1
