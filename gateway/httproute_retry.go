package gateway

import (
	"fmt"
	"math"
	"slices"

	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/nodemesh/nodemesh/mesh/ir"
)

// HTTPRoute retries (Extended: HTTPRouteRetry, with
// HTTPRouteRetryBackendTimeout and HTTPRouteRetryConnectionError) and the
// RequestMirror filter (HTTPRouteRequestMirror, Multiple and Percentage).
//
// A rule's retry becomes the IR retry policy of each of its routes: codes
// as written (the API allows 400-599; MUST for 500, 502, 503, 504),
// attempts as the number of retries after the first attempt, backoff as
// the base interval between them. As the API recommends, a retry stanza
// also retries connection errors (connect failure, reset, and a
// backendRequest timeout expiring before the response started); that is
// the IR policy's fixed behaviour. attempts unset leaves the proxy's
// default (one retry); backoff unset, its default (25 ms). Envoy's
// back-off is fully jittered below an exponentially growing bound, so a
// retry may come sooner than backoff: the API allows exponential and
// jittered strategies but asks for backoff as a minimum, which Envoy has
// no knob for; it is the closest Envoy field and the one other Envoy-based
// implementations use.
//
// Each RequestMirror filter becomes one IR mirror (a rule may hold any
// number of them) of its backendRef's Service cluster; percent p is p/100,
// fraction n/d (d defaulting to 100) is n/d, neither is every request.
// A backendRef that does not resolve makes the route ResolvedRefs=False
// and its mirror is left out, as the API requires, while the rule keeps
// serving. Mirroring needs backendRefs to mirror the forwarded request
// of, so a rule with a mirror and no backendRefs (which answers 500) or a
// redirect has nothing to mirror: the filter is then ignored, as a
// request that is never forwarded is never copied.

// maxRetryAttempts bounds attempts: each retry holds a cluster's retry
// budget and the route timeout bounds them anyway, so more than this is a
// mistake rather than a policy.
const maxRetryAttempts = 64

// compileRetry compiles a rule's retry stanza.
func compileRetry(rule *ruleState, r *gwv1.HTTPRouteRetry) *ir.RetryPolicy {
	p := &ir.RetryPolicy{}
	for i, c := range r.Codes {
		code := int(c)
		if code < 400 || code > 599 {
			rule.fail(gwv1.RouteReasonUnsupportedValue, fmt.Sprintf("retry.codes[%d]", i), "%d is not an HTTP error status (400-599)", code)
			return nil
		}
		if !slices.Contains(p.Codes, code) {
			p.Codes = append(p.Codes, code)
		}
	}
	if r.Attempts != nil {
		switch a := *r.Attempts; {
		case a < 1 || a > maxRetryAttempts:
			rule.fail(gwv1.RouteReasonUnsupportedValue, "retry.attempts", "%d is outside 1-%d", a, maxRetryAttempts)
			return nil
		default:
			p.Attempts = uint32(min(a, math.MaxUint32))
		}
	}
	if r.Backoff != nil {
		d, err := parseDuration(string(*r.Backoff))
		if err != nil {
			rule.fail(gwv1.RouteReasonUnsupportedValue, "retry.backoff", "%v", err)
			return nil
		}
		p.Backoff = d
	}
	return p
}

// mirrorFilter compiles a RequestMirror filter into the rule's mirrors.
func (t *translator) mirrorFilter(rule *ruleState, field string, f *gwv1.HTTPRequestMirrorFilter) {
	if f == nil {
		rule.fail(gwv1.RouteReasonUnsupportedValue, field, "required for this filter type")
		return
	}
	m := &ir.Mirror{}
	switch {
	case f.Percent != nil && f.Fraction != nil:
		rule.fail(gwv1.RouteReasonUnsupportedValue, field, "percent and fraction cannot both be set")
		return
	case f.Percent != nil:
		if p := *f.Percent; p < 0 || p > 100 {
			rule.fail(gwv1.RouteReasonUnsupportedValue, field+".percent", "%d is outside 0-100", p)
			return
		}
		m.Numerator, m.Denominator = uint32(*f.Percent), 100
	case f.Fraction != nil:
		num, den := f.Fraction.Numerator, int32(100)
		if f.Fraction.Denominator != nil {
			den = *f.Fraction.Denominator
		}
		if den < 1 || num < 0 || num > den {
			rule.fail(gwv1.RouteReasonUnsupportedValue, field+".fraction", "%d/%d is not a fraction between 0 and 1", num, den)
			return
		}
		m.Numerator, m.Denominator = uint32(num), uint32(den)
	}
	cl, problem := t.resolveService(rule.route, fmt.Sprintf("spec.rules[%d].%s.backendRef", rule.index, field), &f.BackendRef)
	if problem != nil {
		rule.route.refProblems = append(rule.route.refProblems, *problem)
		return
	}
	if cl == nil {
		return // nothing to copy to (fail closed)
	}
	m.Cluster = cl.Name
	rule.clusters = append(rule.clusters, cl)
	rule.mirrors = append(rule.mirrors, m)
}
