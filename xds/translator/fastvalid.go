package translator

import (
	"unicode/utf8"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
)

// This file proves routes valid without the generated validation code:
// validRoute(r) true means r.ValidateAll() returns nil. It applies, field
// by field, the rules the generated code of go-control-plane (the
// version go.mod pins) applies to Route, RouteMatch, RouteAction,
// WeightedCluster and its entries, HeaderMatcher, StringMatcher,
// HeaderValueOption and HeaderValue: the messages every route the
// translator builds is made of. Their string patterns are byte loops
// here; the generated code runs a regular expression for each, also on
// empty strings, which was most of the cost of validating a route. Any
// other message a route holds (a retry policy, a regex, a query
// parameter matcher…) is handed to its own ValidateAll, as the generated
// code does. A oneof case not listed here, a typed-nil oneof value or a
// failed rule gives false, which only means "not proven": the caller
// then runs ValidateAll, whose error it reports, so errors and their
// text are those of the generated code. fastvalid_test.go pins the field
// set of each message (a go-control-plane upgrade that adds a field
// fails it) and checks agreement with ValidateAll on mutated and fuzzed
// routes.

// generatedOnly, set only by tests, turns validRoute and validMatch off,
// so that what the generated code does (and allocates) can be observed.
var generatedOnly bool

// validRoute reports whether r is proven to pass ValidateAll.
func validRoute(r *routev3.Route) bool {
	if generatedOnly {
		return false
	}
	if r == nil {
		return true
	}
	// Name, StatPrefix: no rules. TypedPerFilterConfig holds Any values,
	// PerRequestBufferLimitBytes and RequestBodyBufferLimit wrappers:
	// none has rules.
	if r.Match == nil || !validMatch(r.Match) {
		return false
	}
	if r.Metadata.ValidateAll() != nil || r.Decorator.ValidateAll() != nil || r.Tracing.ValidateAll() != nil {
		return false
	}
	if !validHeaderEdits(r.RequestHeadersToAdd, r.RequestHeadersToRemove, true) ||
		!validHeaderEdits(r.ResponseHeadersToAdd, r.ResponseHeadersToRemove, true) {
		return false
	}
	for _, s := range r.RouteSpecifiers {
		if s.ValidateAll() != nil {
			return false
		}
	}
	switch a := r.Action.(type) {
	case *routev3.Route_Route:
		return a != nil && validAction(a.Route)
	case *routev3.Route_Redirect:
		return a != nil && a.Redirect.ValidateAll() == nil
	case *routev3.Route_DirectResponse:
		return a != nil && a.DirectResponse.ValidateAll() == nil
	case *routev3.Route_NonForwardingAction:
		return a != nil && a.NonForwardingAction.ValidateAll() == nil
	}
	return false
}

// validHeaderEdits checks a list of header additions (at most 1000) and
// of header names to remove (no NUL, CR or LF; at least one rune where
// nonEmpty: a Route's lists, not a ClusterWeight's).
func validHeaderEdits(add []*corev3.HeaderValueOption, remove []string, nonEmpty bool) bool {
	if len(add) > 1000 {
		return false
	}
	for _, o := range add {
		if !validHeaderValueOption(o) {
			return false
		}
	}
	for _, s := range remove {
		if (nonEmpty && s == "") || !headerSafe(s) {
			return false
		}
	}
	return true
}

func validHeaderValueOption(o *corev3.HeaderValueOption) bool {
	if o == nil {
		return true
	}
	// Append is a wrapper and KeepEmptyValue a bool: no rules.
	if o.Header == nil || !validHeaderValue(o.Header) {
		return false
	}
	_, ok := corev3.HeaderValueOption_HeaderAppendAction_name[int32(o.AppendAction)]
	return ok
}

func validHeaderValue(h *corev3.HeaderValue) bool {
	const maxBytes = 16384
	return h.Key != "" && len(h.Key) <= maxBytes && headerSafe(h.Key) &&
		len(h.Value) <= maxBytes && headerSafe(h.Value) &&
		len(h.RawValue) <= maxBytes
}

// headerSafe is the pattern ^[^\x00\n\r]*$. The regexp package reads
// bytes that are not UTF-8 as U+FFFD, which the class admits, and no
// byte of a multi-byte sequence is NUL, CR or LF: a byte loop is exact.
func headerSafe(s string) bool {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case 0, '\n', '\r':
			return false
		}
	}
	return true
}

// validMatch checks a RouteMatch.
func validMatch(m *routev3.RouteMatch) bool {
	if generatedOnly {
		return false
	}
	// CaseSensitive is a wrapper: no rules.
	switch p := m.PathSpecifier.(type) {
	case *routev3.RouteMatch_Prefix:
		if p == nil {
			return false
		}
	case *routev3.RouteMatch_Path:
		if p == nil {
			return false
		}
	case *routev3.RouteMatch_PathSeparatedPrefix:
		if p == nil || !pathSeparatedPrefix(p.PathSeparatedPrefix) {
			return false
		}
	case *routev3.RouteMatch_SafeRegex:
		if p == nil || p.SafeRegex == nil || p.SafeRegex.ValidateAll() != nil {
			return false
		}
	default: // none (it is required), or a case not handled here
		return false
	}
	for _, h := range m.Headers {
		if !validHeaderMatcher(h) {
			return false
		}
	}
	for _, q := range m.QueryParameters {
		if q.ValidateAll() != nil {
			return false
		}
	}
	for _, c := range m.Cookies {
		if c.ValidateAll() != nil {
			return false
		}
	}
	for _, d := range m.DynamicMetadata {
		if d.ValidateAll() != nil {
			return false
		}
	}
	for _, f := range m.FilterState {
		if f.ValidateAll() != nil {
			return false
		}
	}
	return m.RuntimeFraction.ValidateAll() == nil && m.Grpc.ValidateAll() == nil && m.TlsContext.ValidateAll() == nil
}

// pathSeparatedPrefix is the pattern ^[^?#]+[^?#/]$: two runes or more
// (an invalid byte reads as one rune, U+FFFD, as utf8 counts it), no '?'
// or '#', and not ending in '/' (the last rune is '/' exactly when the
// last byte is).
func pathSeparatedPrefix(s string) bool {
	if len(s) < 2 || s[len(s)-1] == '/' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] == '?' || s[i] == '#' {
			return false
		}
	}
	return utf8.RuneCountInString(s) >= 2
}

func validHeaderMatcher(h *routev3.HeaderMatcher) bool {
	if h == nil {
		return true
	}
	// InvertMatch, TreatMissingHeaderAsEmpty: no rules.
	if h.Name == "" || !headerSafe(h.Name) {
		return false
	}
	switch s := h.HeaderMatchSpecifier.(type) {
	case nil:
		return true // not required
	case *routev3.HeaderMatcher_StringMatch:
		return s != nil && validStringMatcher(s.StringMatch)
	case *routev3.HeaderMatcher_PresentMatch:
		return s != nil
	case *routev3.HeaderMatcher_ExactMatch:
		return s != nil
	case *routev3.HeaderMatcher_PrefixMatch:
		return s != nil && s.PrefixMatch != ""
	case *routev3.HeaderMatcher_SuffixMatch:
		return s != nil && s.SuffixMatch != ""
	case *routev3.HeaderMatcher_ContainsMatch:
		return s != nil && s.ContainsMatch != ""
	case *routev3.HeaderMatcher_SafeRegexMatch:
		return s != nil && s.SafeRegexMatch.ValidateAll() == nil
	case *routev3.HeaderMatcher_RangeMatch:
		return s != nil && s.RangeMatch.ValidateAll() == nil
	}
	return false
}

func validStringMatcher(m *matcherv3.StringMatcher) bool {
	if m == nil {
		return true
	}
	// IgnoreCase: no rules.
	switch p := m.MatchPattern.(type) {
	case *matcherv3.StringMatcher_Exact:
		return p != nil
	case *matcherv3.StringMatcher_Prefix:
		return p != nil && p.Prefix != ""
	case *matcherv3.StringMatcher_Suffix:
		return p != nil && p.Suffix != ""
	case *matcherv3.StringMatcher_Contains:
		return p != nil && p.Contains != ""
	case *matcherv3.StringMatcher_SafeRegex:
		return p != nil && p.SafeRegex != nil && p.SafeRegex.ValidateAll() == nil
	}
	return false // none (it is required), Custom, or a case not handled here
}

// validAction checks a RouteAction.
func validAction(a *routev3.RouteAction) bool {
	if a == nil {
		return false // valid, but not the translator's: left to ValidateAll
	}
	// PathRewrite, AppendXForwardedHost, InternalRedirectAction: no rules.
	// Timeout, IdleTimeout, FlushTimeout, MaxGrpcTimeout,
	// GrpcTimeoutOffset (durations), RetryPolicyTypedConfig (Any),
	// IncludeVhRateLimits, MaxInternalRedirects (wrappers): no rules.
	switch c := a.ClusterSpecifier.(type) {
	case *routev3.RouteAction_Cluster:
		if c == nil || c.Cluster == "" {
			return false
		}
	case *routev3.RouteAction_WeightedClusters:
		if c == nil || c.WeightedClusters == nil || !validWeightedClusters(c.WeightedClusters) {
			return false
		}
	default: // none (it is required), or a case not handled here
		return false
	}
	switch h := a.HostRewriteSpecifier.(type) {
	case nil:
	case *routev3.RouteAction_HostRewriteLiteral:
		if h == nil || !headerSafe(h.HostRewriteLiteral) {
			return false
		}
	default:
		return false
	}
	if _, ok := routev3.RouteAction_ClusterNotFoundResponseCode_name[int32(a.ClusterNotFoundResponseCode)]; !ok {
		return false
	}
	if _, ok := corev3.RoutingPriority_name[int32(a.Priority)]; !ok {
		return false
	}
	if !headerSafe(a.PrefixRewrite) {
		return false
	}
	if a.MetadataMatch.ValidateAll() != nil || a.RegexRewrite.ValidateAll() != nil ||
		a.PathRewritePolicy.ValidateAll() != nil || a.EarlyDataPolicy.ValidateAll() != nil ||
		a.RetryPolicy.ValidateAll() != nil || a.Cors.ValidateAll() != nil ||
		a.InternalRedirectPolicy.ValidateAll() != nil || a.HedgePolicy.ValidateAll() != nil ||
		a.MaxStreamDuration.ValidateAll() != nil {
		return false
	}
	for _, p := range a.RequestMirrorPolicies {
		if p.ValidateAll() != nil {
			return false
		}
	}
	for _, l := range a.RateLimits {
		if l.ValidateAll() != nil {
			return false
		}
	}
	for _, p := range a.HashPolicy {
		if p.ValidateAll() != nil {
			return false
		}
	}
	for _, u := range a.UpgradeConfigs {
		if u.ValidateAll() != nil {
			return false
		}
	}
	return true
}

func validWeightedClusters(w *routev3.WeightedCluster) bool {
	// TotalWeight is a wrapper, RuntimeKeyPrefix has no rules.
	if len(w.Clusters) == 0 {
		return false
	}
	switch r := w.RandomValueSpecifier.(type) {
	case nil:
	case *routev3.WeightedCluster_HeaderName:
		if r == nil || !headerSafe(r.HeaderName) {
			return false
		}
	default:
		return false
	}
	for _, c := range w.Clusters {
		if !validClusterWeight(c) {
			return false
		}
	}
	return true
}

func validClusterWeight(c *routev3.WeightedCluster_ClusterWeight) bool {
	if c == nil {
		return true
	}
	// Name: no rules. Weight is a wrapper and TypedPerFilterConfig holds
	// Any values: no rules.
	if !headerSafe(c.ClusterHeader) || c.MetadataMatch.ValidateAll() != nil {
		return false
	}
	if !validHeaderEdits(c.RequestHeadersToAdd, c.RequestHeadersToRemove, false) ||
		!validHeaderEdits(c.ResponseHeadersToAdd, c.ResponseHeadersToRemove, false) {
		return false
	}
	switch h := c.HostRewriteSpecifier.(type) {
	case nil:
		return true
	case *routev3.WeightedCluster_ClusterWeight_HostRewriteLiteral:
		return h != nil && headerSafe(h.HostRewriteLiteral)
	}
	return false
}
