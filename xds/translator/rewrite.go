package translator

import (
	"regexp"
	"strings"

	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"

	"github.com/nodemesh/nodemesh/mesh/ir"
)

// pathEdit is a path rewrite in Envoy's terms: at most one of prefix and
// regex is set; both empty means the path is left alone.
type pathEdit struct {
	prefix string
	regex  *matcherv3.RegexMatchAndSubstitute
}

// pathEditOf converts an IR path rewrite (used for both forwarding and
// redirects).
//
// ReplaceFullPath becomes a regex_rewrite of "^.*$": Envoy applies it to the
// path without the query string, so the query is kept, and the anchors make
// it replace once.
//
// ReplacePrefixMatch follows Gateway API's segment rules. Write P for the
// matched prefix and R for the replacement without trailing slashes; the
// request path is P followed by a rest that is empty or starts with '/',
// and the result is R + rest, or "/" when that is empty:
//
//   - P = "/": prefix_rewrite R+"/" (matched "/" becomes R+"/"), nothing
//     at all when R is empty;
//   - R non-empty: prefix_rewrite R ("/foo/bar" → R+"/bar");
//   - R empty (replacement "/"): prefix_rewrite would give "//bar", so a
//     regex_rewrite of "^P/?" by "/" is used ("/foo/bar" → "/bar",
//     "/foo" → "/").
func pathEditOf(field string, rw *ir.PathRewrite, m *ir.PathMatch) (pathEdit, *problem) {
	if rw == nil {
		return pathEdit{}, nil
	}
	if !protoText(rw.Value) {
		return pathEdit{}, problemf(field+".value", "path is not UTF-8 text without control bytes")
	}
	if rw.Type == ir.ReplaceFullPath {
		return pathEdit{regex: &matcherv3.RegexMatchAndSubstitute{
			Pattern:      regexMatcher("^.*$"),
			Substitution: rewriteLiteral(rw.Value),
		}}, nil
	}
	// ReplacePrefixMatch: ir.Config.Validate guarantees a Prefix match, and
	// routeMatch has already dropped routes whose prefix Envoy cannot carry.
	r := strings.TrimRight(rw.Value, "/")
	switch {
	case m.Value == "/" && r == "":
		return pathEdit{}, nil
	case m.Value == "/":
		return pathEdit{prefix: r + "/"}, nil
	case r != "":
		return pathEdit{prefix: r}, nil
	default:
		return pathEdit{regex: &matcherv3.RegexMatchAndSubstitute{
			Pattern:      regexMatcher("^" + regexp.QuoteMeta(m.Value) + "/?"),
			Substitution: "/",
		}}, nil
	}
}

// rewriteLiteral escapes a literal for an RE2 substitution, where a
// backslash introduces a group reference.
func rewriteLiteral(s string) string {
	return strings.ReplaceAll(s, `\`, `\\`)
}
