package http1

// Validation shared by every codec that produces an HTTP/1.1 head: the
// HTTP/2 server checks a request with these before it is written upstream
// as HTTP/1.1, so a request that arrived over HTTP/2 passes exactly the
// checks of one that arrived over HTTP/1.1. The functions are generic over
// string and []byte so that neither side converts (and allocates).

// ValidHost reports whether h is an acceptable Host header or :authority:
// RFC 3986 host [":" port] without userinfo (RFC 9110 §4.2.4 forbids it
// for http and https). The host is a bracketed IPv6 literal, or a reg-name
// or IPv4 address of unreserved, sub-delims and percent-encoded octets; a
// port, when the colon is present, is 1 to 5 digits no greater than 65535.
// An empty port ("host:") and an empty host are refused: RFC 3986 allows
// the first, but a proxy that accepts every spelling its upstreams might
// read differently invites disagreement, so the strict form is the only one.
func ValidHost[T ~string | ~[]byte](h T) bool {
	if len(h) == 0 {
		return false
	}
	i := 0
	if h[0] == '[' {
		end := -1
		for j := 1; j < len(h); j++ {
			if h[j] == ']' {
				end = j
				break
			}
		}
		if end < 3 || !validIPv6(h[1:end]) {
			return false
		}
		i = end + 1
	} else {
		for ; i < len(h) && h[i] != ':'; i++ {
			c := h[i]
			if c == '%' {
				if i+2 >= len(h) || !isHex(h[i+1]) || !isHex(h[i+2]) {
					return false
				}
				i += 2
				continue
			}
			if !regNameTable[c] {
				return false
			}
		}
		if i == 0 {
			return false
		}
	}
	if i == len(h) {
		return true
	}
	if h[i] != ':' {
		return false
	}
	port := h[i+1:]
	if len(port) == 0 || len(port) > 5 {
		return false
	}
	n := 0
	for j := 0; j < len(port); j++ {
		c := port[j]
		if c < '0' || c > '9' {
			return false
		}
		n = n*10 + int(c-'0')
	}
	return n <= 65535
}

// validIPv6 checks the characters of a bracketed literal; zone identifiers
// (RFC 6874) and IPvFuture are refused. The shape is checked loosely (hex
// digits, colons, dots, at least two colons): the literal selects no route
// and is forwarded verbatim, so only the bytes that could break a head or
// a parser matter.
func validIPv6[T ~string | ~[]byte](s T) bool {
	colons := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ':':
			colons++
		case c == '.' || isHex(c):
		default:
			return false
		}
	}
	return colons >= 2
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// regNameTable marks RFC 3986 unreserved and sub-delims bytes.
var regNameTable = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = true
	}
	for _, c := range "-._~!$&'()*+,;=" {
		t[c] = true
	}
	return t
}()

// ValidOriginForm reports whether p is a request-target in origin-form as
// ParseRequest accepts it: a "/" then visible ASCII only (no SP, control
// bytes, DEL or bytes above 0x7e), and no fragment.
func ValidOriginForm[T ~string | ~[]byte](p T) bool {
	if len(p) == 0 || p[0] != '/' {
		return false
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; c <= ' ' || c >= 0x7f || c == '#' {
			return false
		}
	}
	return true
}

// ValidFieldValue reports whether v may be written as a field value as
// ParseRequest reads it back: no control bytes but HTAB, no DEL, and no
// leading or trailing SP or HTAB (which the parser would strip, and which
// RFC 9113 §8.2.1 makes an HTTP/2 request malformed).
func ValidFieldValue[T ~string | ~[]byte](v T) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	if n := len(v); n > 0 && (v[0] == ' ' || v[0] == '\t' || v[n-1] == ' ' || v[n-1] == '\t') {
		return false
	}
	return true
}

// ValidToken reports whether t is a non-empty RFC 9110 token (a method or
// a field name).
func ValidToken[T ~string | ~[]byte](t T) bool {
	for i := 0; i < len(t); i++ {
		if !tokenTable[t[i]] {
			return false
		}
	}
	return len(t) > 0
}

// ParseContentLength parses a Content-Length value as ParseRequest does:
// 1 to 18 decimal digits, nothing else (no sign, no list, no spaces).
func ParseContentLength[T ~string | ~[]byte](v T) (int64, bool) {
	if len(v) == 0 || len(v) > 18 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}
