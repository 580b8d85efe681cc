package gateway

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/nodemesh/nodemesh/mesh/ir"
)

// The HTTPRoute CORS filter (Extended, HTTPRouteCORS). A rule's filter
// becomes the IR CORS policy of each of its routes, and the chains serving
// them run the CORS filter. Origins map as follows: "*" stays the exact
// "*", which allows every origin; an origin whose host holds "*" becomes
// an RE2 expression with the scheme, the rest of the host and the port
// literal and the "*" matching any run of characters, so it covers any
// number of labels as the API describes; every other origin is compared
// exactly. An origin without a port matches only an Origin header without
// one: browsers leave default ports out of Origin. maxAge defaults to 5
// seconds, the API's default, when a route from a file leaves it out.

// corsDefaultMaxAge is the API's default maxAge.
const corsDefaultMaxAge = 5 * time.Second

// corsOrigin is the API's pattern for an allowed origin, checked here too
// because routes read from files are not held to the CRD's schema.
var corsOrigin = regexp.MustCompile(`^(\*|https?://((\*\.)?([a-zA-Z0-9-]+\.)*[a-zA-Z0-9-]+|\*)(:[0-9]{1,5})?)$`)

// corsMaxList bounds each list, as the CRD does.
const corsMaxList = 64

func corsFilter(rule *ruleState, field string, f *gwv1.HTTPCORSFilter) *ir.CORSPolicy {
	if f == nil {
		rule.fail(gwv1.RouteReasonUnsupportedValue, field, "required for this filter type")
		return nil
	}
	p := &ir.CORSPolicy{AllowCredentials: f.AllowCredentials != nil && *f.AllowCredentials}
	if len(f.AllowOrigins) > corsMaxList {
		rule.fail(gwv1.RouteReasonUnsupportedValue, field+".allowOrigins", "%d origins exceed the limit of %d", len(f.AllowOrigins), corsMaxList)
		return nil
	}
	for i, o := range f.AllowOrigins {
		m, err := originMatch(string(o))
		if err != nil {
			rule.fail(gwv1.RouteReasonUnsupportedValue, fmt.Sprintf("%s.allowOrigins[%d]", field, i), "%v", err)
			return nil
		}
		p.AllowOrigins = append(p.AllowOrigins, m)
	}
	var ok bool
	if p.AllowMethods, ok = corsList(rule, field+".allowMethods", f.AllowMethods, func(m gwv1.HTTPMethodWithWildcard) bool {
		return m == "*" || httpMethods[gwv1.HTTPMethod(m)]
	}); !ok {
		return nil
	}
	validName := func(h gwv1.HTTPHeaderName) bool { return ir.ValidToken(string(h)) }
	if p.AllowHeaders, ok = corsList(rule, field+".allowHeaders", f.AllowHeaders, func(h gwv1.HTTPHeaderName) bool { return h == "*" || validName(h) }); !ok {
		return nil
	}
	if p.ExposeHeaders, ok = corsList(rule, field+".exposeHeaders", f.ExposeHeaders, func(h gwv1.HTTPHeaderName) bool { return h == "*" || validName(h) }); !ok {
		return nil
	}
	switch {
	case f.MaxAge < 0:
		rule.fail(gwv1.RouteReasonUnsupportedValue, field+".maxAge", "%d is negative", f.MaxAge)
		return nil
	case f.MaxAge == 0:
		p.MaxAge = corsDefaultMaxAge
	default:
		p.MaxAge = time.Duration(f.MaxAge) * time.Second
	}
	return p
}

// corsList checks a list of methods or header names: valid entries, each
// once, and "*" only alone (the API's rules).
func corsList[T ~string](rule *ruleState, field string, in []T, valid func(T) bool) ([]string, bool) {
	if len(in) > corsMaxList {
		rule.fail(gwv1.RouteReasonUnsupportedValue, field, "%d entries exceed the limit of %d", len(in), corsMaxList)
		return nil, false
	}
	out := make([]string, 0, len(in))
	seen := make(map[string]bool, len(in))
	for i, v := range in {
		s := string(v)
		switch {
		case !valid(v):
			rule.fail(gwv1.RouteReasonUnsupportedValue, fmt.Sprintf("%s[%d]", field, i), "%q is not allowed here", s)
			return nil, false
		case s == "*" && len(in) > 1:
			rule.fail(gwv1.RouteReasonUnsupportedValue, fmt.Sprintf("%s[%d]", field, i), `"*" cannot be combined with other entries`)
			return nil, false
		case seen[strings.ToLower(s)]:
			continue
		}
		seen[strings.ToLower(s)] = true
		out = append(out, s)
	}
	if len(out) == 0 {
		return nil, true
	}
	return out, true
}

// originMatch compiles one allowed origin.
func originMatch(o string) (ir.OriginMatch, error) {
	if !corsOrigin.MatchString(o) {
		return ir.OriginMatch{}, fmt.Errorf("%q is not an origin (scheme://host[:port] or *)", o)
	}
	if o == "*" {
		return ir.OriginMatch{Type: ir.MatchExact, Value: o}, nil
	}
	scheme, rest, _ := strings.Cut(o, "://")
	if !strings.Contains(rest, "*") {
		return ir.OriginMatch{Type: ir.MatchExact, Value: o}, nil
	}
	star := strings.IndexByte(rest, '*')
	expr := regexp.QuoteMeta(scheme+"://") + ".*" + regexp.QuoteMeta(rest[star+1:])
	return ir.OriginMatch{Type: ir.MatchRegex, Value: expr}, nil
}
