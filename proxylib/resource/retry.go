package resource

import (
	"math"
	"strconv"
	"strings"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
)

// RetryOn is the set of retry_on conditions of a retry policy.
type RetryOn uint16

// retry_on conditions, named as in Envoy's x-envoy-retry-on and
// x-envoy-retry-grpc-on.
const (
	Retry5xx RetryOn = 1 << iota
	RetryGatewayError
	RetryReset
	RetryConnectFailure
	RetryRetriable4xx
	RetryRefusedStream
	RetryStatusCodes
	RetryEnvoyRateLimited
	RetryGRPCCancelled
	RetryGRPCDeadlineExceeded
	RetryGRPCInternal
	RetryGRPCResourceExhausted
	RetryGRPCUnavailable
)

// RetryGRPC is every gRPC status condition.
const RetryGRPC = RetryGRPCCancelled | RetryGRPCDeadlineExceeded | RetryGRPCInternal | RetryGRPCResourceExhausted | RetryGRPCUnavailable

var retryOnNames = map[string]RetryOn{
	"5xx":                    Retry5xx,
	"gateway-error":          RetryGatewayError,
	"reset":                  RetryReset,
	"connect-failure":        RetryConnectFailure,
	"retriable-4xx":          RetryRetriable4xx,
	"refused-stream":         RetryRefusedStream,
	"retriable-status-codes": RetryStatusCodes,
	"envoy-ratelimited":      RetryEnvoyRateLimited,
	"cancelled":              RetryGRPCCancelled,
	"deadline-exceeded":      RetryGRPCDeadlineExceeded,
	"internal":               RetryGRPCInternal,
	"resource-exhausted":     RetryGRPCResourceExhausted,
	"unavailable":            RetryGRPCUnavailable,
}

// Envoy's retry back-off defaults: a 25 ms base interval and a maximum of
// ten times the base.
const (
	DefaultRetryBaseInterval = 25 * time.Millisecond
	retryMaxIntervalFactor   = 10
)

// RetryPolicy is a decoded RouteAction.retry_policy whose retry_on names
// at least one condition. A policy without conditions never retries and
// decodes to nil (its per_try_timeout still applies).
type RetryPolicy struct {
	On RetryOn
	// NumRetries is how many times a request may be retried (num_retries,
	// default 1).
	NumRetries uint32
	// StatusCodes are the retriable_status_codes (retry_on
	// retriable-status-codes).
	StatusCodes []int
	// BaseInterval and MaxInterval bound Envoy's fully jittered
	// exponential back-off: retry N waits a random time below
	// BaseInterval×(2^N−1), at most MaxInterval.
	BaseInterval time.Duration
	MaxInterval  time.Duration
	// PreviousHosts (retry_host_predicate previous_hosts) makes a retry
	// pick a host no earlier attempt used, trying HostSelectionAttempts
	// more picks before it takes the last one picked.
	PreviousHosts         bool
	HostSelectionAttempts int
}

// RetriableStatus reports whether the policy retries a response with this
// status and these properties. grpcStatus is the response's grpc-status
// header (-1: none); rateLimited says the response carries
// x-envoy-ratelimited, which Envoy retries only under envoy-ratelimited.
func (p *RetryPolicy) RetriableStatus(status, grpcStatus int, rateLimited bool) bool {
	if rateLimited {
		return p.On&RetryEnvoyRateLimited != 0
	}
	switch {
	case p.On&Retry5xx != 0 && status >= 500 && status < 600:
		return true
	case p.On&RetryGatewayError != 0 && status >= 502 && status <= 504:
		return true
	case p.On&RetryRetriable4xx != 0 && status == 409:
		return true
	}
	if p.On&RetryStatusCodes != 0 {
		for _, c := range p.StatusCodes {
			if c == status {
				return true
			}
		}
	}
	if p.On&RetryGRPC != 0 && grpcStatus >= 0 {
		switch grpcStatus {
		case 1:
			return p.On&RetryGRPCCancelled != 0
		case 4:
			return p.On&RetryGRPCDeadlineExceeded != 0
		case 8:
			return p.On&RetryGRPCResourceExhausted != 0
		case 13:
			return p.On&RetryGRPCInternal != 0
		case 14:
			return p.On&RetryGRPCUnavailable != 0
		}
	}
	return false
}

// ResetKind is why an upstream attempt ended without a response head.
type ResetKind uint8

// Reset kinds, as Envoy distinguishes them for retries.
const (
	ResetConnectFailure ResetKind = iota // connecting (or the TLS handshake) failed
	ResetStream                          // reset, closed or timed out (per try) before the response head
	ResetRefusedStream                   // an HTTP/2 upstream refused the stream
	ResetOverflow                        // a circuit breaker refused the attempt: never retried
)

// RetriableReset reports whether the policy retries an attempt that ended
// without a response for this reason.
func (p *RetryPolicy) RetriableReset(k ResetKind) bool {
	switch {
	case k == ResetOverflow:
		return false
	case p.On&(RetryReset|Retry5xx|RetryGatewayError) != 0:
		// Envoy counts a reset as the 5xx it turns into.
		return true
	case k == ResetRefusedStream:
		return p.On&RetryRefusedStream != 0
	case k == ResetConnectFailure:
		return p.On&RetryConnectFailure != 0
	}
	return false
}

