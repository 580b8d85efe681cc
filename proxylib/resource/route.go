package resource

import (
	"cmp"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
)

// DecodeRouteConfig decodes and validates a RouteConfiguration, compiling
// every regular expression.
func DecodeRouteConfig(a *anypb.Any) (*RouteConfig, error) {
	var rc routev3.RouteConfiguration
	if err := unpack(a, RouteType, &rc); err != nil {
		return nil, &ResourceError{Kind: "route configuration", Err: err}
	}
	out, err := decodeRouteConfig(&rc)
	if err != nil {
		return nil, &ResourceError{Kind: "route configuration", Name: rc.GetName(), Err: err}
	}
	return out, nil
}

func decodeRouteConfig(rc *routev3.RouteConfiguration) (*RouteConfig, error) {
	if rc.GetName() == "" {
		return nil, fieldErr(path{"name"}, "must not be empty")
	}
	if err := check(rc); err != nil {
		return nil, err
	}
	out := &RouteConfig{Name: rc.GetName(), IgnorePort: rc.GetIgnorePortInHostMatching()}
	domains := map[string]int{}
	for i, vh := range rc.GetVirtualHosts() {
		p := path{"virtual_hosts", "[" + strconv.Itoa(i) + "]"}
		v := &VirtualHost{Name: vh.GetName()}
		pf, err := decodePerFilter(vh.GetTypedPerFilterConfig(), p)
		if err != nil {
			return nil, err
		}
		v.PerFilter = pf
		for j, d := range vh.GetDomains() {
			dp := append(p, "domains", "["+strconv.Itoa(j)+"]")
			d = strings.ToLower(d)
			if d == "" || (strings.Contains(d, "*") && d != "*" && strings.Count(d, "*") > 1) ||
				(strings.Contains(d, "*") && d != "*" && !strings.HasPrefix(d, "*") && !strings.HasSuffix(d, "*")) {
				return nil, fieldErr(dp, "%q: a wildcard may only be a prefix or suffix", vh.GetDomains()[j])
			}
			if k, dup := domains[d]; dup {
				return nil, fieldErr(dp, "domain %q is already used by virtual_hosts[%d]; domains must be unique", d, k)
			}
			domains[d] = i
			v.Domains = append(v.Domains, d)
		}
		for j, r := range vh.GetRoutes() {
			route, err := decodeRoute(r, append(p, "routes", "["+strconv.Itoa(j)+"]"))
			if err != nil {
				return nil, err
			}
			v.Routes = append(v.Routes, route)
		}
		out.VirtualHosts = append(out.VirtualHosts, v)
	}
	return out, nil
}

func compileRegex(m *matcherv3.RegexMatcher, p path) (*regexp.Regexp, error) {
	re, err := regexp.Compile("^(?:" + m.GetRegex() + ")$")
	if err != nil {
		return nil, fieldErr(append(p, "regex"), "invalid RE2 regex %q: %v", m.GetRegex(), err)
	}
	return re, nil
}

func compileSearch(m *matcherv3.RegexMatcher, p path) (*regexp.Regexp, error) {
	re, err := regexp.Compile(m.GetRegex())
	if err != nil {
		return nil, fieldErr(append(p, "regex"), "invalid RE2 regex %q: %v", m.GetRegex(), err)
	}
	return re, nil
}

func stringMatch(m *matcherv3.StringMatcher, p path) (StringMatch, error) {
	if r := m.GetSafeRegex(); r != nil {
		re, err := compileRegex(r, append(p, "safe_regex"))
		if err != nil {
			return StringMatch{}, err
		}
		return NewRegexMatch(re), nil
	}
	out := StringMatch{IgnoreCase: m.GetIgnoreCase()}
	switch v := m.GetMatchPattern().(type) {
	case *matcherv3.StringMatcher_Exact:
		out.Kind, out.Exact = MatchExact, v.Exact
	case *matcherv3.StringMatcher_Prefix:
		out.Kind, out.Exact = MatchPrefix, v.Prefix
	case *matcherv3.StringMatcher_Suffix:
		out.Kind, out.Exact = MatchSuffix, v.Suffix
	case *matcherv3.StringMatcher_Contains:
		out.Kind, out.Exact = MatchContains, v.Contains
	case nil:
		// An unset pattern is an exact match of the empty string.
	default:
		return out, fieldErr(p, "match pattern %T not supported by nodemesh-proxy", v)
	}
	if out.IgnoreCase {
		out.Exact = strings.ToLower(out.Exact)
	}
	return out, nil
}

