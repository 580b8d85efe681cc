package gateway

import (
	"fmt"
	"strconv"
	"strings"

	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/nodemesh/nodemesh/mesh/ir"
)

// Filters supported here, in the order the IR applies them: request header
// edits, then URL rewrite or redirect; response header edits apply to
// whatever answers (backend, redirect or error); mirrors copy the request
// as forwarded (httproute_retry.go). Any other filter type invalidates its
// rule: a filter is never skipped silently.

// redirectSpec is a RequestRedirect before its port is resolved.
type redirectSpec struct {
	scheme   string
	hostname string
	port     int32 // 0: derive
	path     *ir.PathRewrite
	status   int
}

// ir resolves the redirect for a listener port, following the API's port
// defaulting: an explicit port wins; else a scheme's well-known port; else
// the listener's port. The IR leaves default ports out of Location.
func (r *redirectSpec) ir(listenerPort int32) *ir.Redirect {
	port := r.port
	if port == 0 {
		switch r.scheme {
		case "http":
			port = 80
		case "https":
			port = 443
		default:
			port = listenerPort
		}
	}
	return &ir.Redirect{Scheme: r.scheme, Hostname: r.hostname, Port: uint32(port), Path: r.path, StatusCode: r.status}
}

// portDependent reports whether the redirect differs between listener
// ports.
func (r *redirectSpec) portDependent() bool { return r.port == 0 && r.scheme == "" }

var redirectStatus = map[int]bool{301: true, 302: true, 303: true, 307: true, 308: true}

func (t *translator) compileRuleFilters(rule *ruleState, filters []gwv1.HTTPRouteFilter) {
	seen := map[gwv1.HTTPRouteFilterType]bool{}
	for k := range filters {
		f := &filters[k]
		field := "filters[" + strconv.Itoa(k) + "]"
		// RequestMirror is the one filter the API allows more than once.
		if seen[f.Type] && f.Type != gwv1.HTTPRouteFilterRequestMirror {
			rule.fail(gwv1.RouteReasonUnsupportedValue, field+".type", "filter %s appears more than once", f.Type)
			return
		}
		seen[f.Type] = true
		switch f.Type {
		case gwv1.HTTPRouteFilterRequestMirror:
			t.mirrorFilter(rule, field+".requestMirror", f.RequestMirror)
		case gwv1.HTTPRouteFilterRequestHeaderModifier:
			rule.reqHeaders = headerFilter(rule, field, ".requestHeaderModifier", f.RequestHeaderModifier)
		case gwv1.HTTPRouteFilterResponseHeaderModifier:
			rule.respHeaders = headerFilter(rule, field, ".responseHeaderModifier", f.ResponseHeaderModifier)
		case gwv1.HTTPRouteFilterRequestRedirect:
			rule.redirect = redirectFilter(rule, field+".requestRedirect", f.RequestRedirect)
		case gwv1.HTTPRouteFilterURLRewrite:
			rule.rewrite = rewriteFilter(rule, field+".urlRewrite", f.URLRewrite)
		case gwv1.HTTPRouteFilterCORS:
			rule.cors = corsFilter(rule, field+".cors", f.CORS)
		default:
			rule.fail(gwv1.RouteReasonUnsupportedValue, field+".type", "filter type %q is not supported", f.Type)
		}
	}
	if seen[gwv1.HTTPRouteFilterRequestRedirect] && seen[gwv1.HTTPRouteFilterURLRewrite] {
		rule.fail(gwv1.RouteReasonIncompatibleFilters, "filters", "RequestRedirect and URLRewrite cannot be combined")
	}
}

// backendFilters compiles the filters of one backendRef: only header
// edits can apply to a single backend.
func backendFilters(rule *ruleState, field string, filters []gwv1.HTTPRouteFilter, wb *ir.WeightedBackend) {
	seen := map[gwv1.HTTPRouteFilterType]bool{}
	for k := range filters {
		f := &filters[k]
		ff := fmt.Sprintf("%s.filters[%d]", field, k)
		if seen[f.Type] {
			rule.fail(gwv1.RouteReasonUnsupportedValue, ff+".type", "filter %s appears more than once", f.Type)
			return
		}
		seen[f.Type] = true
		switch f.Type {
		case gwv1.HTTPRouteFilterRequestHeaderModifier:
			wb.RequestHeaders = headerFilter(rule, ff, ".requestHeaderModifier", f.RequestHeaderModifier)
		case gwv1.HTTPRouteFilterResponseHeaderModifier:
			wb.ResponseHeaders = headerFilter(rule, ff, ".responseHeaderModifier", f.ResponseHeaderModifier)
		default:
			rule.fail(gwv1.RouteReasonUnsupportedValue, ff+".type", "filter type %q is not supported on a backendRef", f.Type)
		}
	}
}

