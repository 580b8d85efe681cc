package gateway

import (
	"fmt"
	"iter"
	"math"
	"regexp"
	"strconv"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/nodemesh/nodemesh/mesh/input"
	"github.com/nodemesh/nodemesh/mesh/ir"
)

// GRPCRoute: a gRPC call is an HTTP/2 POST to /<service>/<method>, so a
// rule's method match compiles into a path match on the kind-neutral
// model, its header matches into header matches, and everything else —
// attachment, hostnames, backends, status, IR — is HTTPRoute's. Mapping
// of a method match:
//   - Exact service and method: the path "/<service>/<method>" exactly;
//   - Exact service only: every path of the service (prefix
//     "/<service>", which matches whole segments);
//   - Exact method only: RE2 "/[^/]+/<method>";
//   - RegularExpression: RE2 "/(?:<service>)/(?:<method>)", an unset part
//     being "[^/]+" (one path segment), each part matching a whole
//     segment.
// Precedence among GRPCRoute matches of one hostname follows the API:
// more characters of service, then of method, then more header matches.
// Backends must speak HTTP/2 cleartext: a Service port that does not say
// so (appProtocol kubernetes.io/h2c, grpc, h2c, http2, or without one a
// name grpc[-*], h2c[-*], http2[-*]: mesh/appprotocol) is
// UnsupportedProtocol rather than reached over HTTP/1.1, where no gRPC
// call can succeed (the port's one cluster is shared with HTTPRoutes, so
// the protocol comes from the Service alone). The one exception is a
// port that says nothing of a Service the route attaches to (GAMMA):
// the route's own statement holds for it, on a cluster apart (doc.go,
// "GAMMA").

var grpcRouteKind = routeKind{
	group:           gwv1.GroupName,
	kind:            "GRPCRoute",
	plural:          "GRPCRoutes",
	namePrefix:      "grpcroute",
	protocols:       []gwv1.ProtocolType{gwv1.HTTPProtocolType, gwv1.HTTPSProtocolType},
	backendProtocol: ir.ProtocolH2C,
	routes: func(in *input.Snapshot) iter.Seq[route] {
		return func(yield func(route) bool) {
			for _, r := range in.GRPCRoutes {
				if !yield(grpcRoute{r}) {
					return
				}
			}
		}
	},
}

// grpcRoute is a GRPCRoute as a route.
type grpcRoute struct{ obj *gwv1.GRPCRoute }

func (r grpcRoute) meta() *metav1.ObjectMeta           { return &r.obj.ObjectMeta }
func (r grpcRoute) parentRefs() []gwv1.ParentReference { return r.obj.Spec.ParentRefs }
func (r grpcRoute) hostnames() []gwv1.Hostname         { return r.obj.Spec.Hostnames }
func (r grpcRoute) hash(in *input.Snapshot) input.Hash { return input.ObjectHash(in, r.obj) }

// defaultGRPCRules: a GRPCRoute without rules is one rule matching every
// call, with no backends (so every call gets 500, as for HTTPRoute).
var defaultGRPCRules = []gwv1.GRPCRouteRule{{}}

func (r grpcRoute) compileRules(t *translator, rs *routeState) {
	rules := r.obj.Spec.Rules
	if len(rules) == 0 {
		rules = defaultGRPCRules
	}
	rs.rules = make([]*ruleState, 0, len(rules))
	for i := range rules {
		rs.rules = append(rs.rules, t.compileGRPCRule(rs, i, &rules[i]))
	}
}

// defaultGRPCMatches: a rule without matches matches every call.
var defaultGRPCMatches = []gwv1.GRPCRouteMatch{{}}

func (t *translator) compileGRPCRule(rs *routeState, i int, spec *gwv1.GRPCRouteRule) *ruleState {
	rule := &ruleState{route: rs, index: i}
	matches := spec.Matches
	if len(matches) == 0 {
		matches = defaultGRPCMatches
	}
	for j := range matches {
		rule.matches = append(rule.matches, compileGRPCMatch(rule, j, &matches[j]))
	}
	t.compileGRPCFilters(rule, "filters", spec.Filters, &rule.reqHeaders, &rule.respHeaders, true)
	for k := range spec.BackendRefs {
		br := &spec.BackendRefs[k]
		wb := weightedBackend(rule, k, br.Weight, new(ir.WeightedBackend))
		if wb == nil {
			continue
		}
		if len(br.Filters) > 0 {
			t.compileGRPCFilters(rule, fmt.Sprintf("backendRefs[%d].filters", k), br.Filters, &wb.RequestHeaders, &wb.ResponseHeaders, false)
		}
		t.resolveBackend(rule, k, wb, &br.BackendObjectReference)
	}
	if spec.SessionPersistence != nil {
		rule.fail(gwv1.RouteReasonUnsupportedValue, "sessionPersistence", "session persistence is not supported")
	}
	return rule
}

