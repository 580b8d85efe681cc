package translator

import (
	"strings"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"

	"github.com/nodemesh/nodemesh/mesh/ir"
)

// routeMatch turns an IR match into Envoy's:
//
//   - PathExact → path (compared without the query string);
//   - PathPrefix "/" → prefix "/" (everything); any other PathPrefix →
//     path_separated_prefix, which has exactly the IR's segment semantics
//     ("/foo" matches "/foo", "/foo/" and "/foo/bar", not "/foobar");
//   - PathRegex → safe_regex (RE2, whole path);
//   - Method → a ":method" header with an exact match;
//   - headers and query parameters → string_match exact or safe_regex.
//
// It returns false, with a warning, for a match Envoy cannot carry: values
// that are not UTF-8 or contain NUL/CR/LF, a prefix containing '?' or '#',
// an over-long query parameter name. None of these can hold for a
// well-formed request (paths have no '?', '#' or control bytes; header
// values arrive as text), so dropping the route keeps the table's meaning.
//
// It fills parts.match (and parts.prefix when it needs one).
func (b *builder) routeMatch(route string, m ir.Match, parts *routeParts) bool {
	out := &parts.match
	drop := func(field, why string) bool {
		b.warn(object("route", route), field, "%s; the route can never match and is dropped", why)
		return false
	}
	switch p := m.Path; {
	case p == nil:
		out.PathSpecifier = &routev3.RouteMatch_Prefix{Prefix: "/"}
	case !protoText(p.Value):
		return drop("match.path.value", "path is not UTF-8 text without control bytes")
	case p.Type == ir.PathExact:
		out.PathSpecifier = &routev3.RouteMatch_Path{Path: p.Value}
	case p.Type == ir.PathPrefix && p.Value == "/":
		out.PathSpecifier = &routev3.RouteMatch_Prefix{Prefix: "/"}
	case p.Type == ir.PathPrefix:
		if strings.ContainsAny(p.Value, "?#") {
			return drop("match.path.value", "a path prefix containing '?' or '#'")
		}
		parts.prefix.PathSeparatedPrefix = p.Value
		out.PathSpecifier = &parts.prefix
	default: // ir.PathRegex
		out.PathSpecifier = &routev3.RouteMatch_SafeRegex{SafeRegex: regexMatcher(p.Value)}
	}
	n := len(m.Headers)
	if m.Method != "" {
		n++
	}
	if n == 1 && m.Method != "" {
		out.Headers = b.headerMatcher(":method", ir.MatchExact, m.Method).list[:]
	}
	if n > 1 {
		out.Headers = make([]*routev3.HeaderMatcher, 0, n)
		if m.Method != "" {
			out.Headers = append(out.Headers, &b.headerMatcher(":method", ir.MatchExact, m.Method).parts.hm)
		}
	}
	for i, h := range m.Headers {
		if !protoText(h.Value) {
			return drop(fieldf("match.headers[%d].value", i), "value is not UTF-8 text without control bytes")
		}
		sh := b.headerMatcher(strings.ToLower(h.Name), h.Type, h.Value)
		if n == 1 {
			out.Headers = sh.list[:]
		} else {
			out.Headers = append(out.Headers, &sh.parts.hm)
		}
	}
	if len(m.Query) > 0 {
		out.QueryParameters = make([]*routev3.QueryParameterMatcher, 0, len(m.Query))
	}
	for i, q := range m.Query {
		switch {
		case len(q.Name) > maxQueryNameBytes:
			return drop(fieldf("match.query[%d].name", i), "name longer than Envoy's 1024-byte limit")
		case !protoText(q.Name):
			return drop(fieldf("match.query[%d].name", i), "name is not UTF-8 text without control bytes")
		case !protoText(q.Value):
			return drop(fieldf("match.query[%d].value", i), "value is not UTF-8 text without control bytes")
		}
		out.QueryParameters = append(out.QueryParameters, &routev3.QueryParameterMatcher{
			Name:                         q.Name,
			QueryParameterMatchSpecifier: &routev3.QueryParameterMatcher_StringMatch{StringMatch: stringMatcher(q.Type, q.Value)},
		})
	}
	return true
}

// headerParts holds the messages of one header matcher, allocated
// together.
type headerParts struct {
	hm    routev3.HeaderMatcher
	spec  routev3.HeaderMatcher_StringMatch
	sm    matcherv3.StringMatcher
	exact matcherv3.StringMatcher_Exact
}

// headerKey is what a header matcher holds.
type headerKey struct {
	name  string
	t     ir.StringMatchType
	value string
}

// sharedHeader is a header matcher and a list holding only it, for the
// routes that match on that one header.
type sharedHeader struct {
	list  [1]*routev3.HeaderMatcher
	parts headerParts
}

// headerMatcher returns the matcher of header name against value, made
// once per translation: routes commonly match the same header values
// (a tenant, a version, a method), and a matcher is close to 200 bytes
// a snapshot would otherwise hold once per route. It is shared like the
// actions are (action.go): never modified once built.
func (b *builder) headerMatcher(name string, t ir.StringMatchType, value string) *sharedHeader {
	k := headerKey{name: name, t: t, value: value}
	if sh := b.headers[k]; sh != nil {
		return sh
	}
	sh := new(sharedHeader)
	sh.list[0] = sh.parts.matcher(name, t, value)
	if b.headers == nil {
		b.headers = make(map[headerKey]*sharedHeader)
	}
	b.headers[k] = sh
	return sh
}

// matcher fills p as a matcher of header name against value and returns
// it.
func (p *headerParts) matcher(name string, t ir.StringMatchType, value string) *routev3.HeaderMatcher {
	if t == ir.MatchRegex {
		p.spec.StringMatch = stringMatcher(t, value)
	} else {
		p.exact.Exact = value
		p.sm.MatchPattern = &p.exact
		p.spec.StringMatch = &p.sm
	}
	p.hm.Name, p.hm.HeaderMatchSpecifier = name, &p.spec
	return &p.hm
}

func stringMatcher(t ir.StringMatchType, value string) *matcherv3.StringMatcher {
	if t == ir.MatchRegex {
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: regexMatcher(value)}}
	}
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: value}}
}

// regexMatcher wraps an RE2 expression. Envoy requires a non-empty regex;
// the empty expression is written as the equivalent "(?:)".
func regexMatcher(expr string) *matcherv3.RegexMatcher {
	if expr == "" {
		expr = "(?:)"
	}
	return &matcherv3.RegexMatcher{Regex: expr}
}