// headerFilter compiles a header modifier. The API allows one action per
// header name (case-insensitive) across set, add and remove.
func headerFilter(rule *ruleState, field, sub string, f *gwv1.HTTPHeaderFilter) *ir.HeaderModifier {
	// The field's path is joined only for a problem: rules come by the
	// thousand and nearly all are valid.
	path := func() string { return field + sub }
	if f == nil {
		rule.fail(gwv1.RouteReasonUnsupportedValue, path(), "required for this filter type")
		return nil
	}
	var m *ir.HeaderModifier
	if len(f.Set)+len(f.Add) == 1 {
		// One edit (the common case) in one allocation with its
		// modifier: rules come by the thousand.
		blk := new(struct {
			m   ir.HeaderModifier
			one [1]ir.Header
		})
		m = &blk.m
		if len(f.Set) == 1 {
			m.Set = blk.one[:0:1]
		} else {
			m.Add = blk.one[:0:1]
		}
	} else {
		m = &ir.HeaderModifier{}
	}
	type action struct {
		list string
		i    int
	}
	var seen nameSet[action]
	check := func(list string, i int, name string) bool {
		if !ir.ValidToken(name) {
			rule.fail(gwv1.RouteReasonUnsupportedValue, fmt.Sprintf("%s.%s[%d]", path(), list, i), "%q is not a valid header name", name)
			return false
		}
		lower := strings.ToLower(name)
		if prev, dup := seen.get(lower); dup {
			rule.fail(gwv1.RouteReasonUnsupportedValue, fmt.Sprintf("%s.%s[%d]", path(), list, i), "header %q already has an action in %s[%d]", name, prev.list, prev.i)
			return false
		}
		seen.add(lower, action{list, i})
		return true
	}
	for i, h := range f.Set {
		if !check("set", i, string(h.Name)) {
			return nil
		}
		if !ir.ValidHeaderValue(h.Value) {
			rule.fail(gwv1.RouteReasonUnsupportedValue, fmt.Sprintf("%s.set[%d].value", path(), i), "contains control characters")
			return nil
		}
		m.Set = append(m.Set, ir.Header{Name: string(h.Name), Value: h.Value})
	}
	for i, h := range f.Add {
		if !check("add", i, string(h.Name)) {
			return nil
		}
		if !ir.ValidHeaderValue(h.Value) {
			rule.fail(gwv1.RouteReasonUnsupportedValue, fmt.Sprintf("%s.add[%d].value", path(), i), "contains control characters")
			return nil
		}
		m.Add = append(m.Add, ir.Header{Name: string(h.Name), Value: h.Value})
	}
	for i, name := range f.Remove {
		if !check("remove", i, name) {
			return nil
		}
		m.Remove = append(m.Remove, name)
	}
	if len(m.Set)+len(m.Add)+len(m.Remove) == 0 {
		return nil
	}
	return m
}

func redirectFilter(rule *ruleState, field string, f *gwv1.HTTPRequestRedirectFilter) *redirectSpec {
	if f == nil {
		rule.fail(gwv1.RouteReasonUnsupportedValue, field, "required for this filter type")
		return nil
	}
	r := &redirectSpec{status: 302}
	if f.Scheme != nil {
		switch *f.Scheme {
		case "http", "https":
			r.scheme = *f.Scheme
		default:
			rule.fail(gwv1.RouteReasonUnsupportedValue, field+".scheme", "unsupported scheme %q; use http or https", *f.Scheme)
		}
	}
	if f.Hostname != nil {
		if h := string(*f.Hostname); validHostname(h, false) {
			r.hostname = h
		} else {
			rule.fail(gwv1.RouteReasonUnsupportedValue, field+".hostname", "%q is not a valid hostname", h)
		}
	}
	if f.Port != nil {
		if *f.Port < 1 || *f.Port > 65535 {
			rule.fail(gwv1.RouteReasonUnsupportedValue, field+".port", "%d is out of range 1-65535", *f.Port)
		} else {
			r.port = *f.Port
		}
	}
	if f.StatusCode != nil {
		if redirectStatus[*f.StatusCode] {
			r.status = *f.StatusCode
		} else {
			rule.fail(gwv1.RouteReasonUnsupportedValue, field+".statusCode", "unsupported status code %d; use 301, 302, 303, 307 or 308", *f.StatusCode)
		}
	}
	if f.Path != nil {
		r.path = pathModifier(rule, field+".path", f.Path)
	}
	return r
}