// Backoff returns how long to wait before retry n (1 for the first
// retry), in whole milliseconds as Envoy counts: a uniformly random time
// below BaseInterval×(2^n−1), capped at MaxInterval (so for the default
// 25 ms base: 0–24 ms, 0–74 ms, 0–174 ms ...). rnd returns a uniform
// value in [0, max).
func (p *RetryPolicy) Backoff(n int, rnd func(max uint64) uint64) time.Duration {
	base := uint64(max(p.BaseInterval/time.Millisecond, 1))
	limit := uint64(p.MaxInterval / time.Millisecond)
	span := uint64(math.MaxUint64)
	if n = max(n, 1); n < 64 {
		if mult := uint64(1)<<uint(n) - 1; base <= math.MaxUint64/mult {
			span = base * mult
		}
	}
	return time.Duration(min(rnd(span), limit)) * time.Millisecond
}

// decodeRetryPolicy decodes a retry policy with conditions; nil when
// retry_on is empty.
func decodeRetryPolicy(rp *routev3.RetryPolicy, p path) (*RetryPolicy, error) {
	out := &RetryPolicy{NumRetries: 1, BaseInterval: DefaultRetryBaseInterval, HostSelectionAttempts: 1}
	for _, tok := range strings.Split(rp.GetRetryOn(), ",") {
		tok = strings.TrimSpace(tok)
		if tok == "" {
			continue
		}
		c, ok := retryOnNames[tok]
		if !ok {
			return nil, fieldErr(append(p, "retry_on"), "condition %q not supported by nodemesh-proxy", tok)
		}
		out.On |= c
	}
	if v := rp.GetNumRetries(); v != nil {
		out.NumRetries = v.GetValue()
	}
	for _, c := range rp.GetRetriableStatusCodes() {
		out.StatusCodes = append(out.StatusCodes, int(c))
	}
	if b := rp.GetRetryBackOff(); b != nil {
		bp := append(p, "retry_back_off")
		base, err := routeDuration(b.GetBaseInterval(), DefaultRetryBaseInterval, append(bp, "base_interval"))
		if err != nil {
			return nil, err
		}
		out.BaseInterval = max(base, time.Millisecond) // Envoy rounds up to 1 ms
		if b.GetMaxInterval() != nil {
			m, err := routeDuration(b.GetMaxInterval(), 0, append(bp, "max_interval"))
			if err != nil {
				return nil, err
			}
			if m < base {
				return nil, fieldErr(append(bp, "max_interval"), "%v is below base_interval %v", m, base)
			}
			out.MaxInterval = max(m, time.Millisecond)
		}
	}
	if out.MaxInterval == 0 {
		out.MaxInterval = retryMaxIntervalFactor * out.BaseInterval
	}
	for i, hp := range rp.GetRetryHostPredicate() {
		pp := append(p, "retry_host_predicate", "["+strconv.Itoa(i)+"]")
		if hp.GetTypedConfig().GetTypeUrl() != "type.googleapis.com/"+previousHostsName {
			return nil, fieldErr(pp, "only the previous_hosts predicate (%s) is supported by nodemesh-proxy", previousHostsName)
		}
		out.PreviousHosts = true
	}
	if n := rp.GetHostSelectionRetryMaxAttempts(); n != 0 {
		if n < 0 || n > maxHostSelectionAttempts {
			return nil, fieldErr(append(p, "host_selection_retry_max_attempts"), "%d is outside 1..%d", n, maxHostSelectionAttempts)
		}
		out.HostSelectionAttempts = int(n)
	}
	if out.On == 0 {
		return nil, nil
	}
	return out, nil
}

// maxHostSelectionAttempts bounds the host picks of one retry: each is a
// load-balancer pick, and more than a few only spin on a small cluster.
const maxHostSelectionAttempts = 16

// Mirror is a decoded RouteAction.RequestMirrorPolicy: a fire-and-forget
// copy of the request to another cluster.
type Mirror struct {
	Cluster string
	// Numerator out of Denominator requests are mirrored (runtime_fraction
	// default_value); Denominator 0 mirrors every request.
	Numerator, Denominator uint32
	// Suffix says the copy's authority gets "-shadow" appended to its host
	// (before any port); HostRewrite, when set, replaces the authority.
	Suffix      bool
	HostRewrite string
}

// Sampled reports whether a request drawing x (uniform) is mirrored.
func (m *Mirror) Sampled(rnd func(max uint64) uint64) bool {
	if m.Denominator == 0 {
		return true
	}
	return rnd(uint64(m.Denominator)) < uint64(m.Numerator)
}

func decodeMirrors(ms []*routev3.RouteAction_RequestMirrorPolicy, p path) ([]Mirror, error) {
	var out []Mirror
	for i, m := range ms {
		mp := append(p, "request_mirror_policies", "["+strconv.Itoa(i)+"]")
		if m.GetCluster() == "" {
			return nil, fieldErr(append(mp, "cluster"), "must not be empty")
		}
		mi := Mirror{Cluster: m.GetCluster(), Suffix: !m.GetDisableShadowHostSuffixAppend(), HostRewrite: m.GetHostRewriteLiteral()}
		if mi.HostRewrite != "" {
			mi.Suffix = false // host_rewrite_literal implies no suffix
		}
		if f := m.GetRuntimeFraction(); f != nil {
			d := f.GetDefaultValue()
			mi.Numerator = d.GetNumerator()
			switch d.GetDenominator() {
			case typev3.FractionalPercent_HUNDRED:
				mi.Denominator = 100
			case typev3.FractionalPercent_TEN_THOUSAND:
				mi.Denominator = 10000
			case typev3.FractionalPercent_MILLION:
				mi.Denominator = 1000000
			default:
				return nil, fieldErr(append(mp, "runtime_fraction", "default_value", "denominator"), "unknown value %d", int32(d.GetDenominator()))
			}
		}
		out = append(out, mi)
	}
	return out, nil
}