// compileGRPCFilters compiles the filters of a rule or of one backendRef:
// the two header modifiers and, on a rule (mirrors), RequestMirror, which
// copies calls as HTTPRoute's does (httproute_retry.go) to a backend that
// must speak h2c like the route's own; any other type invalidates the
// rule.
func (t *translator) compileGRPCFilters(rule *ruleState, field string, filters []gwv1.GRPCRouteFilter, req, resp **ir.HeaderModifier, mirrors bool) {
	seen := map[gwv1.GRPCRouteFilterType]bool{}
	for k := range filters {
		f := &filters[k]
		ff := field + "[" + strconv.Itoa(k) + "]"
		if f.Type == gwv1.GRPCRouteFilterRequestMirror && mirrors {
			// The one filter the API allows more than once.
			t.mirrorFilter(rule, ff+".requestMirror", f.RequestMirror)
			continue
		}
		if seen[f.Type] {
			rule.fail(gwv1.RouteReasonUnsupportedValue, ff+".type", "filter %s appears more than once", f.Type)
			return
		}
		seen[f.Type] = true
		switch f.Type {
		case gwv1.GRPCRouteFilterRequestHeaderModifier:
			*req = headerFilter(rule, ff, ".requestHeaderModifier", f.RequestHeaderModifier)
		case gwv1.GRPCRouteFilterResponseHeaderModifier:
			*resp = headerFilter(rule, ff, ".responseHeaderModifier", f.ResponseHeaderModifier)
		default:
			rule.fail(gwv1.RouteReasonUnsupportedValue, ff+".type", "filter type %q is not supported", f.Type)
		}
	}
}

// The API's patterns for exact service and method names.
var (
	grpcServiceName = regexp.MustCompile(`^(?i)\.?[a-z_][a-z_0-9]*(\.[a-z_][a-z_0-9]*)*$`)
	grpcMethodName  = regexp.MustCompile(`^[A-Za-z_][A-Za-z_0-9]*$`)
)

// grpcSegment is what an unset service or method matches: one segment.
const grpcSegment = `[^/]+`

func compileGRPCMatch(rule *ruleState, j int, m *gwv1.GRPCRouteMatch) *matchState {
	ms := &matchState{rule: rule, index: j, pathRank: rankPrefix, pathLen: 1}
	field := func(f string) string { return fmt.Sprintf("matches[%d].%s", j, f) }
	if mm := m.Method; mm != nil {
		compileMethodMatch(rule, ms, field, mm)
	}
	seen := map[string]bool{}
	for k, h := range m.Headers {
		name := string(h.Name)
		if !ir.ValidToken(name) {
			rule.fail(gwv1.RouteReasonUnsupportedValue, field(fmt.Sprintf("headers[%d].name", k)), "%q is not a valid header name", name)
			continue
		}
		if lower := strings.ToLower(name); seen[lower] {
			continue // only the first match of a name counts
		} else {
			seen[lower] = true
		}
		typ, sub, err := stringMatch((*string)(h.Type), h.Value)
		if err != nil {
			rule.fail(gwv1.RouteReasonUnsupportedValue, field(fmt.Sprintf("headers[%d].%s", k, sub)), "%v", err)
			continue
		}
		ms.match.Headers = append(ms.match.Headers, ir.HeaderMatch{Name: name, Type: typ, Value: h.Value})
	}
	ms.headers = len(ms.match.Headers)
	return ms
}

// compileMethodMatch turns a method match into the match's path and its
// precedence keys.
func compileMethodMatch(rule *ruleState, ms *matchState, field func(string) string, mm *gwv1.GRPCMethodMatch) {
	typ := gwv1.GRPCMethodMatchExact
	if mm.Type != nil {
		typ = *mm.Type
	}
	var service, method string
	if mm.Service != nil {
		service = *mm.Service
	}
	if mm.Method != nil {
		method = *mm.Method
	}
	if service == "" && method == "" {
		rule.fail(gwv1.RouteReasonUnsupportedValue, field("method"), "one or both of service and method must be set")
		return
	}
	ms.serviceLen, ms.methodLen = int32(min(len(service), math.MaxInt32)), int32(min(len(method), math.MaxInt32))
	switch typ {
	case gwv1.GRPCMethodMatchExact:
		if service != "" && !grpcServiceName.MatchString(service) {
			rule.fail(gwv1.RouteReasonUnsupportedValue, field("method.service"), "%q is not a gRPC service name", service)
			return
		}
		if method != "" && !grpcMethodName.MatchString(method) {
			rule.fail(gwv1.RouteReasonUnsupportedValue, field("method.method"), "%q is not a gRPC method name", method)
			return
		}
		switch {
		case method == "":
			ms.match.Path = &ir.PathMatch{Type: ir.PathPrefix, Value: "/" + service}
			ms.pathRank = rankRegex
		case service == "":
			ms.match.Path = &ir.PathMatch{Type: ir.PathRegex, Value: "/" + grpcSegment + "/" + regexp.QuoteMeta(method)}
			ms.pathRank = rankRegex
		default:
			ms.match.Path = &ir.PathMatch{Type: ir.PathExact, Value: "/" + service + "/" + method}
			ms.pathRank = rankExact
		}
	case gwv1.GRPCMethodMatchRegularExpression:
		parts := [2]string{grpcSegment, grpcSegment}
		for i, p := range [2]struct{ name, expr string }{{"service", service}, {"method", method}} {
			if p.expr == "" {
				continue
			}
			if _, err := regexp.Compile(p.expr); err != nil {
				rule.fail(gwv1.RouteReasonUnsupportedValue, field("method."+p.name), "invalid RE2 regular expression %q: %v", p.expr, err)
				return
			}
			parts[i] = "(?:" + p.expr + ")"
		}
		ms.match.Path = &ir.PathMatch{Type: ir.PathRegex, Value: "/" + parts[0] + "/" + parts[1]}
		ms.pathRank = rankRegex
	default:
		rule.fail(gwv1.RouteReasonUnsupportedValue, field("method.type"), "unsupported method match type %q", typ)
		return
	}
	ms.pathLen = len(ms.match.Path.Value)
}
