package hcm

import (
	"bytes"

	"github.com/nodemesh/nodemesh/proxylib/resource"
)

// Path normalisation: the connection manager's normalize_path,
// merge_slashes and path_with_escaped_slashes_action, applied to the
// request path before the RBAC filters and the router see it, so that a
// path rule, a route match and the upstream all work on the same bytes.
//
// Envoy's order, reproduced here, is:
//
//  1. A path holding '#' is rejected (Envoy's http_reject_path_with_fragment,
//     on by default, whatever the other settings).
//  2. Escaped slashes: with an action other than KEEP_UNCHANGED, a path
//     part holding %2F or %5C (either case) is rejected (REJECT_REQUEST),
//     or every such sequence is decoded to '/' or '\' (UNESCAPE_AND_*).
//  3. normalize_path: RFC 3986 canonicalisation of the path part. Escapes
//     of unreserved characters (ALPHA, DIGIT, '-', '.', '_', '~') are
//     decoded, so "%2e" is a dot and "%41" is "A"; other valid escapes are
//     kept exactly as sent (hex case included), so reserved characters stay
//     encoded; '\' is a separator and becomes '/'; bytes that may not appear
//     in a path (controls, space, '"', '<', '>', '^', '`', '{', '|', '}',
//     DEL and non-ASCII) are percent-encoded; "." and ".." segments are
//     removed (RFC 3986 §5.2.4), a ".." at the root staying at the root.
//  4. merge_slashes: runs of '/' in the path part become one.
//  5. UNESCAPE_AND_REDIRECT that decoded something answers 307 with the
//     final path as Location (a gRPC request gets 400 instead: gRPC clients
//     do not follow redirects).
//
// The query is never touched. With normalize_path, "%00" or a NUL byte is
// rejected, as Envoy's canonicaliser rejects %00; and, stricter than
// Envoy's default, so is a '%' not followed by two hex digits (Envoy passes
// it through unless its header validator runs with
// uhv_allow_malformed_url_encoding off): decoding next to a stray '%' can
// mint a fresh escape ("%%32%65" would become "%2e", a dot to a backend
// that decodes once, after routing and policy saw no dot).
//
// A path that needs no change is returned as is: pathClean scans it once
// without writing, and only a path that changes is built in the stream's
// scratch buffer.

// pathResult is what normalisation decided for a request.
type pathResult uint8

const (
	pathForward  pathResult = iota // go on with the (possibly rewritten) path
	pathReject                     // answer 400
	pathRedirect                   // answer 307 to the normalised path
)

// detailsPathNormalization is Envoy's response code detail for both the
// 400 and the 307 of path normalisation.
const detailsPathNormalization = "path_normalization_failed"

// Byte classes of a path part.
const (
	cPlain     uint8 = iota // copied as is
	cSlash                  // '/'
	cDot                    // '.'
	cPct                    // '%'
	cBackslash              // '\'
	cEscape                 // must be percent-encoded
	cNUL                    // never valid
)

var pathClass = func() (t [256]uint8) {
	for c := range 256 {
		switch {
		case c == 0:
			t[c] = cNUL
		case c < 0x20 || c >= 0x7f:
			t[c] = cEscape
		}
	}
	for _, c := range []byte(" \"<>^`{|}") {
		t[c] = cEscape
	}
	t['/'], t['.'], t['%'], t['\\'] = cSlash, cDot, cPct, cBackslash
	return t
}()

func unreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// pctAt decodes the escape at p[i] (which is '%').
func pctAt(p []byte, i int) (byte, bool) {
	if i+2 >= len(p) {
		return 0, false
	}
	hi, ok1 := unhex(p[i+1])
	lo, ok2 := unhex(p[i+2])
	return hi<<4 | lo, ok1 && ok2
}

// normalizeRequestPath applies the connection manager's path settings to
// s.rreq.Path. With pathRedirect, s.locBuf holds the Location.
func (s *stream) normalizeRequestPath() pathResult {
	cfg := s.h.cfg
	in := s.rreq.Path
	p, res := normalizePath(s.normBuf[:0], in, cfg.NormalizePath, cfg.MergeSlashes, cfg.EscapedSlashes)
	if res == pathReject {
		return res
	}
	if len(p) > 0 && (len(in) == 0 || &p[0] != &in[0]) {
		// Built in the scratch buffer (never in the codec's): keep its
		// capacity for the next request.
		s.normBuf = p
	}
	s.rreq.Path = p
	if res == pathRedirect {
		if s.grpc {
			return pathReject
		}
		s.locBuf = append(s.locBuf[:0], p...)
	}
	return res
}

// normalizePath returns p normalised as described above, appending to dst
// only when something changes (otherwise it returns p itself).
func normalizePath(dst, p []byte, normalize, merge bool, slashes resource.EscapedSlashesAction) ([]byte, pathResult) {
	if bytes.IndexByte(p, '#') >= 0 {
		return p, pathReject
	}
	// Only origin-form paths are normalised ("*" of OPTIONS is not).
	if len(p) == 0 || p[0] != '/' || !normalize && !merge && slashes == resource.KeepUnchanged {
		return p, pathForward
	}
	path, query := p, []byte(nil)
	if i := bytes.IndexByte(p, '?'); i >= 0 {
		path, query = p[:i], p[i:]
	}
	unescape := false
	if slashes != resource.KeepUnchanged && hasEscapedSlash(path) {
		if slashes == resource.RejectRequest {
			return p, pathReject
		}
		unescape = true
	}
	if !unescape && pathClean(path, normalize, merge) {
		return p, pathForward
	}
	out, ok := canonicalPath(dst, path, normalize, unescape)
	if !ok {
		return p, pathReject
	}
	if merge {
		out = mergeSlashes(out, len(dst))
	}
	out = append(out, query...)
	if unescape && slashes == resource.UnescapeAndRedirect {
		return out, pathRedirect
	}
	return out, pathForward
}

