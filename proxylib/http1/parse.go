package http1

import (
	"bytes"
	"errors"

	"github.com/nodemesh/nodemesh/proxylib/header"
)

// Default limits on a message head. MaxHeadBytes matches Envoy's default
// max_request_headers_kb (60 KiB); MaxHeaders its max_headers_count. A
// request head may be given other bounds (Limits); a response head always
// has these.
const (
	MaxHeadBytes = 60 << 10
	MaxHeaders   = 100
)

// Limits bound a request head. A zero field means the package default.
type Limits struct {
	// HeadBytes bounds the head as received: request line, header lines
	// and every line end, through the empty line.
	HeadBytes int
	// Headers bounds the number of header fields.
	Headers int
}

func (l Limits) headBytes() int {
	if l.HeadBytes > 0 {
		return l.HeadBytes
	}
	return MaxHeadBytes
}

func (l Limits) headers() int {
	if l.Headers > 0 {
		return l.Headers
	}
	return MaxHeaders
}

// Parse errors. ErrIncomplete means more bytes are needed; every other error
// makes the message unusable and the connection must be closed after an
// error response.
var (
	ErrIncomplete      = errors.New("incomplete message head")
	ErrHeadTooLarge    = errors.New("message head too large")
	ErrTooManyHeaders  = errors.New("too many header fields")
	ErrBadRequestLine  = errors.New("malformed request line")
	ErrBadStatusLine   = errors.New("malformed status line")
	ErrBadVersion      = errors.New("unsupported HTTP version")
	ErrBadHeader       = errors.New("malformed header field")
	ErrBadContentLen   = errors.New("invalid content-length")
	ErrBadTransferEnc  = errors.New("unsupported transfer-encoding")
	ErrAmbiguousLength = errors.New("both content-length and transfer-encoding present")
	ErrBadHost         = errors.New("missing, repeated or invalid host")
	ErrBadTarget       = errors.New("malformed request target")
	ErrBadLineEnd      = errors.New("line not ended by CRLF")
)

// Framing says how a message body is delimited.
type Framing uint8

// Body framings.
const (
	NoBody     Framing = iota // no body at all
	Length                    // Content-Length bytes
	Chunked                   // chunked transfer coding
	UntilClose                // response body delimited by connection close
)

// Request is a parsed request head. All slices view the parse buffer.
type Request struct {
	Method  []byte
	Target  []byte // request-target as received
	Path    []byte // origin-form path with query ("/a?b"); for absolute-form the path part
	Host    []byte // Host header, or the authority of an absolute-form target
	Minor   uint8  // HTTP/1.<Minor>
	Headers header.List

	Framing       Framing
	ContentLength int64 // valid when Framing == Length
	Close         bool  // the client asked to close after this exchange
	Expect100     bool  // Expect: 100-continue
	Upgrade       bool  // Connection: upgrade with an Upgrade header
	HeadLen       int   // bytes of the head, including the final CRLF

	// fields is the storage Headers views; more replaces it when Limits
	// allow more than MaxHeaders fields, grown to the largest count needed
	// and then reused.
	fields [MaxHeaders]header.Field
	more   []header.Field
	scan   headScan
}

// Response is a parsed response head. All slices view the parse buffer.
type Response struct {
	Status  int
	Reason  []byte
	Minor   uint8
	Headers header.List

	Framing       Framing
	ContentLength int64
	Close         bool
	HeadLen       int

	fields [MaxHeaders]header.Field
}

// ParseRequest parses a request head at the start of buf with the default
// Limits.
func ParseRequest(buf []byte, r *Request) error {
	return ParseRequestLimits(buf, r, Limits{})
}

