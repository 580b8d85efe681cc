package hcm

import (
	"errors"
	"strings"

	"github.com/nodemesh/nodemesh/proxylib/http1"
)

// Reasons an HTTP/2 header block is malformed (RFC 9113 §8.1.1): such a
// request is never forwarded; the stream (or, by default, the connection)
// is reset with PROTOCOL_ERROR.
var (
	errH2TooManyFields    = errors.New("too many header fields")
	errH2FieldValue       = errors.New("invalid field value")
	errH2FieldName        = errors.New("invalid field name")
	errH2PseudoOrder      = errors.New("pseudo-header field after a regular field")
	errH2PseudoUnknown    = errors.New("unknown or repeated pseudo-header field")
	errH2ConnSpecific     = errors.New("connection-specific header field")
	errH2TE               = errors.New(`te other than "trailers"`)
	errH2Method           = errors.New("missing or invalid :method")
	errH2Scheme           = errors.New("missing or invalid :scheme")
	errH2Path             = errors.New("missing or invalid :path")
	errH2Authority        = errors.New("missing or invalid :authority")
	errH2HostMismatch     = errors.New("host differs from :authority, or repeated")
	errH2ContentLength    = errors.New("invalid or inconsistent content-length")
	errH2ConnectMalformed = errors.New("CONNECT with :scheme or :path")
)

// h2Check validates one HTTP/2 header block as its fields are decoded, so a
// request that arrived over HTTP/2 passes the checks of package http1
// before it can become an HTTP/1.1 head: RFC 9113 §8.2 and §8.3 (lower-case
// token names, no pseudo-header after a regular field, no unknown or
// repeated pseudo-header, no connection-specific field, te only
// "trailers", values without CR, LF, NUL or surrounding whitespace), plus
// the downgrade rules of HTTP/1.1 (a token method, an origin-form :path —
// or "*" for OPTIONS — of visible ASCII, a valid :authority agreeing with
// any host field, one content-length value consistent with END_STREAM) and
// the connection manager's max_headers_count.
//
// The strings it keeps alias the decoder's output; it allocates nothing.
type h2Check struct {
	maxFields int
	trailers  bool
	fields    int
	regular   bool
	pseudo    uint8 // pseudo-header fields seen (h2Method...)
	err       error

	method, scheme, path, authority, host string
	hosts                                 int
	hasLength                             bool
	length                                int64
}

const (
	h2Method uint8 = 1 << iota
	h2Scheme
	h2Path
	h2Authority
)

// reset prepares the check for a new header block.
func (c *h2Check) reset(trailers bool, maxFields int) {
	*c = h2Check{maxFields: maxFields, trailers: trailers}
}

func (c *h2Check) fail(err error) {
	if c.err == nil {
		c.err = err
	}
}

// field checks one decoded field, in block order. Trailers are left to
// the HTTP/2 server, which knows the stream states (see h2guard); they are
// never written into an HTTP/1.1 head.
func (c *h2Check) field(name, value string) {
	if c.trailers {
		return
	}
	c.fields++
	if c.fields > c.maxFields {
		c.fail(errH2TooManyFields)
	}
	if c.err != nil {
		return
	}
	if !http1.ValidFieldValue(value) {
		c.fail(errH2FieldValue)
		return
	}
	if len(name) > 0 && name[0] == ':' {
		c.pseudoField(name, value)
		return
	}
	c.regular = true
	if !validLowerToken(name) {
		c.fail(errH2FieldName)
		return
	}
	switch name {
	case "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade":
		c.fail(errH2ConnSpecific)
	case "te":
		if !strings.EqualFold(value, "trailers") {
			c.fail(errH2TE)
		}
	case "host":
		c.hosts++
		c.host = value
	case "content-length":
		n, ok := http1.ParseContentLength(value)
		if !ok || (c.hasLength && n != c.length) {
			c.fail(errH2ContentLength)
			return
		}
		c.hasLength, c.length = true, n
	}
}

func (c *h2Check) pseudoField(name, value string) {
	if c.regular {
		c.fail(errH2PseudoOrder)
		return
	}
	var bit uint8
	switch name {
	case ":method":
		bit, c.method = h2Method, value
	case ":scheme":
		bit, c.scheme = h2Scheme, value
	case ":path":
		bit, c.path = h2Path, value
	case ":authority":
		bit, c.authority = h2Authority, value
	default: // :status, :protocol (extended CONNECT is not enabled), anything else
		c.fail(errH2PseudoUnknown)
		return
	}
	if c.pseudo&bit != 0 {
		c.fail(errH2PseudoUnknown)
		return
	}
	c.pseudo |= bit
}

// finish returns the verdict on the block; endStream is the END_STREAM
// flag of its HEADERS frame.
func (c *h2Check) finish(endStream bool) error {
	if c.err != nil || c.trailers {
		return c.err
	}
	if c.pseudo&h2Method == 0 || !http1.ValidToken(c.method) {
		return errH2Method
	}
	if c.hosts > 1 || (c.hosts == 1 && c.pseudo&h2Authority != 0 && c.host != c.authority) {
		return errH2HostMismatch
	}
	auth := c.authority
	if c.pseudo&h2Authority == 0 {
		auth = c.host
	}
	if !http1.ValidHost(auth) {
		return errH2Authority
	}
	if c.method == "CONNECT" {
		// A well-formed CONNECT names only the authority (RFC 9113
		// §8.5); the connection manager then refuses it, as tunnels are
		// not enabled.
		if c.pseudo&(h2Scheme|h2Path) != 0 {
			return errH2ConnectMalformed
		}
		return nil
	}
	if c.pseudo&h2Scheme == 0 || (c.scheme != "http" && c.scheme != "https") {
		return errH2Scheme
	}
	if c.pseudo&h2Path == 0 {
		return errH2Path
	}
	if c.path == "*" {
		if c.method != "OPTIONS" {
			return errH2Path
		}
	} else if !http1.ValidOriginForm(c.path) {
		return errH2Path
	}
	if c.hasLength && endStream && c.length != 0 {
		return errH2ContentLength
	}
	return nil
}

// validLowerToken reports whether name is a token without upper-case
// letters, as HTTP/2 field names must be.
func validLowerToken(name string) bool {
	for i := 0; i < len(name); i++ {
		if c := name[i]; 'A' <= c && c <= 'Z' {
			return false
		}
	}
	return http1.ValidToken(name)
}