// hasEscapedSlash reports whether path holds %2F or %5C, in either case.
func hasEscapedSlash(path []byte) bool {
	for i := bytes.IndexByte(path, '%'); i >= 0 && i+2 < len(path); {
		if v, ok := pctAt(path, i); ok && (v == '/' || v == '\\') {
			return true
		}
		j := bytes.IndexByte(path[i+1:], '%')
		if j < 0 {
			break
		}
		i += 1 + j
	}
	return false
}

// pathClean reports whether canonicalPath (with no slashes to unescape) and
// mergeSlashes would leave path as it is. It reads path once and writes
// nothing.
func pathClean(path []byte, normalize, merge bool) bool {
	for i := 0; i < len(path); i++ {
		switch pathClass[path[i]] {
		case cPlain, cDot:
		case cSlash:
			if i+1 == len(path) {
				break
			}
			next := path[i+1]
			if merge && next == '/' {
				return false
			}
			if normalize && next == '.' && dotSegment(path[i+1:]) {
				return false
			}
		case cPct:
			if !normalize {
				break
			}
			v, ok := pctAt(path, i)
			if !ok || v == 0 || unreserved(v) {
				return false
			}
			i += 2
		default: // '\', bytes to escape, NUL
			if normalize {
				return false
			}
		}
	}
	return true
}

// dotSegment reports whether seg starts with a literal "." or ".."
// segment. Escaped dots are caught as unreserved escapes.
func dotSegment(seg []byte) bool {
	n := 1
	if len(seg) > 1 && seg[1] == '.' {
		n = 2
	}
	return n == len(seg) || seg[n] == '/' || seg[n] == '\\'
}

// Units of a path part as canonicalPath reads them.
const (
	uByte   uint8 = iota // one output byte
	uSep                 // a path separator
	uDot                 // a dot, literal or escaped
	uKeep                // a valid escape kept as sent (3 bytes)
	uEscape              // a byte to percent-encode
	uBad                 // rejected
)

// unitAt reads the unit at path[i]: its kind, its byte and its length.
func unitAt(path []byte, i int, normalize, unescape bool) (kind, b uint8, n int) {
	c := path[i]
	switch pathClass[c] {
	case cSlash:
		return uSep, '/', 1
	case cDot:
		if normalize {
			return uDot, '.', 1
		}
	case cBackslash:
		if normalize {
			return uSep, '/', 1
		}
	case cEscape:
		if normalize {
			return uEscape, c, 1
		}
	case cNUL:
		if normalize {
			return uBad, 0, 1
		}
	case cPct:
		v, ok := pctAt(path, i)
		switch {
		case !ok:
			if normalize {
				return uBad, 0, 1
			}
		case unescape && v == '/':
			return uSep, '/', 3
		case unescape && v == '\\':
			if normalize {
				return uSep, '/', 3
			}
			return uByte, '\\', 3
		case !normalize:
			return uKeep, 0, 3
		case v == 0:
			return uBad, 0, 3
		case v == '.':
			return uDot, '.', 3
		case unreserved(v):
			return uByte, v, 3
		default:
			return uKeep, 0, 3
		}
	}
	return uByte, c, 1
}

// canonicalPath appends path (which starts with '/') to dst with escaped
// slashes decoded (unescape) and, with normalize, canonicalised. It
// reports false for a path to reject.
func canonicalPath(dst, path []byte, normalize, unescape bool) ([]byte, bool) {
	root := len(dst)
	out := append(dst, '/')
	for i := 1; i < len(path); {
		kind, b, n := unitAt(path, i, normalize, unescape)
		switch kind {
		case uBad:
			return out, false
		case uSep:
			out = append(out, '/')
		case uDot:
			if out[len(out)-1] == '/' {
				if skip, up := dotDirectory(path, i+n, normalize, unescape); skip >= 0 {
					if up {
						out = backUp(out, root)
					}
					i += n + skip
					continue
				}
			}
			out = append(out, '.')
		case uKeep:
			out = append(out, path[i:i+3]...)
		case uEscape:
			out = append(out, '%', upperHex[b>>4], upperHex[b&15])
		default:
			out = append(out, b)
		}
		i += n
	}
	return out, true
}

const upperHex = "0123456789ABCDEF"

// dotDirectory classifies a dot that starts a segment, given the input
// after it: "." or ".." followed by the end or a separator is a directory
// (up for ".."), and skip is how much input after the first dot it
// consumes. Anything else is part of a name: skip is -1.
func dotDirectory(path []byte, j int, normalize, unescape bool) (skip int, up bool) {
	if j == len(path) {
		return 0, false
	}
	kind, _, n := unitAt(path, j, normalize, unescape)
	switch kind {
	case uSep:
		return n, false
	case uDot:
		k := j + n
		if k == len(path) {
			return n, true
		}
		if kind2, _, n2 := unitAt(path, k, normalize, unescape); kind2 == uSep {
			return n + n2, true
		}
	}
	return -1, false
}

// backUp removes the last segment of out, which ends with '/', keeping
// that slash of its parent; at the root (out[root]) it stays.
func backUp(out []byte, root int) []byte {
	end := len(out) - 1
	if end == root {
		return out
	}
	k := bytes.LastIndexByte(out[root:end], '/')
	return out[:root+k+1]
}

// mergeSlashes collapses runs of '/' in out[from:] in place.
func mergeSlashes(out []byte, from int) []byte {
	w := from
	for r := from; r < len(out); r++ {
		if out[r] == '/' && w > from && out[w-1] == '/' {
			continue
		}
		out[w] = out[r]
		w++
	}
	return out[:w]
}