// headerMatch decodes a HeaderMatcher (routes and RBAC share it).
func headerMatch(h *routev3.HeaderMatcher, hp path) (HeaderMatch, error) {
	hm := HeaderMatch{Name: strings.ToLower(h.GetName()), Kind: HeaderPresent, Present: true, Invert: h.GetInvertMatch()}
	switch {
	case h.GetStringMatch() != nil:
		sm, err := stringMatch(h.GetStringMatch(), append(hp, "string_match"))
		if err != nil {
			return hm, err
		}
		hm.Kind, hm.String = HeaderString, sm
	default:
		if _, ok := h.GetHeaderMatchSpecifier().(*routev3.HeaderMatcher_PresentMatch); ok {
			hm.Present = h.GetPresentMatch()
		}
	}
	return hm, nil
}

func decodeRoute(r *routev3.Route, p path) (*Route, error) {
	out := &Route{Name: r.GetName()}
	pf, err := decodePerFilter(r.GetTypedPerFilterConfig(), p)
	if err != nil {
		return nil, err
	}
	out.PerFilter = pf
	m := r.GetMatch()
	mp := append(p, "match")
	switch {
	case m.GetSafeRegex() != nil:
		re, err := compileRegex(m.GetSafeRegex(), append(mp, "safe_regex"))
		if err != nil {
			return nil, err
		}
		out.PathKind, out.PathRegex, out.PathValue = PathRegex, re, m.GetSafeRegex().GetRegex()
	case m.GetPathSeparatedPrefix() != "":
		out.PathKind, out.PathValue = PathSeparatedPrefix, m.GetPathSeparatedPrefix()
	default:
		if _, ok := m.GetPathSpecifier().(*routev3.RouteMatch_Path); ok {
			out.PathKind, out.PathValue = PathExact, m.GetPath()
		} else if _, ok := m.GetPathSpecifier().(*routev3.RouteMatch_Prefix); ok {
			out.PathKind, out.PathValue = PathPrefix, m.GetPrefix()
		} else {
			return nil, fieldErr(mp, "a path specifier (prefix, path, safe_regex or path_separated_prefix) is required")
		}
	}
	for i, h := range m.GetHeaders() {
		hm, err := headerMatch(h, append(mp, "headers", "["+strconv.Itoa(i)+"]"))
		if err != nil {
			return nil, err
		}
		out.Headers = append(out.Headers, hm)
	}
	for i, q := range m.GetQueryParameters() {
		qp := append(mp, "query_parameters", "["+strconv.Itoa(i)+"]")
		qm := QueryMatch{Name: q.GetName()}
		if q.GetStringMatch() != nil {
			sm, err := stringMatch(q.GetStringMatch(), append(qp, "string_match"))
			if err != nil {
				return nil, err
			}
			qm.String = &sm
		}
		out.Query = append(out.Query, qm)
	}
	switch a := r.GetAction().(type) {
	case *routev3.Route_Route:
		f, err := decodeForward(a.Route, out.PathKind, append(p, "route"))
		if err != nil {
			return nil, err
		}
		out.Action, out.Forward = ActionForward, f
	case *routev3.Route_Redirect:
		rd, err := decodeRedirect(a.Redirect, out.PathKind, append(p, "redirect"))
		if err != nil {
			return nil, err
		}
		out.Action, out.Redirect = ActionRedirect, rd
	case *routev3.Route_DirectResponse:
		d := &Direct{Status: int(a.DirectResponse.GetStatus())}
		if b := a.DirectResponse.GetBody(); b != nil {
			if s, ok := b.GetSpecifier().(*corev3.DataSource_InlineString); ok {
				d.Body = []byte(s.InlineString)
			} else {
				d.Body = b.GetInlineBytes()
			}
		}
		out.Action, out.Direct = ActionDirect, d
	default:
		return nil, fieldErr(p, "an action (route, redirect or direct_response) is required")
	}
	mb := mutationBuilder{&out.RequestHeaders}
	if err := headerOps(r.GetRequestHeadersToAdd(), r.GetRequestHeadersToRemove(), p, "request_headers_to_add", "request_headers_to_remove", mb); err != nil {
		return nil, err
	}
	mb = mutationBuilder{&out.ResponseHeaders}
	if err := headerOps(r.GetResponseHeadersToAdd(), r.GetResponseHeadersToRemove(), p, "response_headers_to_add", "response_headers_to_remove", mb); err != nil {
		return nil, err
	}
	return out, nil
}

