package translator

import (
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/nodemesh/nodemesh/mesh/ir"
)

// Retries and mirrors of a forwarding route.
//
// An IR retry policy becomes a RetryPolicy whose retry_on always holds
// connect-failure and reset (an attempt without a response: the
// connection failed, was reset or closed, or the per-try timeout expired
// before the response started; Gateway API asks retries to cover those
// whenever a retry stanza exists) and, with codes,
// retriable-status-codes with retriable_status_codes. num_retries is
// written only when the IR sets attempts (Envoy's default is 1), and
// retry_back_off.base_interval only with a backoff (Envoy's default
// 25 ms; max_interval stays Envoy's 10× the base). The route timeout
// bounds every attempt and back-off together, as Envoy's does.
//
// An IR mirror becomes a request_mirror_policies entry; a fraction below
// one becomes runtime_fraction.default_value: as written when its
// denominator is one Envoy names (100, 10 000, 1 000 000), else scaled
// to per million, rounded to the nearest. runtime_key stays unset (no
// runtime layer is configured, so only the default value counts).

// retryPolicy returns the route's retry policy: from its IR retry policy
// and backend timeout, nil when it has neither.
func retryPolicy(r *ir.Route) *routev3.RetryPolicy {
	var rp *routev3.RetryPolicy
	if bt := r.BackendTimeout; bt > 0 && (r.Timeout == 0 || bt < r.Timeout) {
		rp = &routev3.RetryPolicy{PerTryTimeout: durationpb.New(bt)}
	}
	pol := r.Retry
	if pol == nil {
		return rp
	}
	if rp == nil {
		rp = &routev3.RetryPolicy{}
	}
	rp.RetryOn = "connect-failure,reset"
	if len(pol.Codes) > 0 {
		rp.RetryOn += ",retriable-status-codes"
		rp.RetriableStatusCodes = make([]uint32, len(pol.Codes))
		for i, c := range pol.Codes {
			rp.RetriableStatusCodes[i] = uint32(c)
		}
	}
	if pol.Attempts > 0 {
		rp.NumRetries = wrapperspb.UInt32(pol.Attempts)
	}
	if pol.Backoff > 0 {
		// Envoy counts back-offs in whole milliseconds, at least one.
		rp.RetryBackOff = &routev3.RetryPolicy_RetryBackOff{BaseInterval: durationpb.New(max(pol.Backoff, time.Millisecond))}
	}
	return rp
}

// mirrorPolicies returns the route's request_mirror_policies.
func (b *builder) mirrorPolicies(r *ir.Route) []*routev3.RouteAction_RequestMirrorPolicy {
	if len(r.Mirrors) == 0 {
		return nil
	}
	out := make([]*routev3.RouteAction_RequestMirrorPolicy, 0, len(r.Mirrors))
	for _, m := range r.Mirrors {
		mp := &routev3.RouteAction_RequestMirrorPolicy{Cluster: b.clusterNames[m.Cluster]}
		if fp := mirrorFraction(m); fp != nil {
			mp.RuntimeFraction = &corev3.RuntimeFractionalPercent{DefaultValue: fp}
		}
		out = append(out, mp)
	}
	return out
}

// mirrorFraction is a mirror's share as a FractionalPercent, nil when it
// mirrors every request.
func mirrorFraction(m *ir.Mirror) *typev3.FractionalPercent {
	num, den := uint64(m.Numerator), uint64(m.Denominator)
	if den == 0 || num >= den {
		return nil
	}
	switch den {
	case 100:
		return &typev3.FractionalPercent{Numerator: uint32(num), Denominator: typev3.FractionalPercent_HUNDRED}
	case 10_000:
		return &typev3.FractionalPercent{Numerator: uint32(num), Denominator: typev3.FractionalPercent_TEN_THOUSAND}
	case 1_000_000:
		return &typev3.FractionalPercent{Numerator: uint32(num), Denominator: typev3.FractionalPercent_MILLION}
	}
	return &typev3.FractionalPercent{Numerator: uint32((num*1_000_000 + den/2) / den), Denominator: typev3.FractionalPercent_MILLION}
}