func rewriteFilter(rule *ruleState, field string, f *gwv1.HTTPURLRewriteFilter) *ir.Rewrite {
	if f == nil {
		rule.fail(gwv1.RouteReasonUnsupportedValue, field, "required for this filter type")
		return nil
	}
	rw := &ir.Rewrite{}
	if f.Hostname != nil {
		if h := string(*f.Hostname); validHostname(h, false) {
			rw.Hostname = h
		} else {
			rule.fail(gwv1.RouteReasonUnsupportedValue, field+".hostname", "%q is not a valid hostname", h)
		}
	}
	if f.Path != nil {
		rw.Path = pathModifier(rule, field+".path", f.Path)
	}
	if rw.Hostname == "" && rw.Path == nil {
		return nil
	}
	return rw
}

// pathModifier compiles a redirect or rewrite path. ReplacePrefixMatch
// needs the rule to have exactly one match, of type PathPrefix (as the
// API's validation demands), so the prefix to replace is unambiguous.
func pathModifier(rule *ruleState, field string, m *gwv1.HTTPPathModifier) *ir.PathRewrite {
	switch m.Type {
	case gwv1.FullPathHTTPPathModifier:
		if m.ReplaceFullPath == nil {
			rule.fail(gwv1.RouteReasonUnsupportedValue, field+".replaceFullPath", "required for type ReplaceFullPath")
			return nil
		}
		v := *m.ReplaceFullPath
		if err := checkReplacement(v); err != nil {
			rule.fail(gwv1.RouteReasonUnsupportedValue, field+".replaceFullPath", "%q %v", v, err)
			return nil
		}
		return &ir.PathRewrite{Type: ir.ReplaceFullPath, Value: v}
	case gwv1.PrefixMatchHTTPPathModifier:
		if m.ReplacePrefixMatch == nil {
			rule.fail(gwv1.RouteReasonUnsupportedValue, field+".replacePrefixMatch", "required for type ReplacePrefixMatch")
			return nil
		}
		if len(rule.matches) != 1 || rule.matches[0].match.Path == nil || rule.matches[0].match.Path.Type != ir.PathPrefix {
			rule.fail(gwv1.RouteReasonUnsupportedValue, field+".type", "ReplacePrefixMatch needs the rule to have exactly one match, of type PathPrefix")
			return nil
		}
		// "" and "/" both replace the prefix with nothing; a trailing
		// slash is ignored, as in PathPrefix matches.
		v := *m.ReplacePrefixMatch
		if v == "" {
			v = "/"
		}
		if err := checkReplacement(v); err != nil {
			rule.fail(gwv1.RouteReasonUnsupportedValue, field+".replacePrefixMatch", "%q %v", v, err)
			return nil
		}
		if v != "/" {
			v = strings.TrimRight(v, "/")
			if v == "" {
				v = "/"
			}
		}
		return &ir.PathRewrite{Type: ir.ReplacePrefixMatch, Value: v}
	}
	rule.fail(gwv1.RouteReasonUnsupportedValue, field+".type", "unsupported path modifier type %q", m.Type)
	return nil
}

// checkReplacement accepts an absolute path without control characters,
// spaces, query or fragment.
func checkReplacement(p string) error {
	if !strings.HasPrefix(p, "/") {
		return fmt.Errorf("must start with /")
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; c <= ' ' || c == 0x7f || c == '?' || c == '#' {
			return fmt.Errorf("contains %q, which is not allowed in a path", c)
		}
	}
	return nil
}