func decodeForward(a *routev3.RouteAction, kind PathKind, p path) (*Forward, error) {
	f := &Forward{Cluster: a.GetCluster()}
	var err error
	if f.Timeout, err = routeDuration(a.GetTimeout(), DefaultRouteTimeout, append(p, "timeout")); err != nil {
		return nil, err
	}
	if rp := a.GetRetryPolicy(); rp != nil {
		// The per-try timeout bounds every attempt until its response
		// starts, retried or not.
		if f.PerTryTimeout, err = routeDuration(rp.GetPerTryTimeout(), 0, append(p, "retry_policy", "per_try_timeout")); err != nil {
			return nil, err
		}
		if f.Timeout > 0 && f.PerTryTimeout >= f.Timeout {
			f.PerTryTimeout = 0 // Envoy ignores a per-try timeout the route timeout beats
		}
		if f.Retry, err = decodeRetryPolicy(rp, append(p, "retry_policy")); err != nil {
			return nil, err
		}
	}
	if f.Mirrors, err = decodeMirrors(a.GetRequestMirrorPolicies(), p); err != nil {
		return nil, err
	}
	if expected := cmp.Or(f.PerTryTimeout, f.Timeout); expected > 0 {
		f.TimeoutMS = []byte(strconv.FormatInt(expected.Milliseconds(), 10))
	}
	switch a.GetClusterNotFoundResponseCode() {
	case routev3.RouteAction_SERVICE_UNAVAILABLE:
		f.NotFoundCode = 503
	case routev3.RouteAction_NOT_FOUND:
		f.NotFoundCode = 404
	case routev3.RouteAction_INTERNAL_SERVER_ERROR:
		f.NotFoundCode = 500
	default:
		return nil, fieldErr(append(p, "cluster_not_found_response_code"), "unknown code %d", a.GetClusterNotFoundResponseCode())
	}
	if wc := a.GetWeightedClusters(); wc != nil {
		for i, c := range wc.GetClusters() {
			cp := append(p, "weighted_clusters", "clusters", "["+strconv.Itoa(i)+"]")
			w := WeightedCluster{Name: c.GetName(), Weight: c.GetWeight().GetValue()}
			if err := headerOps(c.GetRequestHeadersToAdd(), c.GetRequestHeadersToRemove(), cp, "request_headers_to_add", "request_headers_to_remove", mutationBuilder{&w.RequestHeaders}); err != nil {
				return nil, err
			}
			if err := headerOps(c.GetResponseHeadersToAdd(), c.GetResponseHeadersToRemove(), cp, "response_headers_to_add", "response_headers_to_remove", mutationBuilder{&w.ResponseHeaders}); err != nil {
				return nil, err
			}
			f.TotalWeight += uint64(w.Weight)
			f.Weighted = append(f.Weighted, w)
		}
		if f.TotalWeight == 0 {
			return nil, fieldErr(append(p, "weighted_clusters"), "sum of weights must be greater than 0")
		}
	} else if f.Cluster == "" {
		return nil, fieldErr(p, "cluster or weighted_clusters is required")
	}
	if pr := a.GetPrefixRewrite(); pr != "" {
		if kind == PathRegex {
			return nil, fieldErr(append(p, "prefix_rewrite"), "cannot be used with a safe_regex path match")
		}
		f.PrefixRewrite = []byte(pr)
	}
	if rr := a.GetRegexRewrite(); rr != nil {
		re, sub, err := rewrite(rr, append(p, "regex_rewrite"))
		if err != nil {
			return nil, err
		}
		f.RegexRewrite, f.Substitution = re, sub
	}
	if h := a.GetHostRewriteLiteral(); h != "" {
		f.HostRewrite = []byte(h)
	}
	return f, nil
}