// ParseRequestLimits parses a request head at the start of buf. It returns
// ErrIncomplete when buf ends before the head does (and is shorter than
// lim's head size). After ErrIncomplete, r remembers how much of buf it has
// checked, so a call on the same bytes with more appended (the caller may
// move them, as long as buf starts where it did) only looks at what is new;
// a head trickled in byte by byte costs linear time. Any other call must
// be preceded by r.Reset, as it is after every result but ErrIncomplete.
func ParseRequestLimits(buf []byte, r *Request, lim Limits) error {
	end, err := r.scan.headEnd(buf)
	if err != nil {
		return err
	}
	maxHead := lim.headBytes()
	if end < 0 {
		if len(buf) >= maxHead {
			r.scan = headScan{}
			return ErrHeadTooLarge
		}
		return ErrIncomplete
	}
	if end > maxHead {
		return ErrHeadTooLarge
	}
	head := buf[:end]
	r.HeadLen = end
	maxFields := lim.headers()
	if maxFields <= MaxHeaders {
		r.Headers = r.fields[:0]
	} else {
		r.Headers = r.more[:0]
	}
	r.Host = nil
	r.Framing = NoBody
	r.ContentLength = 0
	r.Close = false
	r.Expect100 = false
	r.Upgrade = false
	err = r.parse(head, maxFields)
	if maxFields > MaxHeaders {
		r.more = r.Headers[:0] // keep what it grew into
	}
	return err
}

// Reset forgets a partly scanned head (see ParseRequestLimits).
func (r *Request) Reset() { r.scan = headScan{} }

func (r *Request) parse(head []byte, maxHeaders int) error {
	// Request line: method SP request-target SP HTTP-version CRLF.
	line, rest, ok := cutLine(head)
	if !ok {
		return ErrBadRequestLine
	}
	sp := bytes.IndexByte(line, ' ')
	if sp <= 0 || !isToken(line[:sp]) {
		return ErrBadRequestLine
	}
	r.Method = line[:sp]
	line = line[sp+1:]
	sp = bytes.IndexByte(line, ' ')
	if sp <= 0 {
		return ErrBadRequestLine
	}
	r.Target = line[:sp]
	minor, ok := parseVersion(line[sp+1:])
	if !ok {
		return ErrBadVersion
	}
	r.Minor = minor
	for _, c := range r.Target {
		if c <= ' ' || c >= 0x7f {
			return ErrBadTarget
		}
	}
	switch {
	case r.Target[0] == '/':
		r.Path = r.Target
	default:
		host, path, ok := splitAbsolute(r.Target)
		if !ok {
			return ErrBadTarget
		}
		r.Host = host
		r.Path = path
	}
	if bytes.IndexByte(r.Path, '#') >= 0 {
		return ErrBadTarget
	}

	var f fieldState
	if err := parseFields(rest, &r.Headers, maxHeaders, &f); err != nil {
		return err
	}
	if err := r.checkHost(&f); err != nil {
		return err
	}
	if f.te {
		if f.cl || r.Minor == 0 {
			return ErrAmbiguousLength
		}
		if !f.chunked {
			return ErrBadTransferEnc
		}
		r.Framing = Chunked
	} else if f.cl {
		r.ContentLength = f.length
		if f.length > 0 {
			r.Framing = Length
		}
	}
	r.Close = f.close || (r.Minor == 0 && !f.keepAlive)
	r.Expect100 = f.expect100
	r.Upgrade = f.upgradeTok && f.upgrade
	return nil
}

