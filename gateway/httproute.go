package gateway

import (
	"fmt"
	"iter"
	"regexp"
	"slices"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/nodemesh/nodemesh/mesh/input"
	"github.com/nodemesh/nodemesh/mesh/ir"
)

// HTTPRoute: matches, filters, timeouts and backendRefs compile into the
// kind-neutral ruleState; attachment, status and IR assembly are shared.

var httpRouteKind = routeKind{
	group:      gwv1.GroupName,
	kind:       "HTTPRoute",
	plural:     "HTTPRoutes",
	namePrefix: "httproute",
	protocols:  []gwv1.ProtocolType{gwv1.HTTPProtocolType, gwv1.HTTPSProtocolType},
	routes: func(in *input.Snapshot) iter.Seq[route] {
		return func(yield func(route) bool) {
			for _, r := range in.HTTPRoutes {
				if !yield(httpRoute{r}) {
					return
				}
			}
		}
	},
}

// httpRoute is an HTTPRoute as a route.
type httpRoute struct{ obj *gwv1.HTTPRoute }

func (r httpRoute) meta() *metav1.ObjectMeta           { return &r.obj.ObjectMeta }
func (r httpRoute) hash(in *input.Snapshot) input.Hash { return input.ObjectHash(in, r.obj) }
func (r httpRoute) parentRefs() []gwv1.ParentReference { return r.obj.Spec.ParentRefs }
func (r httpRoute) hostnames() []gwv1.Hostname         { return r.obj.Spec.Hostnames }

// defaultRule is what the API server defaults an HTTPRoute without rules
// to: one rule matching every request, with no backends.
var defaultRules = []gwv1.HTTPRouteRule{{}}

func (r httpRoute) compileRules(t *translator, rs *routeState) {
	rules := r.obj.Spec.Rules
	if len(rules) == 0 {
		rules = defaultRules
	}
	rs.rules = make([]*ruleState, 0, len(rules))
	for i := range rules {
		rs.rules = append(rs.rules, t.compileRule(rs, i, &rules[i]))
	}
}

// defaultMatches is the API default for a rule without matches.
var defaultMatches = []gwv1.HTTPRouteMatch{{}}

func (t *translator) compileRule(rs *routeState, i int, spec *gwv1.HTTPRouteRule) *ruleState {
	matches := spec.Matches
	if len(matches) == 0 {
		matches = defaultMatches
	}
	// The header matches of all the rule's matches share one array
	// (see newRuleState). Each match appends into its own part
	// (compileMatch keeps at most as many as it has), capped so that
	// nothing can grow into the next match's part.
	rule, states, headers := newRuleState(len(matches), countHeaderMatches(matches))
	rule.route, rule.index = rs, i
	for j := range matches {
		if n := len(matches[j].Headers); n > 0 {
			states[j].match.Headers, headers = headers[:0:n], headers[n:]
		}
		ms := compileMatch(&states[j], rule, j, &matches[j])
		if len(ms.match.Headers) == 0 {
			ms.match.Headers = nil
		}
		ms.match.Headers = slices.Clip(ms.match.Headers)
		rule.matches = append(rule.matches, ms)
	}
	t.compileRuleFilters(rule, spec.Filters)
	t.compileBackends(rule, spec.BackendRefs)
	if rule.redirect != nil && len(spec.BackendRefs) > 0 {
		rule.fail(gwv1.RouteReasonUnsupportedValue, "filters", "a RequestRedirect filter cannot be combined with backendRefs")
	}
	if spec.Timeouts != nil {
		rule.timeout, rule.backendTimeout = compileTimeouts(rule, spec.Timeouts)
	}
	if spec.Retry != nil {
		rule.retry = compileRetry(rule, spec.Retry)
	}
	if spec.SessionPersistence != nil {
		rule.fail(gwv1.RouteReasonUnsupportedValue, "sessionPersistence", "session persistence is not supported")
	}
	return rule
}

func countHeaderMatches(matches []gwv1.HTTPRouteMatch) int {
	n := 0
	for j := range matches {
		n += len(matches[j].Headers)
	}
	return n
}

// newRuleState returns a zero rule with room for n matches in its
// matches and for their IR routes in its routes (routeOf), n zero
// matches, and room for their h header matches. A rule of one or two
// matches with at most one header match each (nearly all of them) comes
// in one allocation with all of that: rules come by the thousand.
func newRuleState(n, h int) (*ruleState, []matchState, []ir.HeaderMatch) {
	switch {
	case n == 1 && h <= 1:
		blk := new(struct {
			rule    ruleState
			states  [1]matchState
			matches [1]*matchState
			routes  [1]ir.Route
			headers [1]ir.HeaderMatch
		})
		blk.rule.matches, blk.rule.routes = blk.matches[:0:1], blk.routes[:0:1]
		return &blk.rule, blk.states[:], blk.headers[:h]
	case n == 2 && h <= 2:
		blk := new(struct {
			rule    ruleState
			states  [2]matchState
			matches [2]*matchState
			routes  [2]ir.Route
			headers [2]ir.HeaderMatch
		})
		blk.rule.matches, blk.rule.routes = blk.matches[:0:2], blk.routes[:0:2]
		return &blk.rule, blk.states[:], blk.headers[:h]
	}
	var headers []ir.HeaderMatch
	if h > 0 {
		headers = make([]ir.HeaderMatch, h)
	}
	return &ruleState{matches: make([]*matchState, 0, n)}, make([]matchState, n), headers
}