// routeDuration converts a route timeout, rejecting what Envoy rejects: a
// malformed or negative duration.
func routeDuration(d *durationpb.Duration, def time.Duration, p path) (time.Duration, error) {
	if d == nil {
		return def, nil
	}
	if err := d.CheckValid(); err != nil {
		return 0, fieldErr(p, "%v", err)
	}
	if d.AsDuration() < 0 {
		return 0, fieldErr(p, "%v is negative", d.AsDuration())
	}
	return d.AsDuration(), nil
}

func decodeRedirect(a *routev3.RedirectAction, kind PathKind, p path) (*Redirect, error) {
	r := &Redirect{
		Scheme:     strings.ToLower(a.GetSchemeRedirect()),
		Host:       a.GetHostRedirect(),
		Path:       a.GetPathRedirect(),
		StripQuery: a.GetStripQuery(),
	}
	if a.GetPortRedirect() != 0 {
		r.Port = ":" + strconv.FormatUint(uint64(a.GetPortRedirect()), 10)
	}
	r.PathHasQuery = strings.Contains(r.Path, "?")
	if _, ok := a.GetPathRewriteSpecifier().(*routev3.RedirectAction_PrefixRewrite); ok {
		if kind == PathRegex {
			return nil, fieldErr(append(p, "prefix_rewrite"), "cannot be used with a safe_regex path match")
		}
		r.PrefixRewrite = []byte(a.GetPrefixRewrite())
		r.HasPrefix = true
	}
	if rr := a.GetRegexRewrite(); rr != nil {
		re, sub, err := rewrite(rr, append(p, "regex_rewrite"))
		if err != nil {
			return nil, err
		}
		r.RegexRewrite, r.Substitution = re, sub
	}
	switch a.GetResponseCode() {
	case routev3.RedirectAction_MOVED_PERMANENTLY:
		r.Code = 301
	case routev3.RedirectAction_FOUND:
		r.Code = 302
	case routev3.RedirectAction_SEE_OTHER:
		r.Code = 303
	case routev3.RedirectAction_TEMPORARY_REDIRECT:
		r.Code = 307
	case routev3.RedirectAction_PERMANENT_REDIRECT:
		r.Code = 308
	default:
		return nil, fieldErr(append(p, "response_code"), "unknown code %d", a.GetResponseCode())
	}
	return r, nil
}

// rewrite compiles a RegexMatchAndSubstitute, translating RE2's "\N"
// substitution syntax into a Go template and checking group references.
func rewrite(rr *matcherv3.RegexMatchAndSubstitute, p path) (*regexp.Regexp, []byte, error) {
	re, err := compileSearch(rr.GetPattern(), append(p, "pattern"))
	if err != nil {
		return nil, nil, err
	}
	sub := rr.GetSubstitution()
	var t []byte
	for i := 0; i < len(sub); i++ {
		c := sub[i]
		switch {
		case c == '$':
			t = append(t, '$', '$')
		case c == '\\' && i+1 < len(sub) && sub[i+1] >= '0' && sub[i+1] <= '9':
			n := int(sub[i+1] - '0')
			if n > re.NumSubexp() {
				return nil, nil, fieldErr(append(p, "substitution"), "%q refers to group \\%d but the pattern has %d", sub, n, re.NumSubexp())
			}
			t = append(t, fmt.Sprintf("${%d}", n)...)
			i++
		case c == '\\' && i+1 < len(sub) && sub[i+1] == '\\':
			t = append(t, '\\')
			i++
		case c == '\\':
			return nil, nil, fieldErr(append(p, "substitution"), "%q: a backslash must be followed by a digit or a backslash", sub)
		default:
			t = append(t, c)
		}
	}
	return re, t, nil
}
