package hcm

import (
	"net/http"
	"strings"

	"github.com/nodemesh/nodemesh/proxylib/header"
)

// h2HeadKeep bounds the head buffer a pooled stream keeps between
// requests; a larger head's buffer is dropped with its stream's request.
const h2HeadKeep = 64 << 10

// viewH2Request points s.rreq at the head of an HTTP/2 request: method,
// authority (without its port when strip), path and fields, names lower
// case. The bytes are copied once into the stream's pooled buffer, sized
// first so that it never moves while fields point into it; a warm stream
// allocates nothing for them. Like the HTTP/1.1 views of the read buffer,
// the slices live until the handler returns: whatever outlives it (a
// mirror) copies them.
func (s *stream) viewH2Request(r *http.Request, strip bool) {
	n := len(r.Method) + len(r.Host) + len(r.RequestURI)
	for k, vs := range r.Header {
		n += len(k)
		for _, v := range vs {
			n += len(v)
		}
	}
	b := s.h2Head[:0]
	if cap(b) < n {
		b = make([]byte, 0, n)
	}
	take := func(from int) []byte { return b[from:len(b):len(b)] }
	l := s.rreq.Headers[:0]
	for k, vs := range r.Header {
		at := len(b)
		b = appendLower(b, k)
		name := take(at)
		for _, v := range vs {
			at = len(b)
			b = append(b, v...)
			l = append(l, header.Field{Name: name, Value: take(at)})
		}
	}
	rr := &s.rreq
	at := len(b)
	b = append(b, r.Method...)
	rr.Method = take(at)
	at = len(b)
	b = append(b, r.Host...)
	rr.Authority = take(at)
	if strip {
		rr.Authority = stripPort(rr.Authority)
	}
	at = len(b)
	b = append(b, r.RequestURI...)
	rr.Path = take(at)
	rr.Headers = l
	if cap(b) <= h2HeadKeep {
		s.h2Head = b
	} else {
		s.h2Head = nil
	}
}

// appendLower appends an HTTP field name in lower case. The HTTP/2 server
// hands names over canonicalised (tokens, ASCII), so ASCII folding is the
// whole of lower-casing them.
func appendLower(b []byte, name string) []byte {
	for i := 0; i < len(name); i++ {
		c := name[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		b = append(b, c)
	}
	return b
}

// setH2Header adds the fields of l, and nothing else, to an HTTP/2
// response's header map with two allocations however many there are: one
// string holding every name and value, one slice backing the values
// (besides the map's own storage, allocated at its first key). Each value slice has room for
// exactly its value, so a repeated name appends into a fresh slice rather
// than over its neighbour.
func setH2Header(hdr http.Header, l header.List) {
	// The server library adds a sniffed content-type and its own date
	// under their canonical keys unless those are present; the response's
	// fields sit under their lower-case names, so both came out twice. A
	// nil value (the library's way to suppress a field) leaves the
	// response as the proxy built it.
	hdr["Content-Type"], hdr["Date"] = nil, nil
	if len(l) == 0 {
		return
	}
	n := 0
	for _, f := range l {
		n += len(f.Name) + len(f.Value)
	}
	var sb strings.Builder
	sb.Grow(n)
	for _, f := range l {
		sb.Write(f.Name)
		sb.Write(f.Value)
	}
	all := sb.String()
	vals := make([]string, len(l))
	at := 0
	for i, f := range l {
		name := all[at : at+len(f.Name)]
		at += len(f.Name)
		vals[i] = all[at : at+len(f.Value)]
		at += len(f.Value)
		if prev, ok := hdr[name]; ok {
			hdr[name] = append(prev, vals[i])
			continue
		}
		hdr[name] = vals[i : i+1 : i+1]
	}
}
