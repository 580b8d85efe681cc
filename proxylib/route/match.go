package route

import (
	"bytes"

	"github.com/nodemesh/nodemesh/proxylib/header"
	"github.com/nodemesh/nodemesh/proxylib/resource"
)

// Request is the view of a request that matching needs. The caller fills
// it; scratch buffers are reused across requests of one connection.
type Request struct {
	Method    []byte
	Authority []byte
	Path      []byte // :path with query
	Scheme    []byte
	Headers   header.List

	scratch []byte
	qname   []byte
	qvalue  []byte
}

// Match finds the route for r: the virtual host by authority, then the first
// matching route. It returns nil when nothing matches.
func (t *Table) Match(r *Request) (*resource.VirtualHost, *resource.Route) {
	vh := t.VirtualHost(r.Authority)
	if vh == nil {
		return nil, nil
	}
	pathOnly := r.Path
	if i := bytes.IndexByte(pathOnly, '?'); i >= 0 {
		pathOnly = pathOnly[:i]
	}
	for _, rt := range vh.Routes {
		if r.matches(rt, pathOnly) {
			return vh, rt
		}
	}
	return vh, nil
}

func (r *Request) matches(rt *resource.Route, pathOnly []byte) bool {
	switch rt.PathKind {
	case resource.PathPrefix:
		if !hasPrefix(r.Path, rt.PathValue) {
			return false
		}
	case resource.PathExact:
		if string(pathOnly) != rt.PathValue {
			return false
		}
	case resource.PathRegex:
		if !rt.PathRegex.Match(pathOnly) {
			return false
		}
	case resource.PathSeparatedPrefix:
		if !hasPrefix(pathOnly, rt.PathValue) || (len(pathOnly) > len(rt.PathValue) && pathOnly[len(rt.PathValue)] != '/') {
			return false
		}
	}
	for i := range rt.Headers {
		if !r.header(&rt.Headers[i]) {
			return false
		}
	}
	for i := range rt.Query {
		if !r.query(&rt.Query[i]) {
			return false
		}
	}
	return true
}

func hasPrefix(b []byte, p string) bool {
	return len(b) >= len(p) && string(b[:len(p)]) == p
}

func (r *Request) value(name string) ([]byte, bool) {
	if len(name) > 0 && name[0] == ':' {
		switch name {
		case ":method":
			return r.Method, true
		case ":authority":
			return r.Authority, true
		case ":path":
			return r.Path, true
		case ":scheme":
			return r.Scheme, true
		}
		return nil, false
	}
	if name == "host" {
		return r.Authority, true
	}
	v, buf, ok := r.Headers.Joined(name, r.scratch)
	r.scratch = buf
	return v, ok
}

// MatchHeader reports whether the request satisfies a header matcher, with
// Envoy's semantics (repeated headers joined with ","; pseudo-headers
// ":method", ":authority", ":path", ":scheme" and "host" readable).
func (r *Request) MatchHeader(m *resource.HeaderMatch) bool { return r.header(m) }

func (r *Request) header(m *resource.HeaderMatch) bool {
	v, ok := r.value(m.Name)
	if !ok {
		// Envoy: a missing header satisfies only a presence matcher that
		// asks for absence (present_match false, or true when inverted); a
		// string_match never matches it, inverted or not.
		if m.Invert {
			return m.Kind == resource.HeaderPresent && m.Present
		}
		return m.Kind == resource.HeaderPresent && !m.Present
	}
	var match bool
	if m.Kind == resource.HeaderPresent {
		match = m.Present
	} else {
		match = m.String.Match(v)
	}
	return match != m.Invert
}

func (r *Request) query(m *resource.QueryMatch) bool {
	q := r.Path
	i := bytes.IndexByte(q, '?')
	if i < 0 {
		return false
	}
	q = q[i+1:]
	for len(q) > 0 {
		var kv []byte
		if j := bytes.IndexByte(q, '&'); j >= 0 {
			kv, q = q[:j], q[j+1:]
		} else {
			kv, q = q, nil
		}
		if len(kv) == 0 {
			continue
		}
		k, v := kv, []byte(nil)
		if j := bytes.IndexByte(kv, '='); j >= 0 {
			k, v = kv[:j], kv[j+1:]
		}
		r.qname = decode(r.qname[:0], k)
		if string(r.qname) != m.Name {
			continue
		}
		if m.String == nil {
			return true
		}
		r.qvalue = decode(r.qvalue[:0], v)
		return m.String.Match(r.qvalue)
	}
	return false
}

// decode percent-decodes s into dst; "+" becomes a space; malformed escapes
// are kept literally.
func decode(dst, s []byte) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '+':
			dst = append(dst, ' ')
		case c == '%' && i+2 < len(s) && ishex(s[i+1]) && ishex(s[i+2]):
			dst = append(dst, unhex(s[i+1])<<4|unhex(s[i+2]))
			i += 2
		default:
			dst = append(dst, c)
		}
	}
	return dst
}

func ishex(c byte) bool {
	return ('0' <= c && c <= '9') || ('a' <= c && c <= 'f') || ('A' <= c && c <= 'F')
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c >= 'a':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}