// ParseResponse parses a response head at the start of buf. method is the
// request method (HEAD responses never carry a body).
// Unlike a request, a response (from a server the proxy chose) is
// scanned whole on every call: its pooled connection keeps no parse state.
func ParseResponse(buf []byte, head bool, r *Response) error {
	var scan headScan
	end, err := scan.headEnd(buf)
	if err != nil {
		return err
	}
	if end < 0 {
		if len(buf) >= MaxHeadBytes {
			return ErrHeadTooLarge
		}
		return ErrIncomplete
	}
	if end > MaxHeadBytes {
		return ErrHeadTooLarge
	}
	h := buf[:end]
	r.HeadLen = end
	r.Headers = r.fields[:0]
	r.Framing = NoBody
	r.ContentLength = 0
	r.Close = false

	line, rest, ok := cutLine(h)
	if !ok || len(line) < 12 {
		return ErrBadStatusLine
	}
	minor, ok := parseVersion(line[:8])
	if !ok {
		return ErrBadVersion
	}
	r.Minor = minor
	if line[8] != ' ' {
		return ErrBadStatusLine
	}
	code := 0
	for _, c := range line[9:12] {
		if c < '0' || c > '9' {
			return ErrBadStatusLine
		}
		code = code*10 + int(c-'0')
	}
	if code < 100 {
		return ErrBadStatusLine
	}
	r.Status = code
	r.Reason = nil
	if len(line) > 12 {
		if line[12] != ' ' {
			return ErrBadStatusLine
		}
		r.Reason = line[13:]
		for _, c := range r.Reason {
			if (c < ' ' && c != '\t') || c == 0x7f {
				return ErrBadStatusLine
			}
		}
	}
	var f fieldState
	if err := parseFields(rest, &r.Headers, MaxHeaders, &f); err != nil {
		return err
	}
	r.Close = f.close || (r.Minor == 0 && !f.keepAlive)
	if f.te && f.cl {
		return ErrAmbiguousLength
	}
	if f.te && !f.chunked {
		return ErrBadTransferEnc
	}
	switch {
	case head || code < 200 || code == 204 || code == 304:
		r.Framing = NoBody
		if f.cl {
			r.ContentLength = f.length
		}
	case f.te:
		r.Framing = Chunked
	case f.cl:
		r.ContentLength = f.length
		if f.length > 0 {
			r.Framing = Length
		}
	default:
		r.Framing = UntilClose
	}
	return nil
}

// fieldState collects what framing needs while fields are parsed.
type fieldState struct {
	hosts      int
	host       []byte
	hostIdx    int // index of the host field in the list
	cl         bool
	length     int64
	te         bool
	chunked    bool
	close      bool
	keepAlive  bool
	upgradeTok bool
	upgrade    bool
	expect100  bool
}

func parseFields(b []byte, l *header.List, maxFields int, f *fieldState) error {
	for {
		line, rest, ok := cutLine(b)
		if !ok {
			return ErrBadHeader
		}
		b = rest
		if len(line) == 0 {
			return nil
		}
		if len(*l) == maxFields {
			return ErrTooManyHeaders
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			return ErrBadHeader
		}
		name := line[:colon]
		for i, c := range name {
			if !tokenTable[c] {
				return ErrBadHeader
			}
			if 'A' <= c && c <= 'Z' {
				name[i] = c + ('a' - 'A')
			}
		}
		v := line[colon+1:]
		for len(v) > 0 && (v[0] == ' ' || v[0] == '\t') {
			v = v[1:]
		}
		for len(v) > 0 && (v[len(v)-1] == ' ' || v[len(v)-1] == '\t') {
			v = v[:len(v)-1]
		}
		for _, c := range v {
			if (c < ' ' && c != '\t') || c == 0x7f {
				return ErrBadHeader
			}
		}
		*l = append(*l, header.Field{Name: name, Value: v})
		if err := f.note(name, v, len(*l)-1); err != nil {
			return err
		}
	}
}

func (f *fieldState) note(name, v []byte, idx int) error {
	switch len(name) {
	case 4:
		if string(name) == "host" {
			f.hosts++
			f.host = v
			f.hostIdx = idx
		}
	case 6:
		if string(name) == "expect" && header.EqualFold(v, "100-continue") {
			f.expect100 = true
		}
	case 7:
		if string(name) == "upgrade" && len(v) > 0 {
			f.upgrade = true
		}
	case 10:
		if string(name) == "connection" {
			f.connectionTokens(v)
		}
	case 14:
		if string(name) == "content-length" {
			n, ok := parseLength(v)
			if !ok || (f.cl && n != f.length) {
				return ErrBadContentLen
			}
			f.cl = true
			f.length = n
		}
	case 17:
		if string(name) == "transfer-encoding" {
			if f.te || !header.EqualFold(v, "chunked") {
				// Only a single "chunked" coding is accepted: anything else
				// is a smuggling vector or a coding the proxy cannot frame.
				f.te = true
				f.chunked = false
				return ErrBadTransferEnc
			}
			f.te = true
			f.chunked = true
		}
	}
	return nil
}

