package translator

import (
	"net/netip"
	"strings"
	"unicode/utf8"
)

// Limits stock Envoy enforces that a valid IR can exceed. Each is checked
// where the value is emitted; what happens instead is described in the
// package comment.
const (
	// maxHeaderBytes bounds a header name or value in HeaderValue.
	maxHeaderBytes = 16384
	// maxQueryNameBytes bounds QueryParameterMatcher.name.
	maxQueryNameBytes = 1024
	// maxHeadersToAdd bounds each *_headers_to_add list.
	maxHeadersToAdd = 1000
	// maxDirectResponseBody is RouteConfiguration's default
	// max_direct_response_body_size_bytes.
	maxDirectResponseBody = 4096
	// maxALPNBytes is the TLS limit on one ALPN protocol name.
	maxALPNBytes = 255
)

// protoText reports whether s can be carried in a proto string field that
// Envoy also refuses NUL, CR and LF in (names, domains, header values,
// paths, rewrites).
func protoText(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsAny(s, "\x00\r\n")
}

// hostLiteral writes a hostname the way it appears in a Host header or a
// URL authority: IPv6 literals get brackets, DNS names are lower-cased
// (hosts compare case-insensitively and Envoy lower-cases domains).
func hostLiteral(h string) string {
	// Only an IPv6 literal has a ':'; parsing anything else would fail
	// and allocate its error, once per domain of every virtual host.
	if !strings.Contains(h, ":") {
		return strings.ToLower(h)
	}
	if a, err := netip.ParseAddr(h); err == nil && a.Is6() {
		return "[" + strings.ToLower(h) + "]"
	}
	return strings.ToLower(h)
}