// compileTimeouts returns the request and backend request timeouts of a
// rule. Both are kept as written (GEP-1742): request bounds the whole
// client request, backendRequest each request to a backend. Without
// retries there is one backend request, so the shorter of the two is what
// a client observes; the IR carries both and the xDS translator maps them
// onto Envoy's route timeout and per-try timeout. Zero disables a timeout,
// as the IR's zero does.
func compileTimeouts(rule *ruleState, to *gwv1.HTTPRouteTimeouts) (request, backend time.Duration) {
	var err error
	if to.Request != nil {
		if request, err = parseDuration(string(*to.Request)); err != nil {
			rule.fail(gwv1.RouteReasonUnsupportedValue, "timeouts.request", "%v", err)
			return 0, 0
		}
	}
	if to.BackendRequest != nil {
		if backend, err = parseDuration(string(*to.BackendRequest)); err != nil {
			rule.fail(gwv1.RouteReasonUnsupportedValue, "timeouts.backendRequest", "%v", err)
			return 0, 0
		}
		if request != 0 && backend > request {
			rule.fail(gwv1.RouteReasonUnsupportedValue, "timeouts.backendRequest", "%s exceeds the request timeout %s", *to.BackendRequest, *to.Request)
			return 0, 0
		}
	}
	return request, backend
}

// compileBackends compiles a rule's backendRefs: weight, then the
// backendRef's own filters, then the Service it resolves to.
func (t *translator) compileBackends(rule *ruleState, refs []gwv1.HTTPBackendRef) {
	var slab []ir.WeightedBackend
	if len(refs) > 0 {
		var clusters []*ir.Cluster
		rule.backends, slab, clusters = newBackends(len(refs))
		if rule.clusters == nil {
			rule.clusters = clusters
		} else {
			// Mirror filters, compiled before, added clusters.
			rule.clusters = slices.Grow(rule.clusters, len(refs))
		}
	}
	for k := range refs {
		br := &refs[k]
		wb := weightedBackend(rule, k, br.Weight, &slab[k])
		if wb == nil {
			continue
		}
		if len(br.Filters) > 0 {
			backendFilters(rule, fmt.Sprintf("backendRefs[%d]", k), br.Filters, wb)
		}
		t.resolveBackend(rule, k, wb, &br.BackendObjectReference)
	}
}

// newBackends returns room for a rule's n backends: an empty list with
// capacity n, n zero backends for it to point to, and an empty list of
// clusters with capacity n. For one or two backends (nearly every rule)
// all three come in one allocation: rules come by the thousand.
func newBackends(n int) ([]*ir.WeightedBackend, []ir.WeightedBackend, []*ir.Cluster) {
	switch n {
	case 1:
		blk := new(struct {
			list     [1]*ir.WeightedBackend
			clusters [1]*ir.Cluster
			slab     [1]ir.WeightedBackend
		})
		return blk.list[:0:1], blk.slab[:], blk.clusters[:0:1]
	case 2:
		blk := new(struct {
			list     [2]*ir.WeightedBackend
			clusters [2]*ir.Cluster
			slab     [2]ir.WeightedBackend
		})
		return blk.list[:0:2], blk.slab[:], blk.clusters[:0:2]
	}
	return make([]*ir.WeightedBackend, 0, n), make([]ir.WeightedBackend, n), make([]*ir.Cluster, 0, n)
}

var httpMethods = map[gwv1.HTTPMethod]bool{
	gwv1.HTTPMethodGet: true, gwv1.HTTPMethodHead: true, gwv1.HTTPMethodPost: true,
	gwv1.HTTPMethodPut: true, gwv1.HTTPMethodDelete: true, gwv1.HTTPMethodConnect: true,
	gwv1.HTTPMethodOptions: true, gwv1.HTTPMethodTrace: true, gwv1.HTTPMethodPatch: true,
}