func (f *fieldState) connectionTokens(v []byte) {
	for len(v) > 0 {
		var tok []byte
		if i := bytes.IndexByte(v, ','); i >= 0 {
			tok, v = v[:i], v[i+1:]
		} else {
			tok, v = v, nil
		}
		tok = bytes.TrimSpace(tok)
		switch {
		case header.EqualFold(tok, "close"):
			f.close = true
		case header.EqualFold(tok, "keep-alive"):
			f.keepAlive = true
		case header.EqualFold(tok, "upgrade"):
			f.upgradeTok = true
		}
	}
}

func parseLength(v []byte) (int64, bool) {
	if len(v) == 0 || len(v) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

func parseVersion(v []byte) (uint8, bool) {
	if len(v) != 8 || string(v[:7]) != "HTTP/1." {
		return 0, false
	}
	switch v[7] {
	case '1':
		return 1, true
	case '0':
		return 0, true
	}
	return 0, false
}

// splitAbsolute splits an absolute-form target "http://host[:port]/path".
func splitAbsolute(t []byte) (host, path []byte, ok bool) {
	var rest []byte
	switch {
	case len(t) > 7 && header.EqualFold(t[:7], "http://"):
		rest = t[7:]
	case len(t) > 8 && header.EqualFold(t[:8], "https://"):
		rest = t[8:]
	default:
		return nil, nil, false
	}
	i := bytes.IndexAny(rest, "/?")
	if i < 0 {
		return nil, nil, false // "http://host" has no path to forward
	}
	host = rest[:i]
	if len(host) == 0 || bytes.IndexByte(host, '@') >= 0 || rest[i] != '/' {
		return nil, nil, false
	}
	return host, rest[i:], true
}

// headScan finds the end of a head across calls on a growing buffer.
type headScan struct {
	// checked bytes at the start of the buffer hold no head end and no bad
	// line end (except possibly a CR at its very end, still unpaired).
	checked int
}

var crlfcrlf = []byte("\r\n\r\n")

// headEnd returns the length of the head (through CRLFCRLF), or -1 when
// buf holds no complete head yet. A bare LF, or a CR followed by anything
// but LF, is an error as soon as it arrives: a client that ends lines that
// way would otherwise be left waiting for a CRLFCRLF it never sends. (Bare
// LFs inside a complete head are found by cutLine.)
func (s *headScan) headEnd(buf []byte) (int, error) {
	from := s.checked
	if from > len(buf) {
		from = 0 // not the buffer of the last call
	}
	// A head end may straddle the bytes already checked and the new ones.
	start := max(from-3, 0)
	if i := bytes.Index(buf[start:], crlfcrlf); i >= 0 {
		s.checked = 0
		return start + i + 4, nil
	}
	if err := checkLineEnds(buf, max(from-1, 0)); err != nil {
		s.checked = 0
		return 0, err
	}
	s.checked = len(buf)
	return -1, nil
}

// checkLineEnds reports a bare LF or CR in buf at or after from. A CR in
// the last byte is not judged yet: its LF may still come.
func checkLineEnds(buf []byte, from int) error {
	for i := from; ; {
		j := bytes.IndexByte(buf[i:], '\n')
		if j < 0 {
			break
		}
		i += j
		if i == 0 || buf[i-1] != '\r' {
			return ErrBadLineEnd
		}
		i++
	}
	for i := from; ; {
		j := bytes.IndexByte(buf[i:], '\r')
		if j < 0 {
			break
		}
		i += j
		if i+1 < len(buf) && buf[i+1] != '\n' {
			return ErrBadLineEnd
		}
		i++
	}
	return nil
}

// cutLine splits b at the first CRLF; a bare LF or CR is malformed.
func cutLine(b []byte) (line, rest []byte, ok bool) {
	i := bytes.IndexByte(b, '\n')
	if i < 1 || b[i-1] != '\r' {
		return nil, nil, false
	}
	line = b[:i-1]
	if bytes.IndexByte(line, '\r') >= 0 {
		return nil, nil, false
	}
	return line, b[i+1:], true
}

func isToken(b []byte) bool {
	for _, c := range b {
		if !tokenTable[c] {
			return false
		}
	}
	return len(b) > 0
}

// tokenTable marks RFC 9110 tchar bytes.
var tokenTable = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()
