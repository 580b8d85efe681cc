package headermatchv1

import (
	"fmt"
	"net/netip"
	"regexp"
	"strings"
)

// TypeURL is the type URL of HeaderMatchPolicy in an Any.
const TypeURL = "type.googleapis.com/nodemesh.filters.http.header_match.v1.HeaderMatchPolicy"

// forbidden are the headers an action may not add, remove or rewrite:
// Host (the proxy forwards the request's authority), and the headers
// that frame a message or the connection, which an edit could turn into
// request smuggling.
var forbidden = map[string]bool{
	"host": true, "connection": true, "keep-alive": true, "proxy-connection": true, "transfer-encoding": true,
	"upgrade": true, "te": true, "trailer": true, "content-length": true, "expect": true,
}

// ForbiddenHeader reports whether name (any case) is a header a header
// match with a mismatch action may not name: a pseudo-header, Host, or a
// header that frames the message or the connection.
func ForbiddenHeader(name string) bool {
	return strings.HasPrefix(name, ":") || forbidden[strings.ToLower(name)]
}

// ValidToken reports whether s is an HTTP token (RFC 9110), the syntax of
// a header name.
func ValidToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0 {
			continue
		}
		return false
	}
	return true
}

// validValue reports whether s can be a header field value: no control
// characters other than tab, no DEL.
func validValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// ValidateAll is Validate, named like the protoc-gen-validate method of
// Envoy's messages.
func (p *HeaderMatchPolicy) ValidateAll() error { return p.Validate() }

// Validate checks the policy the way the proxy does before accepting it;
// the error names the offending field.
func (p *HeaderMatchPolicy) Validate() error {
	if p == nil {
		return fmt.Errorf("header match policy: missing")
	}
	names := map[string]bool{}
	for i, r := range p.GetRules() {
		if err := r.validate(); err != nil {
			return fmt.Errorf("rules[%d]%s", i, err)
		}
		if names[r.GetName()] {
			return fmt.Errorf("rules[%d].name: %q is used twice", i, r.GetName())
		}
		names[r.GetName()] = true
	}
	return nil
}

func (r *HeaderMatchRule) validate() error {
	if r.GetName() == "" {
		return fmt.Errorf(".name: must not be empty")
	}
	for _, f := range []struct {
		field string
		terms []*AddressTerm
	}{{"destinations", r.GetDestinations()}, {"sources", r.GetSources()}} {
		if len(f.terms) == 0 {
			return fmt.Errorf(".%s: at least one address term is required (0.0.0.0/0 and ::/0 for any address)", f.field)
		}
		for j, t := range f.terms {
			if err := t.validate(); err != nil {
				return fmt.Errorf(".%s[%d]%s", f.field, j, err)
			}
		}
	}
	if r.GetDestinationPort() == 0 || r.GetDestinationPort() > 65535 {
		return fmt.Errorf(".destination_port: %d is not a port number", r.GetDestinationPort())
	}
	for _, f := range []struct{ field, expr string }{{"method", r.GetMethod()}, {"path", r.GetPath()}, {"authority", r.GetAuthority()}} {
		if _, err := regexp.Compile(f.expr); err != nil {
			return fmt.Errorf(".%s: %v", f.field, err)
		}
	}
	for j, h := range r.GetHeaders() {
		switch {
		case !ValidToken(h.GetName()):
			return fmt.Errorf(".headers[%d].name: %q is not a header name", j, h.GetName())
		case !validValue(h.GetValue()):
			return fmt.Errorf(".headers[%d].value: control characters", j)
		case h.GetPresent() && h.GetValue() != "":
			return fmt.Errorf(".headers[%d]: present and value exclude each other", j)
		}
	}
	if len(r.GetHeaderMatches()) == 0 {
		return fmt.Errorf(".header_matches: at least one is required")
	}
	for j, m := range r.GetHeaderMatches() {
		switch {
		case !ValidToken(m.GetName()):
			return fmt.Errorf(".header_matches[%d].name: %q is not a header name", j, m.GetName())
		case ForbiddenHeader(m.GetName()):
			return fmt.Errorf(".header_matches[%d].name: %q may not be edited by a header match", j, m.GetName())
		case !validValue(m.GetValue()):
			return fmt.Errorf(".header_matches[%d].value: control characters", j)
		}
		switch m.GetMismatchAction() {
		case MismatchAction_LOG, MismatchAction_ADD, MismatchAction_DELETE, MismatchAction_REPLACE:
		default:
			return fmt.Errorf(".header_matches[%d].mismatch_action: %v is not supported (LOG, ADD, DELETE, REPLACE)", j, m.GetMismatchAction())
		}
	}
	return nil
}

func (t *AddressTerm) validate() error {
	p, err := ParsePrefix(t.GetPrefix())
	if err != nil {
		return fmt.Errorf(".prefix: %v", err)
	}
	for k, e := range t.GetExcept() {
		q, err := ParsePrefix(e)
		if err != nil {
			return fmt.Errorf(".except[%d]: %v", k, err)
		}
		if q.Bits() <= p.Bits() || !p.Contains(q.Addr()) {
			return fmt.Errorf(".except[%d]: %s is not inside %s", k, q, p)
		}
	}
	return nil
}

// ParsePrefix parses an IP address (a host prefix) or a CIDR prefix,
// unmapping IPv4-mapped IPv6 addresses.
func ParsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not a CIDR prefix", s)
		}
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not an IP address or CIDR prefix", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}