// compileMatch compiles match j of a rule into ms (zero, but for room
// for m's header matches in ms.match.Headers) and returns it.
func compileMatch(ms *matchState, rule *ruleState, j int, m *gwv1.HTTPRouteMatch) *matchState {
	ms.rule, ms.index = rule, j
	field := func(f string) string { return fmt.Sprintf("matches[%d].%s", j, f) }

	typ, value := gwv1.PathMatchPathPrefix, "/"
	if m.Path != nil {
		if m.Path.Type != nil {
			typ = *m.Path.Type
		}
		if m.Path.Value != nil {
			value = *m.Path.Value
		}
	}
	switch typ {
	case gwv1.PathMatchExact, gwv1.PathMatchPathPrefix:
		if err := checkPath(value); err != nil {
			rule.fail(gwv1.RouteReasonUnsupportedValue, field("path.value"), "%q %v", value, err)
			break
		}
		if typ == gwv1.PathMatchExact {
			ms.path = ir.PathMatch{Type: ir.PathExact, Value: value}
			ms.pathRank = rankExact
		} else {
			if value != "/" {
				value = strings.TrimSuffix(value, "/")
			}
			ms.path = ir.PathMatch{Type: ir.PathPrefix, Value: value}
			ms.pathRank = rankPrefix
		}
		ms.match.Path = &ms.path
		ms.pathLen = len(value)
	case gwv1.PathMatchRegularExpression:
		if _, err := regexp.Compile(value); err != nil {
			rule.fail(gwv1.RouteReasonUnsupportedValue, field("path.value"), "invalid RE2 regular expression %q: %v", value, err)
			break
		}
		ms.path = ir.PathMatch{Type: ir.PathRegex, Value: value}
		ms.match.Path = &ms.path
		ms.pathRank, ms.pathLen = rankRegex, len(value)
	default:
		rule.fail(gwv1.RouteReasonUnsupportedValue, field("path.type"), "unsupported path match type %q", typ)
	}

	var seen nameSet[struct{}]
	for k, h := range m.Headers {
		name := string(h.Name)
		if !ir.ValidToken(name) {
			rule.fail(gwv1.RouteReasonUnsupportedValue, field(fmt.Sprintf("headers[%d].name", k)), "%q is not a valid header name", name)
			continue
		}
		// Only the first match of a header name counts; names are
		// case-insensitive.
		if lower := strings.ToLower(name); seen.has(lower) {
			continue
		} else {
			seen.add(lower, struct{}{})
		}
		t, sub, err := stringMatch((*string)(h.Type), h.Value)
		if err != nil {
			rule.fail(gwv1.RouteReasonUnsupportedValue, field(fmt.Sprintf("headers[%d].%s", k, sub)), "%v", err)
			continue
		}
		ms.match.Headers = append(ms.match.Headers, ir.HeaderMatch{Name: name, Type: t, Value: h.Value})
	}
	seen = nameSet[struct{}]{}
	for k, q := range m.QueryParams {
		name := string(q.Name)
		if !ir.ValidToken(name) {
			rule.fail(gwv1.RouteReasonUnsupportedValue, field(fmt.Sprintf("queryParams[%d].name", k)), "%q is not a valid query parameter name", name)
			continue
		}
		if seen.has(name) {
			continue // only the first match of a name counts
		}
		seen.add(name, struct{}{})
		t, sub, err := stringMatch((*string)(q.Type), q.Value)
		if err != nil {
			rule.fail(gwv1.RouteReasonUnsupportedValue, field(fmt.Sprintf("queryParams[%d].%s", k, sub)), "%v", err)
			continue
		}
		ms.match.Query = append(ms.match.Query, ir.QueryMatch{Name: name, Type: t, Value: q.Value})
	}
	if m.Method != nil {
		if !httpMethods[*m.Method] {
			rule.fail(gwv1.RouteReasonUnsupportedValue, field("method"), "unsupported method %q", *m.Method)
		} else {
			ms.match.Method = string(*m.Method)
			ms.hasMethod = true
		}
	}
	ms.headers, ms.query = len(ms.match.Headers), len(ms.match.Query)
	return ms
}

// stringMatch checks a header or query match type (nil: Exact) and value.
// On error it names the offending field ("type" or "value").
func stringMatch(typ *string, value string) (ir.StringMatchType, string, error) {
	t := "Exact"
	if typ != nil {
		t = *typ
	}
	switch t {
	case "Exact":
		return ir.MatchExact, "", nil
	case "RegularExpression":
		if _, err := regexp.Compile(value); err != nil {
			return "", "value", fmt.Errorf("invalid RE2 regular expression %q: %v", value, err)
		}
		return ir.MatchRegex, "", nil
	}
	return "", "type", fmt.Errorf("unsupported match type %q", t)
}

// checkPath applies the API's rules for Exact and PathPrefix values.
func checkPath(p string) error {
	switch {
	case !strings.HasPrefix(p, "/"):
		return fmt.Errorf("must start with /")
	case strings.Contains(p, "//"):
		return fmt.Errorf("must not contain //")
	case strings.Contains(p, "/./") || strings.Contains(p, "/../") || strings.HasSuffix(p, "/.") || strings.HasSuffix(p, "/.."):
		return fmt.Errorf("must not contain . or .. segments")
	case strings.Contains(strings.ToLower(p), "%2f"):
		return fmt.Errorf("must not contain an encoded /")
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', strings.IndexByte("-/._~!$&'()*+,;=:@", c) >= 0:
		case c == '%' && i+2 < len(p) && isHex(p[i+1]) && isHex(p[i+2]):
			i += 2
		default:
			return fmt.Errorf("contains %q, which is not allowed in a path", c)
		}
	}
	return nil
}

func isHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }
