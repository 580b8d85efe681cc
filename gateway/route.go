package gateway

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/nodemesh/nodemesh/mesh/input"
	"github.com/nodemesh/nodemesh/mesh/ir"
)

// routeState is one HTTPRoute with a parentRef to one of our Gateways,
// compiled once whatever the number of listeners it attaches to.
type routeState struct {
	key     input.Key
	obj     *gwv1.HTTPRoute
	created metav1.Time
	// hostnames are the valid spec.hostnames, deduplicated; none means
	// any host.
	hostnames []string
	// problems make the whole route unacceptable (UnsupportedValue).
	problems []string
	rules    []*ruleState
	// invalid lists the rules dropped from the configuration, each with
	// the reason it was dropped.
	invalid []*ruleState
	// refProblems are unresolved backendRefs (ResolvedRefs=False).
	refProblems []refProblem
	parents     []*parentState
	// mark lets virtual host assembly visit each route once per host
	// without a set.
	mark int
}

type refProblem struct{ reason, msg string }

// ruleState is one rule of an HTTPRoute.
type ruleState struct {
	route *routeState
	index int
	// reason and problem are set when the rule is invalid; it is then
	// dropped from the configuration.
	reason, problem string
	matches         []*matchState

	backends    []*ir.WeightedBackend
	clusters    []*ir.Cluster
	redirect    *redirectSpec
	rewrite     *ir.Rewrite
	reqHeaders  *ir.HeaderModifier
	respHeaders *ir.HeaderModifier
	// timeout bounds the whole request, backendTimeout each request to a
	// backend (timeouts.request and timeouts.backendRequest; 0: none).
	timeout        time.Duration
	backendTimeout time.Duration
}

func (r *ruleState) valid() bool { return r.problem == "" }

// fail records the first problem of a rule; field is relative to the rule.
func (r *ruleState) fail(reason gwv1.RouteConditionReason, field, format string, args ...any) {
	if r.problem != "" {
		return
	}
	r.reason = string(reason)
	r.problem = fmt.Sprintf("HTTPRoute %s: spec.rules[%d]", r.route.key, r.index)
	if field != "" {
		r.problem += "." + field
	}
	r.problem += ": " + fmt.Sprintf(format, args...)
}

// matchState is one match of a rule: one IR route per listener port at
// most (redirects may depend on the port), usually one in all.
type matchState struct {
	rule  *ruleState
	index int
	match ir.Match

	// Precedence keys, see precedence.go.
	pathRank  int
	pathLen   int
	hasMethod bool
	headers   int
	query     int

	route  *ir.Route
	byPort map[int32]*ir.Route
}

// referencesUs reports whether a route has a parentRef to one of our
// Gateways; other routes are none of this controller's business.
func (t *translator) referencesUs(r *gwv1.HTTPRoute) bool {
	for _, pr := range r.Spec.ParentRefs {
		if isGatewayRef(pr) && t.gateways[gatewayKey(pr, r.Namespace)] != nil {
			return true
		}
	}
	return false
}

func isGatewayRef(pr gwv1.ParentReference) bool {
	return groupOr(pr.Group, gwv1.GroupName) == gwv1.GroupName && kindOr(pr.Kind, "Gateway") == "Gateway"
}

func gatewayKey(pr gwv1.ParentReference, routeNamespace string) input.Key {
	return input.Key{Namespace: namespaceOr(pr.Namespace, routeNamespace), Name: string(pr.Name)}
}

func (t *translator) processRoutes() {
	for _, r := range t.in.HTTPRoutes {
		if !t.referencesUs(r) {
			continue
		}
		rs := t.reusedRoute(r)
		if rs == nil {
			rs = t.compileRoute(r)
		}
		if t.next != nil {
			t.next.routes[rs.key] = rs
		}
		t.attach(rs)
		t.routes = append(t.routes, rs)
	}
}

// defaultRule is what the API server defaults an HTTPRoute without rules
// to: one rule matching every request, with no backends.
var defaultRules = []gwv1.HTTPRouteRule{{}}

func (t *translator) compileRoute(r *gwv1.HTTPRoute) *routeState {
	rs := &routeState{key: keyOf(r), obj: r, created: r.CreationTimestamp}
	seen := map[string]bool{}
	for i, h := range r.Spec.Hostnames {
		hs := string(h)
		if !validHostname(hs, true) {
			rs.problems = append(rs.problems, fmt.Sprintf("HTTPRoute %s: spec.hostnames[%d]: %q is not a valid hostname", rs.key, i, hs))
			continue
		}
		if !seen[hs] {
			seen[hs] = true
			rs.hostnames = append(rs.hostnames, hs)
		}
	}
	rules := r.Spec.Rules
	if len(rules) == 0 {
		rules = defaultRules
	}
	for i := range rules {
		rule := t.compileRule(rs, i, &rules[i])
		rs.rules = append(rs.rules, rule)
		if !rule.valid() {
			rs.invalid = append(rs.invalid, rule)
		}
	}
	return rs
}

// defaultMatches is the API default for a rule without matches.
var defaultMatches = []gwv1.HTTPRouteMatch{{}}

func (t *translator) compileRule(rs *routeState, i int, spec *gwv1.HTTPRouteRule) *ruleState {
	rule := &ruleState{route: rs, index: i}
	matches := spec.Matches
	if len(matches) == 0 {
		matches = defaultMatches
	}
	for j := range matches {
		rule.matches = append(rule.matches, compileMatch(rule, j, &matches[j]))
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
		rule.fail(gwv1.RouteReasonUnsupportedValue, "retry", "retries are not supported")
	}
	if spec.SessionPersistence != nil {
		rule.fail(gwv1.RouteReasonUnsupportedValue, "sessionPersistence", "session persistence is not supported")
	}
	return rule
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

var httpMethods = map[gwv1.HTTPMethod]bool{
	gwv1.HTTPMethodGet: true, gwv1.HTTPMethodHead: true, gwv1.HTTPMethodPost: true,
	gwv1.HTTPMethodPut: true, gwv1.HTTPMethodDelete: true, gwv1.HTTPMethodConnect: true,
	gwv1.HTTPMethodOptions: true, gwv1.HTTPMethodTrace: true, gwv1.HTTPMethodPatch: true,
}

func compileMatch(rule *ruleState, j int, m *gwv1.HTTPRouteMatch) *matchState {
	ms := &matchState{rule: rule, index: j}
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
			ms.match.Path = &ir.PathMatch{Type: ir.PathExact, Value: value}
			ms.pathRank = rankExact
		} else {
			if value != "/" {
				value = strings.TrimSuffix(value, "/")
			}
			ms.match.Path = &ir.PathMatch{Type: ir.PathPrefix, Value: value}
			ms.pathRank = rankPrefix
		}
		ms.pathLen = len(value)
	case gwv1.PathMatchRegularExpression:
		if _, err := regexp.Compile(value); err != nil {
			rule.fail(gwv1.RouteReasonUnsupportedValue, field("path.value"), "invalid RE2 regular expression %q: %v", value, err)
			break
		}
		ms.match.Path = &ir.PathMatch{Type: ir.PathRegex, Value: value}
		ms.pathRank, ms.pathLen = rankRegex, len(value)
	default:
		rule.fail(gwv1.RouteReasonUnsupportedValue, field("path.type"), "unsupported path match type %q", typ)
	}

	seen := map[string]bool{}
	for k, h := range m.Headers {
		name := string(h.Name)
		if !ir.ValidToken(name) {
			rule.fail(gwv1.RouteReasonUnsupportedValue, field(fmt.Sprintf("headers[%d].name", k)), "%q is not a valid header name", name)
			continue
		}
		// Only the first match of a header name counts; names are
		// case-insensitive.
		if lower := strings.ToLower(name); seen[lower] {
			continue
		} else {
			seen[lower] = true
		}
		t, sub, err := stringMatch((*string)(h.Type), h.Value)
		if err != nil {
			rule.fail(gwv1.RouteReasonUnsupportedValue, field(fmt.Sprintf("headers[%d].%s", k, sub)), "%v", err)
			continue
		}
		ms.match.Headers = append(ms.match.Headers, ir.HeaderMatch{Name: name, Type: t, Value: h.Value})
	}
	clear(seen)
	for k, q := range m.QueryParams {
		name := string(q.Name)
		if !ir.ValidToken(name) {
			rule.fail(gwv1.RouteReasonUnsupportedValue, field(fmt.Sprintf("queryParams[%d].name", k)), "%q is not a valid query parameter name", name)
			continue
		}
		if seen[name] {
			continue // only the first match of a name counts
		}
		seen[name] = true
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
